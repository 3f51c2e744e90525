"""The enhancer folder (``retarget train-enhancer``): its one writer and reader.

An enhancer folder holds::

    enhancer.safetensors   the FaceEnhancer's weights; metadata: format, its EnhancerConfig,
                           the data it learnt from (DataInfo), steps, and its scores
    config.json            the EnhancerConfig, for people and tools

Both are written into a temporary folder that is renamed when complete, so a folder
either holds a whole enhancer or does not exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from retarget.atomic import atomic_dir
from retarget.config import EnhancerConfig, from_dict, to_json
from retarget.errors import RetargetError
from retarget.nn.enhancer import FaceEnhancer
from retarget.run.checkpoint import check_finite
from retarget.run.info import DataInfo
from retarget.run.layout import CONFIG, ENHANCER_WEIGHTS

FORMAT = "retarget-enhancer/1"


@dataclass
class LoadedEnhancer:
    """An enhancer ready to apply.

    Attributes:
        net: the :class:`FaceEnhancer` in eval mode on the requested device.
        config: the options it was trained with.
        data: the dataset it learnt from (its ``size`` is the output side, ``size / scale`` the input side).
        steps: optimisation steps it trained for.
        scores: what training measured (``psnr``, ``psnr_bilinear``: dB on its own frames).
        path: its folder.
    """

    net: FaceEnhancer
    config: EnhancerConfig
    data: DataInfo
    steps: int
    scores: dict[str, float] = field(default_factory=dict)
    path: Path = Path()

    @property
    def input_size(self) -> int:
        """The face crop side (px) it learnt to enhance."""
        return self.data.size // self.config.scale


def save_enhancer(
    folder: str | os.PathLike[str],
    net: FaceEnhancer,
    cfg: EnhancerConfig,
    data: DataInfo,
    steps: int,
    scores: Mapping[str, float],
    replace: bool = False,
) -> Path:
    """Write an enhancer folder atomically (see the module); returns its path.

    Raises:
        FileExistsError: the folder exists and ``replace`` is False.
        RetargetError: a weight is NaN or infinite (naming the file and the tensor; nothing is written).
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    check_finite(tensors, Path(folder) / ENHANCER_WEIGHTS)
    meta = {
        "format": FORMAT,
        "config": to_json(cfg),
        "data": json.dumps(data.to_dict(), sort_keys=True),
        "steps": str(int(steps)),
        "scores": json.dumps({k: float(v) for k, v in scores.items()}, sort_keys=True),
    }
    with atomic_dir(folder, replace=replace) as tmp:
        save_file(tensors, str(tmp / ENHANCER_WEIGHTS), metadata=meta)
        (tmp / CONFIG).write_text(to_json(cfg) + "\n")
    return Path(folder)


def _meta_and_tensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    weights = path / ENHANCER_WEIGHTS if path.is_dir() else path
    if not weights.is_file():
        raise RetargetError(f"{path}: not an enhancer folder (no {ENHANCER_WEIGHTS}; make one with train-enhancer)")
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise RetargetError(f"{weights}: not a readable safetensors file ({str(exc).splitlines()[0][:120]})") from None
    if meta.get("format") != FORMAT:
        raise RetargetError(f"{weights}: not a retarget enhancer (format {meta.get('format')!r})")
    return meta, tensors


def load_enhancer(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedEnhancer:
    """Read an enhancer folder (or its weights file) onto ``device``.

    Raises:
        RetargetError: missing, unreadable, not an enhancer, weights that are NaN or infinite,
            or weights that do not fit its config.
    """
    folder = Path(path)
    if not folder.exists():
        raise RetargetError(f"{folder}: enhancer not found")
    meta, tensors = _meta_and_tensors(folder)
    check_finite(tensors, folder / ENHANCER_WEIGHTS if folder.is_dir() else folder, saving=False)
    try:
        cfg = from_dict(EnhancerConfig, json.loads(meta["config"]))
        data = DataInfo.from_dict(json.loads(meta.get("data") or "{}"))
        scores: dict[str, Any] = json.loads(meta.get("scores") or "{}")
        net = FaceEnhancer(cfg.scale, cfg.width, cfg.blocks)
        net.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RetargetError(
            f"{folder}: enhancer metadata or weights do not fit ({str(exc).splitlines()[0][:120]})"
        ) from None
    net.to(device).eval()
    root = folder if folder.is_dir() else folder.parent
    return LoadedEnhancer(net, cfg, data, int(meta.get("steps", 0)), {k: float(v) for k, v in scores.items()}, root)


def describe(enh: LoadedEnhancer) -> str:
    """One line: ``enhancer <path>: 64 -> 256 px, 4000 steps, +1.9 dB over bilinear``."""
    gain = enh.scores.get("psnr", float("nan")) - enh.scores.get("psnr_bilinear", float("nan"))
    size = enh.data.size
    extra = f", {gain:+.1f} dB over bilinear" if gain == gain else ""
    return f"enhancer {enh.path}: {enh.input_size} -> {size} px, {enh.steps} steps{extra}"
