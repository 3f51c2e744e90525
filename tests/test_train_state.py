"""Training state on disk: step folders, --keep, old-layout runs, full disks, runs killed early."""

from __future__ import annotations

import errno
import json
import shutil

import pytest
import torch
from helpers import write_frames

from retarget.config import TrainConfig, model_preset, replace
from retarget.errors import RetargetError
from retarget.run import checkpoint as ckpt
from retarget.run import layout
from retarget.run import load_run
from retarget.train import train
from retarget.train.resume import resume_config


@pytest.fixture
def domains(tmp_path):
    return str(write_frames(tmp_path / "faces", 8, size=36)), str(write_frames(tmp_path / "cats", 7, size=36, start=9))


def config(domains, out, **kw):
    base = dict(
        preset="tiny",
        steps=6,
        pool=2,
        checkpoint_every=100,
        preview_every=100,
        log_every=1,
        device="cpu",
        seed=3,
        preview_frames=0,
    )
    base.update(kw)
    return TrainConfig(*domains, out=str(out), model=model_preset("tiny", size=32), **base)


def stop_at(step):
    def hook(done, losses):
        if done == step:
            raise KeyboardInterrupt  # what the trainer does on Ctrl-C

    return hook


def test_keep_prunes_older_checkpoints_and_render_can_pick_one(domains, tmp_path):
    run = tmp_path / "run"
    train(config(domains, run, steps=5, checkpoint_every=1, keep=2))
    assert ckpt.checkpoint_steps(run) == [3, 4, 5]
    assert ckpt.latest_checkpoint(run) == layout.checkpoint_dir(run, 5)
    assert load_run(run).step == 5 and load_run(run, step=3).step == 3
    assert load_run(run, step=4).run_dir == run and load_run(run, step=4).train_cfg.keep == 2
    with pytest.raises(RetargetError, match=r"no checkpoint of step 1 \(checkpoints kept: 3, 4, 5\)"):
        load_run(run, step=1)
    resumed = train(resume_config(run, steps=7, keep=0))
    assert resumed.steps == 7 and ckpt.checkpoint_steps(run) == [7]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_folder_without_a_complete_checkpoint_is_not_a_run(domains, tmp_path):
    run = tmp_path / "run"

    def crash(done, losses):
        if done == 2:
            raise RuntimeError("killed")  # stands for a kill before the first checkpoint

    with pytest.raises(RuntimeError):
        train(config(domains, run, checkpoint_every=100), on_step=crash)
    assert (run / "config.json").exists() and ckpt.latest_checkpoint(run) is None
    with pytest.raises(RetargetError, match="nothing to resume .*run it again without --resume"):
        train(resume_config(run))
    result = train(config(domains, run, steps=2))  # no --overwrite needed
    assert result.steps == 2 and ckpt.checkpoint_steps(run) == [2]


def test_a_failed_start_leaves_no_run_folder(domains, tmp_path):
    few = write_frames(tmp_path / "few", 2)
    with pytest.raises(RetargetError, match="at least 3 consecutive frames"):
        train(replace(config(domains, tmp_path / "new" / "run"), b_dir=str(few)))
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(RetargetError):
        train(replace(config(domains, tmp_path / "mine" / "run"), b_dir=str(few)))
    assert (tmp_path / "mine").is_dir() and not (tmp_path / "mine" / "run").exists()  # only what it made


def _to_old_layout(run):
    """Turn a run into the layout of earlier versions: both files in the run folder."""
    latest = ckpt.latest_checkpoint(run)
    for name in (layout.WEIGHTS, layout.STATE):
        shutil.move(str(latest / name), str(run / name))
    shutil.rmtree(run / "checkpoints")


