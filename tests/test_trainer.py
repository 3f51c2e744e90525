"""The training run of retarget.train.launch: resume, interrupts, errors, both models."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from helpers import write_frames

from retarget.config import LossConfig, TrainConfig, model_preset, replace
from retarget.errors import RetargetError
from retarget.run import checkpoint as ckpt
from retarget.run import layout
from retarget.train import load_run, train
from retarget.train.loop import lr_factor
from retarget.train.resume import resume_config


@pytest.fixture
def domains(tmp_path):
    return str(write_frames(tmp_path / "faces", 8, size=36)), str(write_frames(tmp_path / "cats", 7, size=36, start=9))


def config(domains, out, model="recycle", **kw):
    base = dict(
        preset="tiny", steps=6, pool=2, checkpoint_every=100, preview_every=100, log_every=1, device="cpu", seed=3
    )
    base.update(kw)
    return TrainConfig(*domains, out=str(out), model=model_preset("tiny", model=model, size=32), **base)


def weights(run_dir):
    return ckpt.read_weights(ckpt.latest_checkpoint(run_dir) / layout.WEIGHTS)[1]


def state(run_dir):
    return ckpt.load_state(ckpt.latest_checkpoint(run_dir) / layout.STATE)


def stop_at(step):
    def hook(done, losses):
        if done == step:
            raise KeyboardInterrupt

    return hook


def test_lr_schedule():
    assert [lr_factor(s, 10, None) for s in (0, 4, 5, 6, 9, 10)] == pytest.approx([1, 1, 1, 0.8, 0.2, 0])
    assert lr_factor(3, 10, 2) == pytest.approx(0.875)


def test_run_folder_contents_and_every_network_changes(domains, tmp_path):
    cfg = config(domains, tmp_path / "run", steps=4, checkpoint_every=2, preview_every=2, log_every=2, pool=0)
    torch.manual_seed(cfg.seed)
    from retarget.nn.networks import build_networks

    initial = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in build_networks(cfg.model).items()}
    result = train(cfg)
    run = tmp_path / "run"
    assert result.steps == 4 and not result.interrupted and result.run_dir == run
    expected = {"config.json", "checkpoints", "metrics.jsonl", "loss_curve.png", "previews", "report.html"}
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        expected.add("tb")  # the optional TensorBoard logs
    assert {p.name for p in run.iterdir()} == expected
    assert ckpt.checkpoint_steps(run) == [2, 4]  # the newest and --keep 1 before it
    assert {p.name for p in (run / "checkpoints" / "step_0000004").iterdir()} == {"weights.safetensors", "state.pt"}
    assert sorted(p.name for p in (run / "previews").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]
    assert json.loads((run / "config.json").read_text())["steps"] == 4
    assert load_run(run).data["A"].align == "none"  # stored once, in the weights metadata
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]
    assert {"loss/A/cycle", "loss/B/recurrent", "loss/D_A/real", "lr", "it_s", "data_s"} <= set(lines[0])
    saved = weights(run)
    for name, sd in initial.items():  # the trainer initialises from the seed, then updates all
        assert all(saved[f"{name}.{k}"].shape == v.shape for k, v in sd.items())
        changed = any(not torch.equal(saved[f"{name}.{k}"], v) for k, v in sd.items())
        assert changed, f"{name} was not updated"


@pytest.mark.kernels
def test_resume_matches_uninterrupted_run(domains, tmp_path):
    # options other than the defaults: the resumed run must take them from the run folder
    full = train(config(domains, tmp_path / "full", seed=11, lr=3e-4, beta1=0.6))
    part = train(config(domains, tmp_path / "part", seed=11, lr=3e-4, beta1=0.6), on_step=stop_at(3))
    assert part.interrupted and part.steps == 3
    assert ckpt.read_weights(layout.checkpoint_dir(tmp_path / "part", 3) / layout.WEIGHTS)[0]["step"] == "3"
    resumed = train(resume_config(tmp_path / "part"))
    assert resumed.steps == 6 and full.steps == 6
    saved = json.loads((tmp_path / "part" / "config.json").read_text())
    assert (saved["seed"], saved["lr"], saved["beta1"]) == (11, 3e-4, 0.6)  # never overwritten with defaults
    a, b = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        # 6 Adam steps of lr 3e-4 moved each weight by up to 2e-3: 1e-5 tells a step replayed from one
        # lost or redone, and leaves room for a fresh process's other kernel choices (last bits)
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    steps = [json.loads(x)["step"] for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_ctrl_c_saves_and_says_how_to_resume(domains, tmp_path, capsys):
    def sigint(done, losses):
        if done == 2:
            os.kill(os.getpid(), signal.SIGINT)  # deferred by the trainer to the end of the step

    result = train(config(domains, tmp_path / "run", steps=5), on_step=sigint)
    assert result.interrupted and result.steps == 2 and result.signal == signal.SIGINT
    assert state(tmp_path / "run")["step"] == 2
    err = capsys.readouterr().err
    assert f"interrupted at step 2/5; checkpoint saved in {tmp_path / 'run'}" in err
    assert f"Resume with: retarget train --resume {tmp_path / 'run'}" in err.splitlines()[-1]  # one line, ready to copy


def test_sigterm_saves_like_ctrl_c(domains, tmp_path, capsys):
    def sigterm(done, losses):
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # deferred like Ctrl-C, instead of killing the process

    result = train(config(domains, tmp_path / "run", steps=5), on_step=sigterm)
    assert result.interrupted and result.steps == 2 and result.signal == signal.SIGTERM
    assert ckpt.checkpoint_steps(tmp_path / "run") == [2] and state(tmp_path / "run")["step"] == 2
    assert "stopped by SIGTERM at step 2/5" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone after the run


def test_second_ctrl_c_during_the_save_keeps_the_previous_checkpoint(domains, tmp_path, monkeypatch):
    from retarget.train.distributed import HardInterrupt

    def sigint(done, losses):
        if done == 3:
            os.kill(os.getpid(), signal.SIGINT)

    real = ckpt.save_weights

    def impatient(path, *a, **k):  # the user presses Ctrl-C again while the weights are written
        real(path, *a, **k)
        if "step_0000003" in str(path.parent) or ".step_0000003." in str(path.parent):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ckpt, "save_weights", impatient)
    with pytest.raises(HardInterrupt):
        train(config(domains, tmp_path / "run", steps=5, checkpoint_every=2), on_step=sigint)
    run = tmp_path / "run"
    assert ckpt.checkpoint_steps(run) == [2]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_0000002"]  # no half-written folder
    monkeypatch.setattr(ckpt, "save_weights", real)
    resumed = train(resume_config(run))
    assert resumed.steps == 5 and ckpt.checkpoint_steps(run) == [4, 5]


def test_non_finite_loss_stops_and_keeps_last_checkpoint(domains, tmp_path):
    def poison(done, losses):
        if done == 2:
            with torch.no_grad():
                next(result_nets["G_AB"].parameters()).fill_(float("nan"))

    import retarget.train.launch as launch

    result_nets = {}
    real_make = launch._make_step

    def spy(nets, *a):
        if not result_nets:  # the run's own networks (the forecast then times steps of copies)
            result_nets.update(nets)
        return real_make(nets, *a)

    launch._make_step = spy
    try:
        with pytest.raises(RetargetError, match=r"non-finite loss .* at step 3; .*last good checkpoint \(step 2\)"):
            train(config(domains, tmp_path / "run", checkpoint_every=2), on_step=poison)
    finally:
        launch._make_step = real_make
    saved = weights(tmp_path / "run")
    assert all(torch.isfinite(v).all() for v in saved.values())
    assert state(tmp_path / "run")["step"] == 2


def test_existing_run_and_incompatible_resume(domains, tmp_path):
    train(config(domains, tmp_path / "run", steps=1))
    with pytest.raises(
        RetargetError, match=f"already holds a run; continue it with `retarget train --resume {tmp_path}"
    ):
        train(config(domains, tmp_path / "run", steps=1))
    other = config(domains, tmp_path / "run", steps=2, resume=True)
    other = replace(other, model=replace(other.model, ngf=4))
    with pytest.raises(RetargetError, match=r"--ngf 4: the run in .* was trained with 8") as err:
        train(other)
    assert "\n" not in str(err.value)
    with pytest.raises(RetargetError, match="--seed 4: the run in .* was trained with 3"):
        train(replace(config(domains, tmp_path / "run", steps=2, resume=True), seed=4))
    with pytest.raises(RetargetError, match="--lr 0.1: the run in .* was trained with 0.0002"):
        resume_config(tmp_path / "run", steps=3, lr=0.1)
    with pytest.raises(RetargetError, match="B_DIR .* was trained with"):
        resume_config(tmp_path / "run", b_dir=domains[0])
    changed = resume_config(tmp_path / "run", steps=3, keep=4, device="cpu", threads=1, seed=3, b_dir=domains[1])
    assert (changed.steps, changed.keep, changed.threads, changed.resume, changed.out) == (
        3,
        4,
        1,
        True,
        str(tmp_path / "run"),
    )
    with pytest.raises(RetargetError, match="nothing to resume"):
        train(config(domains, tmp_path / "fresh", resume=True))
    again = train(config(domains, tmp_path / "run", steps=2, overwrite=True))
    assert again.steps == 2
    assert [p.name for p in (tmp_path / "run" / "previews").glob("*.png")] == ["step_0000002.png"]


def test_bad_size_and_bad_dataset_are_one_line(domains, tmp_path):
    with pytest.raises(RetargetError, match="--size 36"):
        train(replace(config(domains, tmp_path / "r"), model=model_preset("tiny", size=36)))
    (tmp_path / "file").write_text("x")
    with pytest.raises(RetargetError, match="is not a folder"):
        train(config(domains, tmp_path / "file"))
    few = write_frames(tmp_path / "few", 2)
    with pytest.raises(RetargetError, match="at least 3 consecutive frames"):
        train(replace(config(domains, tmp_path / "r"), b_dir=str(few)))


@pytest.mark.kernels
def test_cyclegan_trains_and_loads(domains, tmp_path):
    few = write_frames(tmp_path / "few", 2, size=36)  # single frames are enough for CycleGAN
    result = train(replace(config(domains, tmp_path / "cg", model="cyclegan", steps=3), b_dir=str(few)))
    assert result.steps == 3 and (tmp_path / "cg" / "previews" / "step_0000003.png").exists()
    lines = (tmp_path / "cg" / "metrics.jsonl").read_text().splitlines()
    assert "loss/A/identity" in json.loads(lines[-1]) and "loss/A/recurrent" not in json.loads(lines[-1])
    run = load_run(str(tmp_path / "cg"), "cpu")
    assert run.model_cfg.model == "cyclegan" and run.step == 3 and set(run.networks) == {"G_AB", "G_BA", "D_A", "D_B"}
    x = torch.zeros(1, 3, 32, 32)
    # the same weights, saved and loaded: 1e-6 (outputs in [-1, 1]) spares only the last bits of other kernels
    assert torch.allclose(run.networks["G_AB"](x), result.networks["G_AB"].eval()(x), atol=1e-6)
    assert run.data["B"].name == "few"


def test_default_run_dir_under_models(domains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = replace(config(domains, "x", steps=1), out=None)
    result = train(cfg)
    assert result.run_dir.as_posix() == "models/faces-to-cats"
    assert load_run(None, "cpu").run_dir.resolve() == (tmp_path / "models" / "faces-to-cats").resolve()


def test_mmap_cache_in_run_folder(domains, tmp_path):
    train(config(domains, tmp_path / "run", steps=1, cache="mmap"))
    assert (tmp_path / "run" / "cache_A.npy").exists() and (tmp_path / "run" / "cache_B.npy").exists()


def test_start_removes_temp_files_of_killed_runs_only(domains, tmp_path):
    import subprocess
    import sys

    from retarget.atomic import _HOST

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run = tmp_path / "run"
    (run / "previews").mkdir(parents=True)
    stale = [
        run / f".loss_curve.png.{proc.pid}-{_HOST}.a1b2c3d4.tmp.png",
        run / f".cache_A.npy.{proc.pid}-{_HOST}.a1b2c3d4.tmp.npy",
        run / "previews" / f".step_000010.png.{proc.pid}-{_HOST}.a1b2c3d4.tmp.png",
    ]
    kept = [run / f".state.pt.{os.getpid()}-{_HOST}.a1b2c3d4.tmp.pt", run / "notes.tmp"]
    for p in stale + kept:
        p.write_bytes(b"x")
    train(config(domains, run, steps=1))
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def fake_clock(monkeypatch, tick=0.25):
    """Drive the loop's clock: every reading advances ``tick`` s (4 readings a step: ~1 s a step)."""
    import itertools

    import retarget.train.loop as loop

    counter = itertools.count()
    monkeypatch.setattr(loop, "_now", lambda: next(counter) * tick)


