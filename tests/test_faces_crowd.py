"""CrowdAligner: every face followed on its own, a lane each, new tracks for faces that come and go."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import ScriptedFaces
from retarget.config import FaceConfig
from retarget.faces.align import TEMPLATE_68
from retarget.faces.crowd import CrowdAligner

W, H = 480, 270


def face(cx: float, cy: float, size: float = 80.0) -> np.ndarray:
    """A template-shaped face of ``size`` px centred at ``(cx, cy)`` (frame px)."""
    return ((TEMPLATE_68 - 0.5) * size + [cx, cy]).astype(np.float32)


def frame() -> np.ndarray:
    """A textured frame (the tracker's appearance check needs texture)."""
    return np.random.default_rng(3).integers(0, 255, (H, W, 3), dtype=np.uint8)


def stripes() -> np.ndarray:
    """Level stripes: a face moving sideways over them keeps its look (tracking holds)."""
    image = np.full((H, W, 3), 120, np.uint8)
    image[..., 0] = (128 + 100 * np.sin(np.arange(H) / 9.0))[:, None].astype(np.uint8)
    return image


def crowd(max_faces: int = 4, detect_every: int = 3) -> tuple[CrowdAligner, ScriptedFaces]:
    fake = ScriptedFaces(W)
    cfg = FaceConfig(smooth=0.0, detect_every=detect_every, detect_size=240)
    return CrowdAligner(cfg, 32, max_faces, backend=fake), fake


def centres(found) -> dict[int, np.ndarray]:
    return {f.track: f.landmarks.mean(0) for f in found}


def test_two_faces_get_two_lanes_and_keep_their_tracks():
    aligner, fake = crowd()
    left, right = face(120, 130), face(360, 140, 100)
    fake.faces = [left, right]
    image = frame()
    runs = [aligner(image, t / 25) for t in range(8)]
    assert all(len(r) == 2 for r in runs)
    tracks = [tuple(f.track for f in r) for r in runs]
    assert len(set(tracks)) == 1 and len(set(tracks[0])) == 2  # the same two tracks throughout
    lanes = {f.lane for f in runs[-1]}
    assert lanes == {0, 1}
    # each face's landmarks are its own; the larger face came first (lane 0)
    by_lane = {f.lane: f for f in runs[-1]}
    assert np.allclose(by_lane[0].landmarks, right, atol=1e-3)
    assert np.allclose(by_lane[1].landmarks, left, atol=1e-3)
    assert by_lane[0].crop.shape == (32, 32, 3)


def test_a_face_that_enters_or_leaves_does_not_disturb_the_others():
    aligner, fake = crowd()
    a, b, c = face(100, 130), face(380, 130), face(240, 140, 60)
    image = frame()
    fake.faces = [a, b]
    first = aligner(image, 0.0)
    start = {f.lane: f.track for f in first}
    t = 1
    fake.faces = [a, b, c]  # c walks in: found at the next scan, in the free lane
    for _ in range(4):
        now = aligner(image, t / 25)
        t += 1
    assert {f.lane: f.track for f in now if f.lane in start} == start
    assert len(now) == 3 and {f.lane for f in now} == {0, 1, 2}
    newcomer = next(f for f in now if f.lane == 2)
    assert newcomer.track not in start.values()
    assert np.allclose(newcomer.landmarks, c, atol=1e-3)
    fake.faces = [b, c]  # a leaves: its lane is freed, the others go on
    after = aligner(image, t / 25)
    lane_of_a = next(lane for lane, f in enumerate(first) if np.allclose(f.landmarks, a, atol=1e-3))
    assert lane_of_a not in {f.lane for f in after}
    assert {f.lane: f.track for f in after} == {f.lane: f.track for f in now if f.lane != lane_of_a}


def test_max_faces_keeps_the_largest_and_detects_once_per_frame_and_size():
    aligner, fake = crowd(max_faces=1)
    small, large = face(100, 130, 50), face(330, 130, 110)
    fake.faces = [small, large]
    found = aligner(frame(), 0.0)
    assert len(found) == 1 and np.allclose(found[0].landmarks, large, atol=1e-3)
    aligner, fake = crowd(max_faces=3, detect_every=1)
    fake.faces = [small, large]
    image = frame()
    aligner(image, 0.0)
    before = fake.detect_runs
    for t in range(1, 5):  # each lane detects every frame, and the crowd scans: one detector run a frame
        assert len(aligner(image, t / 25)) == 2
    assert fake.detect_runs - before == 4


def test_reset_starts_new_tracks_and_a_lost_frame_frees_every_lane():
    aligner, fake = crowd()
    fake.faces = [face(120, 130), face(360, 130)]
    image = frame()
    old = {f.track for f in aligner(image, 0.0)}
    aligner.reset()  # a scene cut
    new = {f.track for f in aligner(image, 0.04)}
    assert len(new) == 2 and not (new & old)
    fake.faces = []
    assert aligner(image, 0.08) == []
    fake.faces = [face(120, 130)]
    again = aligner(image, 0.12)
    assert len(again) == 1 and again[0].lane == 0 and again[0].track not in new


@pytest.mark.parametrize("max_faces", [2, 3])
def test_two_tracks_never_follow_one_face(max_faces):
    aligner, fake = crowd(max_faces=max_faces, detect_every=1)
    only = face(240, 130)
    fake.faces = [only]
    image = frame()
    for t in range(6):
        found = aligner(image, t / 25)
        assert len(found) == 1


def test_when_two_faces_come_together_the_older_track_stays():
    aligner, fake = crowd(detect_every=100)  # tracked all along: no detection keeps them apart
    a = face(150, 130)
    image = stripes()
    fake.faces = [a, face(330, 130)]
    first = {f.lane: f.track for f in aligner(image, 0.0)}
    assert len(first) == 2
    for k, x in enumerate(range(310, 150, -20)):  # b walks in front of a, a little at a time
        fake.faces = [a, face(x, 130)]
        found = aligner(image, (k + 1) / 25)
    assert len(found) == 1 and found[0].track == min(first.values())


def _render_swap(tmp_path, name: str, src, index, script, width: int):
    """``src`` swapped to ``index``'s person by the real render stream, faces from ``script(time)``."""
    import functools

    from retarget.config import RenderConfig
    from retarget.faces.retrieval import FaceSwap
    from retarget.geometry import square_cut
    from retarget.render.source import Lanes
    from retarget.render.stream import Plan, prepare, stream
    from retarget.render.swap import swap_items
    from retarget.video.reader import VideoReader

    fake = ScriptedFaces(width)
    crowd = CrowdAligner(
        FaceConfig(margin=0.2, smooth=0.0, detect_every=1, detect_size=width), index.size, backend=fake
    )

    class Scripted:  # the crowd, told where the faces are at each time
        def __call__(self, image, time):
            fake.faces = script(time)
            return crowd(image, time)

        def reset(self):
            crowd.reset()

    out = tmp_path / f"{name}.mp4"
    cfg = RenderConfig(
        input=str(src), output=str(out), crf=0, stabilize=1.0, color_match="none", feather=0.05,
        target_faces=str(index.root),
    )  # fmt: skip
    ready = prepare(cfg)
    stage = functools.partial(swap_items, swap=Lanes(functools.partial(FaceSwap, index)))
    info = ready.info
    cut = square_cut(info.width, info.height, index.size, None)
    plan = Plan(cfg, ready.src, ready.out, info, index.size, stage, cut, aligner=Scripted(), faceless_ok=True)
    summary = stream(plan, quiet=True)
    with VideoReader(str(out)) as reader:
        return summary, [f.image.astype(int) for f in reader]


def test_a_made_up_two_face_video_swaps_both_and_a_visitor_leaves_the_other_alone(tmp_path):
    """Render with two faces: both are swapped; one coming and going changes nothing at the other."""
    import cv2

    from helpers import make_video
    from retarget.faces.align import template_points
    from retarget.faces.paste import face_outline
    from retarget.render.swap import face_index
    from test_face_swap import _face_dataset

    _face_dataset(tmp_path / "b", size=48)
    index = face_index(tmp_path / "b")
    w, h = 160, 80
    src = make_video(tmp_path / "two.mp4", frames=8, size=(w, h), audio="aac")
    left = (template_points(40, 0.0) + [14, 20]).astype(np.float32)
    right = (template_points(40, 0.0) + [104, 20]).astype(np.float32)
    visits = (0.07, 0.19)  # the right face is there in frames 2-4 (25 fps)

    none, before = _render_swap(tmp_path, "none", src, index, lambda t: [], w)
    alone, one = _render_swap(tmp_path, "alone", src, index, lambda t: [left], w)
    both, two = _render_swap(tmp_path, "both", src, index, lambda t: [left] + [right] * (visits[0] < t < visits[1]), w)
    assert none.frames == alone.frames == both.frames == 8 and both.audio
    assert alone.faces == both.faces == 8

    def region(points):
        hull = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(face_outline(points).astype(np.int32)), 1)
        return hull.astype(bool), cv2.dilate(hull, np.ones((9, 9), np.uint8)).astype(bool)

    (left_in, left_near), (right_in, right_near) = region(left), region(right)
    for k in range(8):
        visited = 2 <= k <= 4
        # the left face is swapped in every frame, the same with or without the visitor
        assert np.abs(one[k] - before[k]).max(axis=2)[left_in].mean() > 20
        assert np.abs(two[k] - one[k]).max(axis=2)[left_near].max() <= 2
        # the right face is swapped while it is there, and nothing changes there otherwise
        change = np.abs(two[k] - before[k]).max(axis=2)
        if visited:
            assert change[right_in].mean() > 20
        else:
            assert change[right_near].max() <= 2
        assert change[~(left_near | right_near)].max() <= 2  # and nothing else moves


