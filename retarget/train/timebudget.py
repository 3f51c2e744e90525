"""What a run can reach in its time: the architecture picked for a budget, and the forecast line.

The numbers are the whole-frame ground-truth table of ``benchmarks/budget_table.py``
(docs/benchmarks.md "quality per budget"): each configuration trained for a 2-core
budget on the looks of that benchmark, scored at the source's size. A CPU run that names
neither ``--preset`` nor ``--size`` gets the configuration with the best mean PSNR at the
largest measured budget within its ``--time-limit`` (:data:`DEFAULT_BUDGET` without
one). A GPU run keeps the default preset at 128 px: a GPU makes the steps the larger
networks need. Before the first step the run times a few throwaway steps and prints the
steps its budget will reach here (:class:`Forecast`), what that budget gave on the
benchmark, and, when the steps fall short of what any look needed there, one warning line
with the alternative.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from retarget.config import ModelConfig, TrainConfig, model_preset
from retarget.progress import console
from retarget.run import checkpoint as ckpt
from retarget.train.loop import Hook, Trainer


@dataclass(frozen=True)
class Measured:
    """One configuration of the budget table (recycle, pair, default loss terms)."""

    preset: str  # architecture preset
    size: int  # training size (px), from datasets extracted at 128 px
    upsample: str  # generator up-sampling
    its: float  # steps per second on the benchmark machine (2 threads)
    psnr: dict[float, float]  # 2-core budget (s) -> mean PSNR over the looks at the source's size (dB)

    @property
    def label(self) -> str:
        return f"the {self.preset} preset at {self.size} px"

    def model(self, kind: str = "recycle") -> ModelConfig:
        return model_preset(self.preset, model=kind, size=self.size, upsample=self.upsample)  # type: ignore[arg-type]


#: The benchmark machine: 2 cores of an Intel Xeon (AVX-512, AMX-BF16), torch 2.13 CPU, bf16 autocast.
BENCHMARK_MACHINE = "2 Xeon cores"
#: Mean PSNR of the input unchanged over the table's looks (dB): what "no look learned" scores.
INPUT_PSNR = 18.39
#: The table (docs/benchmarks.md "quality per budget"; budgets in seconds; mean PSNR of the default
#: render over bikes painterly, bikes duotone and carphone cartoon, seed 0). Rows without a PSNR
#: are timed only: their speed carries a forecast's alternative over to this machine.
TABLE: tuple[Measured, ...] = (
    Measured("tiny", 64, "transpose", its=10.67, psnr={300.0: 20.30, 1200.0: 21.74}),
    Measured("tiny", 64, "blur", its=9.64, psnr={300.0: 19.80}),
    Measured("tiny", 64, "resize", its=9.03, psnr={300.0: 18.94}),
    Measured("tiny", 96, "transpose", its=5.67, psnr={300.0: 19.18}),
    Measured("default", 64, "transpose", its=1.2, psnr={}),
    Measured("default", 128, "transpose", its=0.57, psnr={}),
)
#: The fewest steps at which a configuration of the table beat the input unchanged on the mean
#: (tiny at 96 px, 5 minutes: 1,701 steps, 19.18 dB against 18.39): a run forecast below it will
#: not show a look.
LOOK_STEPS = 1700
#: The budget a CPU run without ``--time-limit`` is picked for (s).
DEFAULT_BUDGET = 1200.0
#: Steps of throwaway training timed before the first step (after one warm-up step) ...
PROBE_STEPS = 4
#: ... or more, up to this many seconds, for a run with a time limit (whose forecast counts its steps) ...
PROBE_MIN_SECONDS = 1.5
#: ... or fewer, when they take longer than this (s).
PROBE_SECONDS = 6.0


@dataclass(frozen=True)
class Pick:
    """The architecture a run without ``--preset`` and ``--size`` gets, and why (one line)."""

    preset: str
    size: int
    why: str


def _minutes(seconds: float) -> str:
    """``1200`` -> ``"20 min"``, ``90`` -> ``"1.5 min"``, ``45`` -> ``"45 s"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes >= 10 or minutes == int(minutes) else f"{minutes:.1f} min"


def best_at(budget: float, upsample: str = "transpose") -> tuple[Measured, float]:
    """The table's best configuration with ``upsample`` (any, when none has it) for ``budget`` seconds: at the
    largest measured budget within it (the smallest measured one below that), with the budget used."""
    rows = [m for m in TABLE if m.psnr and m.upsample == upsample] or [m for m in TABLE if m.psnr]
    budgets = sorted({b for m in rows for b in m.psnr})
    within = [b for b in budgets if b <= budget]
    used = within[-1] if within else budgets[0]
    return max((m for m in rows if used in m.psnr), key=lambda m: m.psnr[used]), used