def test_budget_lr_schedule():
    from retarget.train.loop import budget_lr_factor

    assert [budget_lr_factor(f) for f in (0, 0.5, 0.75, 1.0, 1.5)] == pytest.approx([1, 1, 0.5, 0, 0])
    assert budget_lr_factor(0.6, start=0.2) == pytest.approx(0.5)


def test_time_limit_stops_saves_and_resume_continues(domains, tmp_path, monkeypatch, capsys):
    fake_clock(monkeypatch)
    cfg = config(domains, tmp_path / "run", steps=50, time_limit=3.5)
    first = train(cfg)
    assert first.stopped and "time limit" in first.stopped and not first.interrupted
    assert 2 <= first.steps < 10  # about 1 s a step on the fake clock
    saved = state(tmp_path / "run")
    assert saved["step"] == first.steps and saved["elapsed"] >= 3.5  # checkpoint of the last step, with its clock
    assert "time limit of 3.5 s reached" in capsys.readouterr().err
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())]
    assert lrs[0] == pytest.approx(cfg.lr) and lrs[-1] < cfg.lr  # the LR decays over the budget, not the 50 steps
    # the same budget again: already spent, nothing more to do
    assert train(replace(cfg, resume=True)).steps == first.steps
    # a larger budget continues from the saved clock
    more = train(replace(cfg, resume=True, time_limit=7.5))
    assert first.steps < more.steps < 50 and "time limit" in more.stopped
    assert state(tmp_path / "run")["step"] == more.steps


