"""retarget.views.runs and `retarget runs`: runs listed with their progress, one finished, one interrupted."""

from __future__ import annotations

import json

import pytest
from test_train_data import write_frames
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import TrainConfig, model_preset
from retarget.errors import RetargetError
from retarget.train import train
from retarget.views.runs import checkpoint_step, format_age, is_resumable, list_runs


def _stop_at(step):
    def hook(done, losses):
        if done == step:
            raise KeyboardInterrupt

    return hook


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    a, b = str(write_frames(tmp / "faces", 8, size=36)), str(write_frames(tmp / "cats", 7, size=36, start=9))
    base = dict(preset="tiny", pool=0, checkpoint_every=100, preview_every=100, log_every=1, device="cpu")
    train(
        TrainConfig(
            a,
            b,
            out=str(tmp / "models" / "done"),
            steps=3,
            model=model_preset("tiny", model="cyclegan", size=32),
            **base,
        )
    )
    part = train(
        TrainConfig(a, b, out=str(tmp / "models" / "half"), steps=5, model=model_preset("tiny", size=32), **base),
        on_step=_stop_at(2),
    )
    assert part.interrupted
    (tmp / "models" / "notes").mkdir()  # not a run
    return tmp / "models"


def test_two_runs_listed_with_progress_and_state(models):
    rows = {r.name: r for r in list_runs(models)}
    assert set(rows) == {"done", "half"}
    done, half = rows["done"], rows["half"]
    assert (done.model, done.size, done.steps_done, done.steps_planned, done.state) == (
        "cyclegan",
        32,
        3,
        3,
        "finished",
    )
    assert (half.model, half.steps_done, half.steps_planned, half.state) == ("recycle", 2, 5, "stopped")
    assert half.resumable and is_resumable(models / "half") and checkpoint_step(models / "half") == 2
    metrics = [json.loads(x) for x in (models / "half" / "metrics.jsonl").read_text().splitlines()]
    assert half.loss_g == pytest.approx(metrics[-1]["loss/loss_G"]) and half.loss_d == pytest.approx(
        metrics[-1]["loss/loss_D"]
    )
    assert half.warp_error is None and 0 <= half.age_s < 600


def test_missing_checkpoint_and_warping_error(models, tmp_path):
    run = tmp_path / "broken"
    run.mkdir()
    (run / "config.json").write_text((models / "half" / "config.json").read_text())
    (run / "metrics.jsonl").write_text(json.dumps({"step": 7, "temporal/warp_error": 0.03}) + "\n{cut")
    (row,) = list_runs(tmp_path)
    assert (row.name, row.state, row.resumable, row.steps_done, row.warp_error) == (
        "broken",
        "no checkpoint",
        False,
        None,
        0.03,
    )
    with pytest.raises(RetargetError, match="no such folder"):
        list_runs(tmp_path / "nowhere")


def test_cli_table_and_json(models):
    runner = CliRunner()
    out = runner.invoke(app, ["runs", str(models), "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.output)}
    assert rows["half"]["steps_done"] == 2 and rows["half"]["resumable"] is True
    table = runner.invoke(app, ["runs", str(models)])
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split()[:5] == ["run", "model", "domains", "size", "steps"]
    half = next(line for line in lines if line.startswith("half"))
    assert "2 / 5" in half and "stopped (resumable)" in half and " faces,cats " in half
    assert rows["half"]["domains"] == ["faces", "cats"]  # a pair's: its dataset folders, A first
    assert runner.invoke(app, ["runs", str(models / "nowhere")]).exit_code != 0


def test_format_age():
    assert [format_age(s) for s in (5, 300, 7200, 5 * 86400)] == ["5 s", "5 min", "2.0 h", "5 d"]


def test_retarget_runs_loads_nothing_of_the_training_package(models):
    import subprocess
    import sys

    code = (
        "import sys; from retarget.cli import main\n"
        "try:\n"
        f"    main(['runs', {str(models)!r}, '--json'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "bad = sorted(m for m in sys.modules if m == 'retarget.train' or m.startswith('retarget.train.'))\n"
        "print('loaded:', bad, file=sys.stderr); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert {r["name"] for r in json.loads(out.stdout)} == {"done", "half"}  # it did list the runs
