"""Dense optical flow between frames, warping along it, and where it can be trusted.

Shared by ``retarget eval`` (warping error) and ``render --stabilize``. OpenCV's DIS
flow does the estimation; this module only fixes one convention and the checks
around it.

Convention: ``flow(src, dst)`` is an ``H x W x 2`` float32 field ``f`` in pixels with
``src(x) ~ dst(x + f(x))`` (OpenCV's ``calcOpticalFlow`` convention). To bring the
previous frame ``prev`` onto the current one ``cur``, take the *backward* flow
``b = flow(cur, prev)`` and ``warp(prev, b)``, which samples ``prev`` at ``x + b(x)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

#: DIS presets by name; ``medium`` is accurate enough for 64-512 px crops at a few ms.
PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
#: DIS refuses frames under 12 px a side; smaller ones are enlarged to this for the estimate.
MIN_SIDE = 16


def to_gray(image: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB (or an ``H x W`` gray image) -> contiguous ``H x W`` uint8 gray."""
    if image.ndim == 2:
        return np.ascontiguousarray(image, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """DIS optical flow with one reusable OpenCV object (not thread-safe: one per thread).

    Args:
        preset: ``ultrafast``, ``fast`` or ``medium``.
    """

    def __init__(self, preset: str = "medium") -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown flow preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Flow ``f`` with ``src(x) ~ dst(x + f(x))``.

        Args:
            src, dst: same-size ``H x W x 3`` uint8 RGB or ``H x W`` uint8 gray frames.

        Returns:
            ``H x W x 2`` float32, pixels (x then y).
        """
        a, b = to_gray(src), to_gray(dst)
        if a.shape != b.shape:
            raise ValueError(f"flow needs frames of one size, got {a.shape} and {b.shape}")
        h, w = a.shape
        k = math.ceil(MIN_SIDE / max(min(h, w), 1))
        if k <= 1:
            return self._dis.calc(a, b, None)
        # DIS refuses frames this small: the flow of both enlarged k times, brought back to their size
        big = [cv2.resize(x, (w * k, h * k), interpolation=cv2.INTER_LINEAR) for x in (a, b)]
        flow = self._dis.calc(big[0], big[1], None)
        return cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / np.float32(k)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``x + flow(x)`` (bilinear, edges replicated).

    Args:
        image: ``H x W x C`` or ``H x W``, uint8 or float32.
        flow: ``H x W x 2`` float32 in pixels (see the module's convention).

    Returns:
        The warped image, same shape and dtype as ``image``.
    """
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = grid_x + flow[..., 0]
    map_y = grid_y + flow[..., 1]
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(backward: np.ndarray, forward: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Where a backward flow is confirmed by the forward one (occlusion and error check).

    A pixel ``x`` of the current frame maps to ``y = x + backward(x)`` in the previous
    frame; the forward flow there should come back: ``forward(y) ~ -backward(x)``. The
    test is ``|backward(x) + forward(y)|^2 < alpha (|backward(x)|^2 + |forward(y)|^2) + beta``
    (the forward-backward check of Sundaram et al. 2010, used by Ruder et al. 2016 and
    Lai et al. 2018). Pixels whose ``y`` falls outside the frame fail too.

    Args:
        backward: ``flow(cur, prev)``, ``H x W x 2`` float32.
        forward: ``flow(prev, cur)``, ``H x W x 2`` float32.
        alpha, beta: relative and absolute tolerances (pixels squared for ``beta``).

    Returns:
        ``H x W`` bool, True where the backward flow is reliable.
    """
    h, w = backward.shape[:2]
    # Component-wise arithmetic: numpy's sum over a last axis of 2 is several times
    # slower than writing the two terms out (measured 12 ms -> 2 ms at 640 x 272).
    tx = np.arange(w, dtype=np.float32)[None, :] + backward[..., 0]
    ty = np.arange(h, dtype=np.float32)[:, None] + backward[..., 1]
    fwd_at = cv2.remap(forward, tx, ty, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    bx, by, fx, fy = backward[..., 0], backward[..., 1], fwd_at[..., 0], fwd_at[..., 1]
    err = (bx + fx) ** 2 + (by + fy) ** 2
    mag = bx * bx + by * by + fx * fx + fy * fy
    ok = err < alpha * mag + beta
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return ok & inside


@dataclass
class Motion:
    """How the previous frame maps onto the current one.

    Attributes:
        backward: ``flow(cur, prev)``, ``H x W x 2`` float32: ``warp(prev, backward)`` lines
            ``prev`` up with ``cur``.
        valid: ``H x W`` bool, where that warp is reliable (forward-backward check).
    """

    backward: np.ndarray
    valid: np.ndarray


def motion(prev: np.ndarray, cur: np.ndarray, estimator: Optional[FlowEstimator] = None) -> Motion:
    """Backward flow from ``cur`` to ``prev`` and its reliability mask.

    Args:
        prev, cur: consecutive ``H x W x 3`` uint8 RGB (or gray) frames of one size.
        estimator: a reused :class:`FlowEstimator`; a ``medium`` one is made if None.

    Returns:
        :class:`Motion`.
    """
    est = estimator or FlowEstimator()
    a, b = to_gray(prev), to_gray(cur)
    backward = est(b, a)
    forward = est(a, b)
    return Motion(backward, consistent(backward, forward))
