"""Process control of a run: torchrun process group, gradient averaging, deferred Ctrl-C.

The GAN step calls each generator several times per step and freezes the
discriminators during the generator update, which DistributedDataParallel's
one-forward-one-backward bucketing does not model well (unused parameters, repeated
hooks). So ranks run the step locally and the step's ``grad_hook`` averages the
gradients with explicit ``all_reduce`` calls just before each optimizer step. With
equal initial weights (broadcast from rank 0) and equal averaged gradients, every
rank applies the same update and the weights stay identical.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist

from retarget.errors import RetargetError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this module created the process group and must destroy it
    device: str = "cpu"  # where small collective tensors live (NCCL needs CUDA tensors)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and prints."""
        return self.rank == 0


def setup(device_kind: str) -> DistContext:
    """Join the process group described by RANK / WORLD_SIZE / LOCAL_RANK, if any.

    Args:
        device_kind: ``"cuda"`` uses NCCL; anything else uses gloo.

    Returns:
        the context; ``world == 1`` when not launched by torchrun (nothing initialised).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    coll = "cpu"
    if device_kind == "cuda":
        torch.cuda.set_device(local_rank % max(1, torch.cuda.device_count()))
        coll = f"cuda:{torch.cuda.current_device()}"
    if dist.is_initialized():
        coll = "cpu" if dist.get_backend() == "gloo" else coll
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, False, coll)
    backend = "nccl" if device_kind == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    except Exception as exc:  # bad MASTER_ADDR/PORT, missing backend
        raise RetargetError(f"could not join the process group ({backend}, rank {rank}/{world}): {exc}") from None
    return DistContext(rank, world, local_rank, True, coll)


def teardown(ctx: DistContext) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.world > 1:
        dist.barrier()


def broadcast_parameters(modules: Iterable[torch.nn.Module], ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank, so all start identical."""
    if ctx.world <= 1:
        return
    with torch.no_grad():
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, src=0)


def make_grad_hook(ctx: DistContext, bucket_mb: float = 25.0):
    """A ``grad_hook(which, params)`` that averages ``.grad`` over ranks in place.

    Gradients are flattened into buckets of about ``bucket_mb`` MB per ``all_reduce``
    call, so small tensors (norm weights, biases) do not each pay a round trip. The
    returned hook is None in a single process.
    """
    if ctx.world <= 1:
        return None
    limit = int(bucket_mb * 1024 * 1024)

    def hook(which: str, params: Iterable[torch.nn.Parameter]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        bucket: list[torch.Tensor] = []
        size = 0
        for g in grads + [None]:  # type: ignore[list-item]
            if g is not None and (not bucket or (size + g.numel() * g.element_size() <= limit and g.dtype == bucket[0].dtype)):
                bucket.append(g)
                size += g.numel() * g.element_size()
                continue
            if bucket:
                flat = torch.cat([b.reshape(-1) for b in bucket])
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
                flat.div_(ctx.world)
                offset = 0
                for b in bucket:
                    n = b.numel()
                    b.copy_(flat[offset : offset + n].view_as(b))
                    offset += n
            bucket, size = ([g], g.numel() * g.element_size()) if g is not None else ([], 0)

    return hook


def all_finite(flag: bool, ctx: DistContext) -> bool:
    """True when ``flag`` holds on every rank (one rank's NaN stops them all)."""
    if ctx.world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True when ``flag`` holds on some rank (a Ctrl-C seen by one rank stops all at one step)."""
    if ctx.world <= 1:
        return flag
    return not all_finite(not flag, ctx)


class HardInterrupt(KeyboardInterrupt):
    """A second Ctrl-C: stop now, without saving a possibly half-updated state."""


class DeferredInterrupt:
    """Defer SIGINT (Ctrl-C) to the end of the running step, so its checkpoint is consistent.

    The loop checks ``requested`` between steps. A second Ctrl-C raises
    :class:`HardInterrupt` at once (the last checkpoint on disk stays valid).
    """

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise HardInterrupt
        self.requested = True

    def __enter__(self) -> "DeferredInterrupt":
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._old = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
