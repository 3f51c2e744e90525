"""Identity, expression and sharpness of output faces (retarget.eval.identity, expression; eval --target).

Synthetic cases run everywhere with a stand-in face backend and descriptor model: a
'face' is a coloured rectangle whose red/blue mix says who it is, whose height says how
far the mouth is open and whose green says how far the eyes are. The real faces of
../shared/data/faces check the dlib model on the known cases (skipped when absent).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import EvalConfig
from retarget.errors import RetargetError
from retarget.eval.evaluate import evaluate, print_result
from retarget.eval.expression import SHARPNESS_INNER, eye_opening, face_sharpness, mouth_opening, pearson
from retarget.eval.faces import FaceComparer
from retarget.eval.identity import SAME_PERSON, TargetFaces, target_faces
from retarget.eval.score import FrameScorer, score_frames
from retarget.video.writer import VideoWriter

T = 8
BACKGROUND = 60
#: red, blue of each person's face
PEOPLE = {"A": (230, 110), "B": (110, 230)}


class RectFaces:
    """Stand-in landmark backend: the face is the box of the non-background pixels."""

    name = "rects"
    accepts_gray = False

    def detect(self, image):
        ys, xs = np.nonzero(np.abs(image.astype(int) - BACKGROUND).max(axis=2) > 30)
        if len(xs) < 20:
            return []
        return [np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)]

    def landmarks(self, image, box):
        x0, y0, x1, y1 = (float(v) for v in box)
        w, h = x1 - x0, y1 - y0
        green = float(image[int(y0) : int(y1), int(x0) : int(x1), 1].mean())
        pts = np.tile([(x0 + x1) / 2, (y0 + y1) / 2], (68, 1))
        ye, lid = y0 + 0.3 * w, 0.5 * (green / 255) * 0.4 * w  # eye opening = 0.5 * green / 255
        for outer, inner, ups, downs in ((36, 39, (37, 38), (41, 40)), (45, 42, (44, 43), (46, 47))):
            xo = x0 if outer == 36 else x1
            xi = xo + 0.4 * w if outer == 36 else xo - 0.4 * w
            pts[outer], pts[inner] = (xo, ye), (xi, ye)
            for k, (u, d) in enumerate(zip(ups, downs)):
                x = xo + (xi - xo) * (k + 1) / 3
                pts[u], pts[d] = (x, ye - lid / 2), (x, ye + lid / 2)
        pts[62], pts[66] = ((x0 + x1) / 2, y1 - 2 - (h - w)), ((x0 + x1) / 2, y1 - 2)  # mouth = (h - w) / w
        return pts.astype(np.float32)


class ColourDescriptor:
    """Stand-in descriptor: the mean red and blue around the landmarks, so each person has one point."""

    name = "colour"

    def __init__(self):
        self.calls = 0

    def __call__(self, image, points):
        self.calls += 1
        (x0, y0), (x1, y1) = np.ceil(points.min(0)).astype(int), np.floor(points.max(0)).astype(int)  # inside
        patch = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
        return 2 * patch[:, [0, 2]].mean(axis=0) / 255  # A and B lie 2 * 120 / 255 * sqrt(2) = 1.33 apart


def _face_frame(person: str, mouth: float, eyes: float, texture: int = 0) -> np.ndarray:
    """80 x 64 frame with a 24 px wide face; ``mouth`` and ``eyes`` are the openings it should measure."""
    img = np.full((80, 64, 3), BACKGROUND, np.uint8)
    red, blue = PEOPLE[person]
    h = int(round(24 * (1 + mouth)))
    img[10 : 10 + h, 20:44] = (red, int(round(eyes / 0.5 * 255)), blue)
    if texture:  # fine detail inside the face (for the sharpness score)
        noise = np.random.default_rng(texture).integers(-25, 26, (h, 24, 1))
        img[10 : 10 + h, 20:44] = np.clip(img[10 : 10 + h, 20:44].astype(int) + noise, 0, 255)
    return img


MOUTH = [0.05, 0.2, 0.4, 0.1, 0.3, 0.05, 0.5, 0.25]
EYES = [0.30, 0.28, 0.10, 0.30, 0.32, 0.05, 0.29, 0.30]


def _clip(person: str, mouth=MOUTH, eyes=EYES, texture: bool = False) -> list[np.ndarray]:
    return [_face_frame(person, m, e, texture=t + 1 if texture else 0) for t, (m, e) in enumerate(zip(mouth, eyes))]


def _target(person: str) -> TargetFaces:
    red, blue = PEOPLE[person]
    return TargetFaces(path=f"<{person}>", mean=2 * np.array([red, blue]) / 255, faces=1, images=1)


# -- the measures ------------------------------------------------------------------------


def test_openings_read_the_ibug_points():
    pts = RectFaces().landmarks(_face_frame("A", 0.25, 0.3), np.array([20, 10, 44, 40.0]))
    assert mouth_opening(pts) == pytest.approx(0.25)  # (30 - 24) / 24
    assert eye_opening(pts) == pytest.approx(0.3, abs=0.003)  # green quantised to 8 bits
    closed = pts.copy()
    closed[[37, 38, 40, 41, 43, 44, 46, 47], 1] = pts[36, 1]  # every eyelid on the eye line
    assert eye_opening(closed) == 0.0 and mouth_opening(closed) == mouth_opening(pts)
    shut = pts.copy()
    shut[66] = shut[62]
    assert mouth_opening(shut) == 0.0
    flat = pts.copy()
    flat[45] = flat[36]  # no inter-ocular distance
    assert np.isnan(mouth_opening(flat))


def test_pearson_is_nan_safe_and_none_when_undefined():
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # positions with a missing or NaN value on either side are left out
    assert pearson([1, None, 2, 3, float("nan"), 4], [2, 9, 4, 6, 1, 8]) == pytest.approx(1.0)
    assert pearson([1, 2], [1, 2]) is None  # too few frames
    assert pearson([1, 1, 1, 1], [1, 2, 3, 4]) is None  # the source does not move
    assert pearson([None] * 5, [1, 2, 3, 4, 5]) is None


def test_sharpness_sees_blur_inside_the_box_only():
    img = _face_frame("A", 0.2, 0.3, texture=3)
    box = np.array([20, 10, 44, 38.0])
    sharp = face_sharpness(img, box)
    blurred = img.copy()
    blurred[10:38, 20:44] = cv2.GaussianBlur(img, (5, 5), 1.5)[10:38, 20:44]
    assert face_sharpness(blurred, box) < 0.3 * sharp
    # changes outside the box do not count; a box over the border is clipped
    noisy_outside = img.copy()
    noisy_outside[50:] = np.random.default_rng(0).integers(0, 256, noisy_outside[50:].shape)
    assert face_sharpness(noisy_outside, box) == pytest.approx(sharp)
    assert face_sharpness(img, np.array([-10, -10, 44, 38.0])) > 0
    assert np.isnan(face_sharpness(img, np.array([5, 5, 6, 6.0])))


def test_sharpness_of_a_blurred_paste_inside_a_sharp_rim():
    """A pasted face replaces the box's centre; its rim keeps the source's edges and hair."""
    src = _clip("A", texture=True)
    pasted = []
    for f in src:
        out = f.copy()
        out[14:34, 23:41] = cv2.GaussianBlur(f, (7, 7), 2.0)[14:34, 23:41]  # centre of the 24 px box
        pasted.append(out)
    box = RectFaces().detect(src[0])[0]
    # the whole box keeps most of the rim's detail; its centre shows the blur
    whole = face_sharpness(pasted[0], box) / face_sharpness(src[0], box)
    centre = face_sharpness(pasted[0], box, SHARPNESS_INNER) / face_sharpness(src[0], box, SHARPNESS_INNER)
    assert centre < 0.2 < 0.4 < whole
    assert _score(pasted, src)["sharpness"]["ratio"] < 0.2


# -- the known cases, in memory ----------------------------------------------------------


def _score(outputs, sources, target="B", **kw):
    return score_frames(
        outputs, sources, faces=RectFaces(), target=_target(target), descriptor=ColourDescriptor(), **kw
    )["faces"]


def test_the_source_scored_as_its_own_output_is_A():
    src = _clip("A", texture=True)
    f = _score(src, src, per_frame=True)
    ident, expr = f["identity"], f["expression"]
    assert ident["nearer_b"] == 0.0 and ident["same_person_b"] == 0.0 and ident["same_person_a"] == 1.0
    assert ident["distance_a"] < 0.02 and ident["distance_b"] > 1.0  # texture moves the mean colour a little
    assert ident["frames"] == ident["source_faces"] == T and ident["threshold"] == SAME_PERSON
    assert expr["mouth_correlation"] == pytest.approx(1.0) and expr["eye_correlation"] == pytest.approx(1.0)
    assert expr["mouth_source"] == pytest.approx(np.mean(MOUTH), abs=0.01) and expr["frames"] == T
    assert expr["mouth_source_sd"] == pytest.approx(np.std(MOUTH), abs=0.01)
    assert f["sharpness"]["ratio"] == pytest.approx(1.0)
    assert f["landmark_error"] == pytest.approx(0.0)


def test_a_b_clip_scored_as_output_is_B_and_its_own_expression():
    src = _clip("A")
    other = _clip("B", mouth=MOUTH[::-1], eyes=EYES[1:] + EYES[:1])
    f = _score(other, src, per_frame=False)
    ident, expr = f["identity"], f["expression"]
    assert ident["nearer_b"] == 1.0 and ident["same_person_b"] == 1.0 and ident["same_person_a"] == 0.0
    assert ident["distance_b"] == pytest.approx(0.0, abs=0.02) and ident["distance_a"] > 1.0
    assert expr["mouth_correlation"] < 0 and expr["eye_correlation"] < 0  # not the source's movements
    # the same B clip with A as the target: nothing is nearer B, since B is A's person now
    assert _score(other, src, target="A")["identity"]["nearer_b"] == 0.0


def test_blurred_and_faceless_outputs():
    src = _clip("A", texture=True)
    blurred = [cv2.GaussianBlur(f, (7, 7), 2.0) for f in src]
    f = _score(blurred, src)
    assert f["sharpness"]["ratio"] < 0.5
    # no output face on some frames: the identity covers the others; per-frame lists stay aligned
    out = [s if t % 2 else np.full_like(s, BACKGROUND) for t, s in enumerate(src)]
    g = score_frames(out, src, faces=RectFaces(), target=_target("B"), descriptor=ColourDescriptor(), per_frame=True)
    assert g["faces"]["identity"]["frames"] == T // 2 and g["faces"]["no_output_face"] == T // 2
    per = g["per_frame"]
    assert all(len(per[k]) == T for k in ("distance_b", "distance_a", "mouth_output", "sharp_source", "time"))
    assert per["distance_b"][0] is None and per["distance_b"][1] > 1.0
    assert g["faces"]["expression"]["mouth_correlation"] == pytest.approx(1.0)  # over the 4 frames with both
    json.dumps(g, allow_nan=False)  # no NaN reaches the JSON


def test_no_source_face_gives_no_a_and_faces_off_gives_no_tracks():
    blank = [np.full((80, 64, 3), BACKGROUND, np.uint8)] * 4
    f = _score(blank, blank)
    assert f["identity"]["nearer_b"] is None and f["identity"]["distance_a"] is None
    assert f["expression"]["mouth_correlation"] is None and f["sharpness"]["ratio"] is None
    assert score_frames(_clip("A"), _clip("A"))["faces"] is None
    with pytest.raises(ValueError, match="face backend"):
        FrameScorer(target=_target("B"), descriptor=ColourDescriptor())


# -- the target's faces ------------------------------------------------------------------


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> str:
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, Fraction(1, fps), fps, crf=0, preset="ultrafast") as wr:
        for i, f in enumerate(frames):
            wr.write(f, pts=i)
    return str(path)


def _write_folder(folder: Path, frames: list[np.ndarray]) -> str:
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return str(folder)


def test_target_faces_from_a_folder_and_a_video(tmp_path):
    comparer, desc = FaceComparer(RectFaces(), detect_size=80), ColourDescriptor()
    folder = _write_folder(tmp_path / "b", _clip("B") + [np.full((80, 64, 3), BACKGROUND, np.uint8)])
    got = target_faces(folder, comparer, desc)
    assert got.faces == T and got.images == T + 1
    np.testing.assert_allclose(got.mean, _target("B").mean, atol=1e-9)
    few = target_faces(folder, comparer, desc, limit=3)  # evenly spaced: first, middle, last (faceless)
    assert few.images == 3 and few.faces == 2
    video = _write_video(tmp_path / "b.mp4", _clip("B") * 3)
    v = target_faces(video, comparer, desc, limit=6)
    assert v.images == 6 and v.faces == 6
    np.testing.assert_allclose(v.mean, _target("B").mean, atol=0.1)  # through the codec (4:2:0 chroma at the edges)
    with pytest.raises(RetargetError, match="target not found"):
        target_faces(str(tmp_path / "nobody"), comparer, desc)
    empty = _write_folder(tmp_path / "empty", [np.full((80, 64, 3), BACKGROUND, np.uint8)] * 2)
    with pytest.raises(RetargetError, match="no face found in the target"):
        target_faces(empty, comparer, desc)


# -- through retarget eval ---------------------------------------------------------------


@pytest.fixture
def stand_ins(monkeypatch):
    """retarget eval with the stand-in backend and descriptor."""
    from retarget.eval import identity
    from retarget.faces import backends

    desc = ColourDescriptor()
    monkeypatch.setattr(backends, "get_backend", lambda name, device="auto": RectFaces())
    monkeypatch.setattr(identity, "get_descriptor", lambda: desc)
    return desc


@pytest.fixture
def face_videos(tmp_path):
    return {
        "A": _write_video(tmp_path / "a.mp4", _clip("A")),
        "B": _write_video(tmp_path / "b.mp4", _clip("B", mouth=MOUTH[::-1], eyes=EYES[1:] + EYES[:1])),
        "B_folder": _write_folder(tmp_path / "b_frames", _clip("B")),
    }


def test_evaluate_with_a_target_through_files(stand_ins, face_videos, capsys):
    v = face_videos
    same = evaluate(EvalConfig(output=v["A"], source=v["A"], faces=True, target=v["B_folder"]))
    ident = same.scores["faces"]["identity"]
    assert ident["nearer_b"] == 0.0 and ident["target_faces"] == T and same.target == v["B_folder"]
    assert same.scores["faces"]["expression"]["mouth_correlation"] == pytest.approx(1.0)
    swapped = evaluate(EvalConfig(output=v["B"], source=v["A"], faces=True, target=v["B"]))
    assert swapped.scores["faces"]["identity"]["nearer_b"] == 1.0
    assert swapped.scores["faces"]["identity"]["same_person_b"] == 1.0
    data = json.loads(swapped.to_json())
    assert data["target"] == v["B"] and data["faces"]["identity"]["distance_b"] < 0.1
    print_result(swapped)
    table = capsys.readouterr().err
    assert "nearer B than A" in table and "100%" in table and "mouth correlation" in table
    # a target described once scores several outputs (2 descriptors a frame, none for the target)
    calls = stand_ins.calls
    again = evaluate(EvalConfig(output=v["A"], source=v["A"], faces=True), target=_target("B"))
    assert again.scores["faces"]["identity"]["nearer_b"] == 0.0 and stand_ins.calls - calls == 2 * T


def test_cli_target_json_and_one_line_errors(stand_ins, face_videos, tmp_path):
    runner = CliRunner()
    v = face_videos
    ok = runner.invoke(app, ["eval", v["B"], "--source", v["A"], "--faces", "--target", v["B_folder"], "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["faces"]["identity"]["nearer_b"] == 1.0
    cases = {
        "not found": ["--faces", "--target", str(tmp_path / "nobody")],
        "no face found in the target": [
            "--faces",
            "--target",
            _write_folder(tmp_path / "empty", [np.full((80, 64, 3), BACKGROUND, np.uint8)]),
        ],
        "add --faces": ["--target", v["B_folder"]],
    }
    for message, extra in cases.items():
        result = runner.invoke(app, ["eval", v["A"], "--source", v["A"], *extra])
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert result.exit_code != 0 and len(lines) == 1 and message in lines[0], result.output
        assert "Traceback" not in result.output


# -- real faces (dlib) -------------------------------------------------------------------

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"


def _frames(name: str, count: int, every: int, side: int = 240) -> list[np.ndarray]:
    from retarget.video.reader import VideoReader

    path = FACES / f"talk_{name}.mp4"
    if not path.exists():
        pytest.skip(f"{path} not available")
    with VideoReader(path, every=every, max_frames=count) as reader:
        return [cv2.resize(f.image, (side, side), interpolation=cv2.INTER_AREA) for f in reader]


@pytest.mark.shared
def test_real_faces_source_is_a_and_b_clip_is_b(tmp_path):
    pytest.importorskip("dlib")
    from retarget.eval.identity import get_descriptor
    from retarget.faces.backends import get_backend

    a = _frames("d18", 4, every=15)
    b = _frames("d19", 4, every=15)
    backend, desc = get_backend("dlib"), get_descriptor()
    target = target_faces(_write_folder(tmp_path / "b", _frames("d19", 3, every=40)), FaceComparer(backend), desc)
    assert target.faces == 3
    own = score_frames(a, a, faces=backend, target=target, descriptor=desc)["faces"]
    assert own["identity"]["nearer_b"] == 0.0 and own["identity"]["same_person_a"] == 1.0
    assert own["identity"]["distance_b"] > SAME_PERSON
    assert own["expression"]["mouth_correlation"] == pytest.approx(1.0)
    assert own["expression"]["eye_correlation"] == pytest.approx(1.0)
    assert own["sharpness"]["ratio"] == pytest.approx(1.0)
    other = score_frames(b, a, faces=backend, target=target, descriptor=desc)["faces"]["identity"]
    assert other["frames"] == 4 and other["nearer_b"] == 1.0 and other["same_person_b"] == 1.0
