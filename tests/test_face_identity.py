"""Choosing the person (``--face-ref``): retarget.faces.identity and the aligner's pick by descriptor."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from retarget.config import ExtractConfig, FaceConfig
from retarget.errors import RetargetError
from retarget.faces.align import TEMPLATE_68
from retarget.faces.aligner import FaceAligner
from retarget.faces.identity import SAME_PERSON, FaceReference, distance, load_reference

W, H = 640, 360
RED, BLUE, GREEN = (200, 30, 30), (30, 30, 200), (30, 200, 30)


def face(cx: float, cy: float = 180.0, size: float = 100.0) -> np.ndarray:
    return ((TEMPLATE_68 - 0.5) * size + [cx, cy]).astype(np.float32)


def box_of(lm: np.ndarray) -> np.ndarray:
    lo, hi = lm.min(0), lm.max(0)
    return np.array([lo[0], lo[1], hi[0], hi[1]], np.float64)


class Backend:
    """Scripted faces: ``detect`` reports the boxes of ``faces`` (scaled to the image given), ``landmarks``
    the face whose box centre is nearest."""

    name = "scripted"

    def __init__(self, faces) -> None:
        self.faces = faces

    def detect(self, image):
        s = image.shape[1] / W
        return [box_of(f) * s for f in self.faces]

    def landmarks(self, image, box):
        c = (box[:2] + box[2:]) / 2
        return min(self.faces, key=lambda f: float(np.linalg.norm(box_of(f)[:2] / 2 + box_of(f)[2:] / 2 - c))).copy()


def colour_descriptor(image, landmarks):
    """A stand-in for dlib's: the mean colour (0-1) of the face's box; one person = one colour."""
    x0, y0, x1, y1 = box_of(landmarks).round().astype(int)
    return image[y0:y1, x0:x1].reshape(-1, 3).mean(0) / 255.0


def scene(*people):
    """A frame with each ``(landmarks, colour)`` painted as a filled box."""
    img = np.full((H, W, 3), 90, np.uint8)
    img[::10] = 120
    for lm, colour in people:
        x0, y0, x1, y1 = box_of(lm).round().astype(int)
        img[y0:y1, x0:x1] = colour
    return img


def aligner_for(reference_colour, faces, threshold=0.2):
    ref = FaceReference(np.array(reference_colour, np.float64) / 255.0, colour_descriptor, threshold, "ref.png")
    cfg = FaceConfig(smooth=0.0, detect_every=3, detect_size=320)
    return FaceAligner(cfg, 64, backend=Backend(faces), reference=ref)


def centre_x(found) -> float:
    return float(found.landmarks[:, 0].mean())


def test_the_reference_person_is_picked_wherever_they_are():
    left, right = face(180), face(460)
    aligner = aligner_for(BLUE, [left, right])
    found = aligner(scene((left, RED), (right, BLUE)), 0.0)
    assert found is not None and centre_x(found) == pytest.approx(460, abs=1)
    aligner.reset()
    found = aligner(scene((left, BLUE), (right, RED)), 0.1)  # the people changed places
    assert found is not None and centre_x(found) == pytest.approx(180, abs=1)
    # without a reference the aligner takes the largest face, whoever it is
    plain = FaceAligner(FaceConfig(smooth=0.0), 64, backend=Backend([face(180, size=140), right]))
    assert centre_x(plain(scene((left, RED), (right, BLUE)), 0.0)) == pytest.approx(180, abs=1)


def test_frames_without_the_person_have_no_face_and_count_as_others():
    left, right = face(180), face(460)
    aligner = aligner_for(GREEN, [left, right])
    assert aligner(scene((left, RED), (right, BLUE)), 0.0) is None
    assert aligner.stats.others >= 1 and aligner.stats.aligned == 0
    # a face just beyond the threshold is someone else; just within it, the person
    near = np.array(BLUE) + 0.15 * 255 / np.sqrt(3)
    assert aligner_for(near, [right], threshold=0.14)(scene((right, BLUE)), 0.0) is None
    assert aligner_for(near, [right], threshold=0.16)(scene((right, BLUE)), 0.0) is not None


def test_a_track_of_the_person_is_followed_between_detections():
    right = face(460)
    faces = [face(180), right]
    aligner = aligner_for(BLUE, faces)
    tracks = set()
    for i in range(7):  # detections at 0, 3, 6; tracked in between
        moved = face(460 + 2 * i)
        faces[1] = moved
        found = aligner(scene((faces[0], RED), (moved, BLUE)), i / 25)
        assert found is not None and centre_x(found) == pytest.approx(460 + 2 * i, abs=1)
        tracks.add(found.track)
    assert len(tracks) == 1 and aligner.stats.tracked >= 4


def test_distance_and_reference_pick():
    a, b = np.zeros(128), np.full(128, 0.1)
    assert distance(a, b) == pytest.approx(np.sqrt(128) * 0.1)
    ref = FaceReference(np.array([1.0, 0.0]), lambda image, lm: lm, 0.5)
    faces = [np.array([0.0, 0.0]), np.array([0.8, 0.1]), np.array([1.2, 0.0])]
    assert ref.pick(None, faces) == 2  # the nearest: 0.2 against 0.22
    assert ref.pick(None, faces[:1]) is None and ref.pick(None, []) is None


def test_a_missing_or_unreadable_reference_is_one_line(tmp_path):
    with pytest.raises(RetargetError, match=r"^--face-ref \S+nope.png: not found"):
        load_reference(str(tmp_path / "nope.png"), Backend([]))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(RetargetError, match=r"^--face-ref \S+bad.png: not a readable image"):
        load_reference(str(bad), Backend([]))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((80, 80, 3), 128, np.uint8))
    with pytest.raises(RetargetError, match=r"^--face-ref \S+blank.png: no face found in the reference image"):
        load_reference(str(blank), Backend([]))


def test_load_reference_describes_the_largest_face(tmp_path):
    small, big = face(150, size=60), face(420, size=120)
    path = tmp_path / "ref.png"
    cv2.imwrite(str(path), cv2.cvtColor(scene((small, RED), (big, BLUE)), cv2.COLOR_RGB2BGR))
    ref = load_reference(str(path), Backend([small, big]), colour_descriptor, threshold=0.3)
    assert np.allclose(ref.vector, np.array(BLUE) / 255.0) and ref.threshold == 0.3 and ref.path == str(path)


def test_extract_refuses_face_ref_without_face_alignment_and_a_missing_image(tmp_path):
    from helpers import make_video

    from retarget.dataset.extract import extract

    video = make_video(tmp_path / "v.mp4", frames=4)
    out = tmp_path / "ds"
    with pytest.raises(
        RetargetError, match=r"^--face-ref ref.png: has an effect with --align face only \(this is --align none\)$"
    ):
        extract(ExtractConfig(videos=(str(video),), output=str(out), face_ref="ref.png"))
    with pytest.raises(RetargetError, match=r"^--face-ref \S+nope.png: not found"):
        extract(ExtractConfig(videos=(str(video),), output=str(out), align="face", face_ref=str(tmp_path / "nope.png")))
    assert not out.exists()


# -- real faces ---------------------------------------------------------------------------


def _frame_at(path: Path, second: float) -> np.ndarray:
    from retarget.video.reader import VideoReader

    with VideoReader(path, start=second) as reader:
        return next(iter(reader)).image


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    h = min(left.shape[0], right.shape[0])
    fit = [
        cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h)) if im.shape[0] != h else im for im in (left, right)
    ]
    return np.ascontiguousarray(np.concatenate(fit, axis=1))


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    pytest.importorskip("dlib")
    from conftest import SHARED_DATA

    paths = [SHARED_DATA / "faces" / n for n in ("talk_d3.mp4", "talk_d9.mp4")]
    if not all(p.exists() for p in paths):
        pytest.skip("the shared face videos are not available")
    folder = tmp_path_factory.mktemp("refs")
    refs = []
    for i, p in enumerate(paths):  # each person's reference: a frame seconds away from the ones tested
        ref = folder / f"ref{i}.png"
        cv2.imwrite(str(ref), cv2.cvtColor(_frame_at(p, 6.0), cv2.COLOR_RGB2BGR))
        refs.append(str(ref))
    frames = [[_frame_at(p, t) for t in (1.0, 1.2)] for p in paths]
    return frames, refs


def test_real_faces_the_chosen_face_follows_the_reference(two_people):
    from retarget.faces.aligner import face_aligner

    (d3, d9), refs = two_people
    cfg = FaceConfig(detect_every=1)
    for ref, person in ((refs[0], "d3"), (refs[1], "d9")):
        aligner = face_aligner(cfg, 64, ref)
        assert aligner.reference.threshold == SAME_PERSON
        for order in ("d3 left", "d9 left"):
            aligner.reset()
            pairs = zip(d3, d9) if order == "d3 left" else zip(d9, d3)
            for t, (a, b) in enumerate(pairs):
                frame = _side_by_side(a, b)
                found = aligner(frame, t / 5)
                assert found is not None, (person, order)
                on_left = centre_x(found) < a.shape[1] * frame.shape[0] / a.shape[0]
                assert on_left == (order == f"{person} left"), (person, order, centre_x(found))
        aligner.reset()  # alone in the frame, the other person is nobody
        other = d9[0] if person == "d3" else d3[0]
        assert aligner(other, 0.0) is None and aligner.stats.others >= 1


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for image in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_real_faces_extract_keeps_only_the_reference_person(two_people, tmp_path):
    from typer.testing import CliRunner

    from retarget.cli import app
    from retarget.dataset.manifest import read_dataset

    (d3, d9), refs = two_people
    frames = [_side_by_side(a, b) for a, b in zip(d3, d9)] * 2  # d3 on the left, d9 on the right
    video = _write_video(tmp_path / "two.mp4", [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames])
    middle = d3[0].shape[1] * frames[0].shape[0] / d3[0].shape[0]
    for ref, right in ((refs[1], True), (refs[0], False)):
        out = tmp_path / f"ds{right}"
        args = ["extract", str(video), "-o", str(out), "--align", "face", "--size", "64", "--face-ref", ref]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        ds = read_dataset(out)
        assert len(ds.frames) == 4
        assert all((rec.landmarks[:, 0].mean() > middle) == right for rec in ds.frames)


def test_descriptors_only_start_a_track_and_another_face_never_takes_it_over():
    calls = []

    def counting(image, landmarks):
        calls.append(1)
        return colour_descriptor(image, landmarks)

    left, right = face(180), face(460)
    ref = FaceReference(np.array(BLUE, np.float64) / 255.0, counting, 0.2, "ref.png")
    backend = Backend([left, right])
    aligner = FaceAligner(FaceConfig(smooth=0.0, detect_every=2, detect_size=320), 64, backend=backend, reference=ref)
    for i in range(6):  # detections at frames 0, 2, 4
        found = aligner(scene((left, RED), (right, BLUE)), i / 25)
        assert found is not None and centre_x(found) == pytest.approx(460, abs=1)
    assert len(calls) == 2  # both faces described once, when the track started
    backend.faces = [left]  # the person leaves; the other stays
    assert all(aligner(scene((left, RED)), (6 + i) / 25) is None for i in range(4))
