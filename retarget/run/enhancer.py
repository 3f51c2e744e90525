"""The enhancer folder (``retarget train-enhancer``): its one writer and reader.

An enhancer folder holds::

    enhancer.safetensors   the FaceEnhancer's weights; metadata: format, its EnhancerConfig,
                           the data it learnt from (DataInfo), steps, and its scores
    config.json            the EnhancerConfig, for people and tools

written all at once or not at all (:mod:`retarget.run.netfolder`).
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import Mapping

import torch

from retarget.config import EnhancerConfig
from retarget.nn.enhancer import FaceEnhancer
from retarget.run.info import DataInfo
from retarget.run.layout import ENHANCER_WEIGHTS
from retarget.run.netfolder import Kind, LoadedNet, load_net_folder, save_net_folder

FORMAT = "retarget-enhancer/1"
KIND = Kind(
    "enhancer",
    ENHANCER_WEIGHTS,
    FORMAT,
    EnhancerConfig,
    lambda c: FaceEnhancer(c.scale, c.width, c.blocks),
    "train-enhancer",
)


@dataclass
class LoadedEnhancer(LoadedNet):
    """An enhancer ready to apply: ``net`` (a :class:`FaceEnhancer` in eval mode), the
    :class:`EnhancerConfig` it trained with, the ``data`` it learnt from (its ``size`` is the
    output side), ``steps``, ``scores`` (``psnr``, ``psnr_bilinear``: dB on its own frames), ``path``."""

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
    """Write an enhancer folder atomically; returns its path (:func:`~retarget.run.netfolder.save_net_folder`)."""
    return save_net_folder(KIND, folder, net, cfg, data, steps, scores, replace)


def load_enhancer(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedEnhancer:
    """Read an enhancer folder (or its weights file) onto ``device``.

    Raises:
        RetargetError: missing, unreadable, not an enhancer, weights that are NaN or infinite,
            or weights that do not fit its config.
    """
    got = load_net_folder(KIND, path, device)
    return LoadedEnhancer(got.net, got.config, got.data, got.steps, got.scores, got.path)


def describe(enh: LoadedEnhancer) -> str:
    """One line: ``enhancer <path>: 64 -> 256 px, 4000 steps, +1.9 dB over bilinear``."""
    gain = enh.scores.get("psnr", float("nan")) - enh.scores.get("psnr_bilinear", float("nan"))
    size = enh.data.size
    extra = f", {gain:+.1f} dB over bilinear" if gain == gain else ""
    return f"enhancer {enh.path}: {enh.input_size} -> {size} px, {enh.steps} steps{extra}"
