"""``retarget train`` end to end through the CLI on two tiny generated datasets."""

from __future__ import annotations

import json

import pytest
from helpers import write_frames
from typer.testing import CliRunner

from retarget.cli import app
from retarget.device import precision_name, resolve_amp
from retarget.run import checkpoint as ckpt
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
    result, text = run(
        *data,
        "--out",
        str(out),
        *TINY,
        "--steps",
        "4",
        "--checkpoint-every",
        "2",
        "--preview-every",
        "2",
        "--log-every",
        "1",
    )
    assert result.exit_code == 0, text
    used = resolve_amp("auto", "cpu", width=8)  # the tiny preset (8 filters): float32 on a CPU
    assert "trained 4 steps" in text and f"it/s, {precision_name(used)}) into" in text
    assert ckpt.checkpoint_steps(out) == [2, 4]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4
    assert sorted(p.name for p in (out / "previews").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]
    assert (out / "loss_curve.png").stat().st_size > 1000
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["ngf"] == 8 and cfg["steps"] == 4 and cfg["preset"] == "tiny"
    assert cfg["amp"] == "auto" and cfg["amp_used"] == used  # the option as given, and what it meant here
    # again without --resume/--overwrite: one line, non-zero exit
    result, text = run(*data, "--out", str(out), *TINY, "--steps", "4")
    assert result.exit_code != 0 and "already holds a run" in text and "Traceback" not in text
    assert f"retarget train --resume {out}" in text
    # datasets and options from the run; the precision may change on resume (another machine)
    result, text = run("--resume", str(out), "--steps", "6", "--amp", "off")
    assert result.exit_code == 0, text
    assert load_run(str(out), "cpu").step == 6 and "it/s, fp32) into" in text
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["pool"] == 4 and cfg["amp"] == cfg["amp_used"] == "off"  # not overwritten with defaults


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
        extra = ["--resume", str(tmp_path / "r"), "--ngf", "4"]
    result, text = run(a, b, "--out", str(tmp_path / "r"), *TINY, "--steps", "2", *extra)
    assert result.exit_code != 0
    message = {
        "missing": "not found",
        "empty": "no images",
        "short": "at least 3 consecutive frames",
        "arch": "--ngf 4: the run in",
    }[case]
    assert message in text and "Traceback" not in text
    assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.parametrize(
    "flag,value",
    [("--beta1", "1"), ("--beta2", "1"), ("--lr", "0")],
)
def test_train_cli_refuses_options_adam_would_reject(data, tmp_path, flag, value):
    result, text = run(*data, "--out", str(tmp_path / "r"), *TINY, "--steps", "1", flag, value)
    assert result.exit_code == 2 and f"{flag} {value}: must be" in text and "Traceback" not in text
    assert not (tmp_path / "r").exists()


def test_train_library_refuses_beta_one_with_one_line(data, tmp_path):
    from retarget.config import TrainConfig, model_preset
    from retarget.errors import RetargetError
    from retarget.train import train

    cfg = TrainConfig(
        *data,
        out=str(tmp_path / "r"),
        preset="tiny",
        model=model_preset("tiny", size=32),
        device="cpu",
        steps=1,
        beta2=1.0,
    )
    with pytest.raises(RetargetError, match="--beta2 1: must be at least 0 and below 1"):
        train(cfg)
    assert not (tmp_path / "r").exists()


def test_resume_refuses_other_options_and_needs_a_checkpoint(data, tmp_path):
    out = tmp_path / "r"
    result, text = run(*data, "--out", str(out), *TINY, "--steps", "2", "--seed", "5", "--lr", "0.0003")
    assert result.exit_code == 0, text
    for flag, value in (("--seed", "6"), ("--lr", "0.001"), ("--pool", "2"), ("--preset", "default")):
        result, text = run("--resume", str(out), "--steps", "3", flag, value)
        assert result.exit_code == 1 and f"error: {flag} {value}: the run in {out} was trained with" in text, text
    result, text = run(
        "--resume",
        str(out),
        "--steps",
        "3",
        "--seed",
        "5",
        "--threads",
        "1",
        "--keep",
        "0",
        "--checkpoint-every",
        "1",
        "--device",
        "cpu",
        *data,
    )  # same values, or run control: fine
    assert result.exit_code == 0, text
    assert ckpt.checkpoint_steps(out) == [3]
    (tmp_path / "empty").mkdir()
    result, text = run("--resume", str(tmp_path / "empty"))
    assert result.exit_code == 1 and "nothing to resume" in text and "without --resume" in text
    result, text = run("--out", str(out))
    assert result.exit_code == 2 and "A_DIR and B_DIR" in text


def test_sigterm_saves_exits_143_and_resume_continues(data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "retarget",
        "train",
        *data,
        "--out",
        str(out),
        *TINY,
        "--steps",
        "100000",
        "--checkpoint-every",
        "100000",
        "--log-every",
        "1",
        "--preview-frames",
        "0",
        "--threads",
        "1",
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, output
    assert "stopped by SIGTERM at step" in output and f"retarget train --resume {out}" in output
    steps = ckpt.checkpoint_steps(out)
    assert len(steps) == 1 and steps[0] >= 2
    result, text = run("--resume", str(out), "--steps", str(steps[0] + 2))
    assert result.exit_code == 0, text
    assert ckpt.checkpoint_steps(out)[-1] == steps[0] + 2


@pytest.mark.parametrize(
    "how, code",
    [
        ("sigint", 130),
        ("sigterm", 143),
        ("callback", 130),
        ("hard-sigterm", 143),
        ("hard-sigint", 130),
        ("finished", 0),
    ],
)
def test_exit_status_says_how_training_stopped(data, tmp_path, monkeypatch, how, code):
    import signal

    import retarget.train.launch as launch
    from retarget.train.distributed import HardInterrupt
    from retarget.train.launch import TrainResult

    def fake(cfg):
        if how.startswith("hard"):  # a second signal during the final save
            raise HardInterrupt(signal.SIGTERM if how.endswith("sigterm") else signal.SIGINT)
        sig = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}.get(how)
        return TrainResult(tmp_path, 3, interrupted=how != "finished", signal=sig)

    monkeypatch.setattr(launch, "train", fake)
    result, text = run(*data, "--out", str(tmp_path / "r"), *TINY)
    assert result.exit_code == code, text


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
