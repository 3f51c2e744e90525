"""Full-frame placement: the training crop of a frame, and putting its translation back.

Matrices are ``2 x 3`` float64 affine maps ``source pixels -> crop pixels`` acting on
``[x, y, 1]`` (pixel centres at integer coordinates), the same convention as
:mod:`retarget.faces.align`.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np


def center_crop_matrix(
    width: int, height: int, size: int, crop: Optional[tuple[int, int, int, int]] = None
) -> np.ndarray:
    """The matrix of extract's ``--align none`` crop: centre square of the short side, scaled to ``size``.

    Args:
        width, height: source frame size (px, >= 1).
        size: crop side (px).
        crop: extract's ``--crop`` region ``(x, y, w, h)``; the square is centred in it.

    Returns:
        (2, 3) float64, source pixels -> crop pixels, as extract records it in the manifest.
    """
    from retarget.dataset.extract import none_matrix

    return none_matrix(width, height, size, crop)[0]


def center_crop(image: np.ndarray, size: int, crop: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
    """Extract's ``--align none`` network input: the centre square of ``image`` at ``size``.

    Args:
        image: H x W x 3 uint8 RGB.
        size: crop side (px).
        crop: extract's ``--crop`` region ``(x, y, w, h)``; the square is centred in it.

    Returns:
        size x size x 3 uint8, the same pixels extract writes for this frame (same code).
    """
    from retarget.dataset.extract import crop_none, none_matrix

    h, w = image.shape[:2]
    return crop_none(image, none_matrix(w, h, size, crop)[1], size)


def place_back(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Upscale ``crop`` into the region of ``frame`` it was cut from.

    Args:
        frame: H x W x 3 uint8 source frame (not modified).
        crop: S x S x 3 uint8 translated crop.
        matrix: (2, 3) axis-aligned source -> crop matrix (scale and shift, as from
            :func:`center_crop_matrix`).

    Returns:
        H x W x 3 uint8: every frame pixel whose centre falls inside the crop's area takes
        the (bilinearly upscaled) crop, every other pixel keeps the frame's value.
    """
    m = np.asarray(matrix, np.float64)
    if m[0, 1] or m[1, 0]:
        raise ValueError("place_back needs an axis-aligned matrix (no rotation)")
    out = frame.copy()
    h, w = frame.shape[:2]
    s = crop.shape[0]
    # frame pixels whose centre maps into [-0.5, s - 0.5], the crop's pixel area
    x0 = max(0, int(np.ceil((-0.5 - m[0, 2]) / m[0, 0] - 1e-9)))
    x1 = min(w, int(np.floor((s - 0.5 - m[0, 2]) / m[0, 0] + 1e-9)) + 1)
    y0 = max(0, int(np.ceil((-0.5 - m[1, 2]) / m[1, 1] - 1e-9)))
    y1 = min(h, int(np.floor((s - 0.5 - m[1, 2]) / m[1, 1] + 1e-9)) + 1)
    if x1 <= x0 or y1 <= y0:
        return out
    roi = m.copy()
    roi[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    # WARP_INVERSE_MAP: ROI pixel p samples the crop at roi @ p; edge pixels half a
    # pixel beyond the last crop centre repeat it rather than fade to the border
    out[y0:y1, x0:x1] = cv2.warpAffine(
        crop, roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    return out


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left`` and ``right`` (H x W x 3 uint8) next to each other; ``left`` is resized to
    ``right``'s height when they differ (e.g. ``--output-size model``).

    Returns:
        H_r x (W_l' + W_r) x 3 uint8.
    """
    if left.shape[0] != right.shape[0]:
        h = right.shape[0]
        w = max(1, round(left.shape[1] * h / left.shape[0]))
        left = cv2.resize(left, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))
