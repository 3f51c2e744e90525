"""Temporal consistency of a frame sequence: the warping error of Lai et al. (2018).

The motion comes from the *source* frames (the video that was translated): the output
frame ``t-1`` is warped along the source's backward flow onto frame ``t``, and the mean
absolute difference to output frame ``t`` is taken over the pixels whose flow passes the
forward-backward check. A translation that follows the source's motion without
flicker scores close to the source's own warping error.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from retarget.video.flow import FlowEstimator, Motion, motion, warp


def pair_warping_error(prev_out: np.ndarray, cur_out: np.ndarray, m: Motion) -> float:
    """``mean |cur_out - warp(prev_out)|`` over the reliable pixels of ``m``, 0-255 scale.

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
