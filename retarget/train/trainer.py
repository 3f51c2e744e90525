"""``train(TrainConfig)``: the run folder, the loop, checkpoints, resume, DDP and progress.

The loop is generic: :mod:`retarget.nn.step` owns what one optimisation step does
(generator then discriminator update, AMP, image pools); this module owns everything
around it. Resuming is exact because the sampler is a pure function of the step and
everything else that evolves (weights, optimizer moments, LR schedule, RNG states, pools)
is checkpointed.
"""

from __future__ import annotations

import json
import random
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from rich.markup import escape

from retarget.atomic import atomic_file
from retarget.config import ModelConfig, TrainConfig, model_preset, replace, to_dict, to_json
from retarget.errors import RetargetError
from retarget.progress import console, make_progress
from retarget.train import checkpoint as ckpt
from retarget.train import distributed as ddp
from retarget.train.data import TripletSampler, default_load_size, load_domain
from retarget.train.preview import (
    append_metrics,
    preview_rows,
    read_metrics,
    save_grid,
    save_loss_curve,
    write_metrics,
)

METRICS = "metrics.jsonl"
PREVIEWS = "previews"
LOSS_CURVE = "loss_curve.png"
#: Files a run folder may hold; --overwrite removes exactly these.
RUN_FILES = (ckpt.WEIGHTS, ckpt.STATE, ckpt.CONFIG, ckpt.DATA, METRICS, LOSS_CURVE, "cache_A.npy", "cache_A.json",
             "cache_B.npy", "cache_B.json")

StepHook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """What a run did.

    Attributes:
        run_dir: the run folder.
        steps: steps completed in total (including those before a resume).
        metrics: the last logged record (loss terms, lr, it/s, data time).
        interrupted: stopped by Ctrl-C after saving a checkpoint.
        networks: the trained networks (unwrapped), in train mode.
    """

    run_dir: Path
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    networks: dict[str, torch.nn.Module] = field(default_factory=dict)


