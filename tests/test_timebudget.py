"""Budget-aware defaults and the forecast (retarget/train/timebudget.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from retarget.config import ModelConfig, TrainConfig, model_preset
from retarget.progress import console
from retarget.train import timebudget as tb
from retarget.train.timebudget import Measured
from tests.helpers import tiny_train_config, write_frames

# A made-up table where the best configuration changes with the budget, so the rule is
# tested apart from the measured numbers.
FAKE = (
    Measured("tiny", 64, "transpose", its=6.0, psnr={300.0: 20.0, 1200.0: 21.0}),
    Measured("tiny", 96, "transpose", its=3.0, psnr={300.0: 19.0, 1200.0: 22.0}),
    Measured("default", 128, "transpose", its=0.5, psnr={300.0: 15.0, 1200.0: 16.0}),
)


@pytest.fixture
def fake_table(monkeypatch):
    monkeypatch.setattr(tb, "TABLE", FAKE)
    monkeypatch.setattr(tb, "INPUT_PSNR", 18.0)
    monkeypatch.setattr(tb, "LOOK_STEPS", 1000)


def test_the_pick_follows_the_table_by_budget(fake_table):
    assert (tb.pick_architecture("cpu", 300, True, False).size, tb.best_at(300)[1]) == (64, 300)
    assert tb.pick_architecture("cpu", 1200, True, False).size == 96
    assert tb.pick_architecture("cpu", 3 * 3600, True, False).size == 96  # the largest measured budget within
    assert tb.pick_architecture("cpu", 60, True, False).size == 64  # below every budget: the smallest
    no_limit = tb.pick_architecture("cpu", None, True, False)
    assert no_limit.size == tb.best_at(tb.DEFAULT_BUDGET)[0].size
    assert "no --time-limit" in no_limit.why


def test_gpu_faces_and_multi_domain_keep_the_default(fake_table):
    default = ModelConfig()
    for args in (("cuda", 1200, True, False), ("cpu", 1200, False, False), ("cpu", 1200, True, True)):
        pick = tb.pick_architecture(*args)
        assert (pick.preset, pick.size) == ("default", default.size)
    assert "GPU" in tb.pick_architecture("cuda", 1200, True, False).why


def test_the_measured_table_is_consistent():
    """The shipped table: every row builds, the input baseline is below the best row, the look threshold is set."""
    assert tb.TABLE and tb.LOOK_STEPS > 0
    for row in tb.TABLE:
        assert row.model().size == row.size and row.its > 0
    assert any(row.psnr for row in tb.TABLE)
    for budget in {b for row in tb.TABLE for b in row.psnr}:
        best, used = tb.best_at(budget)
        rows = [r for r in tb.TABLE if budget in r.psnr and r.upsample == "transpose"]
        assert used == budget and best.upsample == "transpose"
        assert not rows or best.psnr[budget] == max(r.psnr[budget] for r in rows)


def test_the_pick_compares_the_rows_of_the_runs_upsampler(fake_table, monkeypatch):
    monkeypatch.setattr(tb, "TABLE", (*FAKE, Measured("tiny", 48, "resize", its=9.0, psnr={300.0: 30.0})))
    assert tb.pick_architecture("cpu", 300, True, False).size == 64  # the resize row is not a transpose run's
    assert tb.pick_architecture("cpu", 300, True, False, upsample="resize").size == 48
    assert tb.pick_architecture("cpu", 300, True, False, upsample="blur").size == 48  # none measured: any


def test_apply_pick_keeps_what_was_given(fake_table):
    cfg = TrainConfig("a", "b", time_limit=1200, auto=True, model=ModelConfig(model="cyclegan", upsample="resize"))
    picked = tb.apply_pick(cfg, "cpu", frames=True)
    assert (picked.preset, picked.model.size, picked.model.ngf) == ("tiny", 96, 8)
    assert (picked.model.model, picked.model.upsample) == ("cyclegan", "resize")
    assert picked.picked.startswith("the tiny preset at 96 px")
    given = dataclasses.replace(cfg, auto=False)
    assert tb.apply_pick(given, "cpu", frames=True) is given


def test_forecast_names_the_steps_the_benchmark_and_a_budget_too_small(fake_table):
    cfg = TrainConfig("a", "b", time_limit=1200, model=model_preset("default", size=128))
    (line, warn), (small, warned) = tb.forecast(cfg, its=0.5)
    assert not warn and warned
    assert "about 600 steps in 20 min at 0.50 steps/s" in line
    assert "20 min of the default preset at 128 px gave 16.0 dB against 18.0" in line
    assert "--time-limit 20 min is far too small" in small and "fewer than 1,000" in small
    # the alternative's steps here: this machine's speed times the benchmark's ratio (3.0 / 0.5)
    assert "the tiny preset at 96 px (--preset tiny --size 96) makes about 3,600 steps here" in small
    enough = tb.forecast(dataclasses.replace(cfg, model=model_preset("tiny", size=96)), its=3.0)
    assert len(enough) == 1 and "about 3,600 steps" in enough[0][0]
    steps_only = tb.forecast(TrainConfig("a", "b", steps=5000, model=model_preset("tiny", size=64)), its=6.0)
    assert steps_only[0][0].startswith("forecast: 5,000 steps take about 14 min at 6.00 steps/s")


def _train_capturing(cfg, **kw):
    from retarget.train import train

    with console.capture() as cap:
        result = train(cfg, **kw)
    return result, cap.get()


def test_a_run_without_preset_or_size_is_picked_saved_and_forecast(tmp_path):
    torch.set_num_threads(1)
    a = write_frames(tmp_path / "a", 6, size=36)
    b = write_frames(tmp_path / "b", 6, size=36, start=9)
    out = tmp_path / "run"
    cfg = TrainConfig(str(a), str(b), out=str(out), auto=True, steps=2, time_limit=300, pool=0, preview_frames=0,
                      model=ModelConfig(model="cyclegan"), device="cpu")  # fmt: skip
    _, text = _train_capturing(cfg)
    best, _ = tb.best_at(300)
    saved = json.loads((out / "config.json").read_text())
    assert saved["auto"] is True and saved["preset"] == best.preset and saved["model"]["size"] == best.size
    assert saved["picked"] and f"architecture: {saved['picked']}" in text.replace("\n", " ")
    assert "forecast: about" in text


def test_explicit_architecture_wins_and_the_forecast_comes_before_step_one(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cfg = tiny_train_config(tmp_path, tmp_path / "run", steps=3, time_limit=1)
    steps, printed = [], []
    shown = tb.print_forecast
    monkeypatch.setattr(tb, "print_forecast", lambda lines: (printed.append((len(steps), lines)), shown(lines)))
    _, text = _train_capturing(cfg, on_step=lambda step, _: steps.append(step))
    assert "architecture:" not in text
    [(steps_before, lines)] = printed
    assert steps_before == 0  # before the first step
    assert lines[0][0].startswith("forecast: about") and lines[1][1] and "far too small" in lines[1][0]
    assert "far too small" in text.replace("\n", " ")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["auto"] is False and saved["model"]["size"] == 32


def test_the_speed_probe_leaves_the_run_as_it_would_be(tmp_path, monkeypatch):
    """The throwaway steps touch no weight, optimizer, pool or RNG state of the run."""
    torch.set_num_threads(1)
    runs, rng = {}, []
    real = tb.probe_speeds

    def spy(trainer, make_stepper, choose_threads=False):
        before = torch.get_rng_state().clone()
        its = real(trainer, make_stepper, choose_threads)
        rng.append(torch.equal(before, torch.get_rng_state()))
        return its

    monkeypatch.setattr(tb, "probe_speeds", spy)
    for name, probe in (("with", True), ("without", False)):
        if not probe:
            monkeypatch.setattr(tb.Forecast, "before_train", lambda self, trainer: None)
            monkeypatch.setattr(tb.Forecast, "after_step", lambda self, trainer: None)
        cfg = tiny_train_config(tmp_path / name, tmp_path / name / "run", steps=3, pool=4, seed=3)
        result, _ = _train_capturing(cfg)
        runs[name] = {k: v.detach().clone() for k, v in result.networks["G_AB"].state_dict().items()}
    for key, value in runs["with"].items():
        # same process, same shapes: the same kernels; a probe that moved any state would move these by far more
        assert torch.allclose(value, runs["without"][key], atol=1e-6), key
    assert rng == [True]  # probed once, every RNG put back


@pytest.mark.parametrize(
    "speeds, threads, expected",
    [
        ({1: 10.0, 2: 5.0}, None, 1),  # one thread much faster: taken
        ({1: 5.2, 2: 5.0}, None, 2),  # within the margin: torch's count kept
        ({1: 10.0, 2: 5.0}, 2, 2),  # --threads given: never changed
    ],
)
def test_the_run_takes_the_faster_thread_count_and_puts_it_back(tmp_path, monkeypatch, speeds, threads, expected):
    monkeypatch.setattr(tb, "_time_steps", lambda *a: speeds[torch.get_num_threads()])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        used = []
        cfg = tiny_train_config(tmp_path, tmp_path / "run", steps=2, threads=threads)
        _, text = _train_capturing(cfg, on_step=lambda step, _: used.append(torch.get_num_threads()))
        assert used == [expected, expected] and torch.get_num_threads() == 2
        its = speeds[expected]
        assert f"at {its:.2f} steps/s" in text
        assert ("(1 torch thread: 5.00 with 2)" in text) == (expected == 1)
    finally:
        torch.set_num_threads(before)


def test_a_time_limited_progress_bar_counts_to_the_steps_its_pace_reaches():
    from types import SimpleNamespace

    from retarget.train.hooks import Progress

    bar = Progress()
    cfg = SimpleNamespace(time_limit=100.0, steps=10**9)
    trainer = SimpleNamespace(cfg=cfg, step=0, elapsed=0.0)
    assert bar._total(trainer) == 10**9  # nothing to go by yet
    bar.start, bar.clock = 0, 0.0
    trainer.step, trainer.elapsed = 50, 10.0  # 5 steps/s, 90 s left
    assert bar._total(trainer) == 50 + 450
    trainer.cfg = SimpleNamespace(time_limit=100.0, steps=200)
    assert bar._total(trainer) == 200  # --steps still bounds it
    trainer.cfg = SimpleNamespace(time_limit=None, steps=300)
    assert bar._total(trainer) == 300


def test_a_run_bounded_by_its_steps_is_named_by_them_and_the_alternative_by_the_time(fake_table):
    cfg = TrainConfig("a", "b", time_limit=1200, steps=2, model=model_preset("default", size=128))
    small = tb.forecast(cfg, its=0.5)[1][0]
    assert small.startswith("--steps 2 is far too small") and "makes about 3,600 steps here" in small
