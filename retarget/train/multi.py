"""Multi-domain runs: the domains' names, and the batches of a step over n domains.

A run over three or more datasets (or two with ``TrainConfig.multi``) trains one
conditional model (:mod:`retarget.nn.conditional`, :class:`retarget.nn.multi.MultiObjective`)
instead of a pair. :func:`resolve_domains` fills in what such a run is made of (the
domain names, ``ModelConfig.domains``) and refuses, in one line, what would not work
or would silently do nothing.

:class:`MultiBatches` builds each step's batch: every sample gets a source and a
target domain from :func:`retarget.nn.domains.domain_pairs` (a pure function of seed,
step and rank: balanced, so a small dataset is drawn as often as a large one), and
takes its window from its source domain's :class:`~retarget.train.sampler.TripletSampler`
(the sampler's ``i``-th draw of the step for sample ``i``, also a pure function of the
step), so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Union

import numpy as np
import torch
from torch import Tensor

from retarget.config import LossConfig, ModelConfig, TrainConfig, replace
from retarget.errors import RetargetError
from retarget.nn.domains import domain_pairs
from retarget.train.sampler import PairBatches, RawBatch, TripletSampler, to_device

#: What a domain name may be: it names files (``cache_<name>.npy``), metrics and ``render --to``.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def folder_name(path: str) -> str:
    """The name a dataset folder was given: ``.`` and ``..`` resolved, a symbolic link kept (not its target's)."""
    return Path(os.path.abspath(path)).name


def default_names(datasets: tuple[str, ...]) -> tuple[str, ...]:
    """The domain names of a run without ``--names``: each dataset folder's own name (:func:`folder_name`)."""
    return tuple(folder_name(d) for d in datasets)


def check_names(names: tuple[str, ...], datasets: tuple[str, ...], given: bool) -> None:
    """RetargetError (one line) unless ``names`` are one valid, unique name per dataset.

    Args:
        given: the names came from ``--names`` (else from the folders: the message says
            to name them with ``--names``).
    """
    hint = "" if given else " (the dataset folders' names); name the domains with --names a,b,c"
    if len(names) != len(datasets):
        raise RetargetError(f"--names {','.join(names)}: {len(names)} names for {len(datasets)} datasets")
    for name in names:
        if not NAME.fullmatch(name):
            raise RetargetError(
                f"domain name {name!r}{hint}: use letters, digits and . _ + - (starting with a letter or digit)"
            )
    seen = set()
    for name in names:
        if name in seen:
            raise RetargetError(f"domain name {name!r} is given twice{hint}; each domain needs its own name")
        seen.add(name)


def resolve_domains(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with what a multi-domain run is made of filled in, or refused in one line.

    A pair (two datasets, no ``multi``, ``model.domains`` 0) is returned as it is, but
    refused with ``names``, a ``loss.cls`` or a ``model.condition`` other than the default
    (only multi-domain runs have them: they would do nothing). A multi-domain run gets
    ``multi=True``, its ``names`` (the dataset folders' names unless given) and
    ``model.domains`` = the number of datasets.

    Raises:
        RetargetError: names that are invalid, repeated or not one per dataset; a
            ``model.domains`` other than the number of datasets; ``init_swap`` (a pair's
            sides); ``content_model_a`` /
            ``content_model_b`` (they name a direction of a pair; ``content_model`` serves
            every direction of a multi-domain model).
    """
    if not cfg.is_multi:
        pair = "only a multi-domain run (three or more datasets, or --multi) has it"
        if cfg.names:
            raise RetargetError(f"--names {','.join(cfg.names)}: {pair}; the two domains of a pair are A and B")
        if cfg.loss.cls != LossConfig.cls:
            raise RetargetError(f"--cls {cfg.loss.cls:g}: the domain classifier's weight; {pair}")
        if cfg.model.condition != ModelConfig.condition:
            raise RetargetError(f"--condition {cfg.model.condition}: how G reads its target domain; {pair}")
        return cfg
    datasets = cfg.datasets
    if cfg.model.domains not in (0, len(datasets)):
        raise RetargetError(
            f"the model is built for {cfg.model.domains} domains, but {len(datasets)} datasets are given"
        )
    names = tuple(cfg.names) or default_names(datasets)
    check_names(names, datasets, given=bool(cfg.names))
    if cfg.init_swap:
        raise RetargetError(
            "--swap exchanges the two sides of a pair; a multi-domain run has one generator for every direction "
            "(--init-from alone starts from another multi-domain run's networks)"
        )
    if cfg.loss.content_model_a or cfg.loss.content_model_b:
        raise RetargetError(
            "--content-model-a/--content-model-b name a direction of a two-domain run; "
            "a multi-domain run takes --content-model, applied to every direction"
        )
    return replace(cfg, multi=True, names=names, model=replace(cfg.model, domains=len(datasets)))


def domain_keys(cfg: TrainConfig) -> tuple[str, ...]:
    """The keys of the run's domains (data, samplers, DataInfo): ``("A", "B")`` for a pair, else the names.

    ``cfg`` must have passed :func:`resolve_domains`.
    """
    return tuple(cfg.names) if cfg.is_multi else ("A", "B")


class MultiBatches:
    """The batches of a multi-domain step, from one sampler per domain.

    Args:
        samplers: one :class:`TripletSampler` per domain, in label order (label ``k`` is
            the ``k``-th), each drawing ``batch`` samples per step.
        seed: the run's seed (the domain pairs' stream).
        batch: samples per rank per step.
        rank, world: this process and the data-parallel processes.
        motion: also cut the source motion (the warp term).
    """

    def __init__(
        self,
        samplers: Mapping[str, TripletSampler],
        seed: int,
        batch: int,
        rank: int = 0,
        world: int = 1,
        *,
        motion: bool = False,
    ) -> None:
        self.samplers = list(samplers.values())
        if len(self.samplers) < 2:
            raise ValueError(f"a multi-domain batch needs at least 2 domains, got {len(self.samplers)}")
        if any(s.batch_size != batch for s in self.samplers):
            raise ValueError(f"every sampler must draw {batch} samples per step")
        self.seed, self.batch, self.rank, self.world, self.motion = seed, batch, rank, world, motion

    def pairs(self, step: int) -> tuple[Tensor, Tensor]:
        """Source and target domain of each sample of ``step`` (``[batch]`` long each)."""
        return domain_pairs(self.seed, step, len(self.samplers), self.batch, self.rank, self.world)

    def raw(self, step: int) -> dict[str, RawBatch]:
        """The batch of ``step`` as stored: ``{"x": {"frames", ["flow", "valid"]}, "labels": {"src", "dst"}}``.

        Sample ``i`` is the ``i``-th draw of its source domain's sampler at ``step``
        (shapes as :meth:`TripletSampler.raw`, batch first).
        """
        src, dst = self.pairs(step)
        order = src.numpy()
        parts: dict[str, list[Tensor]] = {}
        rows = np.empty(self.batch, dtype=np.int64)  # where each sample lands among the domain parts
        at = 0
        for d in np.unique(order):
            which = np.flatnonzero(order == d)
            part = self.samplers[int(d)].raw(step, self.motion, only=which)
            for key, value in part.items():
                parts.setdefault(key, []).append(value)
            rows[which] = np.arange(at, at + len(which))
            at += len(which)
        index = torch.from_numpy(rows)
        x = {key: torch.cat(values)[index] for key, values in parts.items()}
        return {"x": x, "labels": {"src": src, "dst": dst}}

    def to_device(self, raw: dict[str, RawBatch], device: torch.device) -> dict[str, Tensor]:
        """``{"x": float32 [B, T, 3, S, S] in [-1, 1], "src", "dst": [B] long, ["x.flow", "x.valid"]}``
        on ``device``: the batch :class:`~retarget.nn.multi.MultiObjective` takes."""
        out = to_device({"x": raw["x"]}, device)
        out.update({k: v.to(device, non_blocking=True) for k, v in raw["labels"].items()})
        return out


def make_batches(
    cfg: TrainConfig, samplers: Mapping[str, TripletSampler], rank: int, world: int, motion: bool
) -> Union[PairBatches, MultiBatches]:
    """The batch maker of the run: :class:`MultiBatches` for a multi-domain run, else :class:`PairBatches`."""
    if cfg.model.domains:
        return MultiBatches(samplers, cfg.seed, cfg.batch_size, rank, world, motion=motion)
    return PairBatches(samplers, motion=motion)
