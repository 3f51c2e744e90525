"""The source's mouth interior inside a swapped face: render --target-faces --mouth source."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from helpers import FixedFace, make_video
from retarget.config import FaceConfig, RenderConfig
from retarget.dataset.manifest import Dataset, FrameRecord, write_manifest
from retarget.faces.align import crop_matrix, invert, apply, template_points
from retarget.faces.mouth import OPEN, mouth_mask, mouth_open, open_weight, paste_mouth
from retarget.faces.retrieval import FaceSwap

SIZE = 160
MARGIN = 0.2


def _lab_rgb(lab: tuple[float, float, float]) -> tuple[int, int, int]:
    """An 8-bit OpenCV Lab colour as RGB."""
    px = cv2.cvtColor(np.uint8([[lab]]), cv2.COLOR_LAB2RGB)[0, 0]
    return tuple(int(v) for v in px)


def _rgb_lab(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Mean 8-bit Lab of ``image`` (RGB) over ``region``."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[region].reshape(-1, 3).mean(0)


def _face(mouth: float, size: int = SIZE, dx: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Template landmarks with the lower lip dropped by ``mouth``; the mouth moved by ``dx`` and scaled about its centre."""
    p = template_points(size, MARGIN).copy()
    p[[65, 66, 67, 55, 56, 57, 58, 59], 1] += mouth * size / (1 + 2 * MARGIN) * 0.25
    centre = p[48:68].mean(0)
    p[48:68] = centre + (p[48:68] - centre) * scale + [dx, 0.0]
    return p


def _drawing(points: np.ndarray, skin, lips, upper, lower, size: int = SIZE) -> np.ndarray:
    """Skin, the lip ring, and the mouth interior: ``upper`` above the inner lips' middle line (teeth), ``lower`` below."""
    img = np.full((size, size, 3), skin, np.uint8)
    cv2.fillPoly(img, [np.round(points[48:60]).astype(np.int32)], lips)
    inside = np.zeros((size, size), np.uint8)
    cv2.fillPoly(inside, [np.round(points[60:68]).astype(np.int32)], 1)
    middle = (points[[61, 62, 63]].mean(0)[1] + points[[65, 66, 67]].mean(0)[1]) / 2
    rows = np.arange(size)[:, None] < middle
    img[(inside == 1) & rows] = upper
    img[(inside == 1) & ~rows] = lower
    return img


def _inner(points: np.ndarray, erode: int = 0, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(points[60:68]).astype(np.int32)], 1)
    if erode:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask.astype(bool)


# colours in 8-bit Lab: the face lit brighter than the source, and a redder lip ring
FACE_LIPS, SOURCE_LIPS = (150.0, 160.0, 150.0), (100.0, 150.0, 140.0)
TEETH, TONGUE = (150.0, 128.0, 135.0), (90.0, 165.0, 150.0)
FACE_MOUTH = _lab_rgb((40.0, 150.0, 90.0))  # the target's own mouth: blue, found nowhere else


def _closed(points: np.ndarray) -> np.ndarray:
    """``points`` with the inner lower lip (65-67) on the inner upper lip (63-61)."""
    p = points.copy()
    p[[65, 66, 67]] = p[[63, 62, 61]]
    return p


def _pair(face_mouth: float = 0.5, source_mouth: float = 0.45, closed: str = ""):
    face_pts = _face(face_mouth)
    source_pts = _face(source_mouth, dx=3.0, scale=0.9)  # another mouth: the warp has work to do
    face_pts = _closed(face_pts) if closed == "face" else face_pts
    source_pts = _closed(source_pts) if closed == "source" else source_pts
    face = _drawing(face_pts, (200, 160, 140), _lab_rgb(FACE_LIPS), FACE_MOUTH, FACE_MOUTH)
    source = _drawing(source_pts, (120, 90, 80), _lab_rgb(SOURCE_LIPS), _lab_rgb(TEETH), _lab_rgb(TONGUE))
    return face, face_pts, source, source_pts


