"""The training loop: run steps, call hooks, keep the clock and the LR schedule, save state.

:class:`Trainer` is the small core (in the manner of detectron2's ``TrainerBase``): it
draws a batch, runs one optimisation step (:class:`retarget.nn.step.Stepper`), steps the
LR schedulers and calls every :class:`Hook` before and after each step. Everything
periodic (metrics, previews, checkpoints, interrupts, time limits, the user's callback)
is a hook; see :mod:`retarget.train.hooks` for how to add one.

Hooks read the trainer's public attributes (``cfg``, ``ctx``, ``run_dir``, ``nets``,
``stepper``, ``step``, ``losses``, ``batch``, ``lr``, ``elapsed``, ``records``...) and may
call :meth:`Trainer.request_stop` and :meth:`Trainer.save_checkpoint`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from retarget.config import TrainConfig
from retarget.errors import RetargetError
from retarget.nn.step import NonFiniteLoss, Stepper
from retarget.run import checkpoint as ckpt
from retarget.run import layout
from retarget.train import distributed as ddp
from retarget.train.multi import make_batches
from retarget.train.sampler import BatchLoader, TripletSampler


def _now() -> float:
    """The loop's clock (seconds); one function so tests can drive time."""
    return time.perf_counter()


def lr_factor(step: int, steps: int, decay_from: Optional[int]) -> float:
    """LR multiplier after ``step`` steps: 1 until ``decay_from`` (default steps // 2), then linearly to 0."""
    start = steps // 2 if decay_from is None else decay_from
    if step < start or steps <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (steps - start))


def budget_lr_factor(fraction: float, start: float = 0.5) -> float:
    """LR multiplier when a fraction ``fraction`` of a time budget is spent: 1 until ``start``, then linearly to 0."""
    if fraction < start or start >= 1.0:
        return 1.0
    return max(0.0, 1.0 - (fraction - start) / (1.0 - start))


class Hook:
    """Base class of everything the loop calls around a step; every method does nothing.

    :attr:`name` keys the hook's saved state. The hooks of every run, and how to write
    one, are in :mod:`retarget.train.hooks`.
    """

    @property
    def name(self) -> str:
        """Key of this hook's state in ``state.pt`` (its class name by default)."""
        return type(self).__name__

    def before_train(self, trainer: Trainer) -> None:
        """Once, before the first step."""

    def before_step(self, trainer: Trainer) -> None:
        """Before every step."""

    def after_step(self, trainer: Trainer) -> None:
        """After every step (``trainer.step`` counts it)."""

    def after_train(self, trainer: Trainer) -> None:
        """Once, after the last step or a Ctrl-C."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs of this hook (empty: nothing is saved).

        Rank 0's state is saved; on resume every rank loads it.
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned."""


