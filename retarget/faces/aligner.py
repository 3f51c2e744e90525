"""Face alignment: the :class:`Aligner` protocol extract and render use, and :class:`FaceAligner`.

:class:`FaceAligner` detects on a small frame, tracks between detections, aligns and
smooths; tests pass simpler aligners. Per frame:

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
   detection (the checks are :mod:`retarget.faces.tracker`'s). The shape is judged
   against the track, not against a human template, so stylised (cartoon) proportions
   keep their track; only a new track's first frames are held to a loose bound against
   the template, which crumpled shapes drawn on background fail.
5. The similarity onto the template is smoothed over time
   (:class:`~retarget.faces.smooth.TransformSmoother`) and the crop is cut with it.

With a reference person (``--face-ref``, :class:`~retarget.faces.identity.FaceReference`),
step 1 keeps only the detection nearest that person within the same-person distance, and
none when the person is not among the faces found (the frame then has no face, unless the
track of the person holds as in step 2); tracking follows the face it was given.

A lost face, a switch to another face and :meth:`FaceAligner.reset` restart the
smoothing; :attr:`AlignedFace.track` counts such restarts so a caller can end a
segment there. :class:`~retarget.faces.continuity.Continuity` resets an aligner at scene
cuts and decode holes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import cv2
import numpy as np

from retarget.config import FaceConfig
from retarget.faces.align import STABLE_POINTS, crop_matrix, warp_crop
from retarget.faces.backends import FaceBackend, get_backend
from retarget.faces.identity import FaceReference, load_reference
from retarget.faces.smooth import TransformSmoother
from retarget.faces.tracker import (
    MAX_TEMPLATE_RMS,
    RunningBox,
    RunningShape,
    ShapeFit,
    appearance_patch,
    in_frame,
    jumped,
    same_appearance,
    shape_fit,
)

__all__ = ["AlignedFace", "Aligner", "AlignerStats", "FaceAligner", "face_aligner"]


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
        lane: with several faces (:class:`~retarget.faces.crowd.CrowdAligner`), the lane of
            this face: the same while it is followed; 0 otherwise.
    """

    matrix: np.ndarray
    raw_matrix: np.ndarray
    landmarks: np.ndarray
    crop: np.ndarray
    track: int = 0
    detected: bool = False
    lane: int = 0


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
    others: int = 0  # detections that found faces, none of them the reference person


class Aligner(Protocol):
    """Turns frames into aligned face crops, smoothing over time."""

    def __call__(self, image: np.ndarray, time: float) -> Optional[AlignedFace]:
        """The face in ``image`` (H x W x 3 uint8 RGB) at ``time`` seconds, or None.

        The returned face's ``track`` changes whenever the aligner starts over.
        """
        ...

    def reset(self) -> None:
        """Forget the past: the next frame starts a new track with fresh smoothing."""
        ...


