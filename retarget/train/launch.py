"""``train(TrainConfig)``: set up a run (folder, data, networks, resume), launch the loop, print the summary.

The pieces: :mod:`retarget.nn.step` owns what one optimisation step does (generator
then discriminator update, AMP, image pools); :mod:`retarget.train.loop` runs steps and
calls hooks; :mod:`retarget.train.hooks` holds everything periodic (metrics, previews,
checkpoints, time limit, Ctrl-C); :mod:`retarget.run.layout` names the run folder's
files. This module builds them and prints the summary.
Resuming is exact because the sampler is a pure function of the step and everything
else that evolves (weights, optimizer moments, LR schedule, RNG states, pools, the
training clock, hook states) is checkpointed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from rich.markup import escape

from retarget.atomic import clean_stale_temps, write_error
from retarget.nn.budget import check_train
from retarget.config import WHOLE_FRAME_IDENTITY_PER_CYCLE, TrainConfig, check_train_config, replace, whole_frame_loss
from retarget.options import check_effects
from retarget.device import device_kind, precision_name, resolve_device
from retarget.errors import RetargetError
from retarget.nn.content import absolute_content_paths, load_content_models
from retarget.nn.networks import build_networks, check_size
from retarget.nn.objectives import frames_per_sample, make_objective, needs_motion
from retarget.nn.pool import ImagePool
from retarget.nn.step import Stepper, make_optimizers
from retarget.dataset.manifest import read_dataset
from retarget.outputs import check_distinct, check_output
from retarget.progress import console
from retarget.run import checkpoint as ckpt
from retarget.run import layout
from retarget.train import distributed as ddp
from retarget.train.data import DomainData, default_load_size, load_domain
from retarget.train.init_from import InitWeights, read_init
from retarget.train.hooks import (
    Callback,
    Checkpoint,
    Interrupt,
    LossCurve,
    Metrics,
    Previews,
    Progress,
    StepHook,
    TimeLimit,
    Views,
)
from retarget.train.loop import Hook, Trainer
from retarget.train.multi import domain_keys, resolve_domains
from retarget.train.timebudget import Forecast, apply_pick
from retarget.train.preview import preview_still
from retarget.train.resume import resume_command
from retarget.train.run_dir import clear_run_dir, default_run_dir, first_missing, prepare_run_dir
from retarget.train.sampler import TripletSampler
from retarget.train.temporal_preview import TemporalPreview, preview_clip

__all__ = ["TrainResult", "default_hooks", "train"]


@dataclass
class TrainResult:
    """What a run did.

    Attributes:
        run_dir: the run folder.
        steps: steps completed in total (including those before a resume).
        metrics: the last logged record (loss terms, lr, it/s, data time).
        interrupted: stopped by Ctrl-C or SIGTERM (or ``on_step`` raising KeyboardInterrupt)
            after saving a checkpoint.
        networks: the trained networks (unwrapped), in train mode.
        stopped: why the run ended before ``cfg.steps`` (e.g. the time limit), or None.
        signal: the signal that interrupted it (``signal.SIGINT`` = 2, ``signal.SIGTERM`` =
            15), or None; the CLI exits with 128 + this number (130, 143).
    """

    run_dir: Path
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    networks: dict[str, torch.nn.Module] = field(default_factory=dict)
    stopped: Optional[str] = None
    signal: Optional[int] = None


def _make_step(nets: dict[str, torch.nn.Module], cfg: TrainConfig, device: torch.device, ctx: ddp.DistContext) -> Any:
    """The optimisation step of :mod:`retarget.nn.step` with this run's optimizers and pools.

    The stepper puts the networks in their memory format (channels_last on CUDA); only
    then does DDP wrap them, so its gradient buckets take the final layout.
    """
    cuda = device.type == "cuda"
    content = load_content_models(cfg.loss, device, cfg.model.size)  # frozen, never wrapped or saved
    objective = make_objective(cfg.model, cfg.loss, nets, content)
    g_opt, d_opt = make_optimizers(nets, cfg.lr, (cfg.beta1, cfg.beta2))
    # Pools draw from their own generators; ranks hold different fakes, so different seeds.
    # A pair has two ("A", "B"), a multi-domain model one ("D"): the objective's pool keys.
    keys = objective.pool_keys
    pools = {d: ImagePool(cfg.pool, seed=cfg.seed * 1009 + 2 * ctx.rank + i) for i, d in enumerate(keys)}
    stepper = Stepper(
        objective,
        g_opt,
        d_opt,
        pools=pools if cfg.pool > 0 else None,
        amp=cfg.amp,
        channels_last=cfg.channels_last and cuda,
        device=device,
        agree=(lambda finite: ddp.all_finite(finite, ctx)) if ctx.world > 1 else None,
    )
    objective.nets = ddp.wrap(nets, ctx, device)  # the step's forward passes go through DDP
    return stepper


def train(cfg: TrainConfig, on_step: Optional[StepHook] = None, hooks: Sequence[Hook] = ()) -> TrainResult:
    """Train Recycle-GAN (or CycleGAN) between the datasets ``cfg.a_dir`` and ``cfg.b_dir``.

    With more datasets (``cfg.more``), ``cfg.multi`` or ``cfg.model.domains`` set, one
    conditional model over all of them (docs/training.md "Multi-domain model"): its
    domains are named by ``cfg.names`` or their folders, and the checkpoints store
    ``G``, ``D``, ``P`` and every domain's data info by name.

    Args:
        cfg: every option; ``cfg.model.size`` is the training resolution (px).
        on_step: called after each completed step with ``(steps_done, losses)``; raising
            KeyboardInterrupt from it behaves like Ctrl-C (used by tests).
        hooks: extra :class:`~retarget.train.hooks.Hook` objects, run after the built-in
            ones (metrics, previews, checkpoint) and before ``on_step`` and the Ctrl-C check.

    With ``cfg.resume`` the run in ``cfg.out`` continues from its newest complete
    checkpoint; ``cfg`` must then match the run's own ``config.json`` except for the
    options of :data:`~retarget.train.resume.RESUMABLE` (build it with
    :func:`~retarget.train.resume.resume_config`).

    Returns:
        :class:`TrainResult`. The run folder holds ``config.json``,
        ``checkpoints/step_N/{weights.safetensors,state.pt}``, ``metrics.jsonl``,
        ``previews/`` and ``loss_curve.png`` (docs/checkpoints.md).

    Raises:
        RetargetError: bad datasets or domain names, an existing run without --resume/--overwrite, a
            resume with other options or another architecture, a disk that cannot take
            a checkpoint, or a non-finite loss (the last good checkpoint is kept).
        KeyboardInterrupt: a second Ctrl-C or SIGTERM during the final save
            (:class:`~retarget.train.distributed.HardInterrupt`; the last complete
            checkpoint stays).
    """
    cfg = replace(cfg, loss=absolute_content_paths(cfg.loss))  # config.json names the files wherever it is read
    ctx = ddp.setup("cuda" if device_kind(cfg.device) == "cuda" else "cpu", cfg.dist_timeout)
    try:
        extra = [*hooks, *([Callback(on_step)] if on_step is not None else []), Interrupt()]
        return _train(cfg, ctx, extra)
    except BaseException as exc:
        # The traceback keeps _train's locals, DDP wrappers included, alive; a DDP
        # reducer that outlives its process group aborts the process at exit. Drop the
        # locals (the traceback's lines stay) before the group is destroyed.
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        ddp.teardown(ctx)


def _train(cfg: TrainConfig, ctx: ddp.DistContext, hooks: Sequence[Hook]) -> TrainResult:
    try:
        check_train_config(cfg)  # before anything is built or written
    except ValueError as exc:
        raise RetargetError(str(exc)) from None
    if not cfg.resume:  # a resumed run keeps what it was started with
        check_effects(cfg)  # options given where they do nothing (--warp with --model cyclegan...)
    cfg = resolve_domains(cfg)  # a multi-domain run's names and model.domains, or a one-line refusal
    device = resolve_device(cfg.device, ctx.local_rank)
    if cfg.auto and not cfg.resume:  # neither --preset nor --size given: picked for the device and budget
        cfg = apply_pick(cfg, device.type, frames=_frames_only(cfg))  # said once the run can start (below)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest kernels once
    try:
        check_size(cfg.model)
    except ValueError as exc:
        raise RetargetError(f"--size {cfg.model.size}: {exc}") from None
    check_train(cfg, device)  # memory for the networks and a batch, before the run folder exists
    run_dir = _check_run_dir(cfg)
    prepare_run_dir(cfg, run_dir)
    init = read_init(cfg)  # --init-from: read and checked before the run folder is touched
    created = first_missing(run_dir)
    if cfg.picked and not cfg.resume and ctx.is_main:
        console.print(f"architecture: {cfg.picked}", soft_wrap=True, markup=False, highlight=False)
    ddp.barrier(ctx)
    try:
        trainer = _setup(cfg, ctx, device, run_dir, hooks, init)
    except BaseException:
        if ctx.is_main and created is not None:  # a failed start leaves no empty run folder
            shutil.rmtree(created, ignore_errors=True)
        raise
    t_begin = time.perf_counter()
    try:
        trainer.train()
    except Exception as exc:  # a full disk under metrics, previews or the loss curve; a non-finite loss
        err = write_error(getattr(exc, "filename", None) or run_dir, exc)
        # a refused run that stopped before its first checkpoint leaves no run folder it created
        if (err is not None or isinstance(exc, RetargetError)) and ctx.is_main and created and not ckpt.is_run(run_dir):
            shutil.rmtree(created, ignore_errors=True)
        if err is None:
            raise
        raise err from None
    if ctx.is_main:
        _print_summary(trainer, time.perf_counter() - t_begin)
    return TrainResult(
        run_dir,
        trainer.step,
        _last_losses(trainer.records),
        trainer.interrupted,
        trainer.nets,
        trainer.stop_reason,
        trainer.signal_number,
    )


def _frames_only(cfg: TrainConfig) -> bool:
    """Whether every dataset holds frames without face alignment (what the budget table measured)."""
    return all(read_dataset(d).align == "none" for d in cfg.datasets)


def _check_run_dir(cfg: TrainConfig) -> Path:
    """The run folder, checked by the one output rule (:func:`retarget.outputs.check_output`): no dataset given
    twice, not an input, not another command's product, writable. An existing run is left to
    :func:`~retarget.train.run_dir.prepare_run_dir` (--resume, --overwrite, or a restart before its first checkpoint)."""
    check_distinct(cfg.datasets)
    out = cfg.out if cfg.out is not None else default_run_dir(cfg)  # -o "" is refused, not read as "."
    inputs = (*cfg.datasets, cfg.init_from)
    return check_output(out, kind="run", inputs=inputs, overwrite=cfg.overwrite, reuse=True)


def _setup(
    cfg: TrainConfig,
    ctx: ddp.DistContext,
    device: torch.device,
    run_dir: Path,
    hooks: Sequence[Hook],
    init: Optional[InitWeights] = None,
) -> Trainer:
    """Run folder, data, networks (``init``'s weights, if any), optimizers and hooks; the resumed state loaded;
    config.json written."""
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(run_dir, run_dir / layout.PREVIEWS, run_dir / layout.CHECKPOINTS)
        # --overwrite, or the leftovers of a run killed before its first checkpoint
        if not cfg.resume and (cfg.overwrite or (run_dir / layout.CONFIG).exists()):
            clear_run_dir(run_dir)
    ddp.barrier(ctx)
    domains = _load_domains(cfg, ctx, run_dir)
    if not cfg.resume and any(d.whole_frames for d in domains.values()):
        # whole frames: a stronger identity default, saved in config.json (a resumed run keeps its own)
        loss = whole_frame_loss(cfg.loss)
        if ctx.is_main and loss != cfg.loss:
            per_cycle = WHOLE_FRAME_IDENTITY_PER_CYCLE
            console.print(
                f"whole frames: --identity {loss.identity:g} ({per_cycle:g} x cycle, docs/training.md)", markup=False
            )
        cfg = replace(cfg, loss=loss)
    frames = frames_per_sample(cfg.model)
    # a multi-domain step takes sample i's window from the i-th draw of its source domain's sampler
    samplers = {
        name: TripletSampler(d, frames, cfg.model.size, cfg.batch_size, cfg.seed, i, cfg.flip, ctx.rank, ctx.world)
        for i, (name, d) in enumerate(domains.items())
    }

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    nets = build_networks(cfg.model)
    if init is not None:
        init.load_into(nets)
        if ctx.is_main:
            side = ", its B->A side as A->B" if init.swapped else ""
            console.print(f"starting from {init.path} (step {init.step}{side})", markup=False, soft_wrap=True)
    for net in nets.values():
        net.to(device).train()
    stepper = _make_step(nets, cfg, device, ctx)
    all_hooks = [*default_hooks(cfg, domains, lambda copies: _make_step(copies, cfg, device, ctx)), *hooks]
    trainer = Trainer(
        cfg, ctx, device, run_dir, nets, stepper, samplers, {n: d.info for n, d in domains.items()}, all_hooks
    )
    if cfg.resume:
        trainer.resume()
    if ctx.is_main:
        # The file re-creates the run: the real folder, and neither --resume nor --overwrite;
        # absolute dataset paths, so `train --resume RUN` works from any folder.
        # (absolute, symbolic links kept: a pair's domains are named after the folders given)
        a_dir, b_dir, *more = (os.path.abspath(d) for d in cfg.datasets)
        init_from = str(Path(cfg.init_from).resolve()) if cfg.init_from else None
        paths = dict(a_dir=a_dir, b_dir=b_dir, more=tuple(more), init_from=init_from, out=str(run_dir))
        saved_cfg = replace(cfg, **paths, resume=False, overwrite=False)
        layout.write_config(run_dir, saved_cfg, amp_used=trainer.stepper.amp)
        trainer.records = layout.read_metrics(run_dir, upto=trainer.start)
        layout.write_metrics(run_dir, trainer.records)
        (run_dir / layout.PREVIEWS).mkdir(exist_ok=True)
    return trainer


def _load_domains(cfg: TrainConfig, ctx: ddp.DistContext, run_dir: Path) -> dict[str, DomainData]:
    """Every domain's frame cache, keyed ``A``, ``B`` for a pair, by name for a multi-domain run (in label
    order); warns (rank 0) about skipped or resized images."""
    frames = frames_per_sample(cfg.model)
    load_size = default_load_size(cfg.model.size, cfg.load_size)
    motion = needs_motion(cfg.model, cfg.loss)
    domains = {}
    for name, path in zip(domain_keys(cfg), cfg.datasets):

        def load(path: str = path, name: str = name) -> DomainData:
            return load_domain(
                path,
                load_size,
                frames_needed=frames,
                cache=cfg.cache,
                cache_path=run_dir / layout.cache_file(name),
                motion=motion,
            )

        # Only rank 0 builds an mmap cache; the others wait (however long the decode
        # takes, but not for a dead rank 0) and map the finished file.
        if cfg.cache == "mmap":
            data = ddp.main_first(ctx, layout.cache_file(name), load, f"the frame cache of {name}")
        else:
            data = load()
        if ctx.is_main and data.warning():
            console.print(f"[yellow]warning:[/] {escape(data.warning() or '')}")
        domains[name] = data
    return domains


def default_hooks(
    cfg: TrainConfig, domains: dict[str, DomainData], make_stepper: Optional[Callable[[Any], Any]] = None
) -> list[Hook]:
    """The hooks of every run, in the order they run after a step.

    The time limit comes first, so the jobs after it know the step is the last; hooks
    that put metrics come before :class:`Metrics`, which writes them; the checkpoint
    comes after the previews and metrics it refers to; the user's callback and the
    Ctrl-C check (added by :func:`train`) come last, as before the split.
    """
    hooks: list[Hook] = [Forecast(make_stepper)]  # before the progress bar: its lines come first
    if cfg.time_limit:
        hooks.append(TimeLimit(cfg.time_limit))
    names = list(domains)
    first = domains[names[0]]  # A, or a multi-domain run's first domain
    clip = preview_clip(first, cfg.preview_frames, cfg.model.size) if cfg.preview_frames else None
    # a multi-domain run's clip of the first domain goes to every other one
    targets = tuple((name, k) for k, name in enumerate(names) if k > 0) if cfg.model.domains else None
    if clip is not None and len(clip) >= 2:
        hooks.append(TemporalPreview(clip, cfg.preview_every, targets))  # puts metrics: before Metrics
    # a multi-domain grid starts with one row per domain: a fixed frame and its translation to every domain
    stills = np.stack([preview_still(d, cfg.model.size) for d in domains.values()]) if cfg.model.domains else None
    hooks += [Metrics(cfg.log_every), Progress(), Previews(cfg.preview_every, stills)]
    hooks.append(Views(cfg.preview_every))  # report.html, TensorBoard: after what they show
    hooks.append(Checkpoint(cfg.checkpoint_every))
    hooks.append(LossCurve(cfg.preview_every))  # after the checkpoint: on Ctrl-C the save comes first
    return hooks


def _last_losses(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The last metrics record with loss terms (other hooks log lines of their own)."""
    return next((r for r in reversed(records) if any(k.startswith("loss/") for k in r)), {})


def _print_summary(trainer: Trainer, elapsed: float) -> None:
    cfg, run_dir, done = trainer.cfg, trainer.run_dir, trainer.step
    if trainer.interrupted:
        how = "stopped by SIGTERM" if trainer.signal_number == signal.SIGTERM else "interrupted"
        console.print(
            f"{how} at step {done}/{cfg.steps}; checkpoint saved in {run_dir}. Resume with: {resume_command(run_dir)}",
            soft_wrap=True,
            markup=False,
        )
        return
    last = _last_losses(trainer.records)
    rate = (done - trainer.start) / max(elapsed, 1e-9)
    summary = " ".join(f"{k[5:]}={last[k]:.3f}" for k in ("loss/loss_G", "loss/loss_D") if k in last)
    stopped = f" ({trainer.stop_reason})" if trainer.stop_reason else ""
    precision = precision_name(trainer.stepper.amp)
    console.print(
        f"trained {done} steps{stopped} in {elapsed:.1f} s ({rate:.2f} it/s, {precision}) into {run_dir}; {summary}",
        soft_wrap=True,
        markup=False,
    )
