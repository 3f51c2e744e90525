"""``retarget train --init-from RUN [--swap]``: start a new run from another run's networks.

The new run takes the weights of every network (generators, discriminators and, for
Recycle-GAN, predictors) from the newest complete checkpoint of ``RUN`` (or from a
weights file), and nothing else: the optimiser moments, the LR schedule, the step count,
the image pools and the random draws start afresh, as in any new run. The architecture
(every field of :class:`~retarget.config.ModelConfig`) must be the run's; the check
happens before the new run folder is touched.

With ``--swap`` the other run's B->A side becomes this run's A->B side: ``G_AB <- G_BA``,
``D_A <- D_B``, ``P_A <- P_B`` and the other way round. A run trained from Alice to Bob
then starts a run from Bob to Carol with Bob's side already learnt.

A resumed run never reads ``RUN`` again: its own checkpoint holds the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from retarget.config import ModelConfig, TrainConfig, to_dict
from retarget.errors import RetargetError
from retarget.run import checkpoint as ckpt
from retarget.run import layout
from retarget.run.load import find_weights

__all__ = ["InitWeights", "SWAP", "read_init", "swap_sides"]

#: ``--swap``: which network of the other run each network of the new run takes.
SWAP = {"G_AB": "G_BA", "G_BA": "G_AB", "D_A": "D_B", "D_B": "D_A", "P_A": "P_B", "P_B": "P_A"}


@dataclass(frozen=True)
class InitWeights:
    """The weights a new run starts from.

    Attributes:
        path: the weights file they were read from.
        step: the steps the other run had trained.
        tensors: ``<net>.<param>`` -> tensor (CPU), already swapped with ``--swap``.
        swapped: whether ``--swap`` exchanged the sides.
    """

    path: Path
    step: int
    tensors: dict[str, torch.Tensor]
    swapped: bool = False

    def load_into(self, nets: dict[str, torch.nn.Module]) -> None:
        """Copy the weights into ``nets`` (every network must be there; RetargetError otherwise)."""
        ckpt.load_into(nets, self.tensors, self.path)


def swap_sides(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` with each network's keys renamed to its other side's (:data:`SWAP`); others unchanged."""
    out = {}
    for key, value in tensors.items():
        net, _, param = key.partition(".")
        out[f"{SWAP.get(net, net)}.{param}"] = value
    return out


def _differences(theirs: ModelConfig, ours: ModelConfig) -> str:
    """``ngf 16 there, 8 here; ...`` for every field that differs."""
    return "; ".join(
        f"{name} {value} there, {getattr(ours, name)} here"
        for name, value in to_dict(theirs).items()
        if getattr(ours, name) != value
    )


def read_init(cfg: TrainConfig) -> Optional[InitWeights]:
    """The weights ``cfg.init_from`` names, checked against ``cfg.model``; None without it or on resume.

    Reads only: call it before the run folder is created, so a refusal leaves nothing.

    Raises:
        RetargetError: one line: the run is missing or has no complete checkpoint, the
            file is not a retarget checkpoint, or its architecture differs (naming the
            differing fields).
    """
    if not cfg.init_from or cfg.resume:
        return None
    flag = f"--init-from {cfg.init_from}"
    path = Path(cfg.init_from)
    if not path.exists():
        raise RetargetError(f"{flag}: no such run folder or weights file")
    try:
        weights = find_weights(path)
        meta, tensors = ckpt.read_weights(weights)
    except RetargetError as exc:
        raise RetargetError(f"{flag}: {exc}") from None
    theirs = ckpt.model_config_of(meta)
    if theirs != cfg.model:
        raise RetargetError(
            f"{flag}: another architecture ({_differences(theirs, cfg.model)}); "
            f"give the same architecture options as that run (its {layout.CONFIG} lists them)"
        )
    if cfg.init_swap:
        tensors = swap_sides(tensors)
    return InitWeights(weights, int(meta.get("step", 0)), tensors, cfg.init_swap)
