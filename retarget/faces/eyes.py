"""Eyes that belong in a face swap by retrieval: the eye region from its own target frame.

:class:`~retarget.faces.retrieval.FaceSwap` picks one target frame per source face, by the
mouth first, and warps it to the target's shape moving as the source's does. When the
source blinks or narrows its eyes and the picked frame's eyes are open, that warp squashes
an open eye between closing lids: the iris becomes a dark slit. With ``eyes`` on, the swap
makes a second pick for the eye region alone:

1. **Pick** (:func:`eye_cost`, :func:`keep_or_pick`): the target frame whose eye openings
   and pose (features 3-6 of :func:`~retarget.faces.retrieval.expression_features`, scaled
   by the target's spread, :data:`EYE_WEIGHTS`) are nearest those of the shape the face
   is warped to, so the eyes are squashed or stretched least. The main pick itself is
   taken while no frame is nearer by more than the hold (its eyes need no blend), then
   the previous eye pick (or the next frame of its segment), else the nearest.
2. **Blend** (:func:`eye_region`): that frame, warped to the same shape, replaces the
   main pick's eyes, lids and the skin just around them along a feathered mask (an
   ellipse per eye, :data:`REACH` of the eye's width about it).
3. **Closing** (:func:`closure`, :func:`open_lids`, :func:`close_eyes`): where the shape's
   eye is more closed than the eye frame shown by more than :data:`CLOSE_MARGIN` (the
   target's footage has no eye that closed), the eye frame is warped with its upper lids
   no lower than that margin allows (the iris is squashed little), and the upper lid is
   then lowered over it to where the shape has it: the lid skin above is stretched down,
   its lashes with it, all the way to the lower lid once the shape is :data:`CLOSE_RAMP`
   past the margin: a closing lid, not a dark socket.

The eyes' landmarks follow the source with less smoothing than the rest of the face
(:data:`~retarget.faces.retrieval.EYE_SMOOTH`): a blink lasts a few frames.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

__all__ = ["EYES", "close_eyes", "closure", "eye_cost", "eye_region", "keep_or_pick", "lids_apart", "open_lids"]

#: The landmarks of each eye (image-left first), corners 36/39 and 42/45.
EYES = (np.arange(36, 42), np.arange(42, 48))
#: Upper-lid points and the lower-lid point facing each.
LIDS = np.array([[37, 41], [38, 40], [43, 47], [44, 46]])
#: Features of the eye match (eye openings, yaw, pitch) and their weights.
EYE_FEATURES = np.array([3, 4, 5, 6])
EYE_WEIGHTS = np.array([1.0, 1.0, 0.5, 0.5])
#: Default hold of the eye pick (squared target spreads, weighted, as the main pick's).
EYE_HOLD = 2.0
#: The eye region's half axes per eye width (along the eye, across it) and its feather.
REACH = (0.75, 0.55)
REGION_FEATHER = 0.15
#: A shape's eye opening this share under the shown frame's starts a closing lid...
CLOSE_MARGIN = 0.25
#: ...which is full this share (of the shown frame's opening) further down.
CLOSE_RAMP = 0.3
#: How far above the upper lid the skin stretched over a closing eye starts, per eye width.
REACH_UP = 0.5
#: The lid margin, per eye width (1 px at least): the stretched skin ends this far above the
#: upper lid's landmarks (what lies between is where lid meets eye, a squashed iris's edge
#: in a squashed eye) and its edge comes down this far past the lower lid's (the lashes over it).
LID_EDGE = 0.05


def eye_cost(features: np.ndarray, spread: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Weighted squared distance of every target frame's eyes and pose to ``query``'s.

    Args:
        features: ``(N, 7)`` the target frames' :func:`~retarget.faces.retrieval.expression_features`.
        spread: ``(7,)`` their standard deviations (> 0).
        query: ``(7,)`` the features of the shape to draw.

    Returns:
        ``(N,)`` float64 >= 0.
    """
    f = EYE_FEATURES
    return ((((features[:, f] - query[f]) / spread[f]) ** 2) * EYE_WEIGHTS).sum(1)


