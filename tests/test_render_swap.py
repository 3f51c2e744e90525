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
