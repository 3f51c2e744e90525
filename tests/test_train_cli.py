"""``retarget train`` end to end through the CLI on two tiny generated datasets."""

from __future__ import annotations

import json

import pytest
from test_train_data import write_frames
from typer.testing import CliRunner

from retarget.cli import app
from retarget.train import load_run

TINY = ["--preset", "tiny", "--size", "32", "--device", "cpu", "--pool", "4"]


@pytest.fixture
def data(tmp_path):
    return str(write_frames(tmp_path / "A", 8, size=36)), str(write_frames(tmp_path / "B", 6, size=36, start=3))


def run(*args):
    result = CliRunner().invoke(app, ["train", *args])
    return result, result.output  # stdout and stderr together


def test_train_cli_end_to_end(data, tmp_path):
    out = tmp_path / "runs" / "ab"
    result, text = run(*data, "--out", str(out), *TINY, "--steps", "4", "--checkpoint-every", "2",
                       "--preview-every", "2", "--log-every", "1")
    assert result.exit_code == 0, text
    assert "trained 4 steps" in text
    assert (out / "weights.safetensors").exists() and (out / "state.pt").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4
    assert sorted(p.name for p in (out / "previews").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    assert (out / "loss_curve.png").stat().st_size > 1000
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["ngf"] == 8 and cfg["steps"] == 4 and cfg["preset"] == "tiny"
    # again without --resume/--overwrite: one line, non-zero exit
    result, text = run(*data, "--out", str(out), *TINY, "--steps", "4")
    assert result.exit_code != 0 and "already holds a run" in text and "Traceback" not in text
    result, text = run(*data, "--out", str(out), *TINY, "--steps", "6", "--resume")
    assert result.exit_code == 0, text
    assert load_run(str(out), "cpu").step == 6


def test_train_cli_cyclegan_warns_about_bad_images(data, tmp_path):
    out = tmp_path / "cg"
    (tmp_path / "B" / "f99.png").write_bytes(b"broken")
    result, text = run(*data, "--out", str(out), "--model", "cyclegan", *TINY, "--steps", "2")
    assert result.exit_code == 0, text
    assert "skipped 1 unreadable image(s)" in text
    assert load_run(str(out), "cpu").model_cfg.model == "cyclegan"


@pytest.mark.parametrize("case", ["missing", "empty", "short", "arch"])
def test_train_cli_bad_input(data, tmp_path, case):
    a, b = data
    extra: list[str] = []
    if case == "missing":
        a = str(tmp_path / "nothing")
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        b = str(tmp_path / "empty")
    elif case == "short":
        b = str(write_frames(tmp_path / "short", 2))
    else:
        result, text = run(a, b, "--out", str(tmp_path / "r"), *TINY, "--steps", "1")
        assert result.exit_code == 0, text
        extra = ["--resume", "--ngf", "4"]
    result, text = run(a, b, "--out", str(tmp_path / "r"), *TINY, "--steps", "2", *extra)
    assert result.exit_code != 0
    message = {"missing": "not found", "empty": "no images", "short": "at least 3 consecutive frames",
               "arch": "another architecture"}[case]
    assert message in text and "Traceback" not in text
    assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1


def test_train_cli_residual_predictor_and_warp_term_reach_the_run(data, tmp_path):
    out = tmp_path / "res"
    result, text = run(*data, "--out", str(out), *TINY, "--steps", "2", "--p-residual", "--warp", "3")
    assert result.exit_code == 0, text
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["p_residual"] is True and cfg["loss"]["warp"] == 3.0
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["loss/A/warp"] > 0
    run_ = load_run(str(out), "cpu")
    assert run_.model_cfg.p_residual  # the checkpoint rebuilds the residual predictor
