"""The source stage of render: decoded frames -> items holding the network's input.

:class:`Decoded` reads the input video (rotation applied, a stream that changes size
midway is resized to its first size, so the output size stays fixed).
:class:`Source` turns frames into :class:`Item` s, in order:

- the network input: an aligned face crop (face mode: :class:`retarget.faces.tracker.FaceAligner`
  or any aligner) or, with ``--align none``, the :class:`retarget.geometry.Cut` of the frame
  (:class:`CutAligner`: the centre square, or the whole frame at the model's scale);
- continuity: a scene cut or a decode hole resets the aligner (as extract does) and the
  stabilizer;
- with ``--stabilize``, the stabilizer's half that measures the source's motion
  (:meth:`retarget.render.stabilize.Stabilizer.prepare`), so it overlaps the generator;
- with ``--start`` / ``--end``, frames outside that time span get no network input: they
  pass through unchanged (the aligner never sees them);
- several faces (an aligner that returns a list, :class:`retarget.faces.crowd.CrowdAligner`):
  the first face fills the frame's item, the others ride along in ``item.more``, each an
  :class:`Item` of its own with its face's ``lane``. Per-face state (the stabilizer here, a
  swap's continuity) is kept by lane in :class:`Lanes`.

Frames are plain :class:`retarget.video.reader.Frame` s, so a test can feed arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, TypeVar

import cv2
import numpy as np

from retarget.faces.aligner import Aligner
from retarget.faces.continuity import Continuity
from retarget.geometry import Cut
from retarget.video.reader import Frame, VideoInfo, VideoReader

T = TypeVar("T")


@dataclass
class Item:
    """One frame on its way through render.

    Attributes:
        index, pts: the source frame's index and timestamp (``time_base`` units).
        image: the source frame, ``H x W x 3`` uint8 RGB.
        net_input: the network's input (``h x w x 3`` uint8), or None (no face: passes through).
        matrix: (2, 3) source pixels -> ``net_input`` pixels.
        landmarks: (68, 2) face landmarks in source pixels (face mode), else None.
        result: the translation of ``net_input`` (set by the translate stage).
        link: ``--stabilize``: the :class:`~retarget.render.stabilize.Link` from the previous frame.
        track: face mode: the aligner's track number of this face (a new number: a new track).
        mask_landmarks: landmarks (source pixels) the paste's mask follows instead of
            ``landmarks`` (set by a translate stage whose faces have another outline).
        lane: several faces: the lane of this face (the same while it is followed); else 0.
        backdrop: the frame the faces are pasted onto where it is not ``image`` (a swap paints
            the input's glasses out of it); None: ``image``.
        more: the frame's further faces, one item each (same frame; the first face is this item's).
    """

    index: int
    pts: Optional[int]
    image: np.ndarray
    net_input: Optional[np.ndarray]
    matrix: Optional[np.ndarray] = None
    landmarks: Optional[np.ndarray] = None
    result: Optional[np.ndarray] = None
    link: Any = None
    track: Any = None
    mask_landmarks: Optional[np.ndarray] = None
    lane: int = 0
    more: list["Item"] = field(default_factory=list)
    backdrop: Optional[np.ndarray] = None

    def faces(self) -> list["Item"]:
        """This item and the frame's further faces (``more``), in lane order."""
        return [self, *self.more]


