"""Per-frame fidelity to a ground truth: PSNR, SSIM, and flicker against the truth.

All functions take ``H x W x 3`` uint8 RGB frames of one size and work on the 0-255
scale. See docs/eval.md for the formulas and how to read them.
"""

from __future__ import annotations

import cv2
import numpy as np

#: PSNR of identical frames (MSE 0) and the ceiling of every PSNR value (dB).
PSNR_CAP = 100.0

#: SSIM constants of Wang et al. (2004): 11 x 11 Gaussian window, sigma 1.5,
#: K1 = 0.01, K2 = 0.03, dynamic range L = 255.
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_C1 = (0.01 * 255.0) ** 2
SSIM_C2 = (0.03 * 255.0) ** 2


def _same_size(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"frames must have one shape, got {a.shape} and {b.shape}")


def psnr(output: np.ndarray, truth: np.ndarray, cap: float = PSNR_CAP) -> float:
    """Peak signal-to-noise ratio ``10 log10(255^2 / MSE)`` in dB, at most ``cap``.

    Args:
        output, truth: ``H x W x 3`` uint8 RGB frames of one shape.
        cap: value returned for identical frames and upper bound of the result.

    Returns:
        dB, in ``[0, cap]`` (MSE over all pixels and channels).
    """
    _same_size(output, truth)
    mse = float(np.mean((output.astype(np.float32) - truth.astype(np.float32)) ** 2))
    if mse <= 0.0:
        return float(cap)
    return float(min(cap, 10.0 * np.log10(255.0**2 / mse)))


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` of an RGB frame, ``H x W`` float32 in [0, 255]."""
    if image.ndim == 2:
        return image.astype(np.float32)
    rgb = image.astype(np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def ssim_map(output: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The per-pixel structural similarity (Wang et al. 2004) of the frames' luma, ``H x W`` in [-1, 1].

    Local means, variances and covariance come from an 11 x 11 Gaussian window
    (sigma 1.5, OpenCV ``GaussianBlur``, reflected borders).

    Args:
        output, truth: ``H x W x 3`` uint8 RGB (or ``H x W`` gray) frames of one shape.
    """
    _same_size(output, truth)
    x, y = luma(output), luma(truth)

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    num = (2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)
    den = (mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2)
    return num / den


def ssim(output: np.ndarray, truth: np.ndarray) -> float:
    """Structural similarity of the frames' luma, in [-1, 1] (1 = identical): :func:`ssim_map`
    averaged over the pixels whose window lies inside the frame (a 5 px border is dropped
    when the frame is larger than the window).

    Args:
        output, truth: ``H x W x 3`` uint8 RGB (or ``H x W`` gray) frames of one shape.

    Returns:
        The mean SSIM.
    """
    smap = ssim_map(output, truth)
    r = SSIM_WINDOW // 2
    h, w = smap.shape
    if h > 2 * r and w > 2 * r:
        smap = smap[r : h - r, r : w - r]
    return float(smap.mean(dtype=np.float64))


def flicker(prev_out: np.ndarray, cur_out: np.ndarray, prev_truth: np.ndarray, cur_truth: np.ndarray) -> float:
    """Flicker against the truth: ``mean |(out_t+1 - out_t) - (truth_t+1 - truth_t)|``, 0-255 scale.

    Zero when the output changes from frame to frame exactly as the truth does (even
    if it is offset from it); large when it changes where the truth does not.

    Args:
        prev_out, cur_out: consecutive output frames, ``H x W x 3`` uint8.
        prev_truth, cur_truth: the matching truth frames, same shape.

    Returns:
        Mean over pixels and channels, in [0, 510].
    """
    for a in (cur_out, prev_truth, cur_truth):
        _same_size(prev_out, a)
    d_out = cur_out.astype(np.int16) - prev_out.astype(np.int16)
    d_truth = cur_truth.astype(np.int16) - prev_truth.astype(np.int16)
    return float(np.abs(d_out - d_truth).mean(dtype=np.float64))
