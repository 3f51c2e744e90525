"""Hooks: everything the training loop does besides the optimisation step.

A hook subclasses :class:`Hook` and overrides what it needs; the loop
(:class:`retarget.train.loop.Trainer`) calls, for each hook in order::

    before_train(trainer)                once, before the first step (resume already done)
    before_step(trainer) / after_step(trainer)   around every step
    after_train(trainer)                 once, after the last step or a Ctrl-C/SIGTERM (not on errors)

Inside, a hook reads ``trainer.step`` (steps done), ``trainer.losses``, ``trainer.batch``,
``trainer.nets``, ``trainer.stepper.objective``, ``trainer.run_dir``, ``trainer.cfg``,
``trainer.elapsed``, ``trainer.records`` (metrics so far) and ``trainer.is_main`` (only
rank 0 writes files); ``trainer.due(every)`` says whether a periodic job is due
(every ``every`` steps and at the last step). It may call ``trainer.put_metric(key,
value)`` (the value lands in this step's ``metrics.jsonl`` line; the hook must come
before :class:`Metrics`), ``trainer.request_stop(reason)`` or ``trainer.save_checkpoint()``
(collective: on every rank), and enter context managers into ``trainer.resources`` so
they close when the loop ends.

A hook that must survive a resume returns its state from :meth:`Hook.state_dict`
(tensors, numbers, strings, lists and dicts only: it goes into ``state.pt`` under its
:attr:`Hook.name`) and takes it back in :meth:`Hook.load_state_dict`. A new periodic job
is a new hook in the list :func:`retarget.train.launch.default_hooks` builds, or one
passed to :func:`retarget.train.launch.train` with ``hooks=``; the loop needs no change.
The base class :class:`~retarget.train.loop.Hook` lives beside the loop that calls it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Optional

import numpy as np
import torch

from retarget.progress import console, make_progress
from retarget.run import layout
from retarget.run.layout import append_metrics
from retarget.train import distributed as ddp
from retarget.train.loop import Hook, Trainer
from retarget.train.preview import domain_rows, name_targets, preview_rows, save_grid, save_loss_curve
from retarget.train.ranks import rank_speeds
from retarget.views.run_views import RunViews

StepHook = Callable[[int, dict[str, float]], None]


class TimeLimit(Hook):
    """Stop cleanly once ``seconds`` of wall-clock training have passed (``--time-limit``).

    The clock (``trainer.elapsed``) runs across resumes and ranks agree on it; the LR
    schedule decays over the same budget (:meth:`Trainer.lr_factor`).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)

    def before_train(self, trainer: Trainer) -> None:
        if trainer.elapsed >= self.seconds:  # a resumed run whose budget is spent
            trainer.request_stop(f"time limit of {self.seconds:g} s reached")

    def after_step(self, trainer: Trainer) -> None:
        if trainer.elapsed >= self.seconds:
            trainer.request_stop(f"time limit of {self.seconds:g} s reached")


class Metrics(Hook):
    """Mean losses, LR, it/s and data time every ``every`` steps, appended to ``metrics.jsonl``.

    Values other hooks put with ``trainer.put_metric`` (before this hook in the list) go
    into the same record; a step with such values is logged even when not due.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.sums: dict[str, float] = {}
        self.n = 0
        self.data_time = self.busy = 0.0

    def after_step(self, trainer: Trainer) -> None:
        for k, v in trainer.losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1
        self.data_time += trainer.data_time
        self.busy += trainer.step_time
        if not (trainer.due(self.every) or trainer.pending_metrics):
            return
        # it/s counts data and step time only, not previews and checkpoints
        record: dict[str, Any] = {"step": trainer.step, **{f"loss/{k}": v / self.n for k, v in self.sums.items()}}
        record.update(lr=trainer.lr, it_s=self.n / max(self.busy, 1e-9), data_s=self.data_time / self.n)
        if trainer.due(self.every):  # a collective: every rank is due at the same steps
            record.update(rank_speeds(record["it_s"], record["data_s"], trainer.ctx))
        record.update(trainer.pending_metrics)
        trainer.pending_metrics.clear()
        self.sums, self.n, self.data_time, self.busy = {}, 0, 0.0, 0.0
        log(trainer, record)


def log(trainer: Trainer, record: dict[str, Any]) -> None:
    """Append ``record`` (``{"step": int, name: number, ...}``) to ``metrics.jsonl`` and ``trainer.records`` (rank 0)."""
    if trainer.is_main:
        trainer.records.append(record)
        append_metrics(trainer.run_dir, record)


class Progress(Hook):
    """The rich progress bar with the last G and D losses."""

    def before_train(self, trainer: Trainer) -> None:
        self.progress = trainer.resources.enter_context(make_progress(unit="it", extra="{task.fields[losses]}"))
        self.task = self.progress.add_task("train", total=self._total(trainer), completed=trainer.step, losses="")
        self.start, self.clock = trainer.step, trainer.elapsed

    def after_step(self, trainer: Trainer) -> None:
        losses = trainer.losses
        main = " ".join(f"{k[5:]}={losses[k]:.3f}" for k in ("loss_G", "loss_D") if k in losses)
        self.progress.update(self.task, completed=trainer.step, total=self._total(trainer), losses=main)

    def _total(self, trainer: Trainer) -> int:
        """``--steps``, or with a time limit the steps this run's pace reaches in it (at most ``--steps``)."""
        limit, steps = trainer.cfg.time_limit, trainer.cfg.steps
        spent = trainer.elapsed - getattr(self, "clock", trainer.elapsed)
        if not limit or spent <= 0 or trainer.step <= self.start:
            return steps
        pace = (trainer.step - self.start) / spent
        return min(steps, trainer.step + max(0, round(pace * (limit - trainer.elapsed))))