class Lanes(Generic[T]):
    """One ``T`` per face lane, made by ``make()`` on first use (per-face state with several faces)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self.make = make
        self._by_lane: dict[int, T] = {}

    @classmethod
    def of(cls, obj: Any) -> "Lanes":
        """``obj`` if it is :class:`Lanes`, else lanes that all share ``obj`` (one face per frame)."""
        return obj if isinstance(obj, Lanes) else cls(lambda: obj)

    def __getitem__(self, lane: int) -> T:
        if lane not in self._by_lane:
            self._by_lane[lane] = self.make()
        return self._by_lane[lane]

    def made(self) -> dict[int, T]:
        """The lanes made so far and their ``T``."""
        return dict(self._by_lane)


@dataclass(frozen=True)
class _Cutout:
    crop: np.ndarray
    matrix: np.ndarray
    landmarks: None = None
    track: None = None


class CutAligner:
    """``--align none``'s counterpart of a face aligner: every frame's :class:`Cut`, nothing to reset."""

    def __init__(self, cut: Cut) -> None:
        self.cut = cut
        self._matrix = cut.matrix

    def __call__(self, image: np.ndarray, time: float) -> _Cutout:
        return _Cutout(self.cut.apply(image), self._matrix)

    def reset(self) -> None:
        """Nothing to forget."""


class Decoded:
    """The frames of ``path`` at a fixed size (``info``'s); ``bad_frames`` counts decode failures so far."""

    def __init__(self, path: str | Path, info: VideoInfo) -> None:
        self.path = Path(path)
        self.info = info
        self.bad_frames = 0
        self._reader: Optional[VideoReader] = None  # the last one read with

    def warnings(self) -> list[str]:
        """What reading the video lost, a line each (:meth:`~retarget.video.reader.ReadStats.warnings`)."""
        return [] if self._reader is None else self._reader.stats.warnings(self.path, self.info.fps or 25.0)

    def __iter__(self) -> Iterator[Frame]:
        size = (self.info.width, self.info.height)
        with VideoReader(self.path) as reader:
            self._reader = reader
            for frame in reader:
                self.bad_frames = reader.bad_frames
                if frame.image.shape[:2] != size[::-1]:
                    # a stream that changes resolution midway: keep the output size fixed
                    image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
                    frame = dataclasses.replace(frame, image=image)
                yield frame


class Source:
    """Frames -> :class:`Item` s with the network input (see the module).

    Args:
        aligner: ``aligner(image, time)`` -> an object with ``crop``, ``matrix``,
            ``landmarks`` (and optionally ``track``), or None (no face); a face aligner or
            a :class:`CutAligner`.
        face: face mode (count faces; reset the aligner at breaks).
        stabilizer: a :class:`~retarget.render.stabilize.Stabilizer` whose ``prepare`` runs
            here, :class:`Lanes` of them (several faces: one per lane), or None.
        scene_threshold: scene-cut threshold (face mode and the stabilizer).
        start, end: translate only frames whose time (s) is at least ``start`` and below
            ``end`` (None: unbounded); the others pass through.

    Attributes:
        faces: frames where the aligner found a face (face mode), so far.
        inside: frames inside the time span, so far.
    """

    def __init__(
        self,
        aligner: Aligner,
        *,
        face: bool = False,
        stabilizer: Any = None,
        scene_threshold: float = 0.5,
        start: Optional[float] = None,
        end: Optional[float] = None,
    ) -> None:
        self.aligner = aligner
        self.face = face
        self.stabilizer = stabilizer
        self.scene_threshold = scene_threshold
        self.start, self.end = start, end
        self.faces = 0
        self.inside = 0

    def within(self, time: float) -> bool:
        """Whether a frame at ``time`` seconds is translated (``start <= time < end``)."""
        return (self.start is None or time >= self.start) and (self.end is None or time < self.end)

    def items(self, frames: Iterable[Frame], bad_frames: Callable[[], int] = lambda: 0) -> Iterator[Item]:
        """One :class:`Item` per frame, in order; ``bad_frames()`` is the decoder's running failure count."""
        detector = continuity = None
        if self.face or self.stabilizer is not None:
            from retarget.dataset.scenes import SceneDetector

            detector = SceneDetector(self.scene_threshold)
            # every decoded frame is rendered: no time gaps; the aligner (if any) resets at breaks
            continuity = Continuity(self.aligner if self.face else None)
        stabilizers = Lanes.of(self.stabilizer) if self.stabilizer is not None else None
        tracks: dict[int, Any] = {}  # lane -> its face's track in the previous frame (a new one restarts)
        for frame in frames:
            if not self.within(frame.time):  # outside --start/--end: as it is
                item = Item(frame.index, frame.pts, frame.image, None)
                if stabilizers is not None:
                    self._link(item, stabilizers, tracks, True)
                yield item
                continue
            self.inside += 1
            # as extract: smoothing must not blend across a cut or a decode hole
            broken = continuity is not None and continuity(detector(frame.image), bad_frames(), frame.time)
            item = self._item(frame, self.aligner(frame.image, frame.time))
            if stabilizers is not None:
                self._link(item, stabilizers, tracks, broken)
            yield item

    def _item(self, frame: Frame, found: Any) -> Item:
        """The item of ``frame`` from what the aligner found: None, one face or cut, or a list of faces."""
        faces = found if isinstance(found, list) else ([] if found is None else [found])
        parts = [
            Item(frame.index, frame.pts, frame.image, f.crop, np.asarray(f.matrix), f.landmarks,
                 track=getattr(f, "track", None), lane=int(getattr(f, "lane", 0)))
            for f in faces
        ]  # fmt: skip
        if not parts:
            return Item(frame.index, frame.pts, frame.image, None)
        self.faces += 1 if self.face else 0
        parts[0].more = parts[1:]
        return parts[0]

    def _link(self, item: Item, stabilizers: Lanes, tracks: dict[int, Any], broken: bool) -> None:
        """The stabilizer's measuring half for each face of ``item`` (by lane); lanes without a face start over."""
        faces = item.faces() if item.net_input is not None else []
        for f in faces:
            new_track = self.face and f.track != tracks.get(f.lane)
            f.link = stabilizers[f.lane].prepare(f.net_input, reset=broken or new_track)
            tracks[f.lane] = f.track if self.face else None
        present = {f.lane for f in faces}
        for lane, stabilizer in stabilizers.made().items():
            if lane not in present:
                stabilizer.prepare(None, reset=True)
                tracks[lane] = None


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
