"""Temporal consistency of a frame sequence along the *source's* motion: two warping errors.

The motion comes from the source frames (the video that was translated): output frame
``t-1`` is warped along the source's backward flow onto frame ``t`` and compared with
output frame ``t``. A translation that follows the source's motion without flicker
scores close to the source's own error. Two figures are computed (docs/eval.md):

- :func:`pair_warping_error`, retarget's L1 figure: ``mean |cur - warp(prev)|`` on the
  0-255 scale, averaged over channels, over the pixels that pass the forward-backward
  check (:func:`retarget.video.flow.consistent`);
- :func:`pair_e_warp`, the E_warp of Lai et al. (ECCV 2018, "Learning Blind Video
  Temporal Consistency"): ``sum_x M(x) ||cur(x) - warp(prev)(x)||_2^2 / sum_x M(x)`` on
  RGB in [0, 1] (squared norm over the three channels), with the non-occlusion mask
  ``M`` of :func:`non_occluded` (the forward-backward check and a motion-boundary test).
  Only this one is on the scale of published numbers.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from retarget.video.flow import FlowEstimator, Motion, motion, warp


#: Motion-boundary test of Lai et al. (after Ruder et al. 2016): a pixel is on a motion
#: boundary where ``|grad u|^2 + |grad v|^2 > BOUNDARY_ALPHA |w|^2 + BOUNDARY_BETA``, ``w = (u, v)``
#: the flow in pixels.
BOUNDARY_ALPHA = 0.01
BOUNDARY_BETA = 0.002


def motion_boundary(flow: np.ndarray) -> np.ndarray:
    """Where ``flow`` changes fast across pixels: ``|grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002``.

    The gradients are forward differences (``u(x+1, y) - u(x, y)`` and
    ``u(x, y+1) - u(x, y)``, 0 in the last column and row), as in Lai et al.'s evaluation.

    Args:
        flow: ``H x W x 2`` float32 flow in pixels.

    Returns:
        ``H x W`` bool, True on a motion boundary.
    """
    u, v = flow[..., 0], flow[..., 1]
    grad = np.zeros(u.shape, np.float32)
    for c in (u, v):
        dx = np.diff(c, axis=1)
        dy = np.diff(c, axis=0)
        grad[:, :-1] += dx * dx
        grad[:-1, :] += dy * dy
    return grad > BOUNDARY_ALPHA * (u * u + v * v) + BOUNDARY_BETA


def non_occluded(m: Motion) -> np.ndarray:
    """Lai et al.'s non-occlusion mask ``M`` of a source motion, ``H x W`` bool.

    A pixel counts when its backward flow passes the forward-backward check
    (``m.valid``: ``|b + f_warped|^2 < 0.01 (|b|^2 + |f_warped|^2) + 0.5``, its match
    inside the frame) and it is not on a :func:`motion_boundary` of the backward flow.
    """
    return m.valid & ~motion_boundary(m.backward)


def pair_e_warp(prev_out: np.ndarray, cur_out: np.ndarray, m: Motion, mask: Optional[np.ndarray] = None) -> float:
    """Lai et al.'s E_warp of one frame pair: ``sum M ||cur - warp(prev)||_2^2 / sum M``, RGB in [0, 1].

    Args:
        prev_out, cur_out: ``H x W x 3`` uint8 frames of the sequence being judged.
        m: :func:`retarget.video.flow.motion` of the matching source frames (same H, W).
        mask: :func:`non_occluded` of ``m`` when already computed (one per pair serves
            the output, the source and the truth).

    Returns:
        The mean over the masked pixels of the squared RGB distance (sum over the
        channels), in [0, 3]; NaN when the mask is empty.
    """
    if prev_out.shape[:2] != m.backward.shape[:2] or cur_out.shape[:2] != m.backward.shape[:2]:
        raise ValueError("output frames and source motion must have the same size")
    mask = non_occluded(m) if mask is None else mask
    if not mask.any():
        return float("nan")
    # warp in float so the bilinear samples keep their fractions; the 0-255 scale is
    # divided out at the end (one multiplication instead of two image divisions)
    aligned = warp(prev_out.astype(np.float32), m.backward)
    diff = cv2.subtract(cur_out.astype(np.float32), aligned)
    sq = cv2.multiply(diff, diff)
    # the channels written out: numpy's sum over a short last axis is several times slower
    dist = sq[..., 0] + sq[..., 1] + sq[..., 2] if sq.ndim == 3 else sq
    return float(cv2.mean(dist, mask=np.ascontiguousarray(mask, dtype=bool).view(np.uint8))[0]) / 255.0**2


def pair_warping_error(prev_out: np.ndarray, cur_out: np.ndarray, m: Motion) -> float:
    """retarget's L1 warping error: ``mean |cur_out - warp(prev_out)|`` over the reliable pixels of ``m``, 0-255.

    Args:
        prev_out, cur_out: ``H x W x 3`` uint8 frames of the sequence being judged.
        m: :func:`retarget.video.flow.motion` of the matching source frames (same H, W).

    Returns:
        The error in 0-255 units (mean over reliable pixels and channels); NaN when no
        pixel is reliable.
    """
    if prev_out.shape[:2] != m.backward.shape[:2] or cur_out.shape[:2] != m.backward.shape[:2]:
        raise ValueError("output frames and source motion must have the same size")
    if not m.valid.any():
        return float("nan")
    aligned = warp(prev_out, m.backward)
    if cur_out.dtype == np.uint8 and aligned.dtype == np.uint8:
        # exact |a - b| of 8-bit values, averaged in double precision by OpenCV: the
        # same number as the float path below, about 4x faster
        diff = cv2.absdiff(np.ascontiguousarray(cur_out), aligned)
        means = cv2.mean(diff, mask=m.valid.view(np.uint8))
        channels = diff.shape[2] if diff.ndim == 3 else 1
        return float(sum(means[:channels]) / channels)
    diff = np.abs(cur_out.astype(np.float32) - aligned.astype(np.float32))
    return float(diff[m.valid].mean())


def warping_errors(
    outputs: Sequence[np.ndarray] | Iterable[np.ndarray],
    sources: Sequence[np.ndarray] | Iterable[np.ndarray],
    estimator: Optional[FlowEstimator] = None,
) -> np.ndarray:
    """Per-pair warping errors of ``outputs`` along the motion of ``sources``.

    Args:
        outputs: ``T`` frames ``H x W x 3`` uint8 (the translation).
        sources: ``T`` frames ``H x W x 3`` uint8 the motion is measured on (the input
            video; pass ``outputs`` itself for a sequence's own consistency).
        estimator: a reused flow estimator.

    Returns:
        float64 array of ``T - 1`` errors (0-255 scale; NaN where nothing was reliable).
    """
    est = estimator or FlowEstimator()
    out: list[float] = []
    prev_o = prev_s = None
    for o, s in zip(outputs, sources):
        if prev_o is not None:
            out.append(pair_warping_error(prev_o, o, motion(prev_s, s, est)))
        prev_o, prev_s = o, s
    return np.asarray(out, dtype=np.float64)
