"""benchmarks/faces.py and the shared helpers of benchmarks/common.py (systems, summaries, table, strip crops)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import faces  # noqa: E402


def test_system_names_presets_and_sizes():
    model, loss, train = common.parse_system("default", "default", 64)
    assert model.model == "recycle" and model.ngf == 64 and model.size == 64 and train == {}
    model, loss, train = common.parse_system("default+preset=tiny,size=48,identity=2,ngf=32", "default", 64)
    assert model.ngf == 32 and model.blocks == 2 and model.size == 48  # tiny's blocks, the explicit width
    assert loss.identity == 2.0 and train == {"preset": "tiny"}
    assert common.parse_system("cyclegan", "tiny", 64)[0].model == "cyclegan"
    for bad in ("default+preset=huge", "default+nonsense=1", "pix2pix"):
        with pytest.raises(SystemExit):
            common.parse_system(bad, "tiny", 64)
    cfg = common.budget_config("default+preset=tiny,lr=0.001", "default", 64, "a", "b", "run", 3, 60.0, 1)
    assert cfg.preset == "tiny" and cfg.lr == 0.001 and cfg.time_limit == 60.0 and cfg.seed == 3
    assert cfg.model.blocks == 2 and cfg.device == "cpu" and cfg.threads == 1


def test_summaries_skip_undefined_values():
    s = common.summarise({"x": [{"r": 0.5, "n": 1.0}, {"r": None, "n": 3.0}, {"r": 0.7, "n": 2.0}]})["x"]
    assert s["r"] == pytest.approx(0.6) and s["r_sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert s["n"] == pytest.approx(2.0) and len(s["runs"]) == 3
    assert common.summarise({"y": [{"r": None}]})["y"]["r"] is None


def test_table_cells_and_lines():
    row = {"found": 1.0, "nearer_b": 0.9, "nearer_b_sd": 0.05, "distance_b": 0.5123, "mouth_r": None, "steps": 120.0}
    lines = faces.table_lines({"d18:d19": {"default": row}})
    assert lines[0].startswith("| pair | system | faces found | nearer B |")
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells[:6] == ["d18:d19", "default", "100%", "90% ± 5", "-", "0.512"]
    assert cells[7] == "-" and cells[-2] == "120"  # an undefined correlation; steps without decimals
    assert len(cells) == 2 + len(faces.COLUMNS)


def test_find_video_and_bad_pairs(tmp_path):
    (tmp_path / "talk_x1.mp4").write_bytes(b"")
    (tmp_path / "y2.mp4").write_bytes(b"")
    assert faces.find_video("x1", tmp_path).name == "talk_x1.mp4"
    assert faces.find_video("talk_x1.mp4", tmp_path).name == "talk_x1.mp4"
    assert faces.find_video("y2", tmp_path).name == "y2.mp4"
    with pytest.raises(SystemExit, match="no video"):
        faces.find_video("z3", tmp_path)
    with pytest.raises(SystemExit, match="A:B"):
        faces.prepare_pair("x1", tmp_path, 64, 0.2, tmp_path / "work")


def test_strip_crop_centres_the_face_box():
    img = np.zeros((200, 300, 3), np.uint8)
    img[80:120, 180:220] = 255  # a 40 px 'face' centred at (200, 100)
    tile = faces._crop(img, np.array([180, 80, 220, 120.0]), 72)
    assert tile.shape == (72, 72, 3)
    # 1.8 x the box fills the tile: the box is 40 / 72 of its side, centred
    ys, xs = np.nonzero(tile[..., 0] > 127)
    assert abs(xs.mean() - 35.5) < 1 and abs(ys.mean() - 35.5) < 1
    assert 38 <= xs.max() - xs.min() + 1 <= 42
    centre = faces._crop(img, None, 50)  # no face: the centre square
    assert centre.shape == (50, 50, 3)


def test_init_benchmark_finds_the_first_checkpoint_at_the_goal(tmp_path):
    import faces_init

    rows = [
        {"step": 900, "seconds": 300.0, "found": 1.0, "nearer_b": 0.95, "same_person_b": 0.85},
        {"step": 300, "seconds": 100.0, "found": 1.0, "nearer_b": 0.95, "same_person_b": 0.5},
        {"step": 600, "seconds": 200.0, "found": 0.5, "nearer_b": 1.0, "same_person_b": 1.0},
        {"step": 1200, "seconds": 400.0, "found": 1.0, "nearer_b": None, "same_person_b": None},
    ]
    assert faces_init.first_at_goal(rows, 0.9, 0.9, 0.8)["step"] == 900
    assert faces_init.first_at_goal(rows, 0.4, 0.9, 0.8)["step"] == 600  # fewer faces allowed
    assert faces_init.first_at_goal(rows, 0.9, 0.9, 0.9) is None
    lines = faces_init.report({"scratch": rows[:1], "init": rows[1:2]}, (0.9, 0.9, 0.8), 1200)
    assert lines[-2:] == ["time to goal, scratch: 300 s (step 900)", "time to goal, init: not within 1200 s"]
    assert lines[2].startswith("| scratch | 300 | 900 | 100% | 95% | 85% |")
    # checkpoints are listed oldest first with their save time after the start
    for step in (600, 300):
        (tmp_path / "checkpoints" / f"step_{step:07d}").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step_0000900.tmp").mkdir()
    found = faces_init._checkpoints(tmp_path, 0.0)
    assert [s for s, _ in found] == [300, 600] and all(t > 0 for _, t in found)
    assert faces_init._checkpoints(tmp_path / "none", 0.0) == []


def test_the_smaller_tables_take_their_columns_from_faces():
    import faces
    import faces_blend

    assert [c[0] for c in faces.pick("sharpness", "found")] == ["sharpness", "found"]
    assert set(faces_blend.COLUMNS) <= set(faces.COLUMNS)
    lines = faces.markdown_table(["pair", "setting"], [(["a:b", "x"], {"found": 0.5})], faces.pick("found", "mouth_r"))
    assert lines[1] == "|---|---|---:|---:|" and lines[2] == "| a:b | x | 50% | - |"
    with pytest.raises(KeyError):
        faces.pick("nonsense")


def test_blend_benchmark_settings():
    import faces_blend

    assert faces_blend.parse_setting("alpha,lab") == {"blend": "alpha", "color_match": "lab"}
    assert faces_blend.parse_setting("seamless,none,erode=8") == {
        "blend": "seamless",
        "color_match": "none",
        "mask_erode": 8,
    }
    assert faces_blend.parse_setting("alpha,lab,dilate=4,enhance") == {
        "blend": "alpha",
        "color_match": "lab",
        "mask_dilate": 4,
        "enhance": True,
    }
    assert faces_blend.parse_setting("alpha,none,enhance=0.5")["enhancer_blur"] == 0.5
    bad_ones = ("alpha", "poisson,lab", "alpha,rgb", "alpha,lab,grow=3", "alpha,lab,erode=x")
    for bad in (*bad_ones, "alpha,lab,enhance,enhance", "alpha,lab,erode=2,dilate=2", "alpha,lab,enhance=x"):
        with pytest.raises(SystemExit, match="setting"):
            faces_blend.parse_setting(bad)
    for s in faces_blend.DEFAULT_SETTINGS:
        faces_blend.parse_setting(s)
