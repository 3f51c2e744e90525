"""FaceAligner: detect on a small frame, track between detections, align and smooth.

Per frame:

1. Every ``detect_every`` frames (and whenever there is no face yet) the detector runs on
   a copy of the frame scaled to ``detect_size`` on its longest side. If it finds nothing
   while a face was being followed it tries once more at twice that size, since dlib's
   HOG misses small or slightly turned faces at low resolution.
2. In between, the previous frame's landmarks give the box for the landmark predictor
   (tracking), so the detector, by far the slowest step, is skipped. A scheduled
   detection that misses does not end a track that still passes every check below,
   for at most one more period.
3. Landmarks are always predicted on the full-resolution frame.
4. Tracked landmarks that look wrong (the face jumped, changed size abruptly, or its
   shape no longer matches the track's own running shape) trigger an immediate
   detection. The shape is judged against the track, not against a human template,
   so stylised (cartoon) proportions keep their track; only a new track's first
   frames are held to a loose bound against the template, which crumpled shapes
   drawn on background fail.
5. The similarity onto the template is smoothed over time
   (:class:`~retarget.faces.smooth.TransformSmoother`) and the crop is cut with it.

A lost face, a switch to another face and :meth:`FaceAligner.reset` restart the
smoothing; :attr:`AlignedFace.track` counts such restarts so a caller can end a
segment there.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retarget.config import FaceConfig
from retarget.faces.align import (
    STABLE_POINTS,
    TEMPLATE_68,
    apply,
    crop_matrix,
    estimate_similarity,
    warp_crop,
)
from retarget.faces.backends import FaceBackend, get_backend
from retarget.faces.smooth import TransformSmoother

__all__ = ["AlignedFace", "FaceAligner"]

# Detector box in template (face-unit) coordinates: centre x, centre y, width, height.
# On tracked frames the box comes from the last landmarks through this relation. It is
# expressed through the similarity fitted to the stable points rather than through the
# landmarks' bounding box, because the jaw points follow the box the predictor is given
# and would feed their error back into the next box. The default was measured on dlib's
# HOG boxes; each track refines it from its own detections.
_DEFAULT_BOX = np.array([0.5, 0.38, 0.97, 0.97])
# Landmark-shape checks, as RMS distances of all 68 points in face units (1 = brow-to-
# chin height) after a similarity fit on the stable points. Real faces in motion stay
# below ~0.06-0.10 from the human template; stylised (cartoon) faces reach 0.08-0.15; a
# predictor's crumpled shape on texture is ~0.4. So the template only bounds a track's
# first frames, loosely; after that each frame is compared with the track's own
# running shape, from which a real face moved at most 0.072 on carphone (talking,
# turning; 0.064 stretched 1.4x).
_MAX_TEMPLATE_RMS = 0.2
_MAX_TRACK_RMS = 0.1
_SHAPE_WARMUP = 3  # frames of a track before its running shape is trusted
_SHAPE_MEMORY = 10  # running shape: mean of the first frames, then an exponential mean
# Largest plausible frame-to-frame motion of the face centre, in face sizes, and of
# its scale (ratio) while tracking.
_MAX_JUMP = 0.35
_MAX_SCALE_CHANGE = 1.3
# dlib's predictor draws a face-shaped set of points on any patch of background, so the
# shape alone cannot tell that the face is gone; its appearance can. Consecutive frames
# of a tracked face correlate at ~0.9 (normalised, on a 32 px grey crop of the face);
# a crop of whatever replaced it after a cut correlates at ~0.
_MIN_CORRELATION = 0.25
_PATCH = 32


@dataclass
class AlignedFace:
    """One aligned face.

    Attributes:
        matrix: (2, 3) float64 crop matrix, source pixels -> crop pixels (smoothed).
        raw_matrix: (2, 3) float64 crop matrix before smoothing.
        landmarks: (68, 2) float32 landmarks in source pixels.
        crop: size x size x 3 uint8 RGB aligned face, cut with ``matrix``.
        track: number of the continuous track this face belongs to; it changes when the
            aligner starts over (after a lost face, a switch of face or a reset).
        detected: True if the detector ran on this frame (False: tracked).
    """

    matrix: np.ndarray
    raw_matrix: np.ndarray
    landmarks: np.ndarray
    crop: np.ndarray
    track: int = 0
    detected: bool = False


@dataclass
class AlignerStats:
    """Counters for summaries: frames seen, detector runs, tracked frames, losses."""

    frames: int = 0
    aligned: int = 0
    detector_runs: int = 0
    retries: int = 0  # second detection at a larger size after a miss
    tracked: int = 0
    redetections: int = 0  # tracked landmarks looked lost, detector re-run early
    missed_checks: int = 0  # scheduled detections that missed while the track held
    lost: int = 0


@dataclass
class _Fit:
    """A shape's similarity onto the unit template and how well it fits."""

    matrix: np.ndarray  # (2, 3) source pixels -> template units
    rms: float  # RMS residual of all 68 points, template units
    scale: float  # source pixels per template unit
    centre: np.ndarray  # (2,) mean of the stable points, source pixels
    shape: np.ndarray  # (68, 2) the landmarks in template units (scale, turn, shift removed)