def keep_or_pick(
    cost: np.ndarray, previous: Optional[int], preferred: int, segments: np.ndarray, hold: float
) -> int:  # fmt: skip
    """The eye pick: ``preferred`` (the main pick: its own eyes need no blend) if within
    ``hold`` of the nearest, else ``previous`` or its successor in the same segment if
    within ``hold``, else the nearest.

    Args:
        cost: ``(N,)`` :func:`eye_cost` of every target frame.
        previous: the last eye pick (None: a new track).
        preferred: the main pick of this frame.
        segments: ``(N,)`` the target frames' segments.
        hold: how much nearer another frame must be before the pick leaves those.
    """
    best = int(np.argmin(cost))
    limit = cost[best] + hold
    if cost[preferred] <= limit:
        return int(preferred)
    if previous is not None:
        near = [previous]
        if previous + 1 < len(cost) and segments[previous + 1] == segments[previous]:
            near.append(previous + 1)
        keep = min(near, key=lambda k: cost[k])
        if cost[keep] <= limit:
            return int(keep)
    return best


def lids_apart(points: np.ndarray) -> np.ndarray:
    """``points`` with every upper-lid point no lower than the lower-lid point facing it.

    A shape made of one face's mean and another's motion can close an eye past shut (the
    source's blink is deeper than the target's eye is tall); crossed lids fold the warp.

    Returns:
        ``(68, 2)`` float64, the crossing upper and lower points both moved to their middle.
    """
    p = np.asarray(points, np.float64).copy()
    upper, lower = p[LIDS[:, 0], 1], p[LIDS[:, 1], 1]
    crossed = upper > lower
    middle = (upper + lower) / 2.0
    p[LIDS[crossed, 0], 1] = middle[crossed]
    p[LIDS[crossed, 1], 1] = middle[crossed]
    return p


def _eye_width(points: np.ndarray, eye: np.ndarray) -> float:
    return max(float(np.linalg.norm(points[eye[3]] - points[eye[0]])), 1.0)


def eye_region(points: np.ndarray, size: int) -> np.ndarray:
    """Both eyes, their lids and the skin about them: an ellipse per eye (:data:`REACH`),
    turned with the eye's corners, feathered (:data:`REGION_FEATHER` of the eye's width).

    Args:
        points: ``(68, 2)`` landmarks in crop pixels.
        size: crop side (px).

    Returns:
        ``size x size`` float32 in [0, 1].
    """
    p = np.asarray(points, np.float64)
    mask = np.zeros((size, size), np.float32)
    widths = []
    for eye in EYES:
        width = _eye_width(p, eye)
        dx, dy = p[eye[3]] - p[eye[0]]
        centre = p[eye].mean(0)
        axes = (REACH[0] * width, REACH[1] * width)
        angle = float(np.degrees(np.arctan2(dy, dx)))
        cv2.ellipse(mask, ((float(centre[0]), float(centre[1])), (2 * axes[0], 2 * axes[1]), angle), 1.0, -1)
        widths.append(width)
    sigma = REGION_FEATHER * float(np.mean(widths))
    return np.clip(cv2.GaussianBlur(mask, (0, 0), max(sigma, 0.3)), 0.0, 1.0)


def closure(have: np.ndarray, want: np.ndarray) -> np.ndarray:
    """How much to close each eye: 0 while the shape's opening ``want`` is within
    :data:`CLOSE_MARGIN` of the shown frame's ``have``, 1 from :data:`CLOSE_RAMP` further down.

    Args:
        have, want: ``(2,)`` eye openings (per eye width, as ``expression_features`` 3, 4).

    Returns:
        ``(2,)`` float64 in [0, 1], smooth in ``want``.
    """
    have = np.maximum(np.asarray(have, np.float64), 1e-6)
    a = np.clip((have * (1.0 - CLOSE_MARGIN) - np.asarray(want, np.float64)) / (have * CLOSE_RAMP), 0.0, 1.0)
    return a * a * (3.0 - 2.0 * a)


