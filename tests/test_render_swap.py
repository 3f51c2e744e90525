"""render --target-faces, the render side: the paste's enlargement watched, and a larger target cut suggested."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from retarget.dataset.faceindex import crop_scale
from retarget.render.swap import PasteScale


def _item(scale: float | None):
    if scale is None:  # a frame without a face
        return SimpleNamespace(net_input=None, matrix=None)
    return SimpleNamespace(net_input=np.zeros((4, 4, 3), np.uint8), matrix=np.array([[scale, 0, 3], [0, scale, 1]]))


def test_paste_scale_passes_the_batch_on_and_suggests_a_cut_only_where_it_keeps_detail():
    seen = []
    watch = PasteScale(lambda batch: seen.append(len(batch)) or batch)
    batch = [_item(0.5), _item(None), _item(0.5)]
    assert watch(batch) is batch and seen == [3] and watch.scales == [0.5, 0.5]
    # pasted at 2x, the target's video holds its faces at 1.67x the crop: cut at 256 * 1.67, in steps of 32
    (line,) = watch.hint("data/bob", 256, 0.6)
    assert "--size 448" in line and "data/bob" in line and "2.0x" in line
    assert watch.hint("data/bob", 256, 0.9) == []  # the crop already keeps what the video holds
    big = PasteScale(lambda b: b)
    big([_item(0.9)])
    assert big.hint("data/bob", 256, 0.5) == []  # the input's faces are no larger than the crop
    assert PasteScale(lambda b: b).hint("data/bob", 256, 0.5) == []  # no face seen
    huge = PasteScale(lambda b: b)
    huge([_item(0.1)])
    assert "--size 1024" in huge.hint("data/bob", 512, 0.1)[0]  # capped


def test_crop_scale_is_the_datasets_median_crop_px_per_video_px(tmp_path):
    from test_face_swap import _face_dataset

    _face_dataset(tmp_path / "b")  # faces cut at half their video's pixels
    assert crop_scale(str(tmp_path / "b")) == 0.5


def test_a_plans_notes_are_said_after_the_summary(tmp_path):
    from helpers import make_video
    from retarget.config import RenderConfig
    from retarget.geometry import square_cut
    from retarget.progress import console
    from retarget.render.stream import Plan, prepare, stream

    src = make_video(tmp_path / "a.mp4", frames=3, size=(32, 24))
    cfg = RenderConfig(input=str(src), output=str(tmp_path / "o.mp4"), stabilize=0)
    ready = prepare(cfg)
    plan = Plan(
        cfg, ready.src, ready.out, ready.info, 16, lambda batch: batch, square_cut(32, 24, 16, None),
        aligner=lambda image, time: None, faceless_ok=True, notes=lambda: ["hint: a line of what it saw"],
    )  # fmt: skip
    with console.capture() as said:
        stream(plan)
    lines = said.get().strip().splitlines()
    assert lines[-1] == "hint: a line of what it saw" and lines[-2].startswith("wrote ")


def test_a_swap_paints_the_inputs_glasses_out_of_the_frame_it_pastes_onto():
    from retarget.faces.align import crop_matrix
    from retarget.faces.rims import GATE_FRAMES, GlassesGate
    from retarget.render.source import Item
    from retarget.render.swap import swap_items
    from test_faces_rims import FACE, glasses, skin

    class StubSwap:  # the target's face: grey, shaped as the input's
        track = None

        def reset(self):
            pass

        def __call__(self, points):
            return SimpleNamespace(image=np.full((32, 32, 3), 128, np.uint8), points=points)

    matrix = crop_matrix(FACE.astype(np.float32), 32, 0.2)

    def frames(picture, n=4):
        return [
            Item(k, k, picture.copy(), np.zeros((32, 32, 3), np.uint8), matrix, FACE.astype(np.float32))
            for k in range(n)
        ]

    worn, bare = frames(glasses(skin())), frames(skin())
    swap_items(worn, StubSwap(), glasses=GlassesGate())
    swap_items(bare, StubSwap(), glasses=GlassesGate())
    assert [it.backdrop is None for it in worn] == [True] * (GATE_FRAMES - 1) + [False] * (5 - GATE_FRAMES)
    assert GATE_FRAMES == 1  # from the first frame
    last = worn[-1]
    assert np.abs(last.backdrop.astype(int) - last.image.astype(int)).max() > 40  # rims gone from the backdrop
    assert all(it.backdrop is None for it in bare)  # no glasses: the frame itself
    kept = frames(glasses(skin()))
    swap_items(kept, StubSwap())  # --glasses keep
    assert all(it.backdrop is None for it in kept)


def test_the_composer_pastes_every_face_onto_the_backdrop():
    from retarget.geometry import square_cut
    from retarget.render.compose import Composer
    from retarget.render.source import Item

    bases = []

    def paste(frame, crop, matrix, landmarks):
        bases.append(frame)
        return frame + 1

    image, backdrop = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 5, np.uint8)
    crop, m = np.zeros((4, 4, 3), np.uint8), np.eye(2, 3)
    first, second = Item(0, 0, image, crop, m, np.zeros((68, 2))), Item(0, 0, image, crop, m, np.zeros((68, 2)), lane=1)
    first.more = [second]
    first.result = second.result = crop
    first.backdrop = backdrop
    picture = Composer(square_cut(8, 8, 4, None), paste=paste)(first)
    assert bases[0] is backdrop and np.array_equal(picture, backdrop + 2)  # both faces, in turn, on the backdrop


def test_a_target_who_wears_glasses_keeps_the_inputs():
    from retarget.render.swap import target_wears_glasses
    from test_faces_rims import FACE, glasses, skin

    class Index:  # the few faces of a target, as a face index gives them
        def __init__(self, picture):
            self.picture, self.points = picture, np.stack([FACE] * 40)

        def __len__(self):
            return 40

        def image(self, k):
            return self.picture

    assert target_wears_glasses(Index(glasses(skin())))
    assert not target_wears_glasses(Index(skin()))


def _faces_at(points_by_track: dict, lane_of: dict | None = None):
    """Items of one frame: a face item per track, with crop px = frame px (identity matrix)."""
    from retarget.render.source import Item

    items = [
        Item(0, 0, np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.eye(2, 3), p.astype(np.float32),
             track=t, lane=(lane_of or {}).get(t, 0))
        for t, p in points_by_track.items()
    ]  # fmt: skip
    items[0].more = items[1:]
    return items[0]


def test_look_ahead_keeps_the_rest_of_each_track_that_rested():
    from retarget.faces.features import MIN_REST
    from retarget.render.source import Item
    from retarget.render.swap import look_ahead
    from test_face_swap import _face

    closed, open_ = _face(0.0), _face(0.4)
    frames = [_faces_at({0: open_, 1: open_})] * 3 + [Item(9, 9, np.zeros((8, 8, 3), np.uint8), None)]
    frames += [_faces_at({0: closed, 1: open_})] * MIN_REST
    rests = look_ahead(frames)
    assert list(rests) == [0]  # track 1 never rested: it keeps its running mean
    assert rests[0].seen == 3 + MIN_REST and rests[0].rested
    np.testing.assert_allclose(rests[0].rest()[0], closed)


def test_a_swap_told_the_rest_ahead_warps_its_first_frames_against_it(monkeypatch):
    from retarget.faces.features import MIN_REST, RunningRest, expression_features
    from retarget.faces.retrieval import FaceSwap
    from retarget.render.swap import swap_items
    from test_face_swap import _face, _index, _o_mouth, _picture

    index = _index([0.0, 0.0, 0.4, 0.4])
    monkeypatch.setattr(index, "image", lambda k: _picture(index.points[k]))
    rest = RunningRest()
    for _ in range(MIN_REST):
        rest.add(_face(0.0), expression_features(_face(0.0)))
    told, blind = FaceSwap(index, smooth=0.0), FaceSwap(index, smooth=0.0)
    told.know(rest)
    o_mouth = _o_mouth(2.0)  # a round "O" from the first frame on
    width = lambda swap: expression_features(swap(o_mouth).points)[2]  # noqa: E731
    # told: narrower than the rest it was given, as the source's is; blind: its own mean, nothing to narrow
    assert width(told) < width(blind) - 0.05
    primed = FaceSwap(index)  # swap_items tells a new track's swap its rest
    swap_items([_faces_at({7: _face(0.4)})], primed, rests={7: rest})
    assert primed._rest.seen == MIN_REST + 1 and primed._rest.rested
    plain = FaceSwap(index)
    swap_items([_faces_at({8: _face(0.4)})], plain, rests={7: rest})  # another track: not told
    assert plain._rest.seen == 1
