"""Whose face is it: dlib's face descriptor, and the one person to keep (``--face-ref IMAGE``).

:class:`FaceDescriptor` maps a face, given by its 68 landmarks, to dlib's 128-d
face-recognition vector (the ResNet model ``dlib_face_recognition_resnet_model_v1.dat``
shipped with ``face_recognition_models``, offline), computed on the landmark-aligned
150 x 150 face chip (``dlib.get_face_chip``). Faces of one person lie closer than
:data:`SAME_PERSON` (0.6, dlib's threshold; :func:`distance` is the Euclidean distance) in
nearly all pairs, faces of two people further apart.

:class:`FaceReference` is the person ``--face-ref`` names: the descriptor of the largest
face of a reference image (:func:`load_reference`). The face aligner asks it, at each
detection, which of the faces found is that person (:meth:`FaceReference.pick`): the
nearest within the threshold, or none.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import cv2
import numpy as np

from retarget.imageio import read_image
from retarget.errors import RetargetError
from retarget.faces.backends import FaceBackend, dlib_model_path, get_backend

__all__ = [
    "DESCRIPTOR_MODEL",
    "SAME_PERSON",
    "Descriptor",
    "FaceDescriptor",
    "FaceReference",
    "distance",
    "get_descriptor",
    "load_reference",
]

#: dlib's same-person distance: two faces of one person lie under it.
SAME_PERSON = 0.6
#: The descriptor model's file in ``face_recognition_models``.
DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
#: Longest side (px) a reference image is scaled to for detection (it is tried at full size if that misses).
REFERENCE_DETECT_SIZE = 1024


class Descriptor(Protocol):
    """Maps a face to a vector where one person's faces lie close together."""

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The descriptor of the face with ``landmarks`` ((68, 2) pixels) in ``image`` (H x W x 3 uint8 RGB)."""
        ...


class FaceDescriptor:
    """dlib's ResNet face descriptor of a face given by its 68 landmarks.

    Args:
        model_path: the model file; default the one shipped with ``face_recognition_models``
            (found without importing that package, as :func:`~retarget.faces.backends.dlib_model_path` does).

    Raises:
        RetargetError: dlib or the model file is missing (naming the extra to install).
    """

    #: Side (px) and border (fraction of the face) of the chip the network sees, as dlib's examples use.
    CHIP_SIZE = 150
    CHIP_PADDING = 0.25

    def __init__(self, model_path: Optional[str] = None) -> None:
        try:
            import dlib  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise RetargetError(
                "face descriptors need the 'dlib' package; install it with: pip install 'retarget[face]'"
            ) from exc
        self._dlib = dlib
        self._model = dlib.face_recognition_model_v1(model_path or dlib_model_path(DESCRIPTOR_MODEL))

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The descriptor of one face.

        Args:
            image: H x W x 3 uint8 RGB.
            landmarks: (68, 2) points of the face in ``image`` pixels (iBUG-300W order).

        Returns:
            (128,) float64.
        """
        d = self._dlib
        pts = np.asarray(landmarks, np.float64)
        if pts.shape != (68, 2):
            raise ValueError(f"expected (68, 2) landmarks, got {pts.shape}")
        x0, y0 = np.floor(pts.min(0)).astype(int)
        x1, y1 = np.ceil(pts.max(0)).astype(int)
        parts = [d.point(int(round(x)), int(round(y))) for x, y in pts]
        shape = d.full_object_detection(d.rectangle(int(x0), int(y0), int(x1), int(y1)), parts)
        chip = d.get_face_chip(np.ascontiguousarray(image), shape, size=self.CHIP_SIZE, padding=self.CHIP_PADDING)
        return np.asarray(self._model.compute_face_descriptor(chip), np.float64)


@functools.lru_cache(maxsize=1)
def get_descriptor() -> FaceDescriptor:
    """The dlib descriptor, loaded once per process (RetargetError without the face extra)."""
    return FaceDescriptor()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two descriptors (under :data:`SAME_PERSON`: likely the same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


@dataclass(frozen=True)
class FaceReference:
    """The one person to keep.

    Attributes:
        vector: the person's descriptor, ``(D,)`` float64.
        describe: the descriptor function that made it (applied to candidate faces).
        threshold: faces further than this from ``vector`` are someone else.
        path: the reference image, for messages.
    """

    vector: np.ndarray
    describe: Descriptor
    threshold: float = SAME_PERSON
    path: str = ""

    def distances(self, image: np.ndarray, faces: Sequence[np.ndarray]) -> list[float]:
        """Distance of each face (its (68, 2) landmarks in ``image``) to the reference person."""
        return [distance(self.describe(image, lm), self.vector) for lm in faces]

    def pick(self, image: np.ndarray, faces: Sequence[np.ndarray]) -> Optional[int]:
        """Index of the face nearest the reference person within the threshold, or None (the person is absent)."""
        if not faces:
            return None
        dist = self.distances(image, faces)
        best = int(np.argmin(dist))
        return best if dist[best] <= self.threshold else None


def _read_rgb(path: Path, flag: str) -> np.ndarray:
    if not path.is_file():
        raise RetargetError(f"{flag}: not found; give an image file with the face of the person to keep")
    bgr = read_image(path)
    if bgr is None:
        raise RetargetError(f"{flag}: not a readable image (png, jpg, ...)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _largest_face(image: np.ndarray, backend: FaceBackend) -> Optional[np.ndarray]:
    """Landmarks of the largest face in ``image``, detected at most at :data:`REFERENCE_DETECT_SIZE`, else None."""
    h, w = image.shape[:2]
    scale = min(1.0, REFERENCE_DETECT_SIZE / max(h, w))
    tries = [scale] if scale == 1.0 else [scale, 1.0]
    for s in tries:
        small = image if s == 1.0 else cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        boxes = [np.asarray(b, np.float64) / s for b in backend.detect(small)]
        if boxes:
            box = max(boxes, key=lambda b: float((b[2] - b[0]) * (b[3] - b[1])))
            return np.asarray(backend.landmarks(image, box), np.float32)
    return None


def load_reference(
    path: str,
    backend: FaceBackend | str = "dlib",
    describe: Optional[Descriptor] = None,
    threshold: float = SAME_PERSON,
) -> FaceReference:
    """The person of the largest face in the image at ``path``.

    Args:
        path: an image file (anything OpenCV reads) showing the person.
        backend: detector and landmarks, or the name of one (loaded after the image is read).
        describe: the descriptor; default :func:`get_descriptor`.
        threshold: the largest distance at which a face is that person.

    Raises:
        RetargetError: one line: the image is missing or unreadable, or has no face.
    """
    flag = f"--face-ref {path}"
    image = _read_rgb(Path(path), flag)  # before loading any model: a typo costs nothing
    if isinstance(backend, str):
        backend = get_backend(backend)
    landmarks = _largest_face(image, backend)
    if landmarks is None:
        raise RetargetError(f"{flag}: no face found in the reference image; give a photo with the face clearly visible")
    describe = describe if describe is not None else get_descriptor()
    return FaceReference(np.asarray(describe(image, landmarks), np.float64), describe, float(threshold), str(path))