@pytest.mark.kernels
def test_runs_of_the_old_layout_load_and_resume(domains, tmp_path):
    train(config(domains, tmp_path / "full", steps=4))
    run = tmp_path / "old"
    train(config(domains, run, steps=4), on_step=stop_at(2))
    _to_old_layout(run)
    assert ckpt.checkpoint_steps(run) == [] and ckpt.latest_checkpoint(run) == run and ckpt.is_run(run)
    assert load_run(run).step == 2 and load_run(run).path == run / layout.WEIGHTS
    with pytest.raises(RetargetError, match="already holds a run"):
        train(config(domains, run, steps=4))
    resumed = train(resume_config(run, keep=0))
    assert resumed.steps == 4 and ckpt.checkpoint_steps(run) == [4]
    assert not (run / layout.WEIGHTS).exists() and not (run / layout.STATE).exists()  # superseded, pruned
    a = ckpt.read_weights(ckpt.latest_checkpoint(tmp_path / "full") / layout.WEIGHTS)[1]
    b = ckpt.read_weights(ckpt.latest_checkpoint(run) / layout.WEIGHTS)[1]
    # 4 Adam steps of lr 2e-4 moved weights by up to 8e-4: 1e-5 tells a lost or redone step from the
    # last bits that a resumed process's kernels may change
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)


@pytest.mark.parametrize("where", ["weights", "state"])
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last(domains, tmp_path, monkeypatch, where):
    from safetensors import SafetensorError

    calls = {"n": 0}

    def full(*a, **k):
        calls["n"] += 1
        if calls["n"] >= 2:  # the first checkpoint fits, the second does not
            if where == "weights":
                raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    target = "save_file" if where == "weights" else "_torch_save"
    real = getattr(ckpt, target)
    monkeypatch.setattr(ckpt, target, full)
    run = tmp_path / "run"
    name = "weights.safetensors" if where == "weights" else "state.pt"
    with pytest.raises(RetargetError) as err:
        train(config(domains, run, checkpoint_every=2))
    text = str(err.value)
    assert "\n" not in text and f"step_0000004/{name}: cannot write: no space left on device" in text
    assert "the last complete checkpoint (step 2) is kept" in text
    assert ckpt.checkpoint_steps(run) == [2]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_0000002"]  # nothing half-written
    monkeypatch.setattr(ckpt, target, real)
    assert train(resume_config(run)).steps == 6


def test_a_fresh_start_in_a_foreign_folder_touches_none_of_its_files(domains, tmp_path):
    folder = tmp_path / "project"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "mine.txt").write_text("keep")
    (folder / "previews").mkdir()
    (folder / "previews" / "mine.png").write_bytes(b"keep")
    train(config(domains, folder, steps=1))
    assert (folder / "checkpoints" / "mine.txt").exists() and (folder / "previews" / "mine.png").exists()
    assert ckpt.checkpoint_steps(folder) == [1]


def test_resume_from_another_folder_finds_the_datasets(domains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = ("faces", "cats")  # the fixture's datasets, named relative to tmp_path
    train(config(rel, "run", steps=4), on_step=stop_at(2))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert train(resume_config(tmp_path / "run")).steps == 4


def test_a_full_disk_under_the_metrics_log_is_one_line(domains, tmp_path, monkeypatch):
    import retarget.train.hooks as hooks

    def full(run_dir, record):
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / layout.METRICS))

    monkeypatch.setattr(hooks, "append_metrics", full)
    with pytest.raises(RetargetError, match=r"metrics.jsonl: cannot write: no space left on device") as err:
        train(config(domains, tmp_path / "run"))
    assert "\n" not in str(err.value)


def test_configs_from_before_amp_auto_read_their_bf16_as_auto(tmp_path):
    # bf16 was the default then and applied on CUDA only: today that is auto (forced bf16
    # would run emulated on a CPU without native bf16); a recorded amp_used marks a new run.
    from retarget.train.resume import read_run_config

    (tmp_path / layout.CONFIG).write_text(json.dumps({"a_dir": "a", "b_dir": "b", "amp": "bf16"}))
    assert read_run_config(tmp_path).amp == "auto"
    (tmp_path / layout.CONFIG).write_text(json.dumps({"a_dir": "a", "b_dir": "b", "amp": "bf16", "amp_used": "bf16"}))
    assert read_run_config(tmp_path).amp == "bf16"
    (tmp_path / layout.CONFIG).write_text(json.dumps({"a_dir": "a", "b_dir": "b", "amp": "off"}))
    assert read_run_config(tmp_path).amp == "off"
