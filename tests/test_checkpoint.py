"""Weights, training state and load_run of retarget.run."""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np
import pytest
import torch

from retarget.config import TrainConfig, model_preset, to_json
from retarget.errors import RetargetError
from retarget.nn.networks import build_networks
from retarget.run import checkpoint as ckpt
from retarget.run import layout, load_run


def tiny(model: str = "recycle", **kw):
    return model_preset("tiny", model=model, size=32, **kw)


def make_run(folder, cfg=None, data=None):
    cfg = cfg or tiny()
    torch.manual_seed(1)
    nets = build_networks(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.save_weights(folder / layout.WEIGHTS, nets, cfg, 7, data or {"A": {"align": "face", "size": 32}})
    return nets


@pytest.mark.kernels
def test_weights_round_trip_rebuilds_networks(tmp_path):
    nets = make_run(tmp_path / "run")
    (tmp_path / "run" / layout.CONFIG).write_text(to_json(TrainConfig("a", "b", model=tiny(), steps=9)))
    run = load_run(tmp_path / "run", "cpu")
    assert run.model_cfg == tiny() and run.step == 7 and run.train_cfg.steps == 9
    assert run.data["A"].align == "face"
    assert set(run.networks) == set(nets)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for name in ("G_AB", "G_BA"):
        assert not run.networks[name].training
        # the same weights on the same input: equal but for last bits (1e-5 relative), which a
        # weight lost or changed in the round trip would exceed by far
        assert torch.allclose(run.networks[name](x), nets[name].eval()(x))
    only = load_run(tmp_path / "run" / layout.WEIGHTS, "cpu", names=("G_AB",))
    assert list(only.networks) == ["G_AB"] and only.train_cfg is not None


def test_newest_run_is_the_default(tmp_path, monkeypatch):
    make_run(tmp_path / "models" / "old")
    make_run(tmp_path / "models" / "new", tiny("cyclegan"))
    past = time.time() - 100
    os.utime(tmp_path / "models" / "old" / layout.WEIGHTS, (past, past))
    monkeypatch.chdir(tmp_path)
    run = load_run(None, "cpu")
    assert run.run_dir.name == "new" and run.model_cfg.model == "cyclegan" and "P_A" not in run.networks
    with pytest.raises(RetargetError, match="P_A are not part of a cyclegan model"):
        load_run(None, "cpu", names=("G_AB", "P_A"))


def test_load_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RetargetError, match="no trained run found"):
        load_run(None, "cpu")
    with pytest.raises(RetargetError, match="model not found"):
        load_run(tmp_path / "nope", "cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RetargetError, match="not a run folder"):
        load_run(tmp_path / "empty", "cpu")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(RetargetError, match="not a readable safetensors"):
        load_run(tmp_path / "junk.safetensors", "cpu")


def test_incompatible_weights(tmp_path):
    make_run(tmp_path / "run")
    meta, tensors = ckpt.read_weights(tmp_path / "run" / layout.WEIGHTS)
    with pytest.raises(RetargetError, match="do not fit network G_AB") as err:
        ckpt.load_into(build_networks(tiny(ngf=16)), tensors, "w.safetensors")
    assert "\n" not in str(err.value)
    # a file claiming another architecture than its tensors
    from safetensors.torch import save_file

    meta["model_config"] = to_json(tiny(blocks=3))
    save_file(tensors, str(tmp_path / "lie.safetensors"), metadata=meta)
    with pytest.raises(RetargetError, match="do not fit"):
        load_run(tmp_path / "lie.safetensors", "cpu")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(RetargetError, match="not a retarget checkpoint"):
        load_run(tmp_path / "other.safetensors", "cpu")


def test_rng_state_round_trip(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    torch.save({"rng": ckpt.rng_state(), "step": 3}, tmp_path / "s.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    state = ckpt.load_state(tmp_path / "s.pt")
    ckpt.set_rng_state(state["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and got[3] == expected[3] and state["step"] == 3


class FakeCuda:
    """torch.cuda of a machine with ``count`` GPUs, this process on GPU ``current``; each GPU has its own RNG state."""

    def __init__(self, monkeypatch, count: int, current: int = 0) -> None:
        self.states = {i: torch.full((16,), i, dtype=torch.uint8) for i in range(count)}
        self.current = current
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": self.states[self.current].clone())
        monkeypatch.setattr(torch.cuda, "set_rng_state", self._set)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("every GPU's state was read"))
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: pytest.fail("every GPU's state was set"))

    def _set(self, state, device="cuda"):
        self.states[self.current] = state.clone()


@pytest.mark.parametrize("saved_on,resumed_on", [((8, 5), (1, 0)), ((1, 0), (8, 3)), ((2, 1), (2, 1))])
def test_cuda_rng_of_the_current_gpu_only_resumes_on_another_gpu_count(tmp_path, monkeypatch, saved_on, resumed_on):
    before = FakeCuda(monkeypatch, *saved_on)
    before.states[saved_on[1]] = torch.arange(16, dtype=torch.uint8) * 3  # this rank's generator, advanced
    torch.save({"rng": ckpt.rng_state()}, tmp_path / "s.pt")
    state = ckpt.load_state(tmp_path / "s.pt")
    assert torch.equal(state["rng"]["cuda"], before.states[saved_on[1]])  # one state, not one per GPU
    after = FakeCuda(monkeypatch, *resumed_on)
    ckpt.set_rng_state(state["rng"])
    assert torch.equal(after.states[resumed_on[1]], torch.arange(16, dtype=torch.uint8) * 3)


def test_old_checkpoints_with_every_gpus_rng_state_still_load(monkeypatch):
    old = [torch.full((16,), 10 + i, dtype=torch.uint8) for i in range(4)]  # get_rng_state_all of 4 GPUs
    base = ckpt.rng_state()
    cuda = FakeCuda(monkeypatch, 4, current=2)
    ckpt.set_rng_state({**base, "cuda": old})
    assert torch.equal(cuda.states[2], old[2])  # the current GPU's entry
    cuda = FakeCuda(monkeypatch, 1, current=0)  # resumed on one GPU, or per-rank CUDA_VISIBLE_DEVICES
    ckpt.set_rng_state({**base, "cuda": old})
    assert torch.equal(cuda.states[0], old[0])
    cuda = FakeCuda(monkeypatch, 8, current=6)  # more GPUs than were saved: the first entry
    ckpt.set_rng_state({**base, "cuda": old[:2]})
    assert torch.equal(cuda.states[6], old[0])


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_state_never_unpickles_objects(tmp_path):
    torch.save({"step": 1, "x": Evil()}, tmp_path / "state.pt")
    with pytest.raises(RetargetError, match="unreadable training state"):
        ckpt.load_state(tmp_path / "state.pt")
    with pytest.raises(RetargetError, match="training state not found"):
        ckpt.load_state(tmp_path / "missing.pt")


def test_weights_are_written_atomically(tmp_path, monkeypatch):
    nets = make_run(tmp_path / "run")
    before = (tmp_path / "run" / layout.WEIGHTS).read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_weights(tmp_path / "run" / layout.WEIGHTS, nets, tiny(), 8)
    assert (tmp_path / "run" / layout.WEIGHTS).read_bytes() == before
    assert [p.name for p in (tmp_path / "run").iterdir()] == [layout.WEIGHTS]
    assert json.loads(ckpt.read_weights(tmp_path / "run" / layout.WEIGHTS)[0]["step"]) == 7


def test_old_runs_keep_their_data_info_beside_the_weights(tmp_path):
    import json

    cfg = tiny()
    nets = build_networks(cfg)
    (tmp_path / "run").mkdir()
    ckpt.save_weights(tmp_path / "run" / layout.WEIGHTS, nets, cfg, 3)  # no data in the metadata
    old = {"A": {"align": "face", "size": 32, "face": {"margin": 0.3}, "crop": [1, 2, 30, 30], "name": "a"}}
    (tmp_path / "run" / layout.DATA).write_text(json.dumps(old))
    info = load_run(tmp_path / "run", "cpu").data["A"]
    assert info.align == "face" and info.face.margin == 0.3 and info.crop == (1, 2, 30, 30)
    assert info.cut_threshold is None and info.scene_threshold() == 0.5  # dataset gone: extract's default


def test_data_info_round_trips_through_the_weights_metadata(tmp_path):
    from retarget.config import FaceConfig
    from retarget.run import DataInfo

    info = DataInfo("face", 32, FaceConfig(margin=0.2), (0, 0, 10, 10), 0.4, "a", "/x", 9)
    make_run(tmp_path / "run", data={"A": info, "B": DataInfo()})
    loaded = load_run(tmp_path / "run", "cpu").data
    assert loaded["A"] == info and loaded["B"] == DataInfo()


def test_importing_render_does_not_load_the_trainer():
    import subprocess
    import sys

    code = (
        "import sys, retarget.render.render, retarget.run; "
        "bad = [m for m in sys.modules if m.startswith(('retarget.train', 'retarget.nn.step', 'retarget.nn.objectives'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# --- checkpoint folders: all or nothing --------------------------------------------------


def _save(run, step, nets, extra=None):
    state = {"step": step, "moments": torch.full((50_000,), float(step))}
    return ckpt.write_checkpoint(run, step, nets, tiny(), state, {"A": {"align": "none"}})


def _assert_resumable(run, step=None):
    latest = ckpt.latest_checkpoint(run)
    assert latest is not None
    meta, _ = ckpt.read_weights(latest / layout.WEIGHTS)
    state = ckpt.load_state(latest / layout.STATE)
    assert int(meta["step"]) == state["step"] and torch.all(state["moments"] == state["step"])
    if step is not None:
        assert state["step"] == step
    assert load_run(run).step == state["step"]


def test_checkpoint_steps_and_latest(tmp_path):
    run = tmp_path / "run"
    assert ckpt.checkpoint_steps(run) == [] and ckpt.latest_checkpoint(run) is None and not ckpt.is_run(run)
    nets = build_networks(tiny())
    for step in (5, 10, 15):
        assert _save(run, step, nets) == run / "checkpoints" / f"step_{step:07d}"
    (run / "checkpoints" / "step_0000020").mkdir()  # a folder without its files is not a checkpoint
    (run / "checkpoints" / "notes").mkdir()
    assert (
        ckpt.checkpoint_steps(run) == [5, 10, 15]
        and ckpt.latest_checkpoint(run) == run / "checkpoints" / "step_0000015"
    )
    assert ckpt.prune_checkpoints(run, keep=1) == [5] and ckpt.checkpoint_steps(run) == [10, 15]
    _save(run, 15, nets)  # the same step again replaces it whole
    assert ckpt.checkpoint_steps(run) == [10, 15]
    _assert_resumable(run, 15)


@pytest.mark.parametrize("fault", ["weights-half-written", "between-the-files", "state-half-written", "before-rename"])
def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch, fault):
    import errno

    run = tmp_path / "run"
    nets = build_networks(tiny())
    _save(run, 1, nets)
    real_file, real_state, real_replace = ckpt.save_file, ckpt._torch_save, os.replace

    def half_file(tensors, path, metadata=None):
        real_file(tensors, path, metadata=metadata)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    def half_state(obj, path):
        real_state(obj, path)
        with open(path, "r+b") as f:
            f.truncate(100)
        raise KeyboardInterrupt  # a kill while state.pt is written

    def no_rename(src, dst):
        if os.path.basename(dst).startswith("step_"):
            raise KeyboardInterrupt  # stopped between the last write and the switch
        real_replace(src, dst)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    patches = {
        "weights-half-written": (ckpt, "save_file", half_file),
        "between-the-files": (ckpt, "_torch_save", interrupted),
        "state-half-written": (ckpt, "_torch_save", half_state),
        "before-rename": (os, "replace", no_rename),
    }
    monkeypatch.setattr(*patches[fault])
    with pytest.raises((KeyboardInterrupt, RetargetError)):
        _save(run, 2, nets)
    monkeypatch.undo()
    assert ckpt.checkpoint_steps(run) == [1]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_0000001"]  # the temporary folder is gone
    _assert_resumable(run, 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_at_any_moment_of_a_save_leaves_a_resumable_run(tmp_path):
    import signal

    from retarget.atomic import remove_stale_temps

    run = tmp_path / "run"
    nets = build_networks(tiny())
    _save(run, 0, nets)
    t0 = time.perf_counter()
    _save(run, 1, nets)
    ckpt.prune_checkpoints(run, keep=1)
    save_time = time.perf_counter() - t0
    rng = random.Random(0)
    for kill in range(10):
        pid = os.fork()
        if pid == 0:  # the child saves (and prunes) checkpoints in a loop until it is killed
            try:
                step = ckpt.checkpoint_steps(run)[-1] + 1
                while True:
                    _save(run, step, nets)
                    ckpt.prune_checkpoints(run, keep=1)
                    step += 1
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, 3 * save_time) + (0.05 if kill % 3 == 0 else 0))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        _assert_resumable(run)
    remove_stale_temps(run / "checkpoints")  # what the next start does
    names = [p.name for p in (run / "checkpoints").iterdir()]
    assert names and all(n.startswith("step_") for n in names), names
    _assert_resumable(run)
