"""Back to the source's resolution: ``render --upscale bilinear|detail``.

The generator translates the frame at the training scale (for example 143 px high); the
output has the source's size (for example 720 px). ``bilinear`` upscales the translation
(:func:`retarget.geometry.place_back`): correct, but as soft as the small picture.

``detail`` puts the source's own fine detail back where the translation follows the
source. It is guided upsampling (He et al., guided filter, 2010/2013; the "fast guided
filter" idea of fitting at low resolution and applying at high): at the model scale, in
every ``(2 RADIUS + 1)``-px window, the translation ``T`` is fitted as a linear function of
the source's luma ``I`` (the network's own input), ``T ~ a I + b`` per channel; ``a`` is
the local gain (about 1 where the translation keeps the source's edges and texture, about
0 where it drew something else or where the source is flat, ``EPS`` deciding what is
flat). At the source resolution the output is::

    out = up(T) + up(a) * (I_source - up(I_small))

``I_source - up(I_small)`` is exactly the source detail the downscale lost, so where
``a`` is 0 the result is the bilinear one, and nowhere does the translation's own content
get blurred. OpenCV's ``ximgproc`` (with its guided filter) is not in
``opencv-python-headless``; the filter here is four ``cv2.boxFilter`` passes.
"""

from __future__ import annotations

import cv2
import numpy as np

from retarget.geometry import back_window, place_back, upsample

#: Window radius (px at the model scale) of the local fit: 5 x 5 windows.
RADIUS = 2
#: Regulariser of the fit (a variance of luma in [0, 1]): windows whose luma varies by much
#: less than sqrt(EPS) ~ 0.03 (8 levels of 255) are flat and get little of the source's detail.
EPS = 1e-3
#: Limit of the local gain ``|a|``, so a noisy fit cannot amplify the source's noise.
GAIN_LIMIT = 2.0
#: Upscaling modes.
MODES = ("bilinear", "detail")


def luma(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an ``H x W x 3`` uint8 RGB image: ``H x W`` float32 in [0, 1]."""
    rgb = image.astype(np.float32) * (1.0 / 255.0)
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _box(x: np.ndarray) -> np.ndarray:
    k = 2 * RADIUS + 1
    return cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def detail_gain(source: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """The local gain ``a`` of the translation on the source's luma (see the module).

    Args:
        source: the network's input, ``h x w x 3`` uint8 RGB.
        translation: its translation, the same shape.

    Returns:
        ``h x w x 3`` float32 in ``[-GAIN_LIMIT, GAIN_LIMIT]``, smoothed over the window as the
        guided filter averages its coefficients.
    """
    guide = luma(source)
    target = translation.astype(np.float32) * (1.0 / 255.0)
    mean_i = _box(guide)
    mean_t = _box(target)
    var_i = _box(guide * guide) - mean_i * mean_i
    cov = _box(guide[..., None] * target) - mean_i[..., None] * mean_t
    gain = cov / (np.maximum(var_i, 0.0)[..., None] + EPS)
    return np.clip(_box(gain), -GAIN_LIMIT, GAIN_LIMIT).astype(np.float32)


def place_back_detail(frame: np.ndarray, translation: np.ndarray, source: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """:func:`retarget.geometry.place_back` with the source's fine detail put back.

    Args:
        frame: ``H x W x 3`` uint8 source frame (not modified).
        translation: ``h x w x 3`` uint8, the translation of ``source``.
        source: ``h x w x 3`` uint8, the network's input (the frame's region at model scale).
        matrix: (2, 3) axis-aligned frame -> ``source`` pixels.

    Returns:
        ``H x W x 3`` uint8: inside the region, ``up(T) + up(a) (I - up(I_small))`` per channel;
        outside, the frame.
    """
    if translation.shape != source.shape:
        return place_back(frame, translation, matrix)
    rows, cols, roi = back_window(matrix, translation.shape[:2], frame.shape[:2])
    hw = (rows.stop - rows.start, cols.stop - cols.start)
    out = frame.copy()
    if not (hw[0] and hw[1]):
        return out
    base = upsample(translation, roi, hw).astype(np.float32)
    gain = upsample(detail_gain(source, translation), roi, hw)
    lost = luma(frame[rows, cols]) - upsample(luma(source), roi, hw)
    res = base + 255.0 * gain * lost[..., None]
    out[rows, cols] = np.clip(res + 0.5, 0, 255).astype(np.uint8)
    return out
