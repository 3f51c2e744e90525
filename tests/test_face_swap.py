"""The face swap by retrieval: features, the pick, the warp, the target's dataset, render --target-faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from helpers import FixedFace, make_video
from retarget.config import FaceConfig, RenderConfig
from retarget.dataset.manifest import Dataset, FrameRecord, write_manifest
from retarget.errors import RetargetError
from retarget.faces.align import crop_matrix, template_points
from retarget.faces.morph import border_points, triangulate, warp_picture
from retarget.faces.paste import FOREHEAD, face_outline
from retarget.faces.features import FEATURES, MIN_REST, RunningRest, expression_features, rest_frames, set_mouth_opening
from retarget.faces.retrieval import BROW_REACH, FaceIndex, FaceSwap, mask_points
from retarget.faces.steady import smooth_tracks
from retarget.render.swap import face_index

SIZE = 48
MARGIN = 0.2


def _face(mouth: float = 0.0, eyes: float = 1.0, size: int = SIZE) -> np.ndarray:
    """The template face in crop pixels with its mouth opened by ``mouth`` and eyes scaled by ``eyes``."""
    p = template_points(size, MARGIN).copy()
    scale = size / (1 + 2 * MARGIN)
    p[[65, 66, 67, 55, 56, 57, 58, 59], 1] += mouth * scale * 0.25  # the lower lip drops
    for eye in (np.arange(36, 42), np.arange(42, 48)):
        centre = p[eye, 1].mean()
        p[eye, 1] = centre + (p[eye, 1] - centre) * eyes
    return p


def _picture(points: np.ndarray, size: int = SIZE, shade: int = 0) -> np.ndarray:
    """A face drawing: skin, the mouth's inner polygon dark, eyes dark; ``shade`` tints it."""
    img = np.full((size, size, 3), (200, 160 + shade, 140), np.uint8)
    cv2.fillConvexPoly(img, np.round(points[60:68]).astype(np.int32), (40, 10, 10))
    for eye in (points[36:42], points[42:48]):
        cv2.fillConvexPoly(img, np.round(eye).astype(np.int32), (20, 20, 60))
    return img


def test_features_follow_the_mouth_and_eyes():
    rest, open_, shut = (
        expression_features(_face()),
        expression_features(_face(mouth=0.3)),
        expression_features(_face(eyes=0.2)),
    )
    names = {n: i for i, n in enumerate(FEATURES)}
    assert open_[names["mouth_inner"]] > rest[names["mouth_inner"]] + 0.1
    assert open_[names["mouth_outer"]] > rest[names["mouth_outer"]]
    assert shut[names["eye_left"]] < 0.5 * rest[names["eye_left"]]
    assert abs(rest[names["yaw"]]) < 1e-6  # the template is frontal
    turned = _face()
    turned[27:36, 0] += 3.0  # the nose to the right: a turn
    assert expression_features(turned)[names["yaw"]] > 0.02
    # similarity-invariant: the same face twice the size, shifted and turned reads the same
    angle = 0.3
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (_face(mouth=0.2) @ rot.T) * 2.0 + [5.0, -3.0]
    # yaw and pitch are measured along the picture's axes: only the openings and width are rotation-free
    assert np.allclose(expression_features(moved)[:5], expression_features(_face(mouth=0.2))[:5], atol=1e-9)


