"""Resuming a run refuses, in one line, what its config.json, its data paths or --steps would crash on."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import write_frames, tiny_train_config
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import EnhancerConfig, ModelConfig, TrainConfig, from_dict, model_preset, replace, to_dict
from retarget.errors import RetargetError
from retarget.run import layout
from retarget.train import train
from retarget.train.data import _cache_key
from retarget.train.resume import resume_config


def _config(tmp_path: Path, out: Path, **kw) -> TrainConfig:
    return tiny_train_config(tmp_path, out, **kw)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished 3-step run (copied by tests that damage it)."""
    tmp = tmp_path_factory.mktemp("resume")
    train(_config(tmp, tmp / "run", steps=3))
    return tmp / "run"


def _copy(run: Path, dest: Path, **edits) -> Path:
    """A copy of ``run`` whose config.json has ``edits`` (``"model.size"`` reaches into the nested config)."""
    shutil.copytree(run, dest)
    data = json.loads((dest / layout.CONFIG).read_text())
    for key, value in edits.items():
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    (dest / layout.CONFIG).write_text(json.dumps(data))
    return dest


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("model.size", "abc", "expected an integer, got 'abc'"),
        ("steps", [5], "expected an integer, got [5]"),
        ("lr", "fast", "expected a number"),
        ("flip", 1, "expected true or false"),
        ("amp", "fp8", "'fp8' is not one of auto, bf16, fp16, off"),
        ("model", 7, "expected a JSON object"),
        ("more", "x", "expected a list"),
    ],
)
def test_a_wrong_typed_value_in_config_json_is_one_line_naming_file_and_key(run, tmp_path, key, value, says):
    bad = _copy(run, tmp_path / "bad", **{key: value})
    with pytest.raises(RetargetError) as err:
        resume_config(bad, steps=4)
    line = str(err.value)
    assert line.startswith(f"{bad / layout.CONFIG}: ") and f"{key}: {says}" in line and "\n" not in line
    out = CliRunner().invoke(app, ["train", "--resume", str(bad)])
    assert out.exit_code == 1 and f"{key}: " in out.output and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_from_dict_checks_types_converts_lists_and_keeps_unknown_keys_ignored():
    good = to_dict(TrainConfig("a", "b", more=("c",), model=model_preset("tiny", size=32)))
    good["from_the_future"] = {"x": 1}
    good["model"]["size"] = 32.0  # an integral float is an integer
    back = from_dict(TrainConfig, good)
    assert back.more == ("c",) and back.model.size == 32 and isinstance(back.model.size, int)
    assert from_dict(ModelConfig, {"model": "cyclegan"}).model == "cyclegan"  # a field named like a nested config
    for data, says in [
        ({"b_dir": "b"}, "a_dir: missing"),
        ({"a_dir": "a", "b_dir": "b", "model": {"size": 32.5}}, "model.size: expected an integer, got 32.5"),
        ({"a_dir": None, "b_dir": "b"}, "a_dir: expected a string, got null"),
        ({"a_dir": "a", "b_dir": "b", "time_limit": "soon"}, "time_limit: expected a number"),
    ]:
        with pytest.raises(ValueError, match=f"^{says}"):
            from_dict(TrainConfig, data)
    assert from_dict(TrainConfig, {"a_dir": "a", "b_dir": "b", "time_limit": None}).time_limit is None
    with pytest.raises(ValueError, match="scale: expected an integer"):
        from_dict(EnhancerConfig, {"data": "d", "scale": "4"})


def test_resume_with_steps_below_the_current_step_is_refused(run, tmp_path):
    with pytest.raises(RetargetError) as err:
        resume_config(run, steps=2)
    assert str(err.value).startswith("--steps 2: the run is already at step 3")
    direct = replace(layout.read_train_config(run), steps=2, resume=True)
    with pytest.raises(RetargetError, match="^--steps 2: the run is already at step 3"):
        train(direct)  # a library caller's TrainConfig(resume=True) is checked the same way
    out = CliRunner().invoke(app, ["train", "--resume", str(run), "--steps", "1"])
    assert out.exit_code == 1 and "--steps 1: the run is already at step 3" in out.output
    assert "trained" not in out.output
    assert resume_config(run, steps=3).steps == 3  # the step it is at: nothing left to do, not refused


def test_a_dataset_path_that_is_not_utf8_trains(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9"
    write_frames(tmp_path / "tmp", 6, size=36)
    os.rename(os.fsencode(tmp_path / "tmp"), raw)
    a = Path(os.fsdecode(raw))
    files = sorted(a.iterdir())
    assert _cache_key(files, 36, False) != _cache_key(files, 40, False)
    b = write_frames(tmp_path / "cats", 6, size=36, start=9)
    cfg = replace(_config(tmp_path, tmp_path / "run", steps=2), a_dir=str(a), b_dir=str(b))
    for cache in ("memory", "mmap"):
        result = train(replace(cfg, cache=cache, out=str(tmp_path / cache)))
        assert result.steps == 2
    assert resume_config(tmp_path / "mmap", steps=3).a_dir == str(a)