def test_a_swap_follows_every_face_unless_one_person_or_one_face_is_asked_for(tmp_path, monkeypatch):
    import retarget.faces.aligner as aligner_mod
    import retarget.faces.crowd as crowd_mod
    from helpers import make_video, tiny_pair_run
    from retarget.config import RenderConfig
    from retarget.errors import RetargetError
    from retarget.faces.aligner import FaceAligner
    from retarget.render.plan import plan_swap
    from retarget.render.render import render
    from retarget.render.stream import prepare
    from test_face_swap import _face_dataset

    for mod in (aligner_mod, crowd_mod):
        monkeypatch.setattr(mod, "get_backend", lambda name: ScriptedFaces(64))
    _face_dataset(tmp_path / "b")
    src = make_video(tmp_path / "a.mp4", frames=3, size=(64, 48))

    def plan(**kw):
        cfg = RenderConfig(input=str(src), output=str(tmp_path / "o.mp4"), target_faces=str(tmp_path / "b"), **kw)
        return plan_swap(cfg, prepare(cfg))

    every = plan().aligner
    assert isinstance(every, CrowdAligner) and every.max_faces == RenderConfig.max_faces
    assert plan(max_faces=7).aligner.max_faces == 7
    assert type(plan(max_faces=1).aligner) is FaceAligner
    with pytest.raises(RetargetError, match=r"^--max-faces 2: does not apply with --face-ref") as err:
        plan(max_faces=2, face_ref=str(tmp_path / "who.png"))
    assert "\n" not in str(err.value)
    run = tiny_pair_run(tmp_path / "run", 16)
    with pytest.raises(RetargetError, match=r"^--max-faces 2: applies to a face swap"):
        render(RenderConfig(input=str(src), output=str(tmp_path / "r.mp4"), model=str(run), device="cpu", max_faces=2))
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "r.mp4").exists()
    for option in (
        {"mouth": "source"},
        {"gaze": "keep"},
        {"detail": "keep"},
    ):  # no run at all: the option is the mistake
        with pytest.raises(RetargetError, match=r"^--(mouth|gaze|detail) \w+: applies to a face swap"):
            render(RenderConfig(input=str(src), output=str(tmp_path / "r.mp4"), model=str(tmp_path / "none"), **option))


