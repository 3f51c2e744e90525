"""Batches: windows of consecutive frames drawn inside segments, and their way to the device.

Sampling is a pure function of ``(seed, rank, domain, step)``: every step draws from
its own freshly seeded generator. A resumed run therefore needs nothing but the step
number to continue the exact sequence of samples, windows and flips, and ranks of a
distributed run draw different samples from disjoint shares of the data.

A batch leaves the sampler as uint8 (a quarter of float32's bytes to copy), is pinned
for an asynchronous copy when the device is a GPU, and becomes float in [-1, 1] on the
device (:func:`to_device`). :class:`BatchLoader` prepares the next step's batch in a
background thread while the current step runs, for a pair (:class:`PairBatches`) or a
multi-domain model (:class:`retarget.train.multi.MultiBatches`) alike.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Mapping, Optional, Protocol, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from retarget.errors import RetargetError
from retarget.train.data import DomainData
from retarget.train.motion import window_motion

#: A batch as the sampler makes it: numpy/torch uint8 frames and, with motion, the flow.
RawBatch = dict[str, Tensor]


class TripletSampler:
    """Draws batches of ``frames`` consecutive frames from one domain, augmented.

    Every sample starts at a frame whose ``frames - 1`` successors lie in the same
    segment. All frames of a sample share one random square window (anywhere in the
    frame, whatever its shape) and one flip. Draws depend only on ``(seed, rank,
    domain, step)``, so resuming at a step repeats them exactly.

    Args:
        data: the domain's cached frames.
        frames: T, frames per sample (3 Recycle-GAN, 1 CycleGAN).
        size: window side (px), at most the frames' short side.
        batch_size: samples per batch.
        seed: run seed.
        domain: the domain's number (different streams for different domains).
        flip: random horizontal flips.
        rank, world: this process's share of the start frames in a distributed run.
    """

    def __init__(
        self,
        data: DomainData,
        frames: int,
        size: int,
        batch_size: int,
        seed: int,
        domain: int = 0,
        flip: bool = True,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.data, self.frames, self.size, self.batch_size = data, frames, size, batch_size
        self.seed, self.domain, self.flip, self.rank = seed, domain, flip, rank
        if size > data.min_side:
            raise RetargetError(f"{data.path}: crop size {size} is larger than the load size {data.min_side}")
        starts = np.concatenate([s[: len(s) - frames + 1] for s in data.segments if len(s) >= frames])
        # Disjoint shares per rank when there is enough data; tiny sets are shared.
        self.starts = starts[rank::world] if world > 1 and len(starts) >= world else starts
        shard = np.searchsorted(data.offsets, self.starts, side="right") - 1
        sides = np.array([s.frames.shape[1:3] for s in data.shards], dtype=np.int64)
        self._room = sides[shard] - size  # [starts, 2]: how far a window can move (y, x)

    def __len__(self) -> int:
        return len(self.starts)

    def sample(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The draws for ``step``: start frames, window y, window x, flips (each ``[batch]``)."""
        rng = np.random.default_rng([self.seed, self.rank, self.domain, step])
        pick = rng.integers(0, len(self.starts), self.batch_size)
        room = self._room[pick]
        ys = rng.integers(0, room[:, 0] + 1)
        xs = rng.integers(0, room[:, 1] + 1)
        flips = rng.random(self.batch_size) < 0.5 if self.flip else np.zeros(self.batch_size, bool)
        return self.starts[pick], ys, xs, flips

    def raw(self, step: int, motion: bool = False, only: Optional[Sequence[int]] = None) -> RawBatch:
        """The batch of ``step`` as stored: ``frames`` uint8 ``[batch, frames, size, size, 3]``,
        and with ``motion`` ``flow`` float16 ``[batch, frames - 1, size, size, 2]`` (pair t: frame
        t+1 onto frame t, in the window's coordinates) and ``valid`` uint8 ``[batch, frames - 1,
        size, size]``.

        ``only``: cut just these of the step's ``batch_size`` draws, in this order (the
        batch is then ``len(only)`` long): a multi-domain step takes each sample's window
        from its own source domain (:class:`retarget.train.multi.MultiBatches`).
        """
        starts, ys, xs, flips = self.sample(step)
        picks = range(self.batch_size) if only is None else [int(i) for i in only]
        s, t, n = self.size, self.frames, len(picks)
        out = np.empty((n, t, s, s, 3), dtype=np.uint8)
        if motion:
            if not self.data.has_motion:
                raise ValueError(f"{self.data.path}: loaded without motion (load_domain(..., motion=True))")
            flow = np.empty((n, t - 1, s, s, 2), dtype=np.float16)
            valid = np.empty((n, t - 1, s, s), dtype=np.uint8)
        for b, i in enumerate(picks):
            y, x, start = int(ys[i]), int(xs[i]), int(starts[i])
            clip = self.data.clip(start, t)[:, y : y + s, x : x + s]
            out[b] = clip[:, :, ::-1] if flips[i] else clip
            if motion:
                shard, row = self.data.locate(start)
                for k in range(t - 1):
                    flow[b, k], valid[b, k] = window_motion(
                        shard.flow[row + k + 1], shard.valid[row + k + 1], y, x, s, bool(flips[i])
                    )
        batch = {"frames": torch.from_numpy(out)}
        if motion:
            batch.update(flow=torch.from_numpy(flow), valid=torch.from_numpy(valid))
        return batch

    def batch(self, step: int) -> Tensor:
        """The frames of ``step`` as the networks take them: float32 ``[batch, frames, 3, size, size]`` in [-1, 1]."""
        return frames_to_float(self.raw(step)["frames"])


