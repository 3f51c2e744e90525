"""Face detection + 68-point landmark backends behind one small interface.

``dlib`` (default, fully offline): dlib's HOG frontal-face detector and its 68-point
shape predictor, whose model file ships with the ``face_recognition_models`` package
(``pip install 'retarget[face]'``).

``fan``: the ``face-alignment`` package (Bulat & Tzimiropoulos' FAN with the S3FD
detector; ``pip install 'retarget[fan]'``). It downloads its weights on first use, so
it needs the network once; it is slower on CPU but more accurate on profiles.

Both return boxes and landmarks in pixels of the image they were given.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from retarget.errors import RetargetError

__all__ = ["FaceBackend", "DlibBackend", "FanBackend", "get_backend", "dlib_model_path"]


@runtime_checkable
class FaceBackend(Protocol):
    """What :class:`~retarget.faces.aligner.FaceAligner` needs from a landmark backend."""

    name: str

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """Face boxes in an image.

        Args:
            image: H x W x 3 uint8 RGB (backends with ``accepts_gray`` also take H x W uint8).

        Returns:
            list of (4,) float arrays ``[x0, y0, x1, y1]`` in image pixels; empty if none.
        """
        ...

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 landmarks of the face in ``box`` (``[x0, y0, x1, y1]``, image pixels).

        Returns:
            (68, 2) float32 image-pixel coordinates (x, y), iBUG-300W point order.
        """
        ...


def _missing(extra: str, package: str) -> RetargetError:
    return RetargetError(
        f"the face backend needs the '{package}' package; install it with: pip install 'retarget[{extra}]'"
    )


def dlib_model_path(name: str = "shape_predictor_68_face_landmarks.dat") -> str:
    """Path of a model file from the ``face_recognition_models`` package.

    The package is located without importing it: its ``__init__`` imports
    ``pkg_resources``, which recent setuptools no longer provide.

    Raises:
        RetargetError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise _missing("face", "face_recognition_models")
    path = os.path.join(os.path.dirname(spec.origin), "models", name)
    if not os.path.isfile(path):
        raise RetargetError(f"{path}: dlib model file missing; reinstall with: pip install 'retarget[face]'")
    return path


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class DlibBackend:
    """dlib HOG detector + 68-point shape predictor (CPU, offline).

    Grayscale input is accepted (and is what the tracker passes): HOG and the shape
    predictor only look at intensity gradients, and one conversion per frame is cheaper
    than letting dlib reduce colour at every step.
    """

    name = "dlib"
    accepts_gray = True

    def __init__(self, model_path: str | None = None, upsample: int = 0) -> None:
        try:
            import dlib  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise _missing("face", "dlib") from exc
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(model_path or dlib_model_path())
        self.upsample = upsample

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """Face boxes, best-scoring first; see :meth:`FaceBackend.detect`."""
        rects, scores, _ = self._detector.run(_to_gray(image), self.upsample, 0.0)
        order = np.argsort(-np.asarray(scores, np.float64)) if len(scores) else []
        return [
            np.array([rects[i].left(), rects[i].top(), rects[i].right() + 1, rects[i].bottom() + 1], np.float64)
            for i in order
        ]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 points in the box; see :meth:`FaceBackend.landmarks`."""
        x0, y0, x1, y1 = (float(v) for v in box)
        # dlib rectangles are inclusive integer corners.
        rect = self._dlib.rectangle(round(x0), round(y0), round(x1) - 1, round(y1) - 1)
        shape = self._predictor(_to_gray(image), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


class FanBackend:
    """The ``face-alignment`` package: S3FD detector + 2-D FAN landmarks.

    Args:
        device: torch device for the networks ("cpu", "cuda", "mps"); "auto" takes CUDA
            when available.
        model: an already built ``face_alignment.FaceAlignment`` (or any object with the
            same ``face_detector.detect_from_image`` and ``get_landmarks_from_image``
            methods); built on demand when None, which downloads the weights on first use.
    """

    name = "fan"
    accepts_gray = False

    def __init__(self, device: str = "auto", model: Any | None = None) -> None:
        if model is None:
            try:
                import face_alignment  # noqa: PLC0415 - optional dependency
            except ImportError as exc:
                raise _missing("fan", "face-alignment") from exc
            if device == "auto":
                import torch  # noqa: PLC0415 - face-alignment depends on torch anyway

                device = "cuda" if torch.cuda.is_available() else "cpu"
            kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or getattr(face_alignment.LandmarksType, "_2D")
            try:
                model = face_alignment.FaceAlignment(kind, device=device, face_detector="sfd", flip_input=False)
            except Exception as exc:  # weights download or device problems
                raise RetargetError(f"face-alignment could not load its networks on {device}: {exc}") from exc
        self._fa = model

    @staticmethod
    def _rgb(image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """Face boxes, best-scoring first; see :meth:`FaceBackend.detect`."""
        # The S3FD detector of face-alignment expects BGR, like OpenCV.
        bgr = np.ascontiguousarray(self._rgb(image)[..., ::-1])
        found = self._fa.face_detector.detect_from_image(bgr)
        boxes = [np.asarray(d, np.float64) for d in (found if found is not None else [])]
        boxes.sort(key=lambda d: -float(d[4]) if len(d) > 4 else 0.0)
        return [d[:4].copy() for d in boxes]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 points in the box; see :meth:`FaceBackend.landmarks`."""
        box5 = np.append(np.asarray(box, np.float64)[:4], 1.0)
        out = self._fa.get_landmarks_from_image(self._rgb(image), detected_faces=[box5])
        if isinstance(out, tuple):  # newer versions may return (landmarks, scores, boxes)
            out = out[0]
        if not out:
            raise RetargetError("face-alignment returned no landmarks for a detected face")
        pts = np.asarray(out[0], np.float32)
        if pts.shape[0] != 68:
            raise RetargetError(f"face-alignment returned {pts.shape[0]} landmarks; 68 (2-D) are needed")
        return pts[:, :2].copy()


@functools.lru_cache(maxsize=4)
def _cached(name: str, device: str) -> FaceBackend:
    if name == "dlib":
        return DlibBackend()
    return FanBackend(device=device)


def get_backend(name: str, device: str = "auto") -> FaceBackend:
    """The landmark backend called ``name`` ("dlib" or "fan"), loaded once per process.

    Args:
        name: backend name.
        device: torch device for ``fan`` ("auto": CUDA when available; ignored by dlib).

    Raises:
        RetargetError: unknown name, or the backend's package is not installed (the
            message names the extra to install).
    """
    if name not in ("dlib", "fan"):
        raise RetargetError(f"unknown face backend {name!r}; choose dlib or fan")
    return _cached(name, device)
