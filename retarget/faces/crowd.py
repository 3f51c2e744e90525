"""Every face of a frame: several :class:`~retarget.faces.aligner.FaceAligner` tracks side by side.

:class:`CrowdAligner` follows up to ``max_faces`` faces at once, each in a
:class:`~retarget.faces.aligner.FaceAligner` of its own (its own tracking, shape checks and
smoothing), so a face that enters or leaves the frame does not disturb the others. Each
face keeps a *lane* (a small number: the lowest free one when it appeared) for as long as
it is followed. A caller keeps its per-face state (a swap's continuity, a stabilizer's
history) by lane and starts it afresh when the face's ``track`` changes: track numbers
are never reused, across lanes or over time.

The tracks share the detector (:class:`_SharedDetector`): it runs once per frame and
size, whichever track asks first, and each track sees only the boxes that no other track
follows, so two tracks never take the same face; a track picks among what is left the
box nearest its own face. Every ``detect_every`` frames (every frame while no face is
followed) the boxes no track follows start new tracks, largest first, while lanes are
free. Should two tracks still come to follow one face, the younger is dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from retarget.config import FaceConfig, RenderConfig
from retarget.faces.aligner import AlignedFace, FaceAligner
from retarget.faces.backends import FaceBackend, get_backend

__all__ = ["CrowdAligner"]

#: Two tracks follow one face when their landmarks' boxes overlap by more than this (intersection over union).
SAME_FACE_IOU = 0.5


def _box(landmarks: np.ndarray) -> np.ndarray:
    """``[x0, y0, x1, y1]`` around (68, 2) landmarks."""
    return np.concatenate([landmarks.min(0), landmarks.max(0)]).astype(np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


@dataclass
class _Lane:
    """One followed face: its aligner, its track number (the crowd's) and the aligner's own for it."""

    aligner: FaceAligner
    track: int
    local: int
    landmarks: np.ndarray  # (68, 2) frame px, the latest


class _SharedDetector:
    """The backend one lane's aligner sees: the crowd's detections of this frame, less the faces other lanes follow."""

    def __init__(self, crowd: "CrowdAligner", lane: int) -> None:
        self.crowd, self.lane = crowd, lane
        self.name = crowd.backend.name
        self.accepts_gray = bool(getattr(crowd.backend, "accepts_gray", False))

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """Boxes in ``image`` (a scaled copy of this frame) that no other lane follows."""
        return [b for b in self.crowd.detections(image) if not self.crowd.taken(b, image, self.lane)]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The backend's landmarks, as they are."""
        return self.crowd.backend.landmarks(image, box)


class CrowdAligner:
    """Per-frame alignment of every face, up to ``max_faces`` (see the module).

    Args:
        cfg: face options, as :class:`~retarget.faces.aligner.FaceAligner`'s (``pick`` is
            ``tracked`` within each lane; new faces start largest first).
        size: side of the aligned crops in pixels.
        max_faces: faces followed at once (>= 1; render's ``--max-faces``). Each costs a landmark fit per frame.
        backend: a :class:`~retarget.faces.backends.FaceBackend`; default ``get_backend(cfg.backend)``.

    Call it on the frames of one video in order; :meth:`reset` at scene cuts.
    """

    def __init__(
        self, cfg: FaceConfig, size: int, max_faces: int = RenderConfig.max_faces, backend: Optional[FaceBackend] = None
    ) -> None:
        self.cfg = dataclasses.replace(cfg, pick="tracked")
        self.size = size
        self.max_faces = max(1, int(max_faces))
        self.backend = backend if backend is not None else get_backend(cfg.backend)
        self._tracks = 0  # track numbers handed out
        self._frame = 0
        self._width = 1
        self._cache: dict[tuple[int, ...], list[np.ndarray]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every face (a scene cut, another video): faces found next start new tracks."""
        self._lanes: list[Optional[_Lane]] = [None] * self.max_faces
        self._since_scan = 0

    # -- what the lanes share -----------------------------------------------------------

    def detections(self, image: np.ndarray) -> list[np.ndarray]:
        """The backend's boxes in ``image`` (this frame at some scale), found once per frame and scale."""
        key = (self._frame, *image.shape)
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[0] == self._frame}
            self._cache[key] = [np.asarray(b, np.float64) for b in self.backend.detect(image)]
        return self._cache[key]

    def taken(self, box: np.ndarray, image: np.ndarray, lane: int) -> bool:
        """Whether ``box`` (pixels of ``image``, a scaled copy of the frame) is a face another lane follows."""
        scale = image.shape[1] / self._width
        centre = (box[:2] + box[2:4]) / 2 / scale
        for n, other in enumerate(self._lanes):
            if other is None or n == lane:
                continue
            x0, y0, x1, y1 = _box(other.landmarks)
            if x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1:
                return True
        return False

    # -- per frame ------------------------------------------------------------------------

    def __call__(self, image: np.ndarray, time: float) -> list[AlignedFace]:
        """The faces in one frame (H x W x 3 uint8 RGB) at ``time`` seconds, by lane; empty if none.

        Each face's ``track`` is the crowd's track number and ``lane`` its lane.
        """
        self._frame += 1
        self._width = max(1, image.shape[1])
        faces: dict[int, AlignedFace] = {}
        for n, lane in enumerate(self._lanes):
            if lane is not None and (face := self._follow(n, lane, image, time)) is not None:
                faces[n] = face
        self._drop_doubles(faces)
        self._since_scan += 1
        if not faces or self._since_scan >= self.cfg.detect_every:
            self._since_scan = 0
            faces.update(self._start_new(image, time))
        return [dataclasses.replace(faces[n], track=self._lanes[n].track, lane=n) for n in sorted(faces)]  # type: ignore[union-attr]

    def _follow(self, n: int, lane: _Lane, image: np.ndarray, time: float) -> Optional[AlignedFace]:
        """Lane ``n``'s face in this frame, or None (the lane is freed)."""
        face = lane.aligner(image, time)
        if face is None:
            self._lanes[n] = None
            return None
        if face.track != lane.local:  # the aligner started over: a new track
            lane.local, lane.track = face.track, self._new_track()
        lane.landmarks = face.landmarks
        return face

    def _new_track(self) -> int:
        self._tracks += 1
        return self._tracks - 1

    def _drop_doubles(self, faces: dict[int, AlignedFace]) -> None:
        """Free the younger of two lanes that follow the same face."""
        for a in sorted(faces):
            for b in sorted(faces):
                la, lb = self._lanes[a], self._lanes[b]
                if a == b or la is None or lb is None or la.track > lb.track:
                    continue
                if _iou(_box(la.landmarks), _box(lb.landmarks)) > SAME_FACE_IOU:
                    self._lanes[b] = None
                    faces.pop(b, None)

    def _start_new(self, image: np.ndarray, time: float) -> dict[int, AlignedFace]:
        """New tracks for the faces no lane follows, largest first, in the free lanes."""
        found: dict[int, AlignedFace] = {}
        for n in range(self.max_faces):
            if self._lanes[n] is not None:
                continue
            aligner = FaceAligner(self.cfg, self.size, backend=_SharedDetector(self, n))  # type: ignore[arg-type]
            face = aligner(image, time)
            if face is None:  # no face left that no lane follows
                break
            self._lanes[n] = _Lane(aligner, self._new_track(), face.track, face.landmarks)
            found[n] = face
        return found
