"""Process control of a run: torchrun process group, DistributedDataParallel, deferred Ctrl-C.

Every network is wrapped in DistributedDataParallel (:func:`wrap`): DDP copies rank 0's
weights to all ranks when it wraps them and averages gradients across ranks during each
backward, so every rank applies the same update and the weights stay identical.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional

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
    """Destroy the process group if :func:`setup` created it.

    On gloo the ranks first meet at a monitored barrier (at most 30 s), so no rank tears
    down its connections while another still uses them: without it a rank that left
    first sometimes aborted at exit ("terminate called without an active exception",
    about one run in 20 of the NaN test). If the barrier fails or times out (a rank
    is gone), the group is destroyed all the same.
    """
    if not (ctx.owns_group and dist.is_initialized()):
        return
    if ctx.world > 1 and dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=30))
        except RuntimeError:
            pass
    dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.world > 1:
        dist.barrier()


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
    """A second Ctrl-C or SIGTERM: stop now, without saving a possibly half-updated state.

    ``signal_number`` is the signal that came second. A checkpoint being written is
    abandoned whole (its temporary folder is removed); the last complete one stays.
    """

    def __init__(self, signal_number: int = signal.SIGINT) -> None:
        super().__init__()
        self.signal_number = int(signal_number)


#: The signals a run defers to the end of its step: Ctrl-C, and what schedulers (SLURM,
#: Kubernetes, systemd, torchrun) send before they kill.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DeferredInterrupt:
    """Defer SIGINT (Ctrl-C) and SIGTERM to the end of the running step, so its checkpoint is consistent.

    The loop checks ``requested`` between steps; ``signal_number`` says which signal came
    first. A second one raises :class:`HardInterrupt` at once (the last complete
    checkpoint on disk stays valid).
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_number: Optional[int] = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise HardInterrupt(signum)
        self.requested = True
        self.signal_number = signum

    def __enter__(self) -> "DeferredInterrupt":
        for sig in STOP_SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                break
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def agreed_signal(signal_number: Optional[int], ctx: DistContext) -> int:
    """The signal that stops every rank: the highest number any rank received (SIGTERM over SIGINT).

    Called once all ranks know that some rank was signalled (:func:`any_rank`); a rank
    that saw none contributes 0. In a single process: ``signal_number`` or SIGINT.
    """
    agreed = int(max_over_ranks(float(signal_number or 0), ctx))
    return agreed or int(signal.SIGINT)


def wrap(nets: dict[str, torch.nn.Module], ctx: DistContext, device: torch.device) -> dict[str, torch.nn.Module]:
    """Each network in :class:`~torch.nn.parallel.DistributedDataParallel` when several ranks run.

    DDP averages gradients across ranks during backward (bucketed, overlapped with the
    computation). The wrappers share their parameters with ``nets``, so optimizers,
    checkpoints and previews keep using the plain modules. Two properties of the GAN
    step make this safe without ``find_unused_parameters``: every parameter of a
    network that takes part in a backward gets a gradient, and during the generator
    update the discriminators' parameters have ``requires_grad`` off, so their DDP
    hooks never fire and no reduction is left pending. Wrapping copies rank 0's
    parameters to every rank. Returns ``nets`` unchanged in a single process.
    """
    if ctx.world <= 1:
        return nets
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return {k: DistributedDataParallel(v, device_ids=ids) for k, v in nets.items()}


def max_over_ranks(value: float, ctx: DistContext) -> float:
    """The largest ``value`` of all ranks (ranks agree on the wall clock of a time budget)."""
    if ctx.world <= 1:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64 if ctx.device == "cpu" else torch.float32, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())
