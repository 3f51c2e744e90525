"""Whose face is it? Face descriptors of the output compared with the source person's and the target's.

Every face is described by dlib's ResNet face-recognition model (a 128-d vector; the
model file ships with ``face_recognition_models``, offline) computed on the
landmark-aligned 150 x 150 face chip (``dlib.get_face_chip`` from the 68 landmarks the
face backend found). Two faces of one person lie closer than :data:`SAME_PERSON`
(0.6, dlib's threshold) in nearly all pairs; two people usually lie further apart.

* **A**, the source person: the mean descriptor of the source video's faces, gathered
  while scoring;
* **B**, the target person: the mean descriptor of the faces of a dataset folder or a
  video (:func:`target_faces`, at most :data:`TARGET_IMAGES` images, evenly spaced).

:class:`IdentityTrack` keeps each output face's descriptor (128 floats a frame) and
reports the share of output faces nearer B than A, the mean distances to both, and the
shares within the same-person threshold of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import cv2
import numpy as np

from retarget.imageio import read_image
from retarget.errors import RetargetError
from retarget.eval.faces import FaceComparer, FaceComparison
from retarget.faces.identity import SAME_PERSON, Descriptor, get_descriptor

__all__ = ["SAME_PERSON", "TARGET_IMAGES", "IdentityTrack", "TargetFaces", "get_descriptor", "target_faces"]

#: At most this many images of the target are described (evenly spaced).
TARGET_IMAGES = 200


@dataclass(frozen=True)
class TargetFaces:
    """The target person's mean face descriptor."""

    path: str  # the dataset folder or video it came from
    mean: np.ndarray  # (D,) mean descriptor of the faces found
    faces: int  # images where a face was found and described
    images: int  # images looked at


def _dataset_images(path: Path, limit: int) -> Iterator[np.ndarray]:
    from retarget.dataset.manifest import read_dataset

    ds = read_dataset(path)
    picks = np.unique(np.linspace(0, len(ds.frames) - 1, min(limit, len(ds.frames))).round().astype(int))
    for i in picks if ds.frames else []:
        bgr = read_image(ds.root / ds.frames[i].file)
        if bgr is not None:
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _video_images(path: Path, limit: int) -> Iterator[np.ndarray]:
    from retarget.video.reader import VideoReader, probe

    info = probe(path)
    every = max(1, math.ceil(info.frame_count / limit)) if info.frame_count else 1
    with VideoReader(path, every=every, max_frames=limit) as reader:
        for frame in reader:
            yield frame.image


def target_faces(path: str, comparer: FaceComparer, descriptor: Descriptor, limit: int = TARGET_IMAGES) -> TargetFaces:
    """Mean descriptor of the largest face in (at most ``limit``) images of the target.

    Args:
        path: a dataset folder (``extract`` output, face-aligned crops are fine, or a
            plain image folder) or a video file (its frames, evenly thinned).
        comparer: finds the faces and landmarks (its backend and detection size).
        descriptor: the face descriptor.

    Raises:
        RetargetError: ``path`` missing or unreadable, or no face found in it.
    """
    p = Path(path)
    if not p.exists():
        raise RetargetError(f"{path}: target not found; give a dataset folder or a video of the target person")
    images = _dataset_images(p, limit) if p.is_dir() else _video_images(p, limit)
    described: list[np.ndarray] = []
    seen = 0
    for image in images:
        seen += 1
        found = comparer.face(image)
        if found is not None:
            described.append(descriptor(image, found[1]))  # found: (box, landmarks)
    if not described:
        raise RetargetError(f"{path}: no face found in the target ({seen} images looked at)")
    return TargetFaces(path=str(path), mean=np.mean(described, axis=0), faces=len(described), images=seen)


def _share(flags: list[bool]) -> Optional[float]:
    return float(np.mean(flags)) if flags else None


class IdentityTrack:
    """Descriptors of the output faces (kept) and of the source faces (summed into A's mean).

    Args:
        descriptor: the face descriptor (:class:`retarget.faces.identity.FaceDescriptor`).
        target: B's mean descriptor (:func:`target_faces`).
        threshold: the same-person distance.

    Call :meth:`add` once per scored frame, then read :meth:`summary` and :meth:`per_frame`.
    """

    def __init__(self, descriptor: Descriptor, target: TargetFaces, threshold: float = SAME_PERSON) -> None:
        self.descriptor = descriptor
        self.target = target
        self.threshold = float(threshold)
        self.source_sum: Optional[np.ndarray] = None
        self.source_faces = 0
        self.outputs: list[Optional[np.ndarray]] = []  # one per add(); None without an output face

    def add(self, source: np.ndarray, output: np.ndarray, found: Optional[FaceComparison]) -> None:
        """Describe the source and output faces of one frame pair (``H x W x 3`` uint8 RGB)."""
        out = None
        if found is not None and found.source_points is not None:
            d = self.descriptor(source, found.source_points)
            self.source_sum = d if self.source_sum is None else self.source_sum + d
            self.source_faces += 1
            if found.output_points is not None:
                out = self.descriptor(output, found.output_points)
        self.outputs.append(out)

    def _distances(self) -> tuple[list[Optional[float]], list[Optional[float]]]:
        """Per frame: distance of the output face to B's and to A's mean (None without a face)."""
        a_mean = self.source_sum / self.source_faces if self.source_sum is not None else None
        to_b = [None if d is None else float(np.linalg.norm(d - self.target.mean)) for d in self.outputs]
        to_a = [None if d is None or a_mean is None else float(np.linalg.norm(d - a_mean)) for d in self.outputs]
        return to_b, to_a

    def summary(self) -> dict[str, Any]:
        """Shares and mean distances over the frames with an output face (None where undefined).

        Keys: ``nearer_b`` (share of output faces nearer B's mean than A's),
        ``same_person_b`` / ``same_person_a`` (shares under the threshold of B's / A's
        mean), ``distance_b`` / ``distance_a`` (mean distances), ``threshold``,
        ``frames`` (output faces described), ``source_faces``, ``target`` (path),
        ``target_faces``, ``target_images``.
        """
        to_b, to_a = self._distances()
        pairs = [(b, a) for b, a in zip(to_b, to_a) if b is not None and a is not None]
        dist_b = [b for b in to_b if b is not None]
        dist_a = [a for a in to_a if a is not None]
        return {
            "nearer_b": _share([b < a for b, a in pairs]),
            "same_person_b": _share([b < self.threshold for b in dist_b]),
            "same_person_a": _share([a < self.threshold for a in dist_a]),
            "distance_b": float(np.mean(dist_b)) if dist_b else None,
            "distance_a": float(np.mean(dist_a)) if dist_a else None,
            "threshold": self.threshold,
            "frames": len(dist_b),
            "source_faces": self.source_faces,
            "target": self.target.path,
            "target_faces": self.target.faces,
            "target_images": self.target.images,
        }

    def per_frame(self) -> dict[str, list[Optional[float]]]:
        """``distance_b`` and ``distance_a`` per :meth:`add` (None where no output face)."""
        to_b, to_a = self._distances()
        return {"distance_b": to_b, "distance_a": to_a}