def frames_to_float(frames: Tensor) -> Tensor:
    """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B, T, 3, H, W]`` in [-1, 1] (on ``frames``' device)."""
    return frames.permute(0, 1, 4, 2, 3).float().div_(127.5).sub_(1.0).contiguous()


def to_device(raw: dict[str, RawBatch], device: torch.device) -> dict[str, Tensor]:
    """The batch a step takes, from each domain's :meth:`TripletSampler.raw` output.

    Returns:
        ``{X: float32 [B, T, 3, S, S] in [-1, 1]}`` for each domain X, and with motion
        ``{"X.flow": float32 [B, T-1, S, S, 2], "X.valid": float32 [B, T-1, 1, S, S]}``
        (the keys :class:`retarget.nn.objectives.Objective` reads). uint8 is what
        crosses to the device; the conversion runs there.
    """
    out: dict[str, Tensor] = {}
    for name, part in raw.items():
        out[name] = frames_to_float(part["frames"].to(device, non_blocking=True))
        if "flow" in part:
            out[f"{name}.flow"] = part["flow"].to(device, non_blocking=True).float()
            out[f"{name}.valid"] = part["valid"].to(device, non_blocking=True).float().unsqueeze(2)
    return out


class BatchMaker(Protocol):
    """What :class:`BatchLoader` prepares batches with: a uint8 batch per step, then its way to the device."""

    def raw(self, step: int) -> dict[str, RawBatch]:
        """The batch of ``step`` as stored (CPU tensors; uint8 frames)."""
        ...

    def to_device(self, raw: dict[str, RawBatch], device: torch.device) -> dict[str, Tensor]:
        """The batch a step takes, on ``device``."""
        ...


class PairBatches:
    """The batches of a pair: every domain's sampler draws its own ``batch_size`` samples each step.

    Args:
        samplers: ``{domain: TripletSampler}`` (``"A"``, ``"B"``).
        motion: also cut the source motion (the warp term needs it).
    """

    def __init__(self, samplers: Mapping[str, TripletSampler], *, motion: bool = False) -> None:
        self.samplers, self.motion = dict(samplers), motion

    def raw(self, step: int) -> dict[str, RawBatch]:
        """``{domain: TripletSampler.raw(step)}``."""
        return {k: s.raw(step, self.motion) for k, s in self.samplers.items()}

    def to_device(self, raw: dict[str, RawBatch], device: torch.device) -> dict[str, Tensor]:
        """See :func:`to_device`."""
        return to_device(raw, device)


class BatchLoader:
    """Each step's batch on the device, the next one prepared while a step runs.

    Args:
        batches: a :class:`BatchMaker` (:class:`PairBatches`, or the multi-domain
            :class:`retarget.train.multi.MultiBatches`), or ``{domain: TripletSampler}``
            for :class:`PairBatches` with ``motion``.
        device: where the step runs; on CUDA the uint8 batches are pinned so the copy
            overlaps the computation.
        motion: with samplers: also cut the source motion (the warp term needs it).
        prefetch: prepare step ``n + 1`` in a background thread after handing out step ``n``.
    """

    def __init__(
        self,
        batches: Union[BatchMaker, Mapping[str, TripletSampler]],
        device: torch.device,
        *,
        motion: bool = False,
        prefetch: bool = True,
    ) -> None:
        self.batches: BatchMaker = PairBatches(batches, motion=motion) if isinstance(batches, Mapping) else batches
        self.device = device
        self.pin = device.type == "cuda"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches") if prefetch else None
        self._next: Optional[tuple[int, Future]] = None

    def _make(self, step: int) -> dict[str, RawBatch]:
        raw = self.batches.raw(step)
        if self.pin:
            raw = {k: {n: t.pin_memory() for n, t in part.items()} for k, part in raw.items()}
        return raw

    def get(self, step: int) -> dict[str, Tensor]:
        """The batch of ``step`` on the device (see :func:`to_device`)."""
        if self._next is not None and self._next[0] == step:
            raw = self._next[1].result()
        else:
            raw = self._make(step)
        self._next = (step + 1, self._pool.submit(self._make, step + 1)) if self._pool is not None else None
        return self.batches.to_device(raw, self.device)

    def close(self) -> None:
        """Stop the background thread (a pending batch is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._next = None
