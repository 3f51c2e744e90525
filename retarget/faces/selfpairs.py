"""Training pairs for the swap refiner from one person's own video: a warped other frame -> the real frame.

For frame ``t`` of a target's face dataset (:class:`~retarget.faces.index.FaceIndex`)
the input is what the swap would paste if the source made ``t``'s expression: the frame
of nearest expression and pose (the swap's own match: :func:`match_cost`), with the
``exclude`` frames either side of ``t`` in its segment left out (they are ``t`` itself,
barely moved), warped (:func:`~retarget.faces.morph.warp_picture`, the swap's fixed
triangulation of the mean shape) so its landmarks land on ``t``'s. The target is frame
``t`` itself, and the loss weight the swap's paste mask over ``t``'s landmarks: what the
refiner must learn is exactly what separates a warp from the real face there (seams,
stretched mouths, lips, shading of another pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retarget.faces.morph import border_points, triangulate, warp_picture
from retarget.faces.paste import face_mask
from retarget.faces import retrieval
from retarget.faces.index import FaceIndex
from retarget.faces.retrieval import BROW_REACH

__all__ = ["SelfPairs", "match_cost", "nearest_other", "self_pairs"]

#: Feather of the loss mask, as a fraction of the crop side (the paste's default).
FEATHER = 0.08


def match_cost(index: FaceIndex, features: np.ndarray) -> np.ndarray:
    """The swap's match cost of every face of ``index`` for a face of ``features`` (same person: no offsets).

    Returns:
        ``(N,)`` float64, weighted squared distance in the index's spreads (0 = same expression and pose).
    """
    return retrieval.match_cost(index.features, features, index.spread)


def nearest_other(index: FaceIndex, t: int, exclude: int) -> int:
    """The face of ``index`` nearest ``t``'s expression and pose, outside ``t``'s own ``exclude``-frame neighbourhood.

    Faces of ``t``'s segment within ``exclude`` positions of ``t`` (and ``t`` itself) are left out.

    Raises:
        ValueError: no face is left.
    """
    cost = match_cost(index, index.features[t])
    near = (index.segments == index.segments[t]) & (np.abs(np.arange(len(index)) - t) <= exclude)
    cost[near] = np.inf
    if not np.isfinite(cost).any():
        raise ValueError(f"face {t}: no other face outside {exclude} frames of it")
    return int(np.argmin(cost))


@dataclass
class SelfPairs:
    """Refiner training pairs (see the module).

    Attributes:
        inputs: ``(N, S, S, 3)`` uint8 RGB, the warped other frames.
        targets: ``(N, S, S, 3)`` uint8 RGB, the real frames.
        masks: ``(N, S, S)`` uint8 in [0, 255], the paste mask of each real frame (255 = inside).
        picks: ``(N,)`` the index face each input was warped from.
        frames: ``(N,)`` the index face each target is.
    """

    inputs: np.ndarray
    targets: np.ndarray
    masks: np.ndarray
    picks: np.ndarray
    frames: np.ndarray


def self_pairs(index: FaceIndex, frames: np.ndarray, exclude: int) -> SelfPairs:
    """The pairs of ``frames`` (positions in ``index``), each warped from its :func:`nearest_other`.

    Raises:
        ValueError: a frame with no other face outside its neighbourhood.
    """
    size = index.size
    border = border_points(size)
    triangles = triangulate(np.vstack([index.mean_points, border]), size)
    n = len(frames)
    grow = int(round(FEATHER * size / 2))  # the feather's ramp lies inside: cover the paste's whole soft edge
    inputs = np.empty((n, size, size, 3), np.uint8)
    targets = np.empty_like(inputs)
    masks = np.empty((n, size, size), np.uint8)
    picks = np.empty(n, np.int64)
    for i, t in enumerate(np.asarray(frames, np.int64)):
        k = nearest_other(index, int(t), exclude)
        src, dst = np.vstack([index.points[k], border]), np.vstack([index.points[t], border])
        inputs[i] = warp_picture(index.image(k), src, dst, triangles)
        targets[i] = index.image(int(t))
        mask = face_mask(index.points[t], size, feather=FEATHER, grow=grow, forehead=BROW_REACH)
        masks[i] = np.round(mask * 255.0).astype(np.uint8)
        picks[i] = k
    return SelfPairs(inputs, targets, masks, picks, np.asarray(frames, np.int64))