class FaceAligner:
    """Per-frame face alignment with tracking and temporal smoothing.

    Args:
        cfg: face options (backend, margin, smooth, pick, detect_every, detect_size).
        size: side of the aligned crops in pixels.
        backend: a :class:`~retarget.faces.backends.FaceBackend`; default
            ``get_backend(cfg.backend)``.
        reference: keep only this person's face (``--face-ref``); ``cfg.pick`` then
            does not apply. None: any face, picked by ``cfg.pick``.

    Call it on the frames of one video in order; call :meth:`reset` at scene cuts and
    before another video.
    """

    def __init__(
        self, cfg: FaceConfig, size: int, backend: FaceBackend | None = None, reference: FaceReference | None = None
    ) -> None:
        self.cfg = cfg
        self.reference = reference
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
        self._prev_fit: ShapeFit | None = None
        self._prev_patch: np.ndarray | None = None
        self._since = 0
        self._box = RunningBox()
        self._shape = RunningShape()
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

    def _nearest(self, boxes: list[np.ndarray]) -> np.ndarray:
        """The box nearest the face followed so far."""
        assert self._prev is not None
        centre = self._prev[STABLE_POINTS].mean(0)
        return min(boxes, key=lambda b: float(np.hypot(*((b[:2] + b[2:4]) / 2 - centre))))

    def _pick(self, boxes: list[np.ndarray]) -> np.ndarray:
        if self.cfg.pick == "tracked" and self._prev is not None:
            return self._nearest(boxes)
        return max(boxes, key=lambda b: float((b[2] - b[0]) * (b[3] - b[1])))

    def _person(
        self, image: np.ndarray, work: np.ndarray, boxes: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The box and landmarks of the reference person among ``boxes``, or None.

        While the person is followed, the detection where their face was is theirs (the
        tracker's checks vouch for it); descriptors (~0.1 s a face on a CPU core) are
        computed only to start a track, or when no detection is where the face was.
        """
        assert self.reference is not None
        if self._prev is not None and self._prev_fit is not None:
            box = self._nearest(boxes)
            lm = np.asarray(self.backend.landmarks(work, box), np.float32)
            if not jumped(self._prev_fit, shape_fit(lm)):
                return box, lm
        marks = [np.asarray(self.backend.landmarks(work, b), np.float32) for b in boxes]
        best = self.reference.pick(image, marks)
        if best is None:
            self.stats.others += 1
            return None
        return boxes[best], marks[best]

    def _found(self, image: np.ndarray, work: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The face to follow among the detections at ``side`` px: ``(box, landmarks)``, or None."""
        boxes = self._detect_at(work, side)
        if not boxes:
            return None
        if self.reference is not None:
            return self._person(image, work, boxes)
        box = self._pick(boxes)
        return box, np.asarray(self.backend.landmarks(work, box), np.float32)

    def _detect(self, image: np.ndarray, work: np.ndarray) -> np.ndarray | None:
        found = self._found(image, work, self.cfg.detect_size)
        if found is None and self._prev is not None:
            self.stats.retries += 1
            found = self._found(image, work, 2 * self.cfg.detect_size)
        if found is None:
            return None
        box, lm = found
        fit = shape_fit(lm)
        like = self._shape.like(fit)
        if not like and fit.rms > MAX_TEMPLATE_RMS:
            return None
        if self._prev_fit is not None and (like is False or jumped(self._prev_fit, fit)):
            self._new_track = True  # another face, or the same one after a cut: start over
            self.smoother.reset()
        self._box.learn(box, fit)
        self._prev_fit = fit
        return lm

    # -- tracking -------------------------------------------------------------------

    def _track(self, work: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmarks from the last face's box, and the face's appearance patch; None if lost."""
        assert self._prev_fit is not None
        box = self._box.around(self._prev_fit)
        lm = np.asarray(self.backend.landmarks(work, box), np.float32)
        fit = shape_fit(lm)
        like = self._shape.like(fit)
        if like is False or (like is None and fit.rms > MAX_TEMPLATE_RMS) or jumped(self._prev_fit, fit):
            return None
        if not in_frame(lm, *work.shape[:2]):  # the face is leaving the frame
            return None
        patch = appearance_patch(work, lm)
        if self._prev_patch is not None and not same_appearance(patch, self._prev_patch):
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
            lm = self._detect(image, work)
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
        self._prev_patch = patch if patch is not None else appearance_patch(work, lm)
        if self._new_track:
            self._track_id += 1
            self._new_track = False
            self._shape = RunningShape()
        assert self._prev_fit is not None  # set by _detect / _track with these landmarks
        self._shape.learn(self._prev_fit)
        raw = crop_matrix(lm, self.size, self.cfg.margin)
        matrix = self.smoother(raw, time)
        crop = warp_crop(image, matrix, self.size)
        self.stats.aligned += 1
        return AlignedFace(matrix, raw, lm, crop, track=self._track_id, detected=detected)


def face_aligner(cfg: FaceConfig, size: int, face_ref: str | None = None) -> FaceAligner:
    """A :class:`FaceAligner` with ``cfg``'s backend, keeping only the person of the image ``face_ref`` if given.

    Raises:
        RetargetError: the backend is not installed, or ``face_ref`` is missing, unreadable or shows no face.
    """
    if face_ref is None:
        return FaceAligner(cfg, size)
    # get_backend caches: the reference and the aligner share one backend
    return FaceAligner(cfg, size, reference=load_reference(face_ref, cfg.backend))
