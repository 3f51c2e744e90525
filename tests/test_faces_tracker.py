"""FaceAligner: detection cadence, tracking, picking, losses, smoothing (retarget.faces.aligner, .tracker)."""

from __future__ import annotations

import numpy as np
import pytest

from retarget.config import FaceConfig
from retarget.faces import AlignedFace, FaceAligner
from retarget.faces.align import TEMPLATE_68, apply, eye_centres, template_points

W, H = 640, 360


def face(cx: float, cy: float, size: float = 100.0) -> np.ndarray:
    return ((TEMPLATE_68 - 0.5) * size + [cx, cy]).astype(np.float32)


def box_of(lm: np.ndarray) -> np.ndarray:
    lo, hi = lm.min(0), lm.max(0)
    return np.array([lo[0], lo[1], hi[0], hi[1]], np.float64)


class FakeBackend:
    """Scripted faces: the test sets ``faces`` (landmarks in full-frame pixels) per frame.

    ``detect`` reports their boxes scaled to the image it is given (so the aligner's
    downscaling is visible) unless ``blind_below`` says the image is too small;
    ``landmarks`` returns the face whose centre is nearest the box, or ``garbage``.
    """

    name = "fake"

    def __init__(self) -> None:
        self.faces: list[np.ndarray] = []
        self.detect_sizes: list[tuple[int, int]] = []
        self.landmark_sizes: list[tuple[int, int]] = []
        self.blind_below = 0
        self.garbage: np.ndarray | None = None

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        h, w = image.shape[:2]
        self.detect_sizes.append((w, h))
        if max(w, h) < self.blind_below:
            return []
        s = w / W
        return [box_of(f) * s for f in self.faces]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        self.landmark_sizes.append(image.shape[1::-1])
        if self.garbage is not None:
            return self.garbage
        if not self.faces:  # a real predictor always answers: a crumpled shape in the box
            rng = np.random.default_rng(7)
            return (box[:2] + rng.uniform(0, 1, (68, 2)) * (box[2:] - box[:2])).astype(np.float32)
        c = (box[:2] + box[2:]) / 2
        return min(self.faces, key=lambda f: float(np.linalg.norm(box_of(f)[:2] / 2 + box_of(f)[2:] / 2 - c))).copy()


def frame(value: int = 90) -> np.ndarray:
    img = np.full((H, W, 3), value, np.uint8)
    img[::10] = 200
    return img


def make(**kw) -> tuple[FaceAligner, FakeBackend]:
    fake = FakeBackend()
    cfg = FaceConfig(**{"smooth": 0.0, "detect_every": 3, "detect_size": 320, **kw})
    return FaceAligner(cfg, 64, backend=fake), fake


def test_aligned_face_contract():
    aligner, fake = make()
    fake.faces = [face(300, 180)]
    out = aligner(frame(), 0.0)
    assert isinstance(out, AlignedFace)
    assert out.matrix.shape == (2, 3) and out.matrix.dtype == np.float64
    assert out.raw_matrix.shape == (2, 3)
    assert out.landmarks.shape == (68, 2) and out.landmarks.dtype == np.float32
    assert out.crop.shape == (64, 64, 3) and out.crop.dtype == np.uint8
    # The landmarks land on the template in the crop.
    assert np.allclose(apply(out.matrix, out.landmarks), template_points(64, 0.4), atol=1e-3)
    assert aligner(frame()[:, ::-1], 0.05) is not None  # a flipped (strided) view is fine
    with pytest.raises(ValueError):
        aligner(np.zeros((H, W), np.uint8), 0.1)


def test_detects_on_a_small_frame_every_n_frames_and_tracks_in_between():
    aligner, fake = make(detect_every=3, detect_size=320)
    detected = []
    for i in range(9):
        fake.faces = [face(300 + 2 * i, 180)]
        out = aligner(frame(), i / 30)
        detected.append(out.detected)
        assert np.allclose(out.landmarks, fake.faces[0])
    assert detected == [True, False, False] * 3
    assert fake.detect_sizes == [(320, 180)] * 3  # longest side = detect_size
    assert set(fake.landmark_sizes) == {(W, H)}  # landmarks always at full resolution
    assert aligner.stats.detector_runs == 3 and aligner.stats.tracked == 6


def test_no_face_returns_none_and_resets_the_track():
    aligner, fake = make()
    fake.faces = [face(300, 180)]
    first = aligner(frame(), 0.0)
    fake.faces = []
    assert aligner(frame(), 1 / 30) is None  # tracking fails, detection finds nothing
    fake.faces = [face(310, 180)]
    again = aligner(frame(), 0.5)
    assert again is not None and again.detected and again.track == first.track + 1
    assert aligner.stats.lost >= 1


