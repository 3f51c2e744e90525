"""Which source and target domain each sample of a multi-domain step gets.

:func:`domain_pairs` is a pure function of ``(seed, step, rank)``: a resumed run, or
another rank, draws the same pairs without any saved state. Sources are *balanced*:
the draws of a run are numbered (step-major, then rank, then sample) and cut into
rounds of ``n`` draws; each round is a random permutation of the ``n`` domains. So
every domain is the source once per round, whatever the sizes of the datasets (the
trainer then draws the window from that domain's data: a small dataset is seen as
often as a large one, and never starved). Each target is uniform over the other
``n - 1`` domains, drawn independently.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Stream of the per-round draws (kept apart from the seed's other uses).
_STREAM = 0x5D0A


def _round(seed: int, index: int, domains: int) -> tuple[np.ndarray, np.ndarray]:
    """Sources (a permutation of the domains) and target offsets (1..n-1) of round ``index``."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([_STREAM, seed, index])))
    return rng.permutation(domains), rng.integers(1, domains, size=domains)


def domain_pairs(
    seed: int, step: int, domains: int, batch: int = 1, rank: int = 0, world: int = 1
) -> tuple[Tensor, Tensor]:
    """Source and target domains of the ``batch`` samples of ``rank`` at ``step``.

    Args:
        seed: the run's seed; step: the optimisation step (0-based);
        domains: n >= 2; batch: samples per rank per step;
        rank, world: this process and the number of data-parallel processes.

    Returns:
        ``(src, dst)``, each ``[batch]`` long on the CPU, ``0 <= src, dst < n``,
        ``dst != src``. Draw ``k = (step * world + rank) * batch + i`` has source
        ``perm_r[k % n]`` with ``perm_r`` the permutation of round ``r = k // n``.
    """
    if domains < 2:
        raise ValueError(f"domain pairs need at least 2 domains, got {domains}")
    if not 0 <= rank < world or batch < 1 or step < 0:
        raise ValueError(f"bad draw position: step {step}, batch {batch}, rank {rank} of {world}")
    first = (step * world + rank) * batch
    src, dst = [], []
    rounds: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in range(first, first + batch):
        r, i = divmod(k, domains)
        if r not in rounds:
            rounds[r] = _round(seed, r, domains)
        perm, offset = rounds[r]
        src.append(int(perm[i]))
        dst.append(int(perm[i] + offset[i]) % domains)
    return torch.tensor(src, dtype=torch.long), torch.tensor(dst, dtype=torch.long)
