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
  pass through unchanged (the aligner never sees them).

Frames are plain :class:`retarget.video.reader.Frame` s, so a test can feed arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

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

    def __iter__(self) -> Iterator[Frame]:
        size = (self.info.width, self.info.height)
        with VideoReader(self.path) as reader:
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
            here, or None.
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
        track = None  # face track of the previous frame (--stabilize restarts on a new one)
        for frame in frames:
            image = frame.image
            if not self.within(frame.time):  # outside --start/--end: as it is
                item = Item(frame.index, frame.pts, image, None)
                if self.stabilizer is not None:
                    item.link = self.stabilizer.prepare(None, reset=True)
                yield item
                continue
            self.inside += 1
            # as extract: smoothing must not blend across a cut or a decode hole
            broken = continuity is not None and continuity(detector(image), bad_frames(), frame.time)
            found = self.aligner(image, frame.time)
            if found is None:
                item = Item(frame.index, frame.pts, image, None)
            else:
                self.faces += 1 if self.face else 0
                item = Item(frame.index, frame.pts, image, found.crop, np.asarray(found.matrix), found.landmarks)
                item.track = getattr(found, "track", None)
            if self.stabilizer is not None:
                now = getattr(found, "track", None)
                new_track = self.face and now != track
                track = now if self.face and found is not None else None
                item.link = self.stabilizer.prepare(item.net_input, reset=broken or new_track)
            yield item


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