def pick_device(kind: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda > mps > cpu; an unavailable explicit choice is a RetargetError."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else ("mps" if has_mps else "cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RetargetError("--device cuda: no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if kind == "mps" and not has_mps:
        raise RetargetError("--device mps: the MPS backend is not available")
    return torch.device(kind)


def lr_factor(step: int, steps: int, decay_from: Optional[int]) -> float:
    """LR multiplier after ``step`` steps: 1 until ``decay_from`` (default steps // 2), then linearly to 0."""
    start = steps // 2 if decay_from is None else decay_from
    if step < start or steps <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (steps - start))


def default_run_dir(cfg: TrainConfig) -> Path:
    """``models/<A>-to-<B>`` under the current folder, from the dataset folder names."""
    a, b = Path(cfg.a_dir).resolve().name, Path(cfg.b_dir).resolve().name
    return Path("models") / f"{a}-to-{b}"


def resume_command(cfg: TrainConfig, run_dir: Path) -> str:
    """The ``retarget train`` command line that resumes ``cfg``'s run in ``run_dir``."""
    m = cfg.model
    parts = ["retarget", "train", cfg.a_dir, cfg.b_dir, "--out", str(run_dir)]
    if m.model != "recycle":
        parts += ["--model", m.model]
    if cfg.preset != "default":
        parts += ["--preset", cfg.preset]
    if m.size != 128:
        parts += ["--size", str(m.size)]
    base = model_preset(cfg.preset, model=m.model, size=m.size)
    for name in ("ngf", "blocks", "ndf", "npf", "p_depth"):
        if getattr(m, name) != getattr(base, name):
            parts += [f"--{name.replace('_', '-')}", str(getattr(m, name))]
    if m.p_residual != base.p_residual:
        parts.append("--p-residual" if m.p_residual else "--no-p-residual")
    if cfg.steps != 10000:
        parts += ["--steps", str(cfg.steps)]
    return " ".join(parts + ["--resume"])


def _describe_change(old: ModelConfig, new: ModelConfig) -> str:
    diffs = [f"{k} {v} vs {getattr(new, k)}" for k, v in to_dict(old).items() if getattr(new, k) != v]
    return ", ".join(diffs)


def _prepare_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    """Check the run folder against --resume/--overwrite (read-only, every rank)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RetargetError(f"{run_dir}: exists and is not a folder; pick another --out")
    has_run = any((run_dir / f).exists() for f in (ckpt.WEIGHTS, ckpt.STATE, ckpt.CONFIG))
    if cfg.resume:
        if not (run_dir / ckpt.WEIGHTS).exists() or not (run_dir / ckpt.STATE).exists():
            raise RetargetError(f"{run_dir}: no checkpoint to resume (expected {ckpt.WEIGHTS} and {ckpt.STATE})")
        meta, _ = ckpt.read_weights(run_dir / ckpt.WEIGHTS)
        old = ckpt.model_config_of(meta)
        if old != cfg.model:
            raise RetargetError(
                f"{run_dir / ckpt.WEIGHTS}: checkpoint has another architecture ({_describe_change(old, cfg.model)}); "
                "train with the same options or use --overwrite"
            )
    elif has_run and not cfg.overwrite:
        raise RetargetError(f"{run_dir}: already holds a run; pass --resume to continue it or --overwrite to start afresh")


def _clear_run_dir(run_dir: Path) -> None:
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / PREVIEWS, ignore_errors=True)


def _make_step(nets: dict[str, torch.nn.Module], cfg: TrainConfig, device: torch.device, ctx: ddp.DistContext) -> Any:
    """The optimisation step of :mod:`retarget.nn.step` with this run's optimizers and pools."""
    from retarget.nn.objectives import make_objective
    from retarget.nn.step import Stepper, make_optimizers
    from retarget.train.pool import ImagePool

    cuda = device.type == "cuda"
    if cfg.channels_last and cuda:
        # before DDP wraps them, so its gradient buckets take the final layout
        for net in nets.values():
            net.to(memory_format=torch.channels_last)
    objective = make_objective(cfg.model, cfg.loss, ddp.wrap(nets, ctx, device))
    g_opt, d_opt = make_optimizers(nets, cfg.lr, (cfg.beta1, cfg.beta2))
    # Pools draw from their own generators; ranks hold different fakes, so different seeds.
    pools = {d: ImagePool(cfg.pool, seed=cfg.seed * 1009 + 2 * ctx.rank + i) for i, d in enumerate("AB")}
    return Stepper(
        objective,
        g_opt,
        d_opt,
        pools=pools if cfg.pool > 0 else None,
        amp=cfg.amp if cuda else "off",
        channels_last=cfg.channels_last and cuda,
        device=device,
        agree=(lambda finite: ddp.all_finite(finite, ctx)) if ctx.world > 1 else None,
    )


def train(cfg: TrainConfig, on_step: Optional[StepHook] = None) -> TrainResult:
    """Train Recycle-GAN (or CycleGAN) between the datasets ``cfg.a_dir`` and ``cfg.b_dir``.

    Args:
        cfg: every option; ``cfg.model.size`` is the training resolution (px).
        on_step: called after each completed step with ``(steps_done, losses)``; raising
            KeyboardInterrupt from it behaves like Ctrl-C (used by tests).

    Returns:
        :class:`TrainResult`. The run folder holds ``config.json``, ``data.json``,
        ``weights.safetensors``, ``state.pt``, ``metrics.jsonl``, ``previews/`` and
        ``loss_curve.png`` (docs/checkpoints.md).

    Raises:
        RetargetError: bad datasets, an existing run without --resume/--overwrite, a
            checkpoint of another architecture, or a non-finite loss (the last good
            checkpoint is kept).
    """
    device_kind = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    ctx = ddp.setup(device_kind)
    try:
        return _train(cfg, ctx, on_step)
    except BaseException as exc:
        # The traceback keeps _train's locals, DDP wrappers included, alive; a DDP
        # reducer that outlives its process group aborts the process at exit. Drop the
        # locals (the traceback's lines stay) before the group is destroyed.
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        ddp.teardown(ctx)


def _train(cfg: TrainConfig, ctx: ddp.DistContext, on_step: Optional[StepHook]) -> TrainResult:
    # imported here: retarget.nn may import retarget.train (the image pool)
    from retarget.nn.step import NonFiniteLoss

    device = pick_device(cfg.device, ctx.local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest kernels once
    model_cfg = cfg.model
    try:
        from retarget.nn.networks import check_size

        check_size(model_cfg)
    except ValueError as exc:
        raise RetargetError(f"--size {model_cfg.size}: {exc}") from None
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    _prepare_run_dir(cfg, run_dir)
    ddp.barrier(ctx)

    recycle = model_cfg.model == "recycle"
    frames = model_cfg.p_frames + 1 if recycle else 1
    load_size = default_load_size(model_cfg.size, cfg.load_size)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.overwrite and not cfg.resume:
            _clear_run_dir(run_dir)
    ddp.barrier(ctx)
    domains = {}
    for i, (name, path) in enumerate((("A", cfg.a_dir), ("B", cfg.b_dir))):
        # Only rank 0 builds an mmap cache; the others wait and map the finished file.
        if cfg.cache == "mmap" and not ctx.is_main:
            ddp.barrier(ctx)
        data = load_domain(path, load_size, frames_needed=frames, cache=cfg.cache, cache_path=run_dir / f"cache_{name}.npy")
        if cfg.cache == "mmap" and ctx.is_main:
            ddp.barrier(ctx)
        if ctx.is_main and (data.skipped or data.resized):
            console.print(
                f"[yellow]warning:[/] {escape(data.path)}: skipped {data.skipped} unreadable image(s), "
                f"resized {data.resized} image(s) of another size"
            )
        domains[name] = data
    samplers = {
        name: TripletSampler(d, frames, model_cfg.size, cfg.batch_size, cfg.seed, i, cfg.flip, ctx.rank, ctx.world)
        for i, (name, d) in enumerate(domains.items())
    }
    data_info = {
        n: {**d.info, "name": d.name, "path": str(Path(d.path).resolve()), "frames": int(len(d.frames))}
        for n, d in domains.items()
    }

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    from retarget.nn.networks import build_networks

    nets = build_networks(model_cfg)
    for net in nets.values():
        net.to(device).train()
    stepper = _make_step(nets, cfg, device, ctx)
    scheds = [
        torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps, cfg.decay_from))
        for opt in (stepper.g_opt, stepper.d_opt)
    ]

    start = 0
    if cfg.resume:
        meta, tensors = ckpt.read_weights(run_dir / ckpt.WEIGHTS)
        ckpt.load_into(nets, tensors, run_dir / ckpt.WEIGHTS)
        state = ckpt.load_state(run_dir / ckpt.STATE)
        start = int(state["step"])
        if start != int(meta.get("step", -1)):
            raise RetargetError(f"{run_dir}: weights (step {meta.get('step')}) and training state (step {start}) disagree")
        stepper.g_opt.load_state_dict(state["opt_g"])
        stepper.d_opt.load_state_dict(state["opt_d"])
        for s, sd in zip(scheds, state["schedulers"]):
            s.load_state_dict(sd)
        # A resume on fewer ranks reuses rank 0's states for the new ones.
        own = ctx.rank if ctx.rank < len(state["rng"]) else 0
        stepper.load_state_dict(state["step_state"][own])
        ckpt.set_rng_state(state["rng"][own])

    last_saved: Optional[int] = start if cfg.resume else None

    def save(done: int) -> None:
        nonlocal last_saved
        # Every rank has its own RNG states and image pools; rank 0 stores them all.
        mine = {"rng": ckpt.rng_state(), "step_state": stepper.state_dict()}
        per_rank = [mine]
        if ctx.world > 1:
            per_rank = [None] * ctx.world
            torch.distributed.all_gather_object(per_rank, mine)
        if ctx.is_main:
            try:
                _write_checkpoint(done, per_rank)
            except OSError as exc:
                why = exc.strerror or exc
                raise RetargetError(f"{run_dir}: could not write the checkpoint of step {done} ({why})") from None
        last_saved = done

    def _write_checkpoint(done: int, per_rank: list[Any]) -> None:
        ckpt.save_weights(run_dir / ckpt.WEIGHTS, nets, model_cfg, done, data_info)
        state = {
            "step": done,
            "opt_g": stepper.g_opt.state_dict(),
            "opt_d": stepper.d_opt.state_dict(),
            "schedulers": [s.state_dict() for s in scheds],
            "rng": [r["rng"] for r in per_rank],
            "step_state": [r["step_state"] for r in per_rank],
        }
        ckpt.save_state(run_dir / ckpt.STATE, state)

    records: list[dict[str, Any]] = []
    if ctx.is_main:
        # The file re-creates the run: the real folder, and neither --resume nor --overwrite.
        saved_cfg = replace(cfg, out=str(run_dir), resume=False, overwrite=False)
        with atomic_file(run_dir / ckpt.CONFIG) as tmp:
            tmp.write_text(to_json(saved_cfg) + "\n")
        with atomic_file(run_dir / ckpt.DATA) as tmp:
            tmp.write_text(json.dumps(data_info, indent=2, sort_keys=True) + "\n")
        records = read_metrics(run_dir / METRICS, upto=start)
        write_metrics(run_dir / METRICS, records)
        (run_dir / PREVIEWS).mkdir(exist_ok=True)

    last: dict[str, float] = records[-1] if records else {}
    sums: dict[str, float] = {}
    n_sum, data_time, busy = 0, 0.0, 0.0
    done = start
    interrupted = False
    progress = make_progress(unit="it", extra="{task.fields[losses]}")
    t_begin = time.perf_counter()
    with ddp.DeferredInterrupt() as sig, progress:
        task = progress.add_task("train", total=cfg.steps, completed=start, losses="")
        try:
            while done < cfg.steps:
                t0 = time.perf_counter()
                batch = {k: s.batch(done).to(device, non_blocking=True) for k, s in samplers.items()}
                data_time += time.perf_counter() - t0
                try:
                    losses = stepper.step(batch)
                except NonFiniteLoss as exc:
                    kept = "no checkpoint was saved yet"
                    if last_saved is not None:
                        kept = f"the last good checkpoint (step {last_saved}) is kept"
                    raise RetargetError(
                        f"{exc} at step {done + 1}; training stopped, {kept} in {run_dir} (try a lower --lr, or --amp off)"
                    ) from None
                lr_used = scheds[0].get_last_lr()[0]
                for s in scheds:
                    s.step()
                done += 1
                busy += time.perf_counter() - t0
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                n_sum += 1
                if done % cfg.log_every == 0 or done == cfg.steps:
                    # it/s counts data and step time only, not previews and checkpoints
                    last = {"step": done, **{f"loss/{k}": v / n_sum for k, v in sums.items()}}
                    last.update(lr=lr_used, it_s=n_sum / max(busy, 1e-9), data_s=data_time / n_sum)
                    sums, n_sum, data_time, busy = {}, 0, 0.0, 0.0
                    if ctx.is_main:
                        records.append(last)
                        append_metrics(run_dir / METRICS, last)
                main = " ".join(f"{k[5:]}={losses[k]:.3f}" for k in ("loss_G", "loss_D") if k in losses)
                progress.update(task, completed=done, losses=main)
                if ctx.is_main and (done % cfg.preview_every == 0 or done == cfg.steps):
                    _preview(run_dir, done, stepper.objective, batch)
                if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                    save(done)
                    if ctx.is_main and records:
                        save_loss_curve(run_dir / LOSS_CURVE, records)
                if on_step is not None:
                    on_step(done, {k: float(v) for k, v in losses.items()})
                # torchrun signals every rank, but not at the same step: agree first
                if ddp.any_rank(sig.requested, ctx):
                    raise KeyboardInterrupt
        except ddp.HardInterrupt:
            raise
        except KeyboardInterrupt:
            interrupted = True
            save(done)
            if ctx.is_main and records:
                save_loss_curve(run_dir / LOSS_CURVE, records)
    elapsed = time.perf_counter() - t_begin
    if ctx.is_main:
        if interrupted:
            console.print(
                f"interrupted at step {done}/{cfg.steps}; checkpoint saved in {run_dir}. "
                f"Resume with: {resume_command(cfg, run_dir)}",
                soft_wrap=True,
                markup=False,
            )
        else:
            rate = (done - start) / max(elapsed, 1e-9)
            summary = " ".join(f"{k[5:]}={last[k]:.3f}" for k in ("loss/loss_G", "loss/loss_D") if k in last)
            console.print(
                f"trained {done} steps in {elapsed:.1f} s ({rate:.2f} it/s) into {run_dir}; {summary}",
                soft_wrap=True,
                markup=False,
            )
    return TrainResult(run_dir, done, last, interrupted, nets)


def _preview(run_dir: Path, step: int, objective: Any, batch: dict[str, torch.Tensor]) -> None:
    visuals = objective.visuals(batch)
    save_grid(run_dir / PREVIEWS / f"step_{step:07d}.png", preview_rows(visuals))