def pick_architecture(
    device: str, time_limit: Optional[float], frames: bool, multi: bool, upsample: str = "transpose"
) -> Pick:
    """The preset and size of a run that gave neither.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"mps"`` (where the run trains).
        time_limit: the run's ``--time-limit`` (s), or None.
        frames: the datasets hold whole frames or frames without faces (``extract --align none``).
        multi: a multi-domain run.
        upsample: the run's up-sampler (kept): the table's rows with it are compared.
    """
    default = ModelConfig()
    if device != "cpu":
        return Pick("default", default.size, f"the default preset at {default.size} px: on a GPU it makes its steps")
    if multi or not frames or not TABLE:
        what = "multi-domain runs" if multi else "face datasets"
        return Pick(
            "default", default.size, f"the default preset at {default.size} px (the CPU budget table has no {what})"
        )
    budget = time_limit if time_limit else DEFAULT_BUDGET
    best, used = best_at(budget, upsample)
    stated = f"--time-limit {_minutes(budget)}" if time_limit else f"no --time-limit: picked for {_minutes(budget)}"
    why = (
        f"{best.label} ({stated} on the CPU; the best of the budget table at {_minutes(used)}, "
        f"{best.psnr[used]:.1f} dB against {INPUT_PSNR:.1f} for the input unchanged; --preset/--size choose another)"
    )
    return Pick(best.preset, best.size, why)


def apply_pick(cfg: TrainConfig, device: str, frames: bool) -> TrainConfig:
    """``cfg`` with the picked architecture when ``cfg.auto`` (explicit up-sampler and model kind kept),
    its reason in ``cfg.picked``; unchanged otherwise."""
    if not cfg.auto:
        return cfg
    pick = pick_architecture(device, cfg.time_limit, frames, cfg.is_multi, cfg.model.upsample)
    keep = {f: getattr(cfg.model, f) for f in ("model", "upsample", "condition", "p_residual", "domains")}
    model = dataclasses.replace(model_preset(pick.preset, size=pick.size), **keep)  # type: ignore[arg-type]
    return dataclasses.replace(cfg, preset=pick.preset, model=model, picked=pick.why)


def measured(model: ModelConfig) -> Optional[Measured]:
    """The table's row of ``model``'s architecture (a pair Recycle-GAN), or None."""
    for row in TABLE:
        if (
            model.model == "recycle"
            and not model.domains
            and row.model() == dataclasses.replace(model, model="recycle")
        ):
            return row
    return None


def forecast(cfg: TrainConfig, its: float, done: int = 0, elapsed: float = 0.0) -> list[tuple[str, bool]]:
    """The forecast's lines, ``(text, is_warning)``: steps in the budget at ``its`` steps/s here, what the
    benchmark gave for it, and a warning when the steps fall short of :data:`LOOK_STEPS`."""
    left = max(0, cfg.steps - done)
    if cfg.time_limit:
        reach = min(left, int(its * max(0.0, cfg.time_limit - elapsed)))
        head = f"forecast: about {reach:,} steps in {_minutes(cfg.time_limit)} at {its:.2f} steps/s on this machine"
    else:
        reach = left
        head = f"forecast: {left:,} steps take about {_minutes(round(left / max(its, 1e-9)))} at {its:.2f} steps/s here"
    row = measured(cfg.model)
    if row is not None and cfg.time_limit:
        at = max((b for b in row.psnr if b <= cfg.time_limit), default=None)
        if at is not None:
            head += (
                f"; on the benchmark ({BENCHMARK_MACHINE}) {_minutes(at)} of {row.label} gave "
                f"{row.psnr[at]:.1f} dB against {INPUT_PSNR:.1f} for the input unchanged"
            )
    lines = [(head, False)]
    if TABLE and reach < LOOK_STEPS and done == 0:
        lines.append((_too_small(cfg, its, reach), True))
    return lines


def _too_small(cfg: TrainConfig, its: float, reach: float) -> str:
    budget = cfg.time_limit or reach / max(its, 1e-9)
    capped = not cfg.time_limit or reach >= cfg.steps  # --steps, not the time, ends the run
    what = f"--steps {cfg.steps:,}" if capped else f"--time-limit {_minutes(budget)}"
    text = (
        f"{what} is far too small for this configuration here: about {int(reach):,} steps, and no look of the "
        f"budget table showed in fewer than {LOOK_STEPS:,}"
    )
    best, used = best_at(budget, cfg.model.upsample)
    if measured(cfg.model) != best:
        own = measured(cfg.model)
        ratio = best.its / own.its if own else None
        # in the same time: this machine's speed carried over by the benchmark's ratio
        steps = (
            f"about {int(its * ratio * budget):,} steps here"
            if ratio
            else f"{int(best.its * budget):,} steps on the benchmark"
        )
        text += f"; {best.label} (--preset {best.preset} --size {best.size}) makes {steps}"
        text += f" and gave {best.psnr[used]:.1f} dB in {_minutes(used)}"
    else:
        text += "; give a longer --time-limit" if not capped else "; give more --steps"
    return text


