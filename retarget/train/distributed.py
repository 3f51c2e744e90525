"""Process control of a run: torchrun process group, DistributedDataParallel, deferred Ctrl-C.

Every network is wrapped in DistributedDataParallel (:func:`wrap`): DDP copies rank 0's
weights to all ranks when it wraps them and averages gradients across ranks during each
backward, so every rank applies the same update and the weights stay identical.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Optional, TypeVar

import torch
import torch.distributed as dist

from retarget.device import cuda_index
from retarget.errors import RetargetError

T = TypeVar("T")

#: Default of ``--dist-timeout`` (s): how long a collective waits for the slowest rank.
DEFAULT_TIMEOUT = 1800.0


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


def setup(device_kind: str, timeout: float = DEFAULT_TIMEOUT) -> DistContext:
    """Join the process group described by RANK / WORLD_SIZE / LOCAL_RANK, if any.

    Args:
        device_kind: ``"cuda"`` uses NCCL, one GPU per process; anything else uses gloo.
        timeout: seconds a collective may wait for the slowest rank before it fails
            (``--dist-timeout``).

    Returns:
        the context; ``world == 1`` when not launched by torchrun (nothing initialised).

    Raises:
        RetargetError: more CUDA processes on this machine than GPUs (before any
            process group is made), or the group cannot be joined.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    coll = "cpu"
    if device_kind == "cuda":
        local_world = os.environ.get("LOCAL_WORLD_SIZE")  # set by torchrun
        index = cuda_index(local_rank, int(local_world) if local_world else None)
        torch.cuda.set_device(index)
        coll = f"cuda:{index}"
    if dist.is_initialized():
        coll = "cpu" if dist.get_backend() == "gloo" else coll
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, False, coll)
    backend = "nccl" if device_kind == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout))
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


#: Rank 0 signs of life while it works alone (:func:`main_first`): a beat every
#: ``BEAT_S`` seconds; the others give up after ``STALE_S`` seconds without one.
BEAT_S = 2.0
STALE_S = 120.0
_POLL_S = 0.5


def _default_store() -> Any:
    # The store the process group was made with (torchrun's TCPStore): the one channel
    # all ranks share that needs no collective, so a wait on it never times out.
    return dist.distributed_c10d._get_default_store()


def main_first(ctx: DistContext, key: str, work: Callable[[], T], what: str, store: Any = None) -> T:
    """Run ``work`` on rank 0 alone, then on every other rank once rank 0 succeeded.

    For jobs whose first run writes what the others reuse (the mmap frame cache). The
    other ranks do not wait in a collective, which times out after ``--dist-timeout``
    however long a legitimate decode takes: they poll the process group's store for
    rank 0's outcome, and notice a dead rank 0 (no heartbeat for :data:`STALE_S`
    seconds, or the store gone) or a failed one (its error, repeated).

    Args:
        ctx: the run's context; in a single process ``work()`` just runs.
        key: names this job in the store (unique within a run).
        work: the job; its result is returned on every rank.
        what: what rank 0 makes, for messages (``"the frame cache of A"``).
        store: a ``torch.distributed.Store``; default: the process group's.

    Raises:
        RetargetError: on the other ranks, when rank 0 failed, died or stalled.
    """
    if ctx.world <= 1:
        return work()
    store = store if store is not None else _default_store()
    prefix = f"retarget/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{key}"
    if not ctx.is_main:
        _wait_for_main(store, prefix, what)
        return work()
    store.set(f"{prefix}/beat", "0")
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(store, f"{prefix}/beat", stop), daemon=True)
    beat.start()
    try:
        result = work()
    except BaseException as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        try:
            store.set(f"{prefix}/done", f"rank 0 failed to make {what}: {text[:300]}")
        except Exception:  # the store is gone too: the others notice; this error is the one to show
            pass
        raise
    finally:
        stop.set()
        beat.join()
    store.set(f"{prefix}/done", "ok")
    return result


def _heartbeat(store: Any, key: str, stop: threading.Event) -> None:
    count = 0
    while not stop.wait(BEAT_S):
        count += 1
        try:
            store.set(key, str(count))
        except Exception:  # the store is gone; the waiting ranks notice it themselves
            return


def _wait_for_main(store: Any, prefix: str, what: str) -> None:
    """Poll ``store`` until rank 0 reports (returns on ``ok``; RetargetError otherwise)."""
    last_beat, last_change = None, time.monotonic()
    while True:
        try:
            if store.check([f"{prefix}/done"]):
                outcome = store.get(f"{prefix}/done").decode()
                break
            beat = store.get(f"{prefix}/beat") if store.check([f"{prefix}/beat"]) else None
        except Exception as exc:  # the store's host (torchrun's agent or rank 0) is gone
            why = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise RetargetError(f"lost contact with rank 0 while it made {what} ({why}); see rank 0's output") from None
        now = time.monotonic()
        if beat != last_beat:
            last_beat, last_change = beat, now
        elif now - last_change > STALE_S:
            raise RetargetError(
                f"rank 0 stopped responding while it made {what} (no sign of life for {STALE_S:.0f} s); "
                "see rank 0's output"
            )
        time.sleep(_POLL_S)
    if outcome != "ok":
        raise RetargetError(outcome)


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