class Previews(Hook):
    """A still grid of the current batch's visuals every ``every`` steps (``previews/step_N.png``).

    Args:
        every: steps between grids.
        stills: a multi-domain run's fixed frames, one per domain (``n x S x S x 3`` uint8,
            :func:`~retarget.train.preview.preview_still`): the grid then starts with a row
            per domain, its frame translated to every domain (:func:`~retarget.train.preview.domain_rows`).
    """

    def __init__(self, every: int, stills: Optional[np.ndarray] = None) -> None:
        self.every = every
        self.stills = stills

    def after_step(self, trainer: Trainer) -> None:
        if trainer.is_main and trainer.due(self.every):
            rows = preview_rows(trainer.stepper.objective.visuals(trainer.batch))
            if self.stills is not None:
                names = trainer.cfg.names
                with eval_mode({"G": trainer.nets["G"]}):
                    rows = domain_rows(trainer.nets["G"], self.stills, trainer.device, names) + name_targets(
                        rows, names
                    )
            path = trainer.run_dir / layout.preview_file(trainer.step, layout.GRID)
            try:
                save_grid(path, rows)
            except OSError as exc:  # a preview is not worth stopping the run for
                note(trainer, f"{path}: could not write the preview ({exc.strerror or exc})")


class Checkpoint(Hook):
    """Weights and training state every ``every`` steps, at the end, and on Ctrl-C or SIGTERM.

    The save path does only that (no plotting): see :class:`LossCurve`.
    """

    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self, trainer: Trainer) -> None:
        if trainer.due(self.every):
            trainer.save_checkpoint()

    def after_train(self, trainer: Trainer) -> None:
        if trainer.interrupted:
            trainer.save_checkpoint()


class LossCurve(Hook):
    """``loss_curve.png`` from the metrics so far, every ``every`` steps (with the previews) and at the end.

    Not at every checkpoint: drawing costs far more than a small checkpoint (matplotlib).
    After a Ctrl-C it is drawn once the checkpoint is saved (this hook comes after
    :class:`Checkpoint`).
    """

    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self, trainer: Trainer) -> None:
        if trainer.due(self.every):
            self.draw(trainer)

    def after_train(self, trainer: Trainer) -> None:
        if trainer.interrupted:
            self.draw(trainer)

    def draw(self, trainer: Trainer) -> None:
        if trainer.is_main and trainer.records:
            save_loss_curve(trainer.run_dir / layout.LOSS_CURVE, trainer.records)


class Views(Hook):
    """:class:`RunViews` as a loop hook (rank 0): TensorBoard follows each metrics line,
    report.html is refreshed after each preview, and both are closed when the loop ends
    (normally, on Ctrl-C or on an error). Runs after the hooks that write metrics and previews.

    Args:
        preview_every: steps between previews (the still grid and the temporal clip).
    """

    def __init__(self, preview_every: int) -> None:
        self.preview_every = preview_every
        self.views: Optional[RunViews] = None
        self._synced = -1

    def before_train(self, trainer: Trainer) -> None:
        self.views = trainer.resources.enter_context(RunViews(trainer.run_dir, trainer.step, enabled=trainer.is_main))

    def after_step(self, trainer: Trainer) -> None:
        if self.views is None or not trainer.is_main:
            return
        if trainer.due(self.preview_every):
            self.views.previewed()
        elif trainer.records and trainer.records[-1].get("step") == trainer.step != self._synced:
            self.views.logged()
        self._synced = trainer.step


class Callback(Hook):
    """The user's ``on_step(steps_done, losses)``; raising KeyboardInterrupt behaves like Ctrl-C."""

    def __init__(self, fn: StepHook) -> None:
        self.fn = fn

    def after_step(self, trainer: Trainer) -> None:
        self.fn(trainer.step, dict(trainer.losses))


class Interrupt(Hook):
    """Ctrl-C or SIGTERM, deferred to the end of the step.

    Ranks agree first (torchrun signals them at different steps), on whether to stop
    and on the signal (``trainer.signal_number``, which the CLI turns into the exit
    status), then every rank stops at the same step and saves together.
    """

    def after_step(self, trainer: Trainer) -> None:
        requested = trainer.signal is not None and trainer.signal.requested
        if ddp.any_rank(requested, trainer.ctx):
            own = trainer.signal.signal_number if trainer.signal is not None else None
            trainer.signal_number = ddp.agreed_signal(own, trainer.ctx)
            raise KeyboardInterrupt


def note(trainer: Trainer, text: str) -> None:
    """A warning line on rank 0's console (for hooks whose job failed without stopping training)."""
    if trainer.is_main:
        console.print(f"[yellow]warning:[/] {text}", soft_wrap=True)


def eval_mode(nets: dict[str, torch.nn.Module]) -> Any:
    """Context manager: ``nets`` in eval mode without gradients, their modes restored after."""

    @contextlib.contextmanager
    def scope() -> Any:
        modes = {k: n.training for k, n in nets.items()}
        for n in nets.values():
            n.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            for k, n in nets.items():
                n.train(modes[k])

    return scope()
