"""The sizes of a configuration's networks, counted on torch's ``meta`` device.

Networks built under ``torch.device("meta")`` have shapes but no memory, and a forward
pass on meta tensors computes shapes only, so even a width of 100000 is counted in
milliseconds. :mod:`retarget.nn.budget` turns these counts into bytes.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any, Callable

import torch
from torch import nn

from retarget.config import LossConfig, ModelConfig
from retarget.nn.enhancer import FaceEnhancer
from retarget.nn.networks import build_networks
from retarget.nn.objectives import frames_per_sample, make_objective

__all__ = ["enhancer_counts", "generator_counts", "model_counts"]


def _leaf_outputs(run: Callable[[], Any]) -> tuple[int, int]:
    """(sum, largest) of the values of every leaf module's output while ``run()`` runs."""
    seen = [0, 0]

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        if next(module.children(), None) is None:
            for o in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(o, torch.Tensor):
                    seen[0] += o.numel()
                    seen[1] = max(seen[1], o.numel())

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return seen[0], seen[1]


def _meta_networks(model: ModelConfig) -> dict[str, nn.Module]:
    with torch.device("meta"):
        return build_networks(model)


def _params(nets: dict[str, nn.Module]) -> int:
    return sum(p.numel() for net in nets.values() for p in net.parameters())


def _by_blocks(count: Callable[[int], tuple[int, int]], blocks: int) -> tuple[int, int]:
    """``count(blocks)`` from ``count(1)`` and ``count(2)``: each residual block adds the same
    parameters and activations, and building thousands of them would take minutes."""
    if blocks <= 2:
        return count(blocks)
    (p1, a1), (p2, a2) = count(1), count(2)
    return p1 + (blocks - 1) * (p2 - p1), a1 + (blocks - 1) * (a2 - a1)


@lru_cache(maxsize=128)
def model_counts(model: ModelConfig, loss: LossConfig = LossConfig()) -> tuple[int, int]:
    """(parameters, activation values per sample) of one training step of ``model``.

    The activations are the leaf-module outputs of the objective's generator pass (its
    graph is alive at the step's peak: the discriminator pass comes after its backward)
    for one sample. The warp term, gradient penalty and content networks use no
    parameters of ours and are left out of the count.
    """
    return _by_blocks(lambda b: _model_counts(dataclasses.replace(model, blocks=b), loss), model.blocks)


@lru_cache(maxsize=128)
def _model_counts(model: ModelConfig, loss: LossConfig) -> tuple[int, int]:
    nets = _meta_networks(model)
    counted = dataclasses.replace(
        loss, warp=0.0, gp=0.0, content=0.0, content_model=None, content_model_a=None, content_model_b=None
    )
    objective = make_objective(model, counted, nets)
    shape = (1, frames_per_sample(model), 3, model.size, model.size)
    if model.domains:
        batch = {"x": torch.zeros(shape, device="meta")}
        batch.update(src=torch.zeros(1, dtype=torch.long, device="meta"))
        batch.update(dst=torch.ones(1, dtype=torch.long, device="meta"))
    else:
        batch = {"A": torch.zeros(shape, device="meta"), "B": torch.zeros(shape, device="meta")}
    total, _ = _leaf_outputs(lambda: objective.generator_terms(batch))
    return _params(nets), total


@lru_cache(maxsize=128)
def generator_counts(model: ModelConfig, height: int, width: int) -> tuple[int, int]:
    """(parameters, values of the largest layer output) of the generator on one ``height x width`` picture."""
    nets = _meta_networks(model)
    gen = nets["G"] if model.domains else nets["G_AB"]
    x = torch.zeros(1, 3, height, width, device="meta")
    args = (torch.zeros(1, dtype=torch.long, device="meta"),) if model.domains else ()
    _, largest = _leaf_outputs(lambda: gen(x, *args))
    return sum(p.numel() for p in gen.parameters()), largest


@lru_cache(maxsize=128)
def enhancer_counts(scale: int, width: int, blocks: int, side: int) -> tuple[int, int]:
    """(parameters, leaf-module output values) of a :class:`~retarget.nn.enhancer.FaceEnhancer`
    on one ``side x side`` input."""

    def count(b: int) -> tuple[int, int]:
        with torch.device("meta"):
            net = FaceEnhancer(scale, width, b)
        acts, _ = _leaf_outputs(lambda: net(torch.zeros(1, 3, side, side, device="meta")))
        return sum(p.numel() for p in net.parameters()), acts

    return _by_blocks(count, blocks)
