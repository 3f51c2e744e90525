"""End to end: the demo on synthetic domains turns A's look into B's and keeps A's motion."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from retarget.config import DemoConfig
from retarget.demo import synth
from retarget.demo.demo import MARKER, demo, preview_grid
from retarget.errors import RetargetError


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    """A reduced demo (32 px, 300 steps: ~20-40 s on one core) shared by the checks below."""
    out = tmp_path_factory.mktemp("demo") / "out"
    return demo(DemoConfig(out=str(out), seed=0, steps=300, size=32))


@pytest.mark.slow
def test_translation_takes_b_appearance(small_demo):
    s = small_demo
    assert s.dist_before_to_a < s.dist_before_to_b  # the input is an A clip
    assert s.dist_after_to_b < s.dist_after_to_a  # its translation looks like B
    assert s.dist_after_to_b < 0.3 * s.dist_before_to_b
    assert s.looks_like_b


@pytest.mark.slow
def test_translation_keeps_a_motion(small_demo):
    s = small_demo
    assert s.motion_correlation > 0.8
    assert s.motion_error < 0.2  # at 32 px the tiny generator shifts the shape by a few px
    assert s.moves_like_a
    # independently of the summary: the shape in the output sits where the input's was
    frames_in = synth.read_frames(f"{s.out}/videos/heldout_04.mp4")
    frames_out = synth.read_frames(s.translated)
    truth = synth.object_centroids(frames_in)
    unrelated = np.stack([synth.make_motion(len(truth), 123).x, synth.make_motion(len(truth), 123).y], axis=1)
    got = synth.object_centroids(frames_out[: len(truth)])
    assert synth.track_correlation(truth, got) > synth.track_correlation(unrelated, got) + 0.3


@pytest.mark.slow
def test_outputs_are_complete(small_demo):
    s = small_demo
    data = json.loads(open(f"{s.out}/summary.json").read())
    assert data["looks_like_b"] is True and data["moves_like_a"] is True
    assert set(data["timings"]) >= {"synth", "extract", "train", "render", "measure", "total"}
    for video in (s.translated, s.side_by_side):
        with av.open(video) as c:
            assert sorted(st.type for st in c.streams) == ["audio", "video"]
    with av.open(s.side_by_side) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (3 * 32, 32)  # input | translation | reference
    preview = cv2.imread(s.preview)
    assert preview is not None and preview.shape[1] > preview.shape[0] > 0
    from retarget.run import latest_checkpoint

    assert (latest_checkpoint(s.run) / "weights.safetensors").exists()
    # no temporary leftovers from the atomic writes
    assert not [p for p in Path(s.out).glob(".*.tmp*")]


def test_refuses_to_replace_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(RetargetError, match="not a demo output"):
        demo(DemoConfig(out=str(tmp_path), steps=1, size=32))
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_refuses_to_replace_an_earlier_demo_without_overwrite(tmp_path):
    (tmp_path / MARKER).write_text("")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(RetargetError, match="earlier demo"):
        demo(DemoConfig(out=str(tmp_path), steps=1, size=32, overwrite=False))


def test_rejects_odd_size(tmp_path):
    with pytest.raises(RetargetError, match="even"):
        demo(DemoConfig(out=str(tmp_path / "d"), steps=1, size=33))


def test_preview_grid_layout():
    a = np.zeros((10, 8, 8, 3), np.uint8)
    b = np.full((12, 8, 8, 3), 200, np.uint8)
    grid = preview_grid([("a", a), ("b", b)], columns=4, scale=2)
    # 2 rows of 16 px with a 4 px gap; 4 stills of 16 px with 3 gaps
    assert grid.shape == (2 * 16 + 4, 4 * 16 + 3 * 4, 3)
    assert grid.dtype == np.uint8
    assert grid[30, 30].mean() > 150 and grid[10, 30].mean() < 50


def test_refuses_a_file_as_output(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(RetargetError, match="is a file"):
        demo(DemoConfig(out=str(f), steps=1, size=32))