def test_retry_at_a_larger_size_before_losing_a_tracked_face():
    aligner, fake = make(detect_every=1, detect_size=320)
    fake.faces = [face(300, 180, 60)]
    assert aligner(frame(), 0.0) is not None
    fake.blind_below = 400  # the face is too small for the detector at 320 px
    out = aligner(frame(), 1 / 30)
    assert out is not None
    assert fake.detect_sizes[-2:] == [(320, 180), (640, 360)]
    assert aligner.stats.retries == 1
    # Without a face being followed there is no retry: the first frame is not slowed.
    aligner.reset()
    n = len(fake.detect_sizes)
    assert aligner(frame(), 2.0) is None
    assert len(fake.detect_sizes) == n + 1


def test_a_good_track_survives_one_missed_detection_period():
    aligner, fake = make(detect_every=3)
    fake.faces = [face(300, 180)]
    textured = np.random.default_rng(5).integers(0, 255, (H, W, 3), dtype=np.uint8)
    assert aligner(textured, 0.0).detected
    fake.blind_below = 10_000  # from now on the detector finds nothing at any size
    results = [aligner(textured, i / 30) for i in range(1, 8)]
    # Frames 1-2 tracked, 3-5 tracked through missed checks, then the face counts as lost.
    assert [r is not None for r in results] == [True] * 5 + [False, False]
    assert aligner.stats.missed_checks == 3


def test_pick_largest_or_tracked():
    small, big = face(150, 180, 60), face(480, 180, 120)
    aligner, fake = make(pick="largest", detect_every=1)
    fake.faces = [small, big]
    assert np.allclose(aligner(frame(), 0.0).landmarks, big)

    aligner, fake = make(pick="tracked", detect_every=1)
    fake.faces = [small]
    aligner(frame(), 0.0)
    fake.faces = [face(155, 180, 60), big]  # a larger face appears; keep following ours
    out = aligner(frame(), 1 / 30)
    assert np.allclose(out.landmarks, fake.faces[0])
    # With no face followed, 'tracked' starts with the largest.
    aligner.reset()
    assert np.allclose(aligner(frame(), 1.0).landmarks, big)


def test_lost_tracking_triggers_an_early_detection():
    aligner, fake = make(detect_every=10)
    fake.faces = [face(300, 180)]
    aligner(frame(), 0.0)
    # The predictor returns a crumpled shape (it lost the face): detect again at once.
    rng = np.random.default_rng(0)
    fake.garbage = (rng.uniform(0, 1, (68, 2)) * 100 + 250).astype(np.float32)
    runs = aligner.stats.detector_runs
    assert aligner(frame(), 1 / 30) is None  # detection's landmarks are garbage too
    assert aligner.stats.redetections == 1 and aligner.stats.detector_runs > runs
    fake.garbage = None
    assert aligner(frame(), 2 / 30) is not None


def test_a_face_that_vanishes_while_tracking_is_noticed_by_its_appearance():
    aligner, fake = make(detect_every=10)
    lm = face(300, 180)
    fake.faces = [lm]
    rng = np.random.default_rng(3)
    textured = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    assert aligner(textured, 0.0) is not None
    assert aligner(textured, 1 / 30) is not None and aligner.stats.tracked == 1
    # A cut: other content, yet the predictor still draws the same plausible face there.
    fake.faces = []
    fake.garbage = lm
    other = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    assert aligner(other, 2 / 30) is None
    assert aligner.stats.redetections == 1


def test_jump_while_tracking_redetects_and_a_new_face_starts_a_new_track():
    aligner, fake = make(detect_every=10, pick="largest")
    fake.faces = [face(150, 180)]
    first = aligner(frame(), 0.0)
    # The tracked face is gone; another one far away is all the predictor can find.
    fake.faces = [face(500, 180)]
    out = aligner(frame(), 1 / 30)
    assert out is not None and out.detected and aligner.stats.redetections == 1
    assert out.track == first.track + 1
    assert np.allclose(out.landmarks, fake.faces[0])


def test_smoothing_is_applied_and_reset():
    aligner, fake = make(smooth=1.0, detect_every=1)
    rng = np.random.default_rng(0)
    eyes_raw, eyes_smooth = [], []
    for i in range(60):
        true = face(300, 180)
        fake.faces = [true + rng.normal(0, 0.8, true.shape).astype(np.float32)]
        out = aligner(frame(), i / 30)
        eyes_raw.append(eye_centres(apply(out.raw_matrix, true)))
        eyes_smooth.append(eye_centres(apply(out.matrix, true)))
    j_raw = np.linalg.norm(np.diff(eyes_raw, axis=0), axis=-1).mean()
    j_smooth = np.linalg.norm(np.diff(eyes_smooth, axis=0), axis=-1).mean()
    assert j_smooth < j_raw / 2
    aligner.reset()
    fake.faces = [face(100, 100)]
    out = aligner(frame(), 10.0)
    assert np.array_equal(out.matrix, out.raw_matrix)  # no memory of the old face