def _patch(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A small zero-mean, unit-norm grey crop of the face, for appearance checks."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    p = warp_crop(gray, crop_matrix(landmarks, _PATCH, 0.1), _PATCH).astype(np.float32)
    p -= p.mean()
    return p / (float(np.linalg.norm(p)) + 1e-6)


def _shape_fit(landmarks: np.ndarray) -> _Fit:
    m = estimate_similarity(landmarks[STABLE_POINTS], TEMPLATE_68[STABLE_POINTS])
    shape = apply(m, landmarks)
    rms = float(np.sqrt(((shape - TEMPLATE_68) ** 2).sum(1).mean()))
    scale = 1.0 / float(np.hypot(m[0, 0], m[1, 0]))
    return _Fit(m, rms, scale, landmarks[STABLE_POINTS].mean(0).astype(np.float64), shape)


class FaceAligner:
    """Per-frame face alignment with tracking and temporal smoothing.

    Args:
        cfg: face options (backend, margin, smooth, pick, detect_every, detect_size).
        size: side of the aligned crops in pixels.
        backend: a :class:`~retarget.faces.backends.FaceBackend`; default
            ``get_backend(cfg.backend)``.

    Call it on the frames of one video in order; call :meth:`reset` at scene cuts and
    before another video.
    """

    def __init__(self, cfg: FaceConfig, size: int, backend: FaceBackend | None = None) -> None:
        self.cfg = cfg
        self.size = size
        self.backend = backend if backend is not None else get_backend(cfg.backend)
        self._gray = bool(getattr(self.backend, "accepts_gray", False))
        self.smoother = TransformSmoother(size, cfg.smooth)
        self.stats = AlignerStats()
        self._track_id = -1
        self.reset()

    def reset(self) -> None:
        """Forget the tracked face and the smoothing state (scene cut, new video)."""
        self._prev: np.ndarray | None = None
        self._prev_fit: _Fit | None = None
        self._prev_patch: np.ndarray | None = None
        self._since = 0
        self._box = _DEFAULT_BOX.copy()
        self._box_n = 1
        self._shape: np.ndarray | None = None  # the track's running shape (68, 2), template units
        self._shape_n = 0
        self.smoother.reset()
        self._new_track = True

    # -- detection ------------------------------------------------------------------

    def _detect_at(self, work: np.ndarray, side: int) -> list[np.ndarray]:
        h, w = work.shape[:2]
        scale = side / max(h, w)
        if abs(scale - 1.0) < 1e-3:
            small = work
        else:
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            small = cv2.resize(work, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
        self.stats.detector_runs += 1
        return [np.asarray(b, np.float64) / scale for b in self.backend.detect(small)]

    def _pick(self, boxes: list[np.ndarray]) -> np.ndarray:
        if self.cfg.pick == "tracked" and self._prev is not None:
            centre = self._prev[STABLE_POINTS].mean(0)
            return min(boxes, key=lambda b: float(np.hypot(*((b[:2] + b[2:4]) / 2 - centre))))
        return max(boxes, key=lambda b: float((b[2] - b[0]) * (b[3] - b[1])))

    def _detect(self, work: np.ndarray) -> np.ndarray | None:
        boxes = self._detect_at(work, self.cfg.detect_size)
        if not boxes and self._prev is not None:
            self.stats.retries += 1
            boxes = self._detect_at(work, 2 * self.cfg.detect_size)
        if not boxes:
            return None
        box = self._pick(boxes)
        lm = np.asarray(self.backend.landmarks(work, box), np.float32)
        fit = _shape_fit(lm)
        like = self._like_track(fit)
        if not like and fit.rms > _MAX_TEMPLATE_RMS:
            return None
        if self._prev_fit is not None and (like is False or self._jumped(fit)):
            self._new_track = True  # another face, or the same one after a cut: start over
            self.smoother.reset()
        self._learn_box(box, fit)
        self._prev_fit = fit
        return lm

    def _learn_box(self, box: np.ndarray, fit: _Fit) -> None:
        centre = apply(fit.matrix, [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        rel = np.array([centre[0], centre[1], (box[2] - box[0]) / fit.scale, (box[3] - box[1]) / fit.scale])
        # Running mean over the track's detections: HOG boxes are quantised (~5% noise).
        self._box_n += 1
        self._box += (rel - self._box) / min(self._box_n, 10)

    def _track_box(self, fit: _Fit) -> np.ndarray:
        cx, cy = apply(cv2.invertAffineTransform(fit.matrix), self._box[:2])
        hw, hh = self._box[2] * fit.scale / 2, self._box[3] * fit.scale / 2
        return np.array([cx - hw, cy - hh, cx + hw, cy + hh])

    # -- shape ----------------------------------------------------------------------

    def _like_track(self, fit: _Fit) -> bool | None:
        """Whether the shape matches the track's running shape; None before it is trusted."""
        if self._shape is None or self._shape_n < _SHAPE_WARMUP:
            return None
        return float(np.sqrt(((fit.shape - self._shape) ** 2).sum(1).mean())) <= _MAX_TRACK_RMS

    def _learn_shape(self, fit: _Fit) -> None:
        if self._shape is None:
            self._shape, self._shape_n = fit.shape.astype(np.float64), 1
            return
        self._shape_n += 1
        self._shape += (fit.shape - self._shape) / min(self._shape_n, _SHAPE_MEMORY)

    # -- tracking -------------------------------------------------------------------

    def _jumped(self, fit: _Fit) -> bool:
        assert self._prev_fit is not None
        scale0, centre0 = self._prev_fit.scale, self._prev_fit.centre
        scale1, centre1 = fit.scale, fit.centre
        ratio = max(scale1, 1e-6) / max(scale0, 1e-6)
        moved = float(np.hypot(*(centre1 - centre0))) / max(scale0, 1e-6)
        return moved > _MAX_JUMP or not (1.0 / _MAX_SCALE_CHANGE < ratio < _MAX_SCALE_CHANGE)

    def _track(self, work: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmarks from the last face's box, and the face's appearance patch; None if lost."""
        assert self._prev_fit is not None
        box = self._track_box(self._prev_fit)
        lm = np.asarray(self.backend.landmarks(work, box), np.float32)
        fit = _shape_fit(lm)
        like = self._like_track(fit)
        if like is False or (like is None and fit.rms > _MAX_TEMPLATE_RMS) or self._jumped(fit):
            return None
        h, w = work.shape[:2]
        inside = (lm[:, 0] >= 0) & (lm[:, 0] < w) & (lm[:, 1] >= 0) & (lm[:, 1] < h)
        if inside.mean() < 0.5:  # the face is leaving the frame
            return None
        patch = _patch(work, lm)
        if self._prev_patch is not None and float((patch * self._prev_patch).sum()) < _MIN_CORRELATION:
            return None
        self._prev_fit = fit
        return lm, patch

    # -- per frame ------------------------------------------------------------------

    def __call__(self, image: np.ndarray, time: float) -> AlignedFace | None:
        """Align the face in one frame.

        Args:
            image: H x W x 3 uint8 RGB frame.
            time: the frame's time in seconds (drives the smoothing; must increase).

        Returns:
            The aligned face, or None when no face was found (the track and the
            smoothing are then reset).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.shape} {image.dtype}")
        self.stats.frames += 1
        image = np.ascontiguousarray(image)  # rotated frames may arrive as strided views
        work = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if self._gray else image
        lm: np.ndarray | None = None
        patch: np.ndarray | None = None
        detected = False
        scheduled = self._prev is None or self._since >= self.cfg.detect_every
        if not scheduled:
            tracked = self._track(work)
            if tracked is None:
                self.stats.redetections += 1
            else:
                lm, patch = tracked
                self.stats.tracked += 1
        if lm is None:
            lm = self._detect(work)
            if lm is not None:
                detected = True
                self._since = 0
            elif scheduled and self._prev is not None and self._since < 2 * self.cfg.detect_every:
                # A routine check missed (HOG loses slightly turned faces) but the track may
                # still be good: keep it if it passes every check, for one more period.
                tracked = self._track(work)
                if tracked is not None:
                    lm, patch = tracked
                    self.stats.tracked += 1
                    self.stats.missed_checks += 1
        if lm is None:
            self.stats.lost += 1
            self.reset()
            return None
        self._since += 1
        self._prev = lm
        self._prev_patch = patch if patch is not None else _patch(work, lm)
        if self._new_track:
            self._track_id += 1
            self._new_track = False
            self._shape, self._shape_n = None, 0
        assert self._prev_fit is not None  # set by _detect / _track with these landmarks
        self._learn_shape(self._prev_fit)
        raw = crop_matrix(lm, self.size, self.cfg.margin)
        matrix = self.smoother(raw, time)
        crop = warp_crop(image, matrix, self.size)
        self.stats.aligned += 1
        return AlignedFace(matrix, raw, lm, crop, track=self._track_id, detected=detected)
