"""A target person's face dataset as the swap searches it: :class:`FaceIndex`.

The swap (:mod:`retarget.faces.retrieval`) picks, for each source face, one of these faces by
expression and pose. The index holds what that needs: each face's landmarks in crop pixels,
its :func:`~retarget.faces.features.expression_features`, their spread and range over the
target's footage, the target's rest shape, and how fast each face moved in its own video (a
face caught mid-turn is blurred along its motion, so it costs more to pick). The images are
read from disk as the swap asks for them.

It is built from a dataset folder by :func:`retarget.dataset.faceindex.face_index` (faces sit
below datasets in the layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from retarget.config import FaceConfig
from retarget.errors import RetargetError
from retarget.faces.features import MISMATCH_CAP, expression_features, rest_frames
from retarget.imageio import read_image

__all__ = ["CACHED", "FaceIndex", "MOTION_SCALE", "MOTION_WEIGHT", "STILL"]

#: Target faces :meth:`FaceIndex.image` keeps in memory (cross-fades of the face and the eyes show a few at once).
CACHED = 12
#: A target face's motion in its video (eye distances per frame) up to which it counts as still
#: (a talking head's own sway and the detector's jitter: 0.006-0.02 in the shared videos' medians)...
STILL = 0.03
#: ...and past it, the cost it adds to every pick: ``MOTION_WEIGHT * ((speed - STILL) / MOTION_SCALE)^2``,
#: capped as a feature's mismatch: a face caught moving fast is blurred along its motion.
MOTION_WEIGHT, MOTION_SCALE = 0.25, 0.05


@dataclass
class FaceIndex:
    """A target person's aligned faces, with landmarks in crop pixels and their features.

    Attributes:
        root: the dataset folder.
        files: one image per face, in the dataset's order.
        points: ``(N, 68, 2)`` float64 landmarks in crop pixels.
        segments: ``(N,)`` the dataset's segment of each face (consecutive frames share one).
        size: crop side (px).
        face: the face options the dataset was extracted with (margin, backend...).
        speed: ``(N,)`` how fast each face moves in its video (landmarks, eye distances per
            frame), or None (not known: no face is preferred for being still).

    Derived: ``still_cost`` ``(N,)``, added to every pick's cost (:data:`MOTION_WEIGHT`: a face
    caught moving fast is blurred along its motion); ``features`` ``(N, 7)``, their
    ``mean_features``, ``spread``, ``low`` and ``high`` (per feature, over the target's faces);
    ``mean_points``; and the rest (:func:`~retarget.faces.features.rest_frames`):
    ``rest_points`` ``(68, 2)`` and ``rest_features``.
    """

    root: Path
    files: list[Path]
    points: np.ndarray
    segments: np.ndarray
    size: int
    face: FaceConfig
    speed: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.still_cost = np.zeros(len(self.points))
        if self.speed is not None:
            past = np.maximum(np.asarray(self.speed, np.float64) - STILL, 0.0) / MOTION_SCALE
            self.still_cost = MOTION_WEIGHT * np.minimum(past**2, MISMATCH_CAP)
        self.features = np.stack([expression_features(p) for p in self.points])
        self.mean_features = self.features.mean(0)
        self.spread = self.features.std(0) + 1e-3
        self.low, self.high = self.features.min(0), self.features.max(0)
        self.mean_points = self.points.mean(0)
        rest = rest_frames(self.features)
        self.rest_points, self.rest_features = self.points[rest].mean(0), self.features[rest].mean(0)
        self._cached: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def beyond(self, query: np.ndarray) -> np.ndarray:
        """How far ``query`` (``(7,)`` features) lies outside the target's faces, per feature, in
        the target's spreads: 0 within ``low``-``high``, else the distance past the nearer end."""
        return np.maximum(np.maximum(self.low - query, query - self.high), 0.0) / self.spread

    def image(self, k: int) -> np.ndarray:
        """Face ``k`` as ``size x size x 3`` uint8 RGB (read from disk; the last few read are kept)."""
        if k in self._cached:
            return self._cached[k]
        bgr = read_image(self.files[k])
        if bgr is None or bgr.shape[:2] != (self.size, self.size):
            raise RetargetError(f"{self.files[k]}: unreadable or not a {self.size} px face of {self.root}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if len(self._cached) >= CACHED:
            self._cached.pop(next(iter(self._cached)))  # the oldest
        self._cached[k] = rgb
        return rgb