def test_the_interior_is_the_sources_in_the_faces_light():
    face, face_pts, source, source_pts = _pair()
    assert open_weight(face_pts) == 1.0 and open_weight(source_pts) == 1.0
    out = paste_mouth(face, face_pts, source, source_pts)
    inner = _inner(face_pts, erode=2)
    middle = (face_pts[[61, 62, 63]].mean(0)[1] + face_pts[[65, 66, 67]].mean(0)[1]) / 2
    rows = np.arange(SIZE)[:, None] + np.zeros((1, SIZE))
    top = inner & (rows < middle - 2)
    bottom = inner & (rows > middle + 2)
    assert top.sum() > 30 and bottom.sum() > 30
    # lightness times 150/100, a and b shifted by +10: the source's teeth above, its tongue below
    gain, shift = FACE_LIPS[0] / SOURCE_LIPS[0], np.subtract(FACE_LIPS[1:], SOURCE_LIPS[1:])
    for region, lab in ((top, TEETH), (bottom, TONGUE)):
        expected = np.array([lab[0] * gain, lab[1] + shift[0], lab[2] + shift[1]])
        assert np.abs(_rgb_lab(out, region) - expected).max() < 4.0, (_rgb_lab(out, region), expected)
    assert not (np.abs(out[inner].astype(int) - FACE_MOUTH).sum(1) < 20).any()  # none of the target's mouth left