def test_warp_with_an_affine_move_matches_warp_affine():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 2)
    src = np.vstack([_face(size=64), border_points(64)])
    affine = np.array([[1.05, 0.03, -1.5], [-0.02, 0.97, 2.0]])
    dst = src.copy()
    dst[:68] = src[:68] @ affine[:, :2].T + affine[:, 2]  # the face moves; the border stays
    out = warp_picture(image, src, dst, triangulate(dst, 64))
    expected = cv2.warpAffine(image, affine, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    inner = np.zeros((64, 64), np.uint8)
    cv2.fillConvexPoly(inner, cv2.convexHull(np.round(dst[17:68]).astype(np.int32)), 1)
    inner = cv2.erode(inner, np.ones((3, 3), np.uint8)).astype(bool)
    assert np.abs(out.astype(int) - expected.astype(int))[inner].mean() < 1.5
    # unmoved points: the picture comes back as it was
    same = warp_picture(image, src, src, triangulate(src, 64))
    assert np.abs(same.astype(int) - image.astype(int)).max() <= 1


def test_a_flat_triangle_does_not_break_the_warp():
    ys, xs = np.mgrid[0:32, 0:32]
    image = np.repeat((4 * xs + 3 * ys).astype(np.uint8)[..., None], 3, axis=2)
    src = np.array([[0, 0], [31, 0], [0, 31], [31, 31], [10, 10], [20, 20]], np.float64)
    dst = src.copy()
    dst[5] = [15, 15]  # three points in a line once moved
    tris = triangulate(dst, 32)
    flat = np.array([[0, 4, 5]])  # (0, 0), (10, 10), (15, 15): no area
    # a flat triangle changes nothing: the pixels on its line keep the other triangles' maps
    assert (warp_picture(image, src, dst, np.vstack([tris, flat])) == warp_picture(image, src, dst, tris)).all()


def test_triangulation_indexes_points_and_covers_the_square():
    pts = np.vstack([_face(), border_points(SIZE)])
    tris = triangulate(pts, SIZE)
    assert tris.ndim == 2 and tris.shape[1] == 3 and tris.max() < len(pts)

    def area2(a, b, c):  # twice the triangle's area
        (ux, uy), (vx, vy) = pts[b] - pts[a], pts[c] - pts[a]
        return abs(ux * vy - uy * vx)

    area = sum(area2(a, b, c) for a, b, c in tris) / 2
    assert area == pytest.approx((SIZE - 1) ** 2, rel=1e-6)


def test_mask_points_keep_the_outline_inside_both_faces():
    source, swapped = _face(), _face()
    centre = source[30]
    swapped[:17] = centre + (swapped[:17] - centre) * 1.2  # a wider jaw
    source[17:27] = centre + (source[17:27] - centre) * 1.1  # higher brows on the source
    out = mask_points(source, swapped)
    assert np.allclose(out[:17], source[:17]) and np.allclose(out[17:27], swapped[17:27])
    assert np.allclose(out[27:], swapped[27:])
    # the swap's mask stops a little above the brows: the target's hair stays out
    top = lambda pts, reach: face_outline(pts, reach)[:, 1].min()  # noqa: E731
    assert top(out, FOREHEAD) < top(out, BROW_REACH) < out[17:27, 1].min()
    up = np.linalg.norm(out[36:48].mean(0) - out[8])  # as the paste measures it (its chin: the source's)
    assert out[17:27, 1].min() - top(out, BROW_REACH) == pytest.approx(BROW_REACH * up, rel=0.05)


def test_set_mouth_opening_reaches_the_opening_and_never_crosses_the_lips():
    face = _face(0.1)
    wide = set_mouth_opening(face, 0.5)
    assert expression_features(wide)[0] == pytest.approx(0.5, abs=1e-9)
    assert wide[8, 1] > face[8, 1]  # the chin drops with it
    assert np.allclose(wide[:5], face[:5]) and np.allclose(wide[17:55], face[17:55])  # the rest stays
    shut = set_mouth_opening(face, -1.0)
    assert expression_features(shut)[0] == pytest.approx(0.0, abs=1e-9)


def _index(openings: list[float], size: int = SIZE, segments: list[int] | None = None) -> FaceIndex:
    points = np.stack([_face(m, size=size) for m in openings])
    return FaceIndex(
        root=None,  # type: ignore[arg-type]
        files=[None] * len(openings),  # type: ignore[list-item]
        points=points,
        segments=np.array(segments or [0] * len(openings)),
        size=size,
        face=FaceConfig(margin=MARGIN),
    )


def test_pick_finds_the_nearest_expression_and_holds_it():
    index = _index([0.0, 0.1, 0.2, 0.3, 0.4])
    swap = FaceSwap(index, hold=0.0)
    assert swap.pick(expression_features(_face(0.31))) == 3
    swap.reset()
    assert swap.pick(expression_features(_face(0.02))) == 0
    sticky = FaceSwap(index, hold=100.0)
    first = sticky.pick(expression_features(_face(0.0)))
    # a large hold keeps the previous pick or its successor, never a jump across the index
    assert sticky.pick(expression_features(_face(0.4))) in (first, first + 1)
    sticky.reset()
    assert sticky.pick(expression_features(_face(0.4))) == 4  # a new track picks afresh


def test_successor_is_not_taken_across_a_segment_end():
    index = _index([0.0, 0.4, 0.0], segments=[0, 1, 1])
    swap = FaceSwap(index, hold=100.0)
    assert swap.pick(expression_features(_face(0.0))) == 0
    assert swap.pick(expression_features(_face(0.4))) == 0  # frame 1 starts another segment


def test_swap_moves_the_target_face_as_the_source_moves(monkeypatch):
    index = _index([0.0, 0.1, 0.0, 0.1])
    pictures = [_picture(p, shade=10 * k) for k, p in enumerate(index.points)]
    monkeypatch.setattr(index, "image", lambda k: pictures[k])
    swap = FaceSwap(index, smooth=0.0)
    outs = [swap(_face(m)) for m in (0.0, 0.0, 0.0, 0.0, 0.4)]
    assert all(o.image.shape == (SIZE, SIZE, 3) and o.image.dtype == np.uint8 for o in outs)
    # the source opens its mouth wide: the output's lower lip goes down with it
    still, wide = outs[0].points, outs[-1].points
    assert wide[66, 1] - wide[62, 1] > still[66, 1] - still[62, 1] + 2.0
    # and as far as the source's (no smoothing here): the same inner opening per eye distance
    assert expression_features(wide)[0] == pytest.approx(expression_features(_face(0.4))[0], abs=1e-6)
    dark = lambda img: (img.sum(axis=2) < 200).sum()  # noqa: E731
    assert dark(outs[-1].image) > dark(outs[0].image)  # more dark mouth drawn


def _o_mouth(narrow: float, size: int = SIZE) -> np.ndarray:
    """An "O": the mouth opened wide and its corners drawn in by ``narrow`` pixels each."""
    p = _face(0.4, size=size)
    p[[48, 60], 0] += narrow
    p[[54, 64], 0] -= narrow
    return p


def test_rest_frames_ignore_open_mouths_and_blinks():
    faces = [_face(), _face(0.4), _face(eyes=0.2), _face(), _face(0.3)]
    features = np.stack([expression_features(p) for p in faces])
    assert rest_frames(features).tolist() == [True, False, False, True, False]
    assert rest_frames(features[[1, 4]]).all()  # none at rest: all of them (the mean)
    index = _index([0.4, 0.0, 0.4, 0.4, 0.4])  # mostly open mouths: the rest is the closed one
    np.testing.assert_allclose(index.rest_points, _face(0.0))
    running = RunningRest()
    running.add(_face(0.4), expression_features(_face(0.4)))
    np.testing.assert_allclose(running.rest()[0], _face(0.4))  # no rest seen yet: the mean
    running.add(_face(0.0), expression_features(_face(0.0)))  # one closed face can be a glitch
    assert not running.rested
    np.testing.assert_allclose(running.rest()[0], (_face(0.4) + _face(0.0)) / 2)  # still the mean
    for p in [_face(0.4), _face(0.4)] + [_face(0.0)] * (MIN_REST - 1):
        running.add(p, expression_features(p))
    assert running.rested
    np.testing.assert_allclose(running.rest()[0], _face(0.0))


def test_a_clip_of_mostly_o_mouths_still_draws_an_o(monkeypatch):
    index = _index([0.0, 0.0, 0.4, 0.4])
    monkeypatch.setattr(index, "image", lambda k: _picture(index.points[k]))
    swap = FaceSwap(index, smooth=0.0)
    outs = [swap(p) for p in [_face(0.0)] * MIN_REST + [_o_mouth(2.0)] * 8]
    width = expression_features(outs[-1].points)[2]
    # the corners move in as far as the source's from its closed mouth, not from its "O" mean
    assert width == pytest.approx(expression_features(_o_mouth(2.0))[2], abs=1e-6)
    assert width < expression_features(index.rest_points)[2] - 0.05


def _face_dataset(root, n: int = 6, size: int = SIZE) -> None:
    (root / "frames").mkdir(parents=True)
    frames = []
    for i in range(n):
        crop_pts = _face(0.05 * i, size=size)
        matrix = np.array([[0.5, 0.0, -4.0], [0.0, 0.5, -2.0]])  # source -> crop
        source_pts = (crop_pts - matrix[:, 2]) / 0.5
        cv2.imwrite(str(root / "frames" / f"{i:06d}.png"), _picture(crop_pts, size))
        frames.append(FrameRecord(f"frames/{i:06d}.png", 0, 0, i, i / 25, matrix, source_pts.astype(np.float32)))
    write_manifest(Dataset(root, size, "face", FaceConfig(margin=MARGIN), frames, [], "png", {}))


def test_index_reads_a_face_dataset_in_crop_pixels(tmp_path):
    _face_dataset(tmp_path / "b")
    index = face_index(tmp_path / "b")
    assert len(index) == 6 and index.size == SIZE and index.face.margin == MARGIN
    # landmarks back in crop pixels, smoothed along the segment (the detector's jitter)
    expected = smooth_tracks(np.stack([_face(0.05 * i) for i in range(6)]), np.zeros(6))
    assert np.allclose(index.points, expected, atol=0.01)
    assert index.image(3).shape == (SIZE, SIZE, 3)
    assert index.features[5, 0] > index.features[0, 0]


def test_index_refuses_what_is_not_a_face_dataset(tmp_path):
    with pytest.raises(RetargetError, match="missing"):
        face_index(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    cv2.imwrite(str(tmp_path / "plain" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(RetargetError, match="not a face dataset"):
        face_index(tmp_path / "plain")


def test_swap_render_pastes_the_target_inside_the_face(tmp_path):
    """translate_video with the swap stage: frame count kept, pixels change only around the face."""
    from retarget.render.render import translate_video
    from retarget.render.swap import swap_items

    _face_dataset(tmp_path / "b", size=SIZE)
    index = face_index(tmp_path / "b")
    w, h = 96, 80
    src = make_video(tmp_path / "a.mp4", frames=6, size=(w, h), audio="aac")
    landmarks = (template_points(40, 0.0) + [28, 20]).astype(np.float32)
    matrix = crop_matrix(landmarks, SIZE, MARGIN)

    class FakeAligner:
        def __call__(self, image, time):
            return FixedFace(image, matrix, landmarks, SIZE) if time < 0.15 else None

        def reset(self):
            pass

    out = tmp_path / "a.out.mp4"
    cfg = RenderConfig(input=str(src), output=str(out), color_match="none", feather=0.05, crf=0, stabilize=0)
    import functools

    from retarget.geometry import square_cut
    from retarget.render.stream import Plan, prepare, stream

    ready = prepare(cfg)  # the swap's plan, with a made-up aligner in place of dlib's
    stage = functools.partial(swap_items, swap=FaceSwap(index))
    plan = Plan(cfg, ready.src, ready.out, ready.info, SIZE, stage, square_cut(w, h, SIZE, None), aligner=FakeAligner())
    summary = stream(plan, quiet=True)
    assert summary.frames == 6 and summary.faces == 4 and summary.audio
    from retarget.video.reader import VideoReader

    ref = tmp_path / "ref.mp4"  # the same encoder with no face anywhere
    translate_video(
        RenderConfig(input=str(src), output=str(ref), crf=0), None, SIZE, aligner=lambda i, t: None, quiet=True
    )
    with VideoReader(str(ref)) as r:
        before = [f.image for f in r]
    with VideoReader(str(out)) as r:
        after = [f.image for f in r]
    diff = np.abs(before[1].astype(int) - after[1].astype(int)).max(axis=2)
    hull = np.zeros((h, w), np.uint8)  # the mask: the face outline and forehead
    cv2.fillConvexPoly(hull, cv2.convexHull(face_outline(landmarks).astype(np.int32)), 1)
    near = cv2.dilate(hull, np.ones((9, 9), np.uint8)).astype(bool)
    assert diff[hull.astype(bool)].mean() > 20  # the target's face is there
    assert diff[~near].max() <= 2  # and nowhere else
    assert np.abs(before[5].astype(int) - after[5].astype(int)).max() <= 2  # no face: unchanged


def test_render_target_faces_refuses_run_options_in_one_line(tmp_path):
    from retarget.render.render import render

    _face_dataset(tmp_path / "b")
    src = make_video(tmp_path / "a.mp4", frames=3, size=(64, 48))
    base = dict(input=str(src), target_faces=str(tmp_path / "b"))
    cases = [
        (dict(model=str(tmp_path / "run")), r"^--model \S+: --target-faces swaps faces without a trained run"),
        (dict(enhancer="e"), "^--enhancer e: --target-faces swaps faces without a trained run"),
        (dict(scale=64), "^--scale 64: --target-faces"),
        (dict(align="none"), "--align none"),
    ]
    for i, (extra, message) in enumerate(cases):
        out = tmp_path / f"o{i}.mp4"
        with pytest.raises(RetargetError, match=message) as err:
            render(RenderConfig(output=str(out), **base, **extra))
        assert "\n" not in str(err.value) and not out.exists()
    with pytest.raises(RetargetError, match="not a face dataset") as err:
        (tmp_path / "plain").mkdir()
        cv2.imwrite(str(tmp_path / "plain" / "a.png"), np.zeros((8, 8, 3), np.uint8))
        render(RenderConfig(input=str(src), output=str(tmp_path / "p.mp4"), target_faces=str(tmp_path / "plain")))
    assert not (tmp_path / "p.mp4").exists()


def test_cli_target_faces_errors_are_one_line_and_write_nothing(tmp_path):
    from typer.testing import CliRunner

    from retarget.cli import app

    src = make_video(tmp_path / "in.mp4", frames=3, size=(48, 32))
    _face_dataset(tmp_path / "b")
    cases = [
        (["--target-faces", str(tmp_path / "none")], "error: " + str(tmp_path / "none")),
        (["--target-faces", str(tmp_path / "b"), "--model", "x"], "error: --model x: --target-faces swaps faces"),
        (["--target-faces", str(src)], f"error: {src}: a file, not a face dataset; extract the target first"),
    ]
    for args, start in cases:
        result = CliRunner().invoke(app, ["render", str(src), str(tmp_path / "out.mp4"), *args])
        assert result.exit_code == 1 and result.output.startswith(start), result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "out.mp4").exists()


def test_a_new_pick_fades_in_over_fade_frames(monkeypatch):
    index = _index([0.0, 0.4])
    flat = [np.full((SIZE, SIZE, 3), v, np.uint8) for v in (40, 200)]
    monkeypatch.setattr(index, "image", lambda k: flat[k])
    swap = FaceSwap(index, hold=0.0, fade=4)
    shown = [swap(_face(m)) for m in (0.0, 0.0, 0.4, 0.4, 0.4, 0.4, 0.4)]
    assert [s.pick for s in shown] == [0, 0, 1, 1, 1, 1, 1]
    centre = [int(s.image[SIZE // 2, SIZE // 2, 0]) for s in shown]
    # 40 until the switch, then a quarter more of 200 each frame, then 200
    assert centre == [40, 40, 80, 120, 160, 200, 200]
    cut = FaceSwap(index, hold=0.0, fade=1)
    assert [int(cut(_face(m)).image[0, 0, 0]) for m in (0.0, 0.4)] == [40, 200]


def test_a_feature_no_target_face_comes_near_does_not_decide_the_pick():
    from retarget.faces.features import MISMATCH_CAP, WEIGHTS, match_cost

    spread = np.full(7, 0.1)
    open_mouth, closed = np.array([0.3, 0.3, 1.0, 0.3, 0.3, 0.1, 0.3]), np.array([0.0, 0.0, 1.0, 0.3, 0.3, 0.3, 0.3])
    query = np.array([0.3, 0.3, 1.0, 0.3, 0.3, 1.5, 0.3])  # the mouth open, turned further than any target face
    cost = match_cost(np.stack([open_mouth, closed]), query, spread)
    assert np.argmin(cost) == 0  # the open mouth, though the closed one is turned nearer
    # each capped term counts at most MISMATCH_CAP times its weight
    assert cost[0] == pytest.approx(WEIGHTS[5] * MISMATCH_CAP)
    uncapped = (((np.stack([open_mouth, closed]) - query) / spread) ** 2 * WEIGHTS).sum(1)
    assert np.argmin(uncapped) == 1  # without the cap the pose alone would pick the closed mouth


def test_faces_past_the_targets_footage_are_counted_and_named(monkeypatch):
    from retarget.render.swap import reach_hint

    index = _index([0.0, 0.1, 0.2])
    inside = index.features[1]
    assert not index.beyond(inside).any()  # within the target's faces: 0
    wide = inside.copy()
    wide[0] = index.high[0] + 3 * index.spread[0]
    assert index.beyond(wide)[0] == pytest.approx(3.0)
    monkeypatch.setattr(index, "image", lambda k: _picture(index.points[k]))
    swap = FaceSwap(index)
    for opening in (0.0, 0.1, 0.2, 1.5, 1.5):  # the last two: a mouth opened far wider than any of the target's
        swap(_face(opening))
    assert swap.asked == 5 and swap.beyond == {"pose": 0, "mouth": 2}
    lines = reach_hint([swap], "B")
    assert len(lines) == 1 and "40% of the faces the mouth opened wider" in lines[0] and "--mouth source" in lines[0]
    assert reach_hint([swap], "B", mouth="source") == []  # the input's own mouth is shown: nothing to say
    quiet = FaceSwap(index)
    for opening in (0.0, 0.1, 0.2, 0.1, 0.0):
        quiet(_face(opening))
    assert reach_hint([quiet], "B") == [] and reach_hint([], "B") == []
    swap.beyond["pose"] = 4  # a head turned past every face of the target's, most of the time
    assert any("head turned or tipped further" in line for line in reach_hint([swap, quiet], "B"))


def test_face_speed_is_the_motion_between_neighbours_within_a_segment():
    from retarget.dataset.faceindex import face_speed

    face = template_points(100, MARGIN)
    eyes = float(np.linalg.norm(face[36:42].mean(0) - face[42:48].mean(0)))
    steps = np.array([0.0, 0.0, 0.0, 2.0, 4.0, 6.0, 6.0])  # still, then 2 px a frame, then a new segment
    points = np.stack([face + [x, 0.0] for x in steps])
    segments = np.array([0, 0, 0, 0, 0, 0, 1])
    speed = face_speed(points, segments)
    assert speed[:2] == pytest.approx([0.0, 0.0])
    assert speed[4] == pytest.approx(2.0 / eyes)  # (6 - 2) px over two frames
    assert speed[5] == pytest.approx(2.0 / eyes)  # the segment's end: itself and the one before
    assert speed[6] == 0.0  # alone in its segment


def test_of_two_alike_target_faces_the_still_one_is_picked():
    face = _face(0.0)
    index = FaceIndex(
        root=None,  # type: ignore[arg-type]
        files=[None, None],  # type: ignore[list-item]
        points=np.stack([face, face]),
        segments=np.array([0, 1]),
        size=SIZE,
        face=FaceConfig(margin=MARGIN),
        speed=np.array([0.3, 0.01]),  # the first was caught turning its head: blurred
    )
    assert index.still_cost[0] > index.still_cost[1]
    assert FaceSwap(index).pick(expression_features(face)) == 1
    unknown = FaceIndex(index.root, index.files, index.points, index.segments, SIZE, index.face)
    assert not unknown.still_cost.any()  # no speeds known: no face preferred
