"""Folders of one small network and its options (``train-enhancer``, ``train-refiner``): one writer and reader.

Such a folder holds::

    <name>.safetensors   the weights; metadata: format, the options it trained with (JSON),
                         the data it learnt from (DataInfo), steps, and its scores
    config.json          the options, for people and tools

Both are written into a temporary folder that is renamed when complete, so a folder
either holds a whole network or does not exist. :mod:`retarget.run.enhancer` and
:mod:`retarget.run.refiner` give each kind its format name and network class.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from retarget.atomic import atomic_dir
from retarget.config import from_dict, to_json
from retarget.errors import RetargetError
from retarget.run.checkpoint import check_finite
from retarget.run.info import DataInfo
from retarget.run.layout import CONFIG

__all__ = ["Kind", "LoadedNet", "load_net_folder", "save_net_folder"]


@dataclass(frozen=True)
class Kind:
    """One kind of network folder.

    Attributes:
        name: what users call it ("enhancer"), in messages.
        weights: the weights file's name inside the folder.
        format: the metadata's format tag, checked on reading.
        config: the options dataclass.
        make: options -> the untrained network (the weights are then loaded into it).
        command: the command that writes one, for messages.
    """

    name: str
    weights: str
    format: str
    config: type
    make: Callable[[Any], nn.Module]
    command: str


@dataclass
class LoadedNet:
    """A network folder read back: ``net`` in eval mode, its ``config``, ``data``, ``steps``, ``scores``, ``path``."""

    net: nn.Module
    config: Any
    data: DataInfo
    steps: int
    scores: dict[str, float] = field(default_factory=dict)
    path: Path = Path()


def save_net_folder(
    kind: Kind,
    folder: str | os.PathLike[str],
    net: nn.Module,
    cfg: Any,
    data: DataInfo,
    steps: int,
    scores: Mapping[str, float],
    replace: bool = False,
) -> Path:
    """Write a network folder atomically (see the module); returns its path.

    Raises:
        FileExistsError: the folder exists and ``replace`` is False.
        RetargetError: a weight is NaN or infinite (naming the file and the tensor; nothing is written).
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    check_finite(tensors, Path(folder) / kind.weights)
    meta = {
        "format": kind.format,
        "config": to_json(cfg),
        "data": json.dumps(data.to_dict(), sort_keys=True),
        "steps": str(int(steps)),
        "scores": json.dumps({k: float(v) for k, v in scores.items()}, sort_keys=True),
    }
    with atomic_dir(folder, replace=replace) as tmp:
        save_file(tensors, str(tmp / kind.weights), metadata=meta)
        (tmp / CONFIG).write_text(to_json(cfg) + "\n")
    return Path(folder)


def _meta_and_tensors(kind: Kind, path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    weights = path / kind.weights if path.is_dir() else path
    if not weights.is_file():
        raise RetargetError(
            f"{path}: not {_article(kind.name)} folder (no {kind.weights}; make one with {kind.command})"
        )
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise RetargetError(f"{weights}: not a readable safetensors file ({str(exc).splitlines()[0][:120]})") from None
    if meta.get("format") != kind.format:
        raise RetargetError(f"{weights}: not a retarget {kind.name} (format {meta.get('format')!r})")
    return meta, tensors


def _article(name: str) -> str:
    return ("an " if name[:1] in "aeiou" else "a ") + name


def load_net_folder(kind: Kind, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedNet:
    """Read a network folder (or its weights file) onto ``device``.

    Raises:
        RetargetError: missing, unreadable, not of this kind, weights that are NaN or
            infinite, or weights that do not fit its config.
    """
    folder = Path(path)
    if not folder.exists():
        raise RetargetError(f"{folder}: {kind.name} not found")
    meta, tensors = _meta_and_tensors(kind, folder)
    check_finite(tensors, folder / kind.weights if folder.is_dir() else folder, saving=False)
    try:
        cfg = from_dict(kind.config, json.loads(meta["config"]))
        data = DataInfo.from_dict(json.loads(meta.get("data") or "{}"))
        scores: dict[str, Any] = json.loads(meta.get("scores") or "{}")
        net = kind.make(cfg)
        net.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RetargetError(
            f"{folder}: {kind.name} metadata or weights do not fit ({str(exc).splitlines()[0][:120]})"
        ) from None
    net.to(device).eval()
    root = folder if folder.is_dir() else folder.parent
    return LoadedNet(net, cfg, data, int(meta.get("steps", 0)), {k: float(v) for k, v in scores.items()}, root)
