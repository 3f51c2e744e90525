"""Gaze that follows the source in a face swap: the iris moved inside the target's eye.

A swap shows the eye of the target frame it picked, warped so its lids sit where the
source's are: the lids follow, the iris stays where the target looked. A source that looks
aside, or rolls its eyes up, gave a target that stares ahead. This module measures where
each iris sits and moves the target's:

- :func:`iris_offset`: the centre of the dark part of an eye (inside the lids' polygon,
  each pixel weighted by how much darker it is than the eye's bright part: iris and pupil,
  not sclera or the glint on glasses), as an offset from the eye's centre in eye widths;
- :func:`move_iris`: a remap inside one eye that carries its middle by a displacement and
  fades to nothing at the lids (they stay where the warp put them): the iris moves, the
  sclera is squeezed on one side and stretched on the other;
- :class:`GazeFollow`: per face track, the source's gaze as an offset from its own running
  mean (people look ahead at different offsets, and the dark-centroid has a person's bias:
  lashes, lid shadow), added to the target's mean; the displacement from where the shown
  iris is to there, capped (:data:`MAX_SHIFT`) and smoothed over frames.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from retarget.faces.eyes import EYES
from retarget.faces.features import expression_features

__all__ = ["GazeFollow", "iris_offset", "move_iris", "target_gaze"]

#: An eye more closed than this (lid distance per eye width) shows too little iris to measure or move.
MIN_OPENING = 0.15
#: Percentiles of the eye's grey levels taken as its dark (iris, pupil) and bright (sclera) levels.
DARK, BRIGHT = 10, 70
#: The largest displacement (eye widths) along and across the eye: past it the sclera tears.
MAX_SHIFT = (0.2, 0.1)
#: Weight of the previous frame's displacement (iris measurements jitter by a pixel).
SMOOTH = 0.5
#: Frames of a track before its own mean gaze is trusted (until then, no move).
MIN_FRAMES = 5


def _polygon(points: np.ndarray, eye: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64)[eye]


def _width(points: np.ndarray, eye: np.ndarray) -> float:
    p = np.asarray(points, np.float64)
    return max(float(np.hypot(*(p[eye[3]] - p[eye[0]]))), 1.0)


def _eye_mask(points: np.ndarray, eye: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(_polygon(points, eye) * 4).astype(np.int32)], 1, shift=2)
    return mask.astype(bool)


def iris_offset(image: np.ndarray, points: np.ndarray) -> Optional[np.ndarray]:
    """Where the irises sit: per eye, the dark centroid's offset from the eye's centre.

    Args:
        image: ``H x W x 3`` uint8 RGB (a face crop or a frame).
        points: ``(68, 2)`` landmarks in ``image``'s pixels.

    Returns:
        ``(2, 2)`` float64 (eye, (x, y)) in eye widths (x along the image's rows), or None
        when an eye is too closed (:data:`MIN_OPENING`) or too small to measure.
    """
    if expression_features(points)[3:5].min() < MIN_OPENING:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    out = np.zeros((2, 2))
    for e, eye in enumerate(EYES):
        inside = _eye_mask(points, eye, grey.shape)
        values = grey[inside]
        if values.size < 12:
            return None
        dark, bright = np.percentile(values, [DARK, BRIGHT])
        if bright - dark < 8.0:  # no iris stands out (a closed eye, a blur)
            return None
        weight = np.clip((bright - grey) / (bright - dark), 0.0, 1.0) ** 2 * inside
        total = float(weight.sum())
        if total <= 1e-6:
            return None
        ys, xs = np.nonzero(weight)
        w = weight[ys, xs]
        centroid = np.array([(xs * w).sum(), (ys * w).sum()]) / total
        out[e] = (centroid - _polygon(points, eye).mean(0)) / _width(points, eye)
    return out


def move_iris(image: np.ndarray, points: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``image`` with each eye's inside carried by ``shift[e]`` (px), fading to 0 at its lids.

    Args:
        image: ``S x S x 3`` uint8 RGB.
        points: ``(68, 2)`` its landmarks (px).
        shift: ``(2, 2)`` displacement per eye (px, x then y).

    Returns:
        ``S x S x 3`` uint8 RGB (a copy; ``image`` itself when nothing moves).
    """
    shift = np.asarray(shift, np.float64)
    if not np.any(np.abs(shift) >= 0.25):
        return image
    h, w = image.shape[:2]
    map_x, map_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    for e, eye in enumerate(EYES):
        inside = _eye_mask(points, eye, (h, w)).astype(np.uint8)
        if not inside.any() or not np.any(np.abs(shift[e]) >= 0.25):
            continue
        depth = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
        reach = max(float(depth.max()), 1.0)
        fade = np.clip(depth / (0.6 * reach), 0.0, 1.0)
        fade = (fade * fade * (3 - 2 * fade)).astype(np.float32)  # 1 in the middle, 0 at the lids
        map_x -= np.float32(shift[e, 0]) * fade
        map_y -= np.float32(shift[e, 1]) * fade
    return cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def target_gaze(images: list[np.ndarray], points: list[np.ndarray]) -> Optional[np.ndarray]:
    """The target's usual iris offset: the median :func:`iris_offset` over some of their faces
    (``images`` crops with ``points`` landmarks); None when none could be measured."""
    found = [o for o in (iris_offset(i, p) for i, p in zip(images, points)) if o is not None]
    return np.median(np.stack(found), 0) if found else None


class GazeFollow:
    """One face's gaze carried onto its swap, frame after frame (see the module).

    Args:
        target: the target's usual iris offset (:func:`target_gaze`), ``(2, 2)`` eye widths.
    """

    def __init__(self, target: np.ndarray) -> None:
        self.target = np.asarray(target, np.float64)
        self.reset()

    def reset(self) -> None:
        """A new track: its mean gaze and the smoothing start afresh."""
        self._sum, self._count = np.zeros((2, 2)), 0
        self._shift: Optional[np.ndarray] = None

    def __call__(
        self, face: np.ndarray, face_points: np.ndarray, source: np.ndarray, source_points: np.ndarray
    ) -> np.ndarray:
        """``face`` (the swap, ``S x S x 3`` uint8, landmarks ``face_points``) with its irises
        moved to follow ``source`` (the input's crop, landmarks ``source_points``, same grid)."""
        seen = iris_offset(source, source_points)
        if seen is None:  # a blink: no gaze to follow, the shown eye stays
            self._shift = None
            return face
        self._sum += seen
        self._count += 1
        shown = iris_offset(face, face_points)
        if shown is None or self._count < MIN_FRAMES:
            return face
        want = self.target + (seen - self._sum / self._count)
        widths = np.array([_width(face_points, eye) for eye in EYES])[:, None]
        cap = np.asarray(MAX_SHIFT)[None, :] * widths
        shift = np.clip((want - shown) * widths, -cap, cap)
        if self._shift is not None:
            shift = SMOOTH * self._shift + (1 - SMOOTH) * shift
        self._shift = shift
        return move_iris(face, face_points, shift)
