"""Composing output frames: side by side views.

The crop geometry render uses (``center_crop``, ``center_crop_matrix``, ``place_back``)
lives in :mod:`retarget.geometry`, shared with extract.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["side_by_side"]


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
