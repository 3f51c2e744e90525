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
from retarget.run.checkpoint import (
    checkpoint_steps,
    domains_of,
    load_into,
    model_config_of,
    read_metadata,
    read_weights,
)
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
            float ``[B, 3, H, W]`` in [-1, 1] to the same shape and range. A multi-domain
            run's are ``{"G", "D", "P"}`` (``G(x, c)`` with ``c`` a ``[B]`` long target index).
        data: ``{"A": DataInfo, "B": DataInfo}`` (empty for runs saved without it); a
            multi-domain run's is keyed by domain name.
        step: optimisation steps the weights have seen.
        domains: a multi-domain run's domain names in label order (``G(x, k)`` translates
            to ``domains[k]``); () for a pair.
        stored: the networks the weights file holds.
    """

    path: Path
    run_dir: Path
    model_cfg: ModelConfig
    train_cfg: Optional[TrainConfig]
    networks: dict[str, torch.nn.Module]
    data: dict[str, DataInfo] = field(default_factory=dict)
    step: int = 0
    domains: tuple[str, ...] = ()
    stored: tuple[str, ...] = ()

    def data_of(self, side: str) -> DataInfo:
        """The :class:`DataInfo` of domain ``side`` ("A" or "B", or a multi-domain run's name); defaults when not recorded."""
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
    if model_cfg.domains:
        from retarget.nn.conditional import build_conditional_networks

        return build_conditional_networks(model_cfg, names)
    makers = {"G": nn_networks.build_generator, "D": nn_networks.build_discriminator, "P": nn_networks.build_predictor}
    known = {"G_AB", "G_BA", "D_A", "D_B"} | ({"P_A", "P_B"} if model_cfg.model == "recycle" else set())
    return {n: makers[n[0]](model_cfg) for n in names if n in known}


def open_run(
    path: str | os.PathLike[str] | None,
    models_dir: str | os.PathLike[str] = "models",
    step: Optional[int] = None,
) -> LoadedRun:
    """What a run is, without its networks: the weights file's header, ``config.json``, the data info.

    Arguments as :func:`load_run`; ``networks`` is ``{}`` (read no tensor). Render opens a
    run first to pick the generator (``--to``, ``--direction``), then loads that one
    alone with :func:`load_networks`.

    Raises:
        RetargetError: missing path, not a run, no generator in the file.
    """
    wpath = find_weights(path, models_dir, step)
    meta = read_metadata(wpath)
    try:
        model_cfg = model_config_of(meta)
    except (ValueError, TypeError) as exc:
        raise RetargetError(f"{wpath}: invalid model configuration in metadata ({exc})") from None
    stored = [n for n in meta.get("networks", "").split(",") if n]
    for need in ("G",) if model_cfg.domains else ("G_AB", "G_BA"):
        if need not in stored:
            raise RetargetError(f"{wpath}: has no {need} generator")
    run_dir = _run_dir_of(wpath)
    train_cfg = read_train_config(run_dir)
    data = data_from_json(meta.get("data", ""))
    if not data and (run_dir / DATA).exists():  # runs that kept it beside the weights
        data = data_from_json((run_dir / DATA).read_text())
    domains = run_domains(meta, model_cfg, train_cfg)
    data = {**{n: data[n] for n in domains if n in data}, **data}  # a multi-domain run's in label order
    step_done = int(meta.get("step", 0))
    return LoadedRun(wpath, run_dir, model_cfg, train_cfg, {}, data, step_done, domains, tuple(stored))


def load_networks(run: LoadedRun, names: Optional[tuple[str, ...]], device: str | torch.device) -> None:
    """Build the networks ``names`` of an opened run (None: every one in its file), load their weights
    into them, put them on ``device`` in eval mode, into ``run.networks``."""
    wpath, model_cfg = run.path, run.model_cfg
    wanted = tuple(names) if names is not None else run.stored
    try:
        nets = build_networks_for(model_cfg, wanted)
    except ValueError as exc:
        raise RetargetError(f"{wpath}: invalid model configuration ({exc})") from None
    missing = [n for n in wanted if n not in nets]
    if missing:
        kind = f"{model_cfg.domains}-domain {model_cfg.model}" if model_cfg.domains else model_cfg.model
        raise RetargetError(f"{wpath}: networks {', '.join(missing)} are not part of a {kind} model")
    _, tensors = read_weights(wpath)
    load_into(nets, tensors, wpath)
    for net in nets.values():
        net.to(device).eval()
        net.requires_grad_(False)
    run.networks = nets


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
        names: networks to load; None loads all in the file (at least ``G_AB``, ``G_BA``;
            ``G`` for a multi-domain run).
        step: load the run's checkpoint of this step (kept with ``train --keep``) instead
            of its newest.

    Returns:
        :class:`LoadedRun` with networks in eval mode.

    Raises:
        RetargetError: missing path, not a run, or weights that do not fit their config.
    """
    run = open_run(path, models_dir, step)
    load_networks(run, names, device)
    return run


def run_domains(meta: dict[str, str], model_cfg: ModelConfig, train_cfg: Optional[TrainConfig]) -> tuple[str, ...]:
    """A multi-domain run's domain names in label order: the weights' own, else config.json's, else ``0, 1, ...``;
    () for a pair."""
    if not model_cfg.domains:
        return ()
    names = domains_of(meta)
    if len(names) != model_cfg.domains and train_cfg is not None:
        names = tuple(train_cfg.names)
    if len(names) != model_cfg.domains:
        names = tuple(str(k) for k in range(model_cfg.domains))
    return names