def print_forecast(lines: list[tuple[str, bool]]) -> None:
    for text, warning in lines:
        if warning:
            console.print(f"[yellow]warning:[/] {text}", soft_wrap=True, highlight=False)
        else:
            console.print(text, soft_wrap=True, markup=False, highlight=False)


class Forecast(Hook):
    """Print the forecast before the first step (of a new run, and of a resumed one).

    On a single-process CPU run the speed comes from throwaway steps of a copy of the
    networks, optimizers and pools (``make_stepper`` builds them) on the run's own
    batches, with every RNG state put back: the run is exactly what it would be without
    the forecast. With ``--threads`` not given, the copy is timed at torch's thread count
    and at one thread, and the run takes the faster (small networks spend more time
    waking threads than computing: the tiny preset makes 1.7x the steps on one thread of
    a 2-core Xeon); the count is put back when the run ends. Elsewhere (a GPU, where a
    copy could take the memory a batch needs; several processes) the speed is measured
    over the first real steps, and the forecast printed after them.

    Args:
        make_stepper: builds an optimisation step for a dict of networks (the run's own recipe).
    """

    def __init__(self, make_stepper: Optional[Callable[[dict[str, torch.nn.Module]], Any]] = None) -> None:
        self.make_stepper = make_stepper
        self.t0: Optional[float] = None
        self.first = -1  # the step the real-step timing starts from; -1 = nothing to time
        self.threads = torch.get_num_threads()

    def before_train(self, trainer: Trainer) -> None:
        if trainer.step >= trainer.cfg.steps or trainer.stop_reason is not None:
            return
        self.threads = torch.get_num_threads()
        if trainer.device.type == "cpu" and trainer.ctx.world == 1 and self.make_stepper is not None:
            speeds = probe_speeds(trainer, self.make_stepper, choose_threads=trainer.cfg.threads is None)
            best = max(speeds, key=lambda n: speeds[n] * (1.0 if n == self.threads else 1.0 / THREAD_MARGIN))
            torch.set_num_threads(best)
            if trainer.is_main:
                lines = forecast(trainer.cfg, speeds[best], trainer.step, trainer.elapsed)
                if best != self.threads:
                    text, warn = lines[0]
                    lines[0] = (text + f" ({_threads(best)}: {speeds[self.threads]:.2f} with {self.threads})", warn)
                print_forecast(lines)
        else:
            self.first = trainer.step

    def after_step(self, trainer: Trainer) -> None:
        if self.first < 0:
            return
        if trainer.step == self.first + 1:  # the first step warms up; time the next ones
            self.t0, self.first = time.perf_counter(), trainer.step
        elif self.t0 is not None and trainer.step == self.first + PROBE_STEPS:
            its = PROBE_STEPS / max(time.perf_counter() - self.t0, 1e-9)
            if trainer.is_main:
                print_forecast(forecast(trainer.cfg, its, trainer.step, trainer.elapsed))
            self.first = -1

    def after_train(self, trainer: Trainer) -> None:
        torch.set_num_threads(self.threads)  # a library caller's process keeps its own count


#: One thread is taken only when this much faster than torch's own count (timing noise).
THREAD_MARGIN = 1.1


def _threads(n: int) -> str:
    return f"{n} torch thread{'s' if n != 1 else ''}"


def probe_speeds(
    trainer: Trainer, make_stepper: Callable[[dict[str, torch.nn.Module]], Any], choose_threads: bool = False
) -> dict[int, float]:
    """Steps per second of ``trainer``'s step here, ``{threads: steps/s}``: at torch's thread count and, with
    ``choose_threads`` and more than one thread, at one thread. Timed on copies (see :class:`Forecast`);
    leaves torch's thread count as it found it."""
    own = torch.get_num_threads()
    counts = [own, 1] if choose_threads and own > 1 else [own]
    state = ckpt.rng_state()
    stepper = make_stepper(copy.deepcopy(trainer.nets))
    try:
        speeds = {}
        for n in counts:
            torch.set_num_threads(n)
            least = PROBE_MIN_SECONDS if trainer.cfg.time_limit else 0.0
            speeds[n] = _time_steps(stepper, trainer.loader.batches, trainer.step, trainer.device, least)
        return speeds
    finally:
        torch.set_num_threads(own)
        ckpt.set_rng_state(state)


def _time_steps(stepper: Any, batches: Any, step: int, device: torch.device, least: float = 0.0) -> float:
    """Steps per second of ``stepper`` after one warm-up step (first-call allocations and kernel choice), on the
    batches of the run's steps from ``step``: over :data:`PROBE_STEPS` steps and at least ``least`` seconds,
    stopping after :data:`PROBE_SECONDS`."""
    stepper.step(batches.to_device(batches.raw(step), device))
    t0, timed = time.perf_counter(), 0
    while True:
        timed += 1
        stepper.step(batches.to_device(batches.raw(step + timed), device))
        spent = time.perf_counter() - t0
        if spent > PROBE_SECONDS or (timed >= PROBE_STEPS and spent >= least):
            return timed / max(spent, 1e-9)
