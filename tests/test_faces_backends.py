"""Landmark backends (retarget.faces.backends): dlib for real, FAN through a fake model."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest

from retarget.errors import RetargetError
from retarget.faces import backends
from retarget.faces.backends import DlibBackend, FaceBackend, FanBackend, dlib_model_path, get_backend


class FakeDetector:
    def __init__(self, boxes):
        self.boxes = boxes
        self.seen: list[np.ndarray] = []

    def detect_from_image(self, image):
        self.seen.append(image)
        return self.boxes


class FakeFan:
    """Stands in for face_alignment.FaceAlignment: the same two methods, canned answers."""

    def __init__(self, boxes, points):
        self.face_detector = FakeDetector(boxes)
        self.points = points
        self.calls: list[tuple[np.ndarray, list]] = []

    def get_landmarks_from_image(self, image, detected_faces=None):
        self.calls.append((image, detected_faces))
        return None if self.points is None else [self.points]


def test_fan_adapter_converts_detections_and_landmarks():
    boxes = [np.array([10, 20, 50, 70, 0.6]), np.array([100, 10, 180, 110, 0.99])]
    pts = np.random.default_rng(0).uniform(0, 100, (68, 2)).astype(np.float64)
    fake = FakeFan(boxes, pts)
    fan = FanBackend(model=fake)
    assert isinstance(fan, FaceBackend) and fan.name == "fan"
    img = np.zeros((120, 200, 3), np.uint8)
    img[..., 0] = 255  # red in RGB
    found = fan.detect(img)
    assert [b.tolist() for b in found] == [[100, 10, 180, 110], [10, 20, 50, 70]]  # best score first
    assert fake.face_detector.seen[0][0, 0].tolist() == [0, 0, 255]  # the detector is given BGR
    lm = fan.landmarks(img, found[0])
    assert lm.shape == (68, 2) and lm.dtype == np.float32 and np.allclose(lm, pts)
    image, faces = fake.calls[0]
    assert image[0, 0].tolist() == [255, 0, 0]  # landmarks get RGB
    assert np.allclose(faces[0][:4], found[0])


def test_fan_adapter_takes_3d_points_gray_images_and_reports_failures():
    pts3 = np.random.default_rng(1).uniform(0, 50, (68, 3))
    fan = FanBackend(model=FakeFan([], pts3))
    gray = np.zeros((40, 60), np.uint8)
    assert fan.detect(gray) == []
    assert np.allclose(fan.landmarks(gray, np.array([0, 0, 30, 30])), pts3[:, :2])
    with pytest.raises(RetargetError, match="no landmarks"):
        FanBackend(model=FakeFan([], None)).landmarks(gray, np.array([0, 0, 30, 30]))
    with pytest.raises(RetargetError, match="68"):
        FanBackend(model=FakeFan([], np.zeros((98, 2)))).landmarks(gray, np.array([0, 0, 30, 30]))


def test_fan_adapter_builds_face_alignment_as_documented(monkeypatch):
    built = {}

    class LandmarksType:
        TWO_D = "2d"

    def FaceAlignment(kind, **kw):  # noqa: N802 - mirrors the package's class
        built.update(kind=kind, **kw)
        return FakeFan([], np.zeros((68, 2)))

    module = types.SimpleNamespace(LandmarksType=LandmarksType, FaceAlignment=FaceAlignment)
    monkeypatch.setitem(sys.modules, "face_alignment", module)
    FanBackend(device="cuda")
    assert built == {"kind": "2d", "device": "cuda", "face_detector": "sfd", "flip_input": False}


def test_missing_packages_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_alignment", None)  # import fails
    with pytest.raises(RetargetError, match=r"retarget\[fan\]"):
        FanBackend()
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(RetargetError, match=r"retarget\[face\]"):
        DlibBackend()
    real = importlib.util.find_spec
    hidden = "face_recognition_models"
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == hidden else real(n, *a))
    with pytest.raises(RetargetError, match=r"retarget\[face\]"):
        dlib_model_path()


def test_get_backend(monkeypatch):
    with pytest.raises(RetargetError, match="unknown face backend"):
        get_backend("haar")
    backends._cached.cache_clear()
    monkeypatch.setitem(sys.modules, "face_alignment", None)
    with pytest.raises(RetargetError, match=r"pip install 'retarget\[fan\]'"):
        get_backend("fan")
    backends._cached.cache_clear()


def test_dlib_backend_on_a_synthetic_image():
    pytest.importorskip("dlib")
    b = get_backend("dlib")
    assert b is get_backend("dlib")  # loaded once
    assert b.name == "dlib" and isinstance(b, FaceBackend)
    img = np.full((120, 160, 3), 128, np.uint8)
    assert b.detect(img) == []  # no face in a flat image
    lm = b.landmarks(img, np.array([40.0, 20.0, 120.0, 100.0]))
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    # The predictor answers inside (roughly) the box it was given.
    assert 20 < lm[:, 0].mean() < 140 and 0 < lm[:, 1].mean() < 120


@pytest.mark.shared
def test_dlib_finds_the_carphone_face(shared_video):
    av = pytest.importorskip("av")
    pytest.importorskip("dlib")
    with av.open(str(shared_video("carphone_pristine.mp4"))) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24")
    import cv2

    big = cv2.resize(img, (img.shape[1] * 3, img.shape[0] * 3))
    b = get_backend("dlib")
    boxes = b.detect(big)
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    assert 0 <= x0 < x1 <= big.shape[1] and 0 <= y0 < y1 <= big.shape[0]
    lm = b.landmarks(img, boxes[0] / 3)
    from retarget.faces.align import eye_centres

    left, right = eye_centres(lm)
    assert left[0] < right[0] and abs(left[1] - right[1]) < 10  # an upright face
    assert lm[8, 1] > left[1] + 20  # chin below the eyes
    # Grayscale input gives the same answer (the tracker passes gray to dlib).
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert np.allclose(b.landmarks(gray, boxes[0] / 3), lm)
