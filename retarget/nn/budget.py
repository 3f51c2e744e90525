"""Memory budgets of the networks: training, the enhancer and render's generator, refused before allocation.

The arithmetic and the refusal are :mod:`retarget.budget`'s (calibration table there);
this module adds what needs the networks themselves: their parameters and activations,
counted on torch's ``meta`` device by :mod:`retarget.nn.sizes`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import torch

from retarget.budget import (
    ACT_BYTES,
    ENHANCER_ACT_BYTES,
    ENHANCER_PATCH_BYTES,
    OVERHEAD,
    PARAM_BYTES,
    PICTURE_COPIES,
    RENDER_BYTES,
    Knob,
    _field_knob,
    _is_cuda,
    _where,
    available_memory,
    refuse,
)
from retarget.config import EnhancerConfig, ModelConfig, TrainConfig
from retarget.nn.sizes import enhancer_counts, generator_counts, model_counts

__all__ = ["check_enhancer", "check_train", "enhancer_bytes", "render_budget", "render_bytes", "train_bytes"]


def train_bytes(cfg: TrainConfig) -> int:
    """Bytes a training step of ``cfg`` holds at its peak: every network's parameters with
    their gradients and Adam state, and ``batch_size`` samples' activations."""
    params, acts = model_counts(cfg.model, cfg.loss)
    return int(OVERHEAD + params * PARAM_BYTES + acts * cfg.batch_size * ACT_BYTES)


def render_bytes(model: ModelConfig, picture: tuple[int, int], batch_size: int, tile: Optional[int] = None) -> int:
    """Bytes of render's translate stage: ``batch_size`` pictures of ``picture`` = (width, height)
    in flight (uint8 copies, and with ``tile`` the float32 blend buffers) and the generator's
    inference on a batch of them, or of ``tile x tile`` windows."""
    w, h = (-(-side // 4) * 4 for side in picture)  # padded to multiples of 4
    per_picture = w * h * 3 * PICTURE_COPIES
    if tile and (w > tile or h > tile):
        w, h = min(w, tile // 4 * 4), min(h, tile // 4 * 4)
        per_picture += picture[0] * picture[1] * 16  # accumulated float32 RGB and weights
    params, largest = generator_counts(model, h, w)
    return int(OVERHEAD + params * 4 + batch_size * (per_picture + largest * RENDER_BYTES))


def enhancer_bytes(cfg: EnhancerConfig, frame_side: int, frames: int) -> int:
    """Bytes of enhancer training: the frames kept (uint8, ``frame_side`` px square, at most
    ``max_frames``), parameters with Adam state, and ``batch_size`` patches' activations and the
    patches themselves with their loss."""
    params, acts = enhancer_counts(cfg.scale, cfg.width, cfg.blocks, max(1, cfg.patch // cfg.scale))
    kept = min(frames, cfg.max_frames) * frame_side * frame_side * 3
    patches = cfg.batch_size * cfg.patch * cfg.patch * 3 * ENHANCER_PATCH_BYTES
    return int(OVERHEAD + kept + params * PARAM_BYTES + cfg.batch_size * acts * ENHANCER_ACT_BYTES + patches)


def _model_knob(flag: str, name: str, **kw: Any) -> Knob:
    def put(c: TrainConfig, v: int) -> TrainConfig:
        return dataclasses.replace(c, model=dataclasses.replace(c.model, **{name: v}))

    return Knob(flag, lambda c: getattr(c.model, name), put, getattr(ModelConfig, name), **kw)


def check_train(cfg: TrainConfig, device: torch.device | str = "cpu", available: Optional[int] = None) -> None:
    """RetargetError when training ``cfg`` cannot fit in ``device``'s free memory (``available`` bytes
    when given); call it after the architecture checks and before the run folder is made."""
    size_unit = 2**cfg.model.p_depth if cfg.model.model == "recycle" else 4
    knobs = [
        _field_knob("--batch-size", "batch_size", TrainConfig.batch_size),
        _model_knob("--size", "size", low=max(size_unit, 2 ** (cfg.model.d_layers + 2)), unit=size_unit),
        _model_knob("--ngf", "ngf"),
        _model_knob("--ndf", "ndf"),
        _model_knob("--npf", "npf"),
        _model_knob("--blocks", "blocks"),
    ]
    free = available_memory(device) if available is None else available
    refuse(cfg, train_bytes, knobs, free, _where(device))


def check_enhancer(
    cfg: EnhancerConfig,
    frame_side: int,
    frames: int,
    device: torch.device | str = "cpu",
    available: Optional[int] = None,
) -> None:
    """RetargetError when ``train-enhancer`` with ``cfg`` on a dataset of ``frames`` frames of
    ``frame_side`` px cannot fit (on CUDA the GPU's memory: the frames kept stay in RAM and are not counted)."""
    knobs = [
        _field_knob("--batch-size", "batch_size", EnhancerConfig.batch_size),
        _field_knob("--patch", "patch", EnhancerConfig.patch, low=16, unit=cfg.scale),
        _field_knob("--width", "width", EnhancerConfig.width, low=4),
        _field_knob("--blocks", "blocks", EnhancerConfig.blocks),
        _field_knob("--max-frames", "max_frames", EnhancerConfig.max_frames),
    ]

    def estimate(c: EnhancerConfig) -> int:
        return enhancer_bytes(c, frame_side, 0 if _is_cuda(device) else frames)

    free = available_memory(device) if available is None else available
    refuse(cfg, estimate, knobs, free, _where(device))


@dataclass(frozen=True)
class _Render:
    side: int
    batch_size: int


def render_budget(
    model: ModelConfig,
    width: int,
    height: int,
    side: int,
    batch_size: int,
    tile: Optional[int] = None,
    device: torch.device | str = "cpu",
    *,
    frame: str = "full",
    crop: Optional[tuple[int, int, int, int]] = None,
    available: Optional[int] = None,
) -> None:
    """RetargetError when render's translate stage cannot fit in ``device``'s free memory.

    Args:
        model: the run's architecture.
        width, height: the source video's frame size.
        side: the generator's picture: short side of the whole frame (``frame="full"``), side of
            its centre square (``"square"``), or of the face crop (``"face"``: not an option).
        batch_size, tile: ``--batch-size``, ``--tile``.
        crop: the training data's ``--crop`` region, if any.
    """
    from retarget.geometry import frame_cut

    def estimate(r: _Render) -> int:
        picture = (r.side, r.side) if frame == "face" else frame_cut(frame, width, height, r.side, crop).size
        return render_bytes(model, picture, r.batch_size, tile)

    knobs = [] if frame == "face" else [_field_knob("--scale", "side", side, low=16, unit=4)]
    knobs.append(_field_knob("--batch-size", "batch_size", 8))
    free = available_memory(device) if available is None else available
    refuse(_Render(side, batch_size), estimate, knobs, free, _where(device))
