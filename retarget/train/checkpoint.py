"""Checkpoints: safetensors weights, a tensors-only training state, and loading for render.

A run folder holds (see docs/checkpoints.md):

- ``weights.safetensors``: every network's ``state_dict`` under ``<net>.<param>`` keys;
  its metadata carries the ``ModelConfig`` JSON, the step and the data info, so the
  file alone rebuilds its networks;
- ``state.pt``: optimizers, LR schedulers, step, RNG states, image pools; written with
  ``torch.save`` from tensors, numbers, strings, lists and dicts only and read back
  with ``torch.load(weights_only=True)``, which never unpickles arbitrary objects.

Both are written under a temporary name and renamed (:mod:`retarget.atomic`).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from retarget.atomic import atomic_file
from retarget.config import ModelConfig, TrainConfig, from_dict, to_json
from retarget.errors import RetargetError

WEIGHTS = "weights.safetensors"
STATE = "state.pt"
CONFIG = "config.json"
DATA = "data.json"
FORMAT = "retarget-weights/1"


@dataclass
class LoadedRun:
    """A trained run, ready to translate.

    Attributes:
        path: the weights file that was loaded.
        run_dir: its folder.
        model_cfg: the architecture.
        train_cfg: the run's :class:`TrainConfig` (None when ``config.json`` is absent).
        networks: ``{"G_AB", "G_BA", ...}`` in eval mode on the requested device; each maps
            float ``[B, 3, H, W]`` in [-1, 1] to the same shape and range.
        data: ``{"A": info, "B": info}``, info = ``{"align", "size", "face", "crop", "cut_threshold", "name", ...}``.
        step: optimisation steps the weights have seen.
    """

    path: Path
    run_dir: Path
    model_cfg: ModelConfig
    train_cfg: Optional[TrainConfig]
    networks: dict[str, torch.nn.Module]
    data: dict[str, Any] = field(default_factory=dict)
    step: int = 0


def save_weights(
    path: str | os.PathLike[str],
    networks: dict[str, torch.nn.Module],
    model_cfg: ModelConfig,
    step: int,
    data: Optional[dict[str, Any]] = None,
) -> None:
    """Write every network's parameters and buffers to one safetensors file, atomically.

    Args:
        path: target ``.safetensors`` file.
        networks: name -> module (DDP wrappers are unwrapped by the caller).
        model_cfg: stored as JSON in the metadata so the file rebuilds its networks.
        step: steps done, stored in the metadata.
        data: data info (align, size, face of A and B) for render.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, net in networks.items():
        for key, value in net.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
    meta = {
        "format": FORMAT,
        "model_config": to_json(model_cfg),
        "networks": ",".join(networks),
        "step": str(int(step)),
        "data": json.dumps(data or {}),
    }
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a weights file; RetargetError if it is not one of ours."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise RetargetError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0][:120]})") from None
    if meta.get("format") != FORMAT or "model_config" not in meta:
        raise RetargetError(f"{path}: not a retarget checkpoint (no model configuration in its metadata)")
    return meta, tensors


def model_config_of(meta: dict[str, str]) -> ModelConfig:
    """The :class:`ModelConfig` stored in a weights file's metadata."""
    return from_dict(ModelConfig, json.loads(meta["model_config"]))


def load_into(
    networks: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor], path: str | os.PathLike[str]
) -> None:
    """Copy saved tensors into ``networks``; RetargetError naming ``path`` on any mismatch."""
    for name, net in networks.items():
        prefix = f"{name}."
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not sd:
            raise RetargetError(f"{path}: has no weights for network {name}")
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "shape mismatch"
            raise RetargetError(f"{path}: weights do not fit network {name} ({first[:150]})") from None


# --- training state -------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy's global and python's ``random``, as tensors."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": torch.tensor(py_state[1], dtype=torch.int64),
        "python_version": int(py_state[0]),
        "python_gauss": py_state[2],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], *state["numpy_gauss"])
    )
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts only), atomically."""
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training state with ``weights_only=True``; RetargetError if unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RetargetError(f"{path}: training state not found; cannot resume this run") from None
    except Exception as exc:  # pickle/zip errors come in many types
        raise RetargetError(f"{path}: unreadable training state ({type(exc).__name__})") from None


# --- loading for render ---------------------------------------------------------------


def find_weights(path: str | os.PathLike[str] | None, models_dir: str | os.PathLike[str] = "models") -> Path:
    """The weights file named by ``path`` (run folder or file), or the newest under ``models_dir``."""
    if path is None:
        root = Path(models_dir)
        found = sorted(root.glob(f"*/{WEIGHTS}"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
        if not found:
            raise RetargetError(f"{root}: no trained run found (train one with `retarget train`, or pass --model)")
        return found[-1]
    p = Path(path)
    if not p.exists():
        raise RetargetError(f"{p}: model not found")
    if p.is_dir():
        w = p / WEIGHTS
        if not w.exists():
            raise RetargetError(f"{p}: not a run folder (no {WEIGHTS})")
        return w
    return p


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
) -> LoadedRun:
    """Load a trained run for inference.

    Args:
        path: run folder or weights file; None picks the run under ``models_dir`` whose
            weights were written last.
        device: where to put the networks.
        models_dir: where runs live (``./models``).
        names: networks to load; None loads all in the file (at least ``G_AB``, ``G_BA``).

    Returns:
        :class:`LoadedRun` with networks in eval mode.

    Raises:
        RetargetError: missing path, not a run, or weights that do not fit their config.
    """
    wpath = find_weights(path, models_dir)
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
    run_dir = wpath.parent
    train_cfg = None
    cfg_file = run_dir / CONFIG
    if cfg_file.exists():
        try:
            train_cfg = from_dict(TrainConfig, json.loads(cfg_file.read_text()))
        except (ValueError, TypeError) as exc:
            raise RetargetError(f"{cfg_file}: invalid run configuration ({exc})") from None
    data = json.loads(meta.get("data") or "{}")
    if not data and (run_dir / DATA).exists():
        data = json.loads((run_dir / DATA).read_text())
    return LoadedRun(wpath, run_dir, model_cfg, train_cfg, nets, data, int(meta.get("step", 0)))