def _lid_curve(points: np.ndarray, order: list[int], xs: np.ndarray) -> np.ndarray:
    """The y of the lid through ``points[order]`` (corner to corner) at columns ``xs``."""
    lid = points[order]
    lid = lid[np.argsort(lid[:, 0])]
    return np.interp(xs, lid[:, 0], lid[:, 1])


def open_lids(points: np.ndarray, openings: np.ndarray) -> np.ndarray:
    """``points`` with each eye's upper lid (37, 38 / 43, 44) raised so its opening is at least
    ``openings`` (per eye width, as ``expression_features`` 3, 4); lower lids and corners stay.

    Returns:
        ``(68, 2)`` float64.
    """
    p = np.asarray(points, np.float64).copy()
    for e, eye in enumerate(EYES):
        lids = LIDS[2 * e : 2 * e + 2]
        now = float(np.mean([p[b, 1] - p[t, 1] for t, b in lids])) / _eye_width(p, eye)
        p[lids[:, 0], 1] -= max(float(openings[e]) - now, 0.0) * _eye_width(p, eye)
    return p


def close_eyes(image: np.ndarray, drawn: np.ndarray, points: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """``image``, a face warped to ``drawn``, with each upper lid lowered to where ``points`` has it.

    Per column between an eye's corners, the skin above the drawn upper lid ``U'``, from
    ``U' - REACH_UP * width`` to ``U' - a m`` (``a``: the eye's amount, ``m``: :data:`LID_EDGE`,
    fading out towards the corners), is stretched down to ``U + a (L - U) + a m`` (``U``,
    ``L``: the upper and lower lids of ``points``), lashes and all: a lid over the eye, not
    an open eye squashed into a dark slit; shut at a full amount. What lies under the
    lowered edge stays: the lower part of a half-closed eye.

    Args:
        image: ``S x S x 3`` uint8 RGB, a face warped to ``drawn``.
        drawn: ``(68, 2)`` its landmarks (crop px), upper lids at or above those of ``points``.
        points: ``(68, 2)`` where the lids are to be (lower lids as ``drawn``'s).
        amounts: ``(2,)`` in [0, 1] per eye (image-left first), from :func:`closure`; 0 leaves it.

    Returns:
        ``S x S x 3`` uint8 RGB.
    """
    d, p = np.asarray(drawn, np.float64), np.asarray(points, np.float64)
    size = image.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    map_y, touched = ys.copy(), False
    for eye, amount in zip(EYES, amounts):
        width = _eye_width(p, eye)
        cols = np.arange(max(int(np.ceil(p[eye, 0].min())), 0), min(int(np.floor(p[eye, 0].max())), size - 1) + 1)
        if amount <= 0.0 or len(cols) == 0:
            continue
        x = cols.astype(np.float64)
        upper = _lid_curve(d, list(eye[[0, 1, 2, 3]]), x)
        lower = np.maximum(_lid_curve(p, list(eye[[3, 4, 5, 0]]), x), upper)
        ends = np.minimum(x - p[eye, 0].min(), p[eye, 0].max() - x) / (0.2 * width)  # no step at the corners
        margin = amount * max(LID_EDGE * width, 1.0) * np.clip(ends, 0.0, 1.0)
        edge = np.clip(_lid_curve(p, list(eye[[0, 1, 2, 3]]), x), upper, lower)
        edge += amount * (lower - edge) + margin  # shut at a full amount: no dark strip under the lid
        top = upper - REACH_UP * width
        y = ys[:, cols]
        band = (y >= top) & (y <= edge)
        stretched = top + (y - top) * (upper - margin - top) / np.maximum(edge - top, 1e-6)
        map_y[:, cols] = np.where(band, stretched, y)
        touched = True
    if not touched:
        return image.copy()
    return cv2.remap(image, xs, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
