"""The networks of a model, built from its :class:`~retarget.config.ModelConfig`.

The layers themselves are in :mod:`retarget.nn.blocks` (re-exported here: ResNet
generator, U-Net predictor, PatchGAN, init); the multi-domain networks in
:mod:`retarget.nn.conditional`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from retarget.config import ModelConfig
from retarget.nn.blocks import PatchDiscriminator, ResnetGenerator, UnetPredictor, init_weights, start_as_copy
from retarget.nn.conditional import build_conditional_networks

__all__ = [
    "PatchDiscriminator",
    "ResnetGenerator",
    "UnetPredictor",
    "build_discriminator",
    "build_generator",
    "build_networks",
    "build_predictor",
    "check_size",
    "count_parameters",
    "init_weights",
]


def build_generator(cfg: ModelConfig) -> ResnetGenerator:
    """One initialised generator of ``cfg`` (3 -> 3 channels)."""
    return init_weights(ResnetGenerator(3, 3, cfg.ngf, cfg.blocks, cfg.upsample))  # type: ignore[return-value]


def build_predictor(cfg: ModelConfig) -> UnetPredictor:
    """One initialised predictor of ``cfg`` (``3 * p_frames`` -> 3 channels).

    With ``cfg.p_residual`` the last layer starts at zero: the predictor copies x_t+1.
    """
    net = init_weights(UnetPredictor(cfg.p_frames, cfg.npf, cfg.p_depth, residual=cfg.p_residual))
    return start_as_copy(net) if cfg.p_residual else net  # type: ignore[arg-type,return-value]


def build_discriminator(cfg: ModelConfig) -> PatchDiscriminator:
    """One initialised discriminator of ``cfg`` (3 channels in)."""
    return init_weights(PatchDiscriminator(3, cfg.ndf, cfg.d_layers))  # type: ignore[return-value]


def check_size(cfg: ModelConfig, size: int | None = None) -> None:
    """Raise ``ValueError`` when ``size`` (default ``cfg.size``) does not suit the networks.

    The generator needs a multiple of 4; the predictor a multiple of ``2 ** p_depth``;
    the discriminator at least ``2 ** (d_layers + 2)`` pixels for a non-empty score map.
    (Also checks ``cfg.domains``: 0 or at least 2.)
    """
    size = cfg.size if size is None else size
    if size % 4:
        raise ValueError(f"size {size} must be a multiple of 4 for the generator")
    if cfg.model == "recycle" and size % (2**cfg.p_depth):
        raise ValueError(f"size {size} must be a multiple of 2**p_depth = {2**cfg.p_depth} for the predictor")
    if size < 2 ** (cfg.d_layers + 2):
        raise ValueError(f"size {size} is too small for a {cfg.d_layers}-layer discriminator")
    if cfg.domains < 0 or cfg.domains == 1:
        raise ValueError(f"domains {cfg.domains}: 0 for the pairwise model, or at least 2")


def build_networks(cfg: ModelConfig) -> dict[str, nn.Module]:
    """All networks of a model, freshly initialised from torch's global RNG.

    Returns:
        ``G_AB``, ``G_BA`` (A->B and B->A generators), ``D_A``, ``D_B`` (D_A judges domain
        A images), and for ``cfg.model == "recycle"`` also ``P_A``, ``P_B`` (next-frame
        predictors of each domain). Built in this fixed order, so ``torch.manual_seed``
        before the call makes the weights reproducible. With ``cfg.domains >= 2``: the
        conditional ``G``, ``D`` (and ``P``) of
        :func:`retarget.nn.conditional.build_conditional_networks` instead.
    """
    check_size(cfg)
    if cfg.domains:
        return build_conditional_networks(cfg)
    nets: dict[str, nn.Module] = {
        "G_AB": build_generator(cfg),
        "G_BA": build_generator(cfg),
        "D_A": build_discriminator(cfg),
        "D_B": build_discriminator(cfg),
    }
    if cfg.model == "recycle":
        nets["P_A"] = build_predictor(cfg)
        nets["P_B"] = build_predictor(cfg)
    return nets


def fit_sides(net: nn.Module, x: Tensor, multiple: int = 4) -> Tensor:
    """``net(x)`` for any ``H x W``: ``x`` reflect-padded to sides that are multiples of ``multiple``
    (the generator down-samples twice by 2), the output cropped back to ``H x W``.

    Args:
        x: ``[B, C, H, W]``; the padding is split evenly between the two sides, so nothing shifts.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return net(x)
    top, left = ph // 2, pw // 2
    mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
    y = net(F.pad(x, (left, pw - left, top, ph - top), mode=mode))
    return y[..., top : top + h, left : left + w]


def count_parameters(net: nn.Module) -> int:
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())
