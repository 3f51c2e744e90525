"""`retarget runs` tells the truth: a run whose config.json or newest checkpoint does not load is "damaged"."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest
from helpers import write_frames
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import TrainConfig, model_preset
from retarget.run import checkpoint as ckpt
from retarget.run import layout
from retarget.train import train
from retarget.views.runs import describe_run, is_resumable, run_problem


@pytest.fixture(scope="module")
def sound(tmp_path_factory) -> Path:
    """A finished 2-step run with its checkpoint."""
    tmp = tmp_path_factory.mktemp("damaged")
    a, b = write_frames(tmp / "faces", 6, size=36), write_frames(tmp / "cats", 6, size=36, start=9)
    base = dict(preset="tiny", pool=0, preview_every=100, preview_frames=0, log_every=1, device="cpu")
    cfg = TrainConfig(str(a), str(b), out=str(tmp / "run"), steps=2, model=model_preset("tiny", size=32), **base)
    train(cfg)
    return tmp / "run"


def _newest(run: Path, name: str) -> Path:
    return ckpt.latest_checkpoint(run) / name


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _set_config(run: Path, **values) -> None:
    data = json.loads((run / layout.CONFIG).read_text())
    data.update(values)
    (run / layout.CONFIG).write_text(json.dumps(data))


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "weights cut short": (lambda r: _cut(_newest(r, layout.WEIGHTS)), "weights.safetensors"),
    "weights garbage": (lambda r: _newest(r, layout.WEIGHTS).write_bytes(os.urandom(4000)), "weights.safetensors"),
    "state cut short": (lambda r: _cut(_newest(r, layout.STATE)), "state.pt: unreadable"),
    "state garbage": (lambda r: _newest(r, layout.STATE).write_bytes(b"\x00" * 300), "state.pt: unreadable"),
    "config not json": (lambda r: (r / layout.CONFIG).write_text('{"steps": 2,'), "config.json"),
    "config wrong type": (lambda r: _set_config(r, steps="many"), "steps: expected an integer"),
    "config list": (lambda r: _set_config(r, seed=[1, 2]), "seed: expected an integer"),
    "config missing": (lambda r: (r / layout.CONFIG).unlink(), "config.json missing"),
    "another architecture": (lambda r: _set_config(r, model={"size": 64}), "another architecture"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_run_is_neither_resumable_nor_finished(sound, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(sound, run)
    assert run_problem(run) is None and describe_run(run).state == "finished"
    spoil, says = DAMAGES[damage]
    spoil(run)
    row = describe_run(run)
    assert (row.state, row.resumable) == ("damaged", False)
    assert says in row.problem and "\n" not in row.problem and str(tmp_path) not in row.problem
    assert not is_resumable(run)


def test_the_table_and_json_say_why(sound, tmp_path):
    shutil.copytree(sound, tmp_path / "good")
    shutil.copytree(sound, tmp_path / "bad")
    _cut(_newest(tmp_path / "bad", layout.WEIGHTS))
    runner = CliRunner()
    rows = {r["name"]: r for r in json.loads(runner.invoke(app, ["runs", str(tmp_path), "--json"]).output)}
    assert rows["good"]["state"] == "finished" and rows["good"]["problem"] is None
    assert rows["bad"]["state"] == "damaged" and rows["bad"]["resumable"] is False
    table = runner.invoke(app, ["runs", str(tmp_path)])
    bad = next(line for line in table.output.splitlines() if line.startswith("bad"))
    assert "damaged: checkpoints/step_0000002/weights.safetensors" in bad and "resumable" not in bad


def test_a_run_without_checkpoint_is_damaged_only_by_its_config(sound, tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    shutil.copy(sound / layout.CONFIG, run / layout.CONFIG)
    assert describe_run(run).state == "no checkpoint" and run_problem(run) is None
    _set_config(run, model="big")
    assert describe_run(run).state == "damaged" and "model: expected a JSON object" in run_problem(run)