def test_an_added_hook_runs_and_its_state_survives_a_resume(domains, tmp_path):
    from retarget.train.loop import Hook

    class CountHook(Hook):
        def __init__(self):
            self.calls, self.seen_dir = [], None

        def before_train(self, trainer):
            self.seen_dir = trainer.run_dir

        def after_step(self, trainer):
            assert set(trainer.nets) >= {"G_AB", "G_BA"} and trainer.losses
            self.calls.append(trainer.step)

        def state_dict(self):
            return {"calls": list(self.calls)}

        def load_state_dict(self, state):
            self.calls = list(state["calls"])

    hook = CountHook()
    train(config(domains, tmp_path / "run", steps=4), on_step=stop_at(2), hooks=[hook])
    assert hook.calls == [1, 2] and hook.seen_dir == tmp_path / "run"
    resumed = CountHook()
    train(config(domains, tmp_path / "run", steps=4, resume=True), hooks=[resumed])
    assert resumed.calls == [1, 2, 3, 4]  # the saved state came back, then steps 3 and 4


def test_temporal_preview_video_and_warping_error(domains, tmp_path, monkeypatch):
    import av
    import numpy as np

    import retarget.train.temporal_preview as tp
    from retarget.eval.temporal import warping_errors
    from retarget.train.data import default_load_size, load_domain

    # A tiny net's translation is nearly flat after 4 steps, and a flat clip has no motion to
    # follow; mix the clip's own texture and a fixed per-frame flicker into it, so that the
    # logged number depends on the translation and on the motion it is measured along.
    real_translate = tp.translate_clip

    def translate(net, clip, device):
        out = real_translate(net, clip, device).astype(np.int16)
        flicker = np.random.default_rng(0).integers(-20, 21, clip.shape)
        return np.clip(out // 2 + (255 - clip) // 2 + flicker, 0, 255).astype(np.uint8)

    monkeypatch.setattr(tp, "translate_clip", translate)
    train(config(domains, tmp_path / "run", steps=4, preview_every=2, log_every=3, preview_frames=5))
    previews = tmp_path / "run" / "previews"
    assert sorted(p.name for p in previews.glob("*.mp4")) == ["source.mp4", "step_0000002.mp4", "step_0000004.mp4"]
    for name in ("source.mp4", "step_0000004.mp4"):
        with av.open(str(previews / name)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            assert c.streams.video[0].codec_context.name == "h264"
        # a plain folder is read as whole frames: the clip is the whole 36 px frame, not a 32 px crop
        assert len(frames) == 5 and frames[0].shape == (36, 36, 3)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # log_every 3: steps 3 and 4 are due; step 2 is logged for its preview numbers
    assert [r["step"] for r in records] == [2, 3, 4]
    temporal = [r for r in records if "temporal/warp_error" in r]
    assert [r["step"] for r in temporal] == [2, 4]
    # the numbers: the warping error (0-255) of the clip as the step's G_AB translates it, along
    # the clip's own motion, beside the clip's own; recomputed from the saved step-4 weights
    clip = tp.preview_clip(load_domain(domains[0], default_load_size(32), frames_needed=3), 5, 32)
    g_ab = load_run(str(tmp_path / "run"), "cpu").networks["G_AB"]
    out = translate(g_ab, clip, torch.device("cpu"))
    own = float(np.nanmean(warping_errors(clip, clip)))
    assert [r["temporal/warp_error_source"] for r in temporal] == pytest.approx([own, own], rel=1e-6)
    expected = float(np.nanmean(warping_errors(out, clip)))
    assert temporal[1]["temporal/warp_error"] == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(float(np.nanmean(warping_errors(out, out))), rel=0.02)  # the motion matters


def test_preview_clip_is_the_middle_of_the_longest_segment():
    import numpy as np

    from retarget.run.info import DataInfo
    from retarget.train.data import DomainData, Shard
    from retarget.train.temporal_preview import preview_clip

    frames = np.arange(20, dtype=np.uint8)[:, None, None, None] * np.ones((1, 6, 8, 3), np.uint8)
    frames[:, 1:5, 2:6] += 100  # the centre 4x4 is marked
    domain = DomainData("d", "d", [Shard(frames)], [np.arange(0, 5), np.arange(5, 17), np.arange(17, 20)])
    clip = preview_clip(domain, 4, 4)
    assert clip.shape == (4, 4, 4, 3) and list(clip[:, 0, 0, 0]) == [109, 110, 111, 112] and (clip >= 100).all()
    assert len(preview_clip(domain, 48, 4)) == 12  # the whole segment when it is shorter
    whole = DomainData("d", "d", [Shard(frames)], domain.segments, DataInfo(frame="full"))
    assert preview_clip(whole, 4, 4).shape == (4, 6, 8, 3)  # whole frames stay whole


def test_a_preview_that_cannot_be_written_warns_and_training_goes_on(domains, tmp_path, monkeypatch, capsys):
    import retarget.train.preview as preview

    monkeypatch.setattr(preview.cv2, "imwrite", lambda *a, **k: False)  # e.g. the disk filled up
    result = train(config(domains, tmp_path / "run", steps=4, preview_every=2, preview_frames=0))
    assert result.steps == 4 and state(tmp_path / "run")["step"] == 4
    err = capsys.readouterr().err
    assert "could not write the preview" in err and "step_0000002.png" in err and "Traceback" not in err
    assert not list((tmp_path / "run" / "previews").glob("*.png"))


def test_the_training_step_computes_no_flow(domains, tmp_path, monkeypatch):
    """The warp term's source motion is computed once when the data loads, never in a step."""
    import retarget.video.flow as flow_mod

    calls = []
    real = flow_mod.FlowEstimator.__call__
    monkeypatch.setattr(flow_mod.FlowEstimator, "__call__", lambda self, a, b: calls.append(1) or real(self, a, b))
    seen = []
    cfg = config(domains, tmp_path / "run", steps=5, preview_frames=0, loss=LossConfig(warp=5.0))
    result = train(cfg, on_step=lambda step, losses: seen.append((len(calls), losses.get("A/warp"))))
    assert result.steps == 5
    # two DIS calls (forward and backward) per consecutive pair of both domains, before the first step
    assert len(calls) == 2 * ((8 - 1) + (7 - 1))
    assert [c for c, _ in seen] == [len(calls)] * 5
    assert all(w is not None and w > 0 for _, w in seen)


def _wide_frames(folder, n, w=48, h=36, seed=0):
    """``n`` textured ``w`` x ``h`` images: whole landscape frames, as a plain folder."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return str(folder)


def test_whole_frames_get_the_stronger_identity_default_and_a_resumed_run_keeps_its_own(domains, tmp_path, capsys):
    from retarget.config import WHOLE_FRAME_IDENTITY_PER_CYCLE
    from retarget.train.resume import read_run_config

    loss = LossConfig(cycle=4.0)
    train(config(domains, tmp_path / "square", steps=1, loss=loss))  # square frames: the weight stays unset
    assert read_run_config(tmp_path / "square").loss.identity is None
    wide = (_wide_frames(tmp_path / "wa", 6), _wide_frames(tmp_path / "wb", 6, seed=1))
    train(config(wide, tmp_path / "wide", steps=1, loss=loss))
    assert read_run_config(tmp_path / "wide").loss.identity == WHOLE_FRAME_IDENTITY_PER_CYCLE * 4.0 == 6.0
    assert "whole frames: --identity 6 (1.5 x cycle" in capsys.readouterr().err  # the user is told
    train(config(wide, tmp_path / "set", steps=1, loss=replace(loss, identity=0.0)))  # a given weight is kept
    assert read_run_config(tmp_path / "set").loss.identity == 0.0
    # a whole-frame run saved before this default (identity unset) resumes with its own objective
    train(config(wide, tmp_path / "old", steps=1, checkpoint_every=1, loss=loss))
    saved = json.loads((tmp_path / "old" / layout.CONFIG).read_text())
    saved["loss"]["identity"] = None
    (tmp_path / "old" / layout.CONFIG).write_text(json.dumps(saved))
    assert train(resume_config(tmp_path / "old", steps=2)).steps == 2
    assert read_run_config(tmp_path / "old").loss.identity is None