def test_a_swaps_look_ahead_numbers_the_faces_as_the_render_does(tmp_path, monkeypatch):
    """plan_swap reads the first seconds with a fresh aligner: its tracks are the render's."""
    import retarget.faces.aligner as aligner_mod
    import retarget.faces.crowd as crowd_mod
    from helpers import make_video
    from retarget.config import RenderConfig
    from retarget.faces.align import template_points
    from retarget.render.plan import plan_swap
    from retarget.render.stream import prepare, stream
    from test_face_swap import _face_dataset

    w, h = 160, 80
    faces = [(template_points(40, 0.0) + [14 + 90 * k, 20]).astype(np.float32) for k in range(2)]

    def scripted(name):
        fake = ScriptedFaces(w)
        fake.faces = faces  # two faces, mouths closed: both rest from the first frame
        return fake

    for mod in (aligner_mod, crowd_mod):
        monkeypatch.setattr(mod, "get_backend", scripted)
    _face_dataset(tmp_path / "b")
    src = make_video(tmp_path / "two.mp4", frames=8, size=(w, h))
    cfg = RenderConfig(input=str(src), output=str(tmp_path / "o.mp4"), target_faces=str(tmp_path / "b"))
    plan = plan_swap(cfg, prepare(cfg))
    rests = plan.stage.stage.keywords["rests"]
    seen: set = set()
    inner = plan.stage

    def watch(batch):
        seen.update(item.track for item in batch if item.net_input is not None)
        return inner(batch)

    plan.stage = watch
    assert stream(plan, quiet=True).faces == 8
    assert len(rests) == 2 and set(rests) == seen  # the same two tracks, by the same numbers
