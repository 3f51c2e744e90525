"""Following a face between detections: shape fits, running estimates, and the checks that end a track.

:class:`~retarget.faces.aligner.FaceAligner` detects a face only every few frames; in
between, the previous frame's landmarks give the box for the landmark predictor. This
module holds what that tracking rests on: the similarity fit of a landmark shape onto
the template (:func:`shape_fit`), the track's running detector box
(:class:`RunningBox`) and running shape (:class:`RunningShape`), and the checks that
say a tracked face is gone: it jumped (:func:`jumped`), changed shape, left the frame
(:func:`in_frame`) or no longer looks like itself (:func:`same_appearance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from retarget.faces.align import STABLE_POINTS, TEMPLATE_68, apply, crop_matrix, estimate_similarity, warp_crop

# Detector box in template (face-unit) coordinates: centre x, centre y, width, height.
# On tracked frames the box comes from the last landmarks through this relation. It is
# expressed through the similarity fitted to the stable points rather than through the
# landmarks' bounding box, because the jaw points follow the box the predictor is given
# and would feed their error back into the next box. The default was measured on dlib's
# HOG boxes; each track refines it from its own detections.
DEFAULT_BOX = np.array([0.5, 0.38, 0.97, 0.97])
# Landmark-shape checks, as RMS distances of all 68 points in face units (1 = brow-to-
# chin height) after a similarity fit on the stable points. Real faces in motion stay
# below ~0.06-0.10 from the human template; stylised (cartoon) faces reach 0.08-0.15; a
# predictor's crumpled shape on texture is ~0.4. So the template only bounds a track's
# first frames, loosely; after that each frame is compared with the track's own
# running shape, from which a real face moved at most 0.072 on carphone (talking,
# turning; 0.064 stretched 1.4x).
MAX_TEMPLATE_RMS = 0.2
MAX_TRACK_RMS = 0.1
SHAPE_WARMUP = 3  # frames of a track before its running shape is trusted
SHAPE_MEMORY = 10  # running shape: mean of the first frames, then an exponential mean
# Largest plausible frame-to-frame motion of the face centre, in face sizes, and of
# its scale (ratio) while tracking.
MAX_JUMP = 0.35
MAX_SCALE_CHANGE = 1.3
# dlib's predictor draws a face-shaped set of points on any patch of background, so the
# shape alone cannot tell that the face is gone; its appearance can. Consecutive frames
# of a tracked face correlate at ~0.9 (normalised, on a 32 px grey crop of the face);
# a crop of whatever replaced it after a cut correlates at ~0.
MIN_CORRELATION = 0.25
PATCH = 32


@dataclass
class ShapeFit:
    """A shape's similarity onto the unit template and how well it fits."""

    matrix: np.ndarray  # (2, 3) source pixels -> template units
    rms: float  # RMS residual of all 68 points, template units
    scale: float  # source pixels per template unit
    centre: np.ndarray  # (2,) mean of the stable points, source pixels
    shape: np.ndarray  # (68, 2) the landmarks in template units (scale, turn, shift removed)


def shape_fit(landmarks: np.ndarray) -> ShapeFit:
    """The similarity fit of (68, 2) landmarks (source pixels) onto the template, on the stable points."""
    m = estimate_similarity(landmarks[STABLE_POINTS], TEMPLATE_68[STABLE_POINTS])
    shape = apply(m, landmarks)
    rms = float(np.sqrt(((shape - TEMPLATE_68) ** 2).sum(1).mean()))
    scale = 1.0 / float(np.hypot(m[0, 0], m[1, 0]))
    return ShapeFit(m, rms, scale, landmarks[STABLE_POINTS].mean(0).astype(np.float64), shape)


def appearance_patch(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A small zero-mean, unit-norm grey crop of the face, for appearance checks."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    p = warp_crop(gray, crop_matrix(landmarks, PATCH, 0.1), PATCH).astype(np.float32)
    p -= p.mean()
    return p / (float(np.linalg.norm(p)) + 1e-6)


def same_appearance(patch: np.ndarray, previous: np.ndarray) -> bool:
    """Whether two :func:`appearance_patch` crops show the same face (normalised correlation)."""
    return float((patch * previous).sum()) >= MIN_CORRELATION


def jumped(before: ShapeFit, after: ShapeFit) -> bool:
    """Whether the face moved or changed size more than a face does from one frame to the next."""
    ratio = max(after.scale, 1e-6) / max(before.scale, 1e-6)
    moved = float(np.hypot(*(after.centre - before.centre))) / max(before.scale, 1e-6)
    return moved > MAX_JUMP or not (1.0 / MAX_SCALE_CHANGE < ratio < MAX_SCALE_CHANGE)


def in_frame(landmarks: np.ndarray, height: int, width: int) -> bool:
    """Whether at least half the landmarks lie inside an image of that size (else the face is leaving it)."""
    lm = landmarks
    inside = (lm[:, 0] >= 0) & (lm[:, 0] < width) & (lm[:, 1] >= 0) & (lm[:, 1] < height)
    return bool(inside.mean() >= 0.5)


class RunningBox:
    """The detector's box relative to the face (template units), learned from a track's detections."""

    def __init__(self) -> None:
        self.box = DEFAULT_BOX.copy()
        self.n = 1

    def learn(self, box: np.ndarray, fit: ShapeFit) -> None:
        """Take in a detector box ``[x0, y0, x1, y1]`` (source pixels) of the face fitted by ``fit``."""
        centre = apply(fit.matrix, [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        rel = np.array([centre[0], centre[1], (box[2] - box[0]) / fit.scale, (box[3] - box[1]) / fit.scale])
        # Running mean over the track's detections: HOG boxes are quantised (~5% noise).
        self.n += 1
        self.box += (rel - self.box) / min(self.n, 10)

    def around(self, fit: ShapeFit) -> np.ndarray:
        """The box ``[x0, y0, x1, y1]`` (source pixels) the detector would give for the face of ``fit``."""
        cx, cy = apply(cv2.invertAffineTransform(fit.matrix), self.box[:2])
        hw, hh = self.box[2] * fit.scale / 2, self.box[3] * fit.scale / 2
        return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


class RunningShape:
    """A track's own landmark shape (template units): the mean of its first frames, then an exponential mean."""

    def __init__(self) -> None:
        self.shape: Optional[np.ndarray] = None  # (68, 2)
        self.n = 0

    def like(self, fit: ShapeFit) -> Optional[bool]:
        """Whether ``fit``'s shape matches the running shape; None before it is trusted."""
        if self.shape is None or self.n < SHAPE_WARMUP:
            return None
        return float(np.sqrt(((fit.shape - self.shape) ** 2).sum(1).mean())) <= MAX_TRACK_RMS

    def learn(self, fit: ShapeFit) -> None:
        """Take in the shape of one more frame of the track."""
        if self.shape is None:
            self.shape, self.n = fit.shape.astype(np.float64), 1
            return
        self.n += 1
        self.shape += (fit.shape - self.shape) / min(self.n, SHAPE_MEMORY)