def cartoon(cx: float, cy: float, size: float = 100.0, open_mouth: float = 0.0) -> np.ndarray:
    """A stylised face: 1.4x wider than a human one, eyes twice as large, a wide jaw."""
    c = TEMPLATE_68.astype(np.float64).copy()
    for part in (slice(36, 42), slice(42, 48)):
        c[part] = c[part].mean(0) + (c[part] - c[part].mean(0)) * 2.0
    c[:17] = c[:17].mean(0) + (c[:17] - c[:17].mean(0)) * 1.5
    c[56:59, 1] += open_mouth  # lower lip
    c[65:68, 1] += open_mouth
    return ((c - 0.5) * [1.4 * size, size] + [cx, cy]).astype(np.float32)


def test_a_stylised_face_keeps_its_track_and_background_is_still_rejected():
    from retarget.faces.tracker import shape_fit

    assert 0.11 < shape_fit(cartoon(0, 0)).rms < 0.16  # far from the human template
    aligner, fake = make(detect_every=4)
    textured = frame()
    outs = []
    for i in range(20):  # moving and talking
        fake.faces = [cartoon(300 + 3 * i, 180, 100 + i, open_mouth=0.03 * (i % 3))]
        outs.append(aligner(textured, i / 30))
    assert all(o is not None for o in outs)
    assert {o.track for o in outs} == {0}
    assert aligner.stats.tracked >= 12  # followed between detections, not only re-detected
    # A crumpled shape (a predictor run on background) never starts a track ...
    other, fake2 = make(detect_every=4)
    fake2.faces = []
    assert other(textured, 0.0) is None
    # ... nor continues one: the tracked frame fails, and so does the detection.
    rng = np.random.default_rng(0)
    fake.garbage = (rng.uniform(0, 1, (68, 2)) * 100 + 250).astype(np.float32)
    redetections = aligner.stats.redetections
    assert aligner(textured, 20 / 30) is None and aligner.stats.redetections == redetections + 1
    # A different shape in the same place is another face: a new track, not this one.
    fake.garbage = None
    fake.faces = [cartoon(360, 180, 120)]
    assert aligner(textured, 21 / 30).track == 1
    for i in range(22, 26):
        aligner(textured, i / 30)
    fake.faces = [face(360, 180, 120)]
    out = aligner(textured, 26 / 30)
    assert out is not None and out.detected and out.track == 2


@pytest.mark.shared
def test_carphone_aligns_nearly_every_frame(shared_video):
    av = pytest.importorskip("av")
    path = shared_video("carphone_pristine.mp4")
    aligner = FaceAligner(FaceConfig(), 128)
    found, err = 0, []
    tmpl = eye_centres(template_points(128, 0.4))
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= 60:
                break
            out = aligner(f.to_ndarray(format="rgb24"), float(f.time))
            if out is not None:
                found += 1
                err.append(np.linalg.norm(eye_centres(apply(out.matrix, out.landmarks)) - tmpl, axis=1).mean())
    assert found >= 57
    assert np.mean(err) < 3.0  # px at 128: the face is where the template says


@pytest.mark.shared
def test_carphone_stretched_like_a_cartoon_keeps_its_track(shared_video):
    av = pytest.importorskip("av")
    cv2 = pytest.importorskip("cv2")
    aligner = FaceAligner(FaceConfig(), 128)
    tracks = []
    with av.open(str(shared_video("carphone_pristine.mp4"))) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= 60:
                break
            image = cv2.resize(f.to_ndarray(format="rgb24"), None, fx=1.4, fy=1.0, interpolation=cv2.INTER_LINEAR)
            out = aligner(image, float(f.time))
            tracks.append(None if out is None else out.track)
    assert tracks == [0] * 60


def test_continuity_resets_at_cuts_holes_and_time_gaps_but_not_on_the_first_frame():
    from retarget.faces import Continuity

    class Counting:
        resets = 0

        def __call__(self, image, time):
            return None

        def reset(self):
            self.resets += 1

    aligner = Counting()
    rule = Continuity(aligner, max_gap=0.1)
    got = [rule(False, 0, 0.0), rule(False, 0, 0.04), rule(True, 0, 0.08), rule(False, 1, 0.12), rule(False, 1, 0.5)]
    assert got == [True, False, True, True, True] and aligner.resets == 3
    plain = Continuity(lambda image, time: None)  # no max_gap: time jumps are not breaks; no reset method is fine
    assert [plain(False, 0, 0.0), plain(False, 0, 9.0), plain(True, 0, 9.1)] == [True, False, True]
