"""Loading a trained run for inference: :func:`find_weights` and :func:`load_run`.

Render reads runs only through this module, which imports neither the trainer nor
the optimiser code (see docs/architecture.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from retarget.config import ModelConfig, TrainConfig
from retarget.errors import RetargetError
from retarget.run.checkpoint import checkpoint_steps, load_into, model_config_of, read_weights
from retarget.run.info import DataInfo, data_from_json
from retarget.run.layout import CHECKPOINTS, DATA, WEIGHTS, checkpoint_dir, read_train_config


@dataclass
class LoadedRun:
    """A trained run, ready to translate.

    Attributes:
        path: the weights file that was loaded.
        run_dir: its run folder (also for a file inside ``RUN/checkpoints/step_N/``).
        model_cfg: the architecture.
        train_cfg: the run's :class:`TrainConfig` (None when ``config.json`` is absent).
        networks: ``{"G_AB", "G_BA", ...}`` in eval mode on the requested device; each maps
            float ``[B, 3, H, W]`` in [-1, 1] to the same shape and range.
        data: ``{"A": DataInfo, "B": DataInfo}`` (empty for runs saved without it).
        step: optimisation steps the weights have seen.
    """

    path: Path
    run_dir: Path
    model_cfg: ModelConfig
    train_cfg: Optional[TrainConfig]
    networks: dict[str, torch.nn.Module]
    data: dict[str, DataInfo] = field(default_factory=dict)
    step: int = 0

    def data_of(self, side: str) -> DataInfo:
        """The :class:`DataInfo` of domain ``side`` ("A" or "B"); defaults when not recorded."""
        return self.data.get(side) or DataInfo()


def run_weights(run_dir: str | os.PathLike[str], step: Optional[int] = None) -> Optional[Path]:
    """The weights file of a run folder: its newest checkpoint's, or that of ``step``; None if absent.

    Runs of the old layout keep ``weights.safetensors`` directly in the run folder.
    """
    run_dir = Path(run_dir)
    steps = checkpoint_steps(run_dir)
    if step is not None:
        return checkpoint_dir(run_dir, step) / WEIGHTS if step in steps else None
    if steps:
        return checkpoint_dir(run_dir, steps[-1]) / WEIGHTS
    return run_dir / WEIGHTS if (run_dir / WEIGHTS).is_file() else None


def find_weights(
    path: str | os.PathLike[str] | None, models_dir: str | os.PathLike[str] = "models", step: Optional[int] = None
) -> Path:
    """The weights file named by ``path`` (run folder or file), or the newest run's under ``models_dir``.

    Args:
        path: a run folder (its newest complete checkpoint), a weights file, or None.
        models_dir: where runs live when ``path`` is None; the run whose newest
            checkpoint was written last is taken.
        step: take the run's checkpoint of this step instead of its newest.
    """
    if path is None:
        root = Path(models_dir)
        runs = sorted(root.iterdir()) if root.is_dir() else []
        found = [w for r in runs if r.is_dir() and (w := run_weights(r)) is not None]
        if not found:
            raise RetargetError(f"{root}: no trained run found (train one with `retarget train`, or pass --model)")
        newest = max(found, key=lambda w: w.stat().st_mtime)
        return newest if step is None else _step_weights(_run_dir_of(newest), step)
    p = Path(path)
    if not p.exists():
        raise RetargetError(f"{p}: model not found")
    if p.is_dir():
        if step is not None:
            return _step_weights(p, step)
        w = run_weights(p)
        if w is None:
            raise RetargetError(f"{p}: not a run folder (no complete checkpoint, no {WEIGHTS})")
        return w
    if step is not None:
        raise RetargetError(f"{p}: --step picks a checkpoint of a run folder; pass the run folder, not a file")
    return p


def _run_dir_of(weights: Path) -> Path:
    """The run folder of a weights file (``RUN/checkpoints/step_N/weights.safetensors`` or ``RUN/weights.safetensors``)."""
    parent = weights.parent
    return parent.parent.parent if parent.parent.name == CHECKPOINTS else parent


def _step_weights(run_dir: Path, step: int) -> Path:
    w = run_weights(run_dir, step)
    if w is None:
        have = ", ".join(str(s) for s in checkpoint_steps(run_dir)) or "none"
        raise RetargetError(f"{run_dir}: no checkpoint of step {step} (checkpoints kept: {have})")
    return w


def build_networks_for(model_cfg: ModelConfig, names: Optional[tuple[str, ...]] = None) -> dict[str, torch.nn.Module]:
    """The networks ``names`` of ``model_cfg`` (all of :func:`retarget.nn.networks.build_networks` if None).

    Building only what is asked spares render the predictors (40M parameters each in
    the official preset) and the discriminators.
    """
    from retarget.nn import networks as nn_networks

    if names is None:
        return nn_networks.build_networks(model_cfg)
    nn_networks.check_size(model_cfg)
    makers = {"G": nn_networks.build_generator, "D": nn_networks.build_discriminator, "P": nn_networks.build_predictor}
    known = {"G_AB", "G_BA", "D_A", "D_B"} | ({"P_A", "P_B"} if model_cfg.model == "recycle" else set())
    return {n: makers[n[0]](model_cfg) for n in names if n in known}


def load_run(
    path: str | os.PathLike[str] | None,
    device: str | torch.device = "cpu",
    models_dir: str | os.PathLike[str] = "models",
    names: Optional[tuple[str, ...]] = None,
    step: Optional[int] = None,
) -> LoadedRun:
    """Load a trained run for inference.

    Args:
        path: run folder (its newest complete checkpoint) or weights file; None picks
            the run under ``models_dir`` whose newest checkpoint was written last.
        device: where to put the networks.
        models_dir: where runs live (``./models``).
        names: networks to load; None loads all in the file (at least ``G_AB``, ``G_BA``).
        step: load the run's checkpoint of this step (kept with ``train --keep``) instead
            of its newest.

    Returns:
        :class:`LoadedRun` with networks in eval mode.

    Raises:
        RetargetError: missing path, not a run, or weights that do not fit their config.
    """
    wpath = find_weights(path, models_dir, step)
    meta, tensors = read_weights(wpath)
    try:
        model_cfg = model_config_of(meta)
    except (ValueError, TypeError) as exc:
        raise RetargetError(f"{wpath}: invalid model configuration in metadata ({exc})") from None
    stored = [n for n in meta.get("networks", "").split(",") if n]
    for need in ("G_AB", "G_BA"):
        if need not in stored:
            raise RetargetError(f"{wpath}: has no {need} generator")
    wanted = tuple(names) if names is not None else tuple(stored)
    try:
        nets = build_networks_for(model_cfg, wanted)
    except ValueError as exc:
        raise RetargetError(f"{wpath}: invalid model configuration ({exc})") from None
    missing = [n for n in wanted if n not in nets]
    if missing:
        raise RetargetError(f"{wpath}: networks {', '.join(missing)} are not part of a {model_cfg.model} model")
    load_into(nets, tensors, wpath)
    for net in nets.values():
        net.to(device).eval()
        net.requires_grad_(False)
    run_dir = _run_dir_of(wpath)
    train_cfg = read_train_config(run_dir)
    data = data_from_json(meta.get("data", ""))
    if not data and (run_dir / DATA).exists():  # runs that kept it beside the weights
        data = data_from_json((run_dir / DATA).read_text())
    return LoadedRun(wpath, run_dir, model_cfg, train_cfg, nets, data, int(meta.get("step", 0)))