class Trainer:
    """The loop and the state hooks see.

    Attributes:
        cfg: the run's options.
        ctx: DDP context (rank, world); ``ctx.is_main`` writes files.
        device: where the networks live.
        run_dir: the run folder.
        nets: the (unwrapped) networks, in train mode; float ``[B, 3, H, W]`` in [-1, 1].
        stepper: the optimisation step (objective, optimizers, image pools).
        samplers: ``{"A", "B"}`` batch samplers, pure functions of the step (a multi-domain
            run's: one per domain, keyed by name, in label order).
        loader: hands out each step's batch on the device, the next prepared during the step.
        schedulers: the LR schedulers of the G and D optimizers.
        hooks: called in order at each event.
        start: steps done before this call (resume).
        step: steps done so far (after a step: including it).
        elapsed: wall-clock seconds of training so far, resumes included (agreed across ranks).
        batch: the last step's batch ``{"A", "B"}``, float ``[B, T, 3, H, W]`` in [-1, 1] (and the
            source motion ``"A.flow"``... when the objective needs it); a multi-domain run's
            ``{"x", "src", "dst"}`` (:class:`retarget.train.multi.MultiBatches`).
        losses: the last step's loss terms (Python floats).
        lr: the generator LR the last step used.
        data_time, step_time: seconds the last step spent loading its batch, and in total.
        records: metrics records logged so far (rank 0; written by the metrics hook).
        pending_metrics: values hooks put for this step's record (:meth:`put_metric`).
        last_saved: step of the last checkpoint on disk, or None.
        stop_reason: why the loop is stopping early (a hook asked), or None.
        interrupted: stopped by Ctrl-C or SIGTERM (or a callback's KeyboardInterrupt).
        signal_number: the signal that stopped it (``signal.SIGINT`` or ``signal.SIGTERM``;
            agreed across ranks), or None.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        ctx: ddp.DistContext,
        device: torch.device,
        run_dir: Path,
        nets: dict[str, torch.nn.Module],
        stepper: Stepper,
        samplers: dict[str, TripletSampler],
        data_info: dict[str, Any],
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.cfg, self.ctx, self.device, self.run_dir = cfg, ctx, device, run_dir
        self.nets, self.stepper, self.samplers, self.data_info = nets, stepper, samplers, data_info
        self.hooks: list[Hook] = list(hooks)
        motion = stepper.objective.needs_motion
        self.loader = BatchLoader(make_batches(cfg, samplers, ctx.rank, ctx.world, motion), device)
        self.elapsed = 0.0  # before the schedulers: LambdaLR reads the factor at once
        self.schedulers = [
            torch.optim.lr_scheduler.LambdaLR(opt, lambda s: self.lr_factor(s))
            for opt in (stepper.g_opt, stepper.d_opt)
        ]
        self.start = self.step = 0
        self.batch: dict[str, torch.Tensor] = {}
        self.losses: dict[str, float] = {}
        self.lr = cfg.lr
        self.data_time = self.step_time = 0.0
        self.records: list[dict[str, Any]] = []
        self.pending_metrics: dict[str, float] = {}
        self.last_saved: Optional[int] = None
        self.stop_reason: Optional[str] = None
        self.interrupted = False
        self.signal_number: Optional[int] = None
        self.signal: Optional[ddp.DeferredInterrupt] = None
        #: hooks may enter context managers here in ``before_train``; closed when the loop ends
        self.resources = contextlib.ExitStack()
        self._clock_base = 0.0
        self._clock_start = 0.0

    # --- what hooks use ---------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        """Rank 0 (the only rank that writes files)."""
        return self.ctx.is_main

    @property
    def finishing(self) -> bool:
        """The current step is the last of the run (step count reached or a stop requested)."""
        return self.step >= self.cfg.steps or self.stop_reason is not None

    def due(self, every: int) -> bool:
        """Whether a job run every ``every`` steps (and at the last step) is due now."""
        return self.step % every == 0 or self.finishing

    def put_metric(self, key: str, value: float) -> None:
        """Add ``key: value`` to this step's ``metrics.jsonl`` record (call before the metrics hook runs)."""
        self.pending_metrics[key] = float(value)

    def request_stop(self, reason: str) -> None:
        """End the run cleanly after the current step (hooks after this one still see it as the last)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def lr_factor(self, step: int) -> float:
        """LR multiplier: linear decay over the steps, or over the time budget with ``--time-limit``."""
        limit = self.cfg.time_limit
        if limit:
            start = self.cfg.decay_from / self.cfg.steps if self.cfg.decay_from is not None else 0.5
            return budget_lr_factor(min(1.0, self.elapsed / limit), start)
        return lr_factor(step, self.cfg.steps, self.cfg.decay_from)

    # --- state ------------------------------------------------------------------------

    def resume(self) -> None:
        """Load weights, optimizers, schedulers, RNG, pools, clock and hook states of the newest complete checkpoint."""
        folder = ckpt.latest_checkpoint(self.run_dir)
        if folder is None:
            raise RetargetError(f"{self.run_dir}: no complete checkpoint to resume; start the run without --resume")
        meta, tensors = ckpt.read_weights(folder / layout.WEIGHTS)
        ckpt.load_into(self.nets, tensors, folder / layout.WEIGHTS)
        state = ckpt.load_state(folder / layout.STATE)
        start = int(state["step"])
        if start != int(meta.get("step", -1)):  # only possible in runs of the old layout
            raise RetargetError(
                f"{folder}: weights (step {meta.get('step')}) and training state (step {start}) disagree"
            )
        self.stepper.g_opt.load_state_dict(state["opt_g"])
        self.stepper.d_opt.load_state_dict(state["opt_d"])
        for s, sd in zip(self.schedulers, state["schedulers"]):
            s.load_state_dict(sd)
        # A resume on fewer ranks reuses rank 0's states for the new ones.
        own = self.ctx.rank if self.ctx.rank < len(state["rng"]) else 0
        self.stepper.load_state_dict(state["step_state"][own])
        ckpt.set_rng_state(state["rng"][own])
        self.elapsed = float(state.get("elapsed", 0.0))  # absent in runs before time limits
        hook_states = state.get("hooks", {})
        for hook in self.hooks:
            if hook.name in hook_states:
                hook.load_state_dict(hook_states[hook.name])
        self.start = self.step = self.last_saved = start

    def save_checkpoint(self) -> None:
        """Write the checkpoint of the current step (collective: every rank calls it).

        All or nothing (:func:`retarget.run.checkpoint.write_checkpoint`); then the
        checkpoints beyond ``cfg.keep`` older ones are deleted. A step already saved is
        not saved again.
        """
        done = self.step
        if self.last_saved == done:
            return
        # Every rank has its own RNG states and image pools; rank 0 stores them all.
        mine = {"rng": ckpt.rng_state(), "step_state": self.stepper.state_dict()}
        per_rank: list[Any] = [mine]
        if self.ctx.world > 1:
            per_rank = [None] * self.ctx.world
            torch.distributed.all_gather_object(per_rank, mine)
        if self.is_main:
            try:
                self._write_checkpoint(done, per_rank)
            except RetargetError as exc:
                raise RetargetError(f"{exc} (checkpoint of step {done} not saved; {self._kept()})") from None
            except OSError as exc:
                why = exc.strerror or exc
                raise RetargetError(f"{self.run_dir}: could not write the checkpoint of step {done} ({why})") from None
        self.last_saved = done

    def _kept(self) -> str:
        if self.last_saved is None:
            return "no checkpoint was saved yet"
        return f"the last complete checkpoint (step {self.last_saved}) is kept"

    def _write_checkpoint(self, done: int, per_rank: list[Any]) -> None:
        state = {
            "step": done,
            "opt_g": self.stepper.g_opt.state_dict(),
            "opt_d": self.stepper.d_opt.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "rng": [r["rng"] for r in per_rank],
            "step_state": [r["step_state"] for r in per_rank],
            "elapsed": float(self.elapsed),
            "hooks": {h.name: sd for h in self.hooks if (sd := h.state_dict())},
        }
        names = tuple(self.cfg.names) if self.cfg.model.domains else ()  # a multi-domain model's label order
        ckpt.write_checkpoint(self.run_dir, done, self.nets, self.cfg.model, state, self.data_info, names)
        ckpt.prune_checkpoints(self.run_dir, self.cfg.keep)

    # --- the loop ---------------------------------------------------------------------

    def train(self) -> None:
        """Run steps until ``cfg.steps`` or a hook's stop; Ctrl-C or SIGTERM saves and returns (``interrupted``)."""
        with ddp.DeferredInterrupt() as sig, self.resources:
            self.signal = sig
            self.resources.callback(self.loader.close)
            self._clock_base, self._clock_start = self.elapsed, _now()
            for hook in self.hooks:
                hook.before_train(self)
            try:
                while self.step < self.cfg.steps and self.stop_reason is None:
                    for hook in self.hooks:
                        hook.before_step(self)
                    self.run_step()
                    for hook in self.hooks:
                        hook.after_step(self)
            except ddp.HardInterrupt:
                raise
            except KeyboardInterrupt:
                self.interrupted = True
            for hook in self.hooks:
                hook.after_train(self)

    def run_step(self) -> None:
        """One step: batch, optimisation, clock, LR schedule."""
        t0 = _now()
        done = self.step
        self.batch = self.loader.get(done)
        self.data_time = _now() - t0
        try:
            losses = self.stepper.step(self.batch)
        except NonFiniteLoss as exc:
            kept = "no checkpoint was saved yet"
            if self.last_saved is not None:
                kept = f"the last good checkpoint (step {self.last_saved}) is kept in {self.run_dir}"
            raise RetargetError(
                f"{exc} at step {done + 1}; training stopped, {kept} (try a lower --lr, or --amp off)"
            ) from None
        self.lr = self.schedulers[0].get_last_lr()[0]
        self.step = done + 1
        elapsed = self._clock_base + _now() - self._clock_start
        # ranks must agree: the LR and the stop decision follow the clock with a time limit
        self.elapsed = ddp.max_over_ranks(elapsed, self.ctx) if self.cfg.time_limit else elapsed
        for s in self.schedulers:
            s.step()
        self.step_time = _now() - t0
        self.losses = {k: float(v) for k, v in losses.items()}