def test_outside_the_feathered_inner_lips_nothing_changes():
    face, face_pts, source, source_pts = _pair()
    out = paste_mouth(face, face_pts, source, source_pts)
    near = cv2.dilate(_inner(face_pts).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert (out[~near] == face[~near]).all()
    mask = mouth_mask(face_pts, SIZE)
    assert mask.max() == pytest.approx(1.0, abs=1e-3) and mask[~near].max() < 1e-3


def test_a_closed_mouth_is_left_alone():
    face, face_pts, source, source_pts = _pair(closed="face")
    assert mouth_open(face_pts) < 1e-9 and open_weight(face_pts) == 0.0
    assert (paste_mouth(face, face_pts, source, source_pts) == face).all()
    face, face_pts, source, source_pts = _pair(closed="source")  # the source's closed: nothing to paste
    assert (paste_mouth(face, face_pts, source, source_pts) == face).all()
    face, face_pts, source, source_pts = _pair(face_mouth=-0.6)  # crossed lips (a landmark error): none either
    assert mouth_open(face_pts) == 0.0
    assert (paste_mouth(face, face_pts, source, source_pts) == face).all()
    # a mouth just opening fades in: the weight rises smoothly from 0 to 1
    weights = [open_weight(_face(m)) for m in np.linspace(-0.3, 0.5, 17)]
    assert weights[0] == 0.0 and weights[-1] == 1.0 and all(b >= a for a, b in zip(weights, weights[1:]))
    assert mouth_open(_face(0.5)) > OPEN


def _items(source: np.ndarray, source_pts: np.ndarray) -> list:
    """One pipeline item as the swap stage sees it: the source's crop, its landmarks in frame px and matrix."""
    matrix = np.array([[0.5, 0.0, -4.0], [0.0, 0.5, -2.0]])  # frame -> crop
    landmarks = apply(invert(matrix), source_pts).astype(np.float32)
    return [SimpleNamespace(net_input=source, landmarks=landmarks, matrix=matrix, track=0, result=None)]


def _index(tmp_path, n: int = 4):
    from retarget.render.swap import face_index

    root = tmp_path / "b"
    (root / "frames").mkdir(parents=True)
    frames = []
    for i in range(n):
        pts = _face(0.5)
        matrix = np.array([[0.5, 0.0, -4.0], [0.0, 0.5, -2.0]])
        picture = _drawing(pts, (200, 160, 140), _lab_rgb(FACE_LIPS), FACE_MOUTH, FACE_MOUTH)
        cv2.imwrite(str(root / "frames" / f"{i:06d}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        landmarks = apply(invert(matrix), pts).astype(np.float32)
        frames.append(FrameRecord(f"frames/{i:06d}.png", 0, 0, i, i / 25, matrix, landmarks))
    write_manifest(Dataset(root, SIZE, "face", FaceConfig(margin=MARGIN), frames, [], "png", {}))
    return face_index(root)


def test_swap_items_paste_the_sources_mouth_only_when_asked(tmp_path):
    from retarget.render.swap import swap_items

    index = _index(tmp_path)
    _, _, source, source_pts = _pair()
    mine = swap_items(_items(source, source_pts), FaceSwap(index, smooth=0.0))[0].result
    theirs = swap_items(_items(source, source_pts), FaceSwap(index, smooth=0.0), mouth="source")[0].result
    inner = _inner(_face(0.45), erode=3)  # the swapped mouth opens as far as the source's
    blue = lambda img: (np.abs(img[inner].astype(int) - FACE_MOUTH).sum(1) < 30).mean()  # noqa: E731
    assert blue(mine) > 0.9 and blue(theirs) < 0.05
    outside = ~cv2.dilate(_inner(_face(0.45)).astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    assert np.abs(mine[outside].astype(int) - theirs[outside].astype(int)).max() == 0


def test_plan_swap_passes_the_mouth_option(tmp_path):
    from retarget.render.plan import plan_swap
    from retarget.render.stream import prepare

    _index(tmp_path)
    src = make_video(tmp_path / "a.mp4", frames=3, size=(64, 48))
    for mouth in ("target", "source"):
        cfg = RenderConfig(
            input=str(src), output=str(tmp_path / "o.mp4"), target_faces=str(tmp_path / "b"), mouth=mouth
        )
        stage = plan_swap(cfg, prepare(cfg)).stage.stage  # the swap, inside the paste's watch
        assert isinstance(stage, functools.partial) and stage.keywords["mouth"] == mouth
        assert stage.keywords["glasses"] is not None  # --glasses clear, the default
    cfg = RenderConfig(input=str(src), output=str(tmp_path / "o.mp4"), target_faces=str(tmp_path / "b"), glasses="keep")
    assert plan_swap(cfg, prepare(cfg)).stage.stage.keywords["glasses"] is None


def test_render_with_the_sources_mouth(tmp_path):
    """The stream with --mouth source: every frame written, the faces swapped, nothing else touched."""
    from retarget.geometry import square_cut
    from retarget.render.stream import Plan, prepare, stream
    from retarget.render.swap import swap_items

    index = _index(tmp_path)
    w, h = 128, 112
    src = make_video(tmp_path / "a.mp4", frames=4, size=(w, h))
    landmarks = (template_points(60, 0.0) + [34, 26]).astype(np.float32)
    matrix = crop_matrix(landmarks, SIZE, MARGIN)

    cfg = RenderConfig(input=str(src), output=str(tmp_path / "o.mp4"), color_match="none", stabilize=0, mouth="source")
    ready = prepare(cfg)
    stage = functools.partial(swap_items, swap=FaceSwap(index), mouth=cfg.mouth)
    aligner = lambda image, time: FixedFace(image, matrix, landmarks, SIZE)  # noqa: E731
    plan = Plan(cfg, ready.src, ready.out, ready.info, SIZE, stage, square_cut(w, h, SIZE, None), aligner=aligner)
    summary = stream(plan, quiet=True)
    assert summary.frames == 4 and summary.faces == 4


def test_plan_swap_passes_the_detail_and_gaze_options(tmp_path):
    from retarget.render.plan import plan_swap
    from retarget.render.stream import prepare
    from retarget.render.swap import FaceDetail

    _index(tmp_path)
    src = make_video(tmp_path / "a.mp4", frames=3, size=(64, 48))

    def plan(**kw):
        cfg = RenderConfig(input=str(src), output=str(tmp_path / "o.mp4"), target_faces=str(tmp_path / "b"), **kw)
        return plan_swap(cfg, prepare(cfg))

    assert isinstance(plan().finish, FaceDetail)  # --detail match, the default: after the stabilizer
    assert plan(detail="keep").finish is None
    assert plan(gaze="keep").stage.stage.keywords["gaze"] is None
