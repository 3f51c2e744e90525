"""The refiner folder (``retarget train-refiner``): its one writer and reader.

A refiner folder holds::

    refiner.safetensors   the FaceRefiner's weights; metadata: format, its RefinerConfig,
                          the target's dataset it learnt from (DataInfo), steps, and its
                          scores (``psnr``, ``psnr_warp``: dB on held-out faces)
    config.json           the RefinerConfig, for people and tools

written all at once or not at all (:mod:`retarget.run.netfolder`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from retarget.config import RefinerConfig
from retarget.nn.refiner import FaceRefiner
from retarget.run.info import DataInfo
from retarget.run.netfolder import Kind, LoadedNet, load_net_folder, save_net_folder

__all__ = ["KIND", "describe", "load_refiner", "save_refiner"]

FORMAT = "retarget-refiner/1"
WEIGHTS = "refiner.safetensors"
KIND = Kind(
    "refiner",
    WEIGHTS,
    FORMAT,
    RefinerConfig,
    lambda c: FaceRefiner(c.factor, c.width, c.blocks, c.smooth),
    "train-refiner",
)


def save_refiner(
    folder: str | os.PathLike[str],
    net: FaceRefiner,
    cfg: RefinerConfig,
    data: DataInfo,
    steps: int,
    scores: Mapping[str, float],
    replace: bool = False,
) -> Path:
    """Write a refiner folder atomically; returns its path (:func:`~retarget.run.netfolder.save_net_folder`)."""
    return save_net_folder(KIND, folder, net, cfg, data, steps, scores, replace)


def load_refiner(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedNet:
    """Read a refiner folder (or its weights file) onto ``device``: ``net`` is a :class:`FaceRefiner` in eval mode.

    Raises:
        RetargetError: missing, unreadable, not a refiner, weights that are NaN or infinite,
            or weights that do not fit its config.
    """
    return load_net_folder(KIND, path, device)


def describe(ref: LoadedNet) -> str:
    """One line: ``refiner <path>: 256 px faces of <dataset>, 3000 steps, +2.1 dB over the plain warp``."""
    gain = ref.scores.get("psnr", float("nan")) - ref.scores.get("psnr_warp", float("nan"))
    extra = f", {gain:+.1f} dB over the plain warp on held-out faces" if gain == gain else ""
    return f"refiner {ref.path}: {ref.data.size} px faces, {ref.steps} steps{extra}"
