"""Per-rank speed figures for ``metrics.jsonl``: every rank's it/s and data time, gathered on rank 0.

With several processes each rank measures its own speed; a slow data loader or a
throttled GPU on one rank then shows as one low ``it_s/rank{r}`` (or high
``data_s/rank{r}``) while the others wait for it in the gradient all-reduce.
"""

from __future__ import annotations

import torch

from retarget.train.distributed import DistContext


def rank_speeds(it_s: float, data_s: float, ctx: DistContext) -> dict[str, float]:
    """Gather every rank's ``it_s`` (steps/s) and ``data_s`` (s/step) for this log interval.

    A collective: every rank must call it at the same step. Returns
    ``{"it_s/rank0": ..., "data_s/rank0": ..., "it_s/rank1": ...}`` on every rank, or {}
    with a single process (the plain ``it_s`` / ``data_s`` already say it all).
    """
    if ctx.world <= 1:
        return {}
    mine = torch.tensor([it_s, data_s], dtype=torch.float64, device=ctx.device)
    every = [torch.zeros_like(mine) for _ in range(ctx.world)]
    torch.distributed.all_gather(every, mine)
    out: dict[str, float] = {}
    for r, t in enumerate(every):
        out[f"it_s/rank{r}"], out[f"data_s/rank{r}"] = (float(v) for v in t.cpu())
    return out
