"""Face landmark error (retarget.eval.faces): normalisation and face matching with a fake backend."""

from __future__ import annotations

import numpy as np
import pytest

from retarget.eval.faces import FaceComparer, landmark_error, largest_box, matching_box


def _face(cx: float, cy: float, iod: float) -> np.ndarray:
    """68 points spread around (cx, cy), with the outer eye corners iod apart."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-iod, iod, (68, 2)) + (cx, cy)
    pts[36] = (cx - iod / 2, cy - iod / 4)
    pts[45] = (cx + iod / 2, cy - iod / 4)
    return pts.astype(np.float32)


class FakeBackend:
    """Answers from canned boxes and landmarks keyed by the image's first pixel value."""

    name = "fake"
    accepts_gray = False

    def __init__(self, faces: dict[int, list[tuple[np.ndarray, np.ndarray]]]) -> None:
        self.faces = faces
        self.scales: list[float] = []

    def detect(self, image):
        key = int(image[0, 0, 0])
        scale = image.shape[1] / 100.0  # the frames in these tests are 100 px wide
        self.scales.append(scale)
        return [box * scale for box, _ in self.faces.get(key, [])]

    def landmarks(self, image, box):
        key = int(image[0, 0, 0])
        for b, pts in self.faces.get(key, []):
            if np.allclose(b, box, atol=1e-6):
                return pts
        raise AssertionError(f"landmarks asked for an unknown box {box}")


def _frame(key: int) -> np.ndarray:
    img = np.zeros((80, 100, 3), np.uint8)
    img[0, 0, 0] = key
    return img


def test_error_is_normalised_by_the_source_inter_ocular_distance():
    src = _face(50, 40, iod=20)
    assert landmark_error(src, src) == 0.0
    moved = src + np.array([3.0, 4.0], np.float32)  # every point 5 px away
    assert landmark_error(src, moved) == pytest.approx(5 / 20)
    # the same displacement on a face twice the size is half the error
    big = _face(50, 40, iod=40)
    assert landmark_error(big, big + np.array([3.0, 4.0], np.float32)) == pytest.approx(5 / 40)
    # the output's own eye distance does not matter: only the source's normalises. An
    # output face twice the source's size about its centre: every point moves |p - c|
    centre = np.array([50.0, 40.0], np.float32)
    double = (src - centre) * 2 + centre
    moved_by = np.hypot(*(src - centre).T).mean()
    assert landmark_error(src, double) == pytest.approx(moved_by / 20, rel=1e-5)
    assert landmark_error(double, src) == pytest.approx(moved_by / 40, rel=1e-5)  # roles swapped: its 40 px
    with pytest.raises(ValueError):
        landmark_error(src[:5], src[:5])


def test_largest_and_matching_boxes():
    small = np.array([0, 0, 10, 10.0])
    big = np.array([40, 40, 80, 80.0])
    assert largest_box([small, big]) is big
    assert largest_box([]) is None
    near = np.array([45, 42, 85, 82.0])
    far = np.array([0, 0, 12, 12.0])
    assert matching_box([far, near], big) is near
    assert matching_box([far], big) is None  # centre further than one face width away
    assert matching_box([], big) is None


def test_comparer_picks_the_largest_source_face_and_its_counterpart():
    src_main = (np.array([20, 10, 80, 70.0]), _face(50, 40, 24))
    src_small = (np.array([0, 0, 10, 10.0]), _face(5, 5, 4))
    out_main_pts = src_main[1] + np.array([0.0, 2.4], np.float32)  # 2.4 px / 24 px = 0.1
    out_main = (np.array([22, 12, 82, 72.0]), out_main_pts)
    out_other = (np.array([0, 0, 12, 12.0]), _face(6, 6, 4))
    backend = FakeBackend({1: [src_small, src_main], 2: [out_other, out_main]})
    comparer = FaceComparer(backend, detect_size=100)  # frames are 100 px wide: no rescale
    got = comparer.compare(_frame(1), _frame(2))
    assert got.source_found and got.output_found
    assert got.error == pytest.approx(0.1, rel=1e-5)


def test_comparer_reports_missing_faces():
    face = (np.array([20, 10, 80, 70.0]), _face(50, 40, 24))
    backend = FakeBackend({1: [face]})
    comparer = FaceComparer(backend, detect_size=100)
    no_out = comparer.compare(_frame(1), _frame(9))
    assert no_out.source_found and not no_out.output_found and no_out.error is None
    no_src = comparer.compare(_frame(9), _frame(1))
    assert not no_src.source_found and no_src.output_found and no_src.error is None


def test_comparer_detects_on_a_rescaled_frame_and_maps_boxes_back():
    face = (np.array([20, 10, 80, 70.0]), _face(50, 40, 24))
    backend = FakeBackend({1: [face]})
    comparer = FaceComparer(backend, detect_size=200)  # detector sees the frame at 2x
    got = comparer.compare(_frame(1), _frame(1))
    assert backend.scales[0] == pytest.approx(2.0)
    assert got.error == 0.0  # boxes came back to frame pixels, so landmarks were found


def test_real_face_video_against_itself(shared_video):
    pytest.importorskip("dlib")
    from retarget.faces.backends import get_backend
    from retarget.video.reader import VideoReader

    path = shared_video("carphone_pristine.mp4")
    comparer = FaceComparer(get_backend("dlib"))
    errors = []
    for frame in VideoReader(path, max_frames=4):
        got = comparer.compare(frame.image, frame.image)
        if got.error is not None:
            errors.append(got.error)
    assert errors, "no face found in carphone"
    assert max(errors) < 1e-6
