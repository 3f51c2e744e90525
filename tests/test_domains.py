"""Balanced source/target draws of a multi-domain run (retarget/nn/domains.py)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from retarget.nn.domains import domain_pairs


def test_pure_function_of_seed_and_step():
    a = [domain_pairs(3, s, 4, batch=2) for s in range(20)]
    b = [domain_pairs(3, s, 4, batch=2) for s in reversed(range(20))][::-1]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    other = [domain_pairs(4, s, 4, batch=2) for s in range(20)]
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(a, other))
    src, dst = a[0]
    assert src.dtype == dst.dtype == torch.long and src.shape == dst.shape == (2,)


@pytest.mark.parametrize("domains,batch", [(2, 1), (3, 1), (5, 2), (4, 3)])
def test_every_domain_is_the_source_once_per_round(domains, batch):
    draws = torch.cat([domain_pairs(0, s, domains, batch)[0] for s in range(domains * 12)])
    for r in range(len(draws) // domains):
        assert sorted(draws[r * domains : (r + 1) * domains].tolist()) == list(range(domains))


def test_targets_are_the_other_domains_uniformly():
    n, steps = 4, 3000
    pairs = [domain_pairs(1, s, n) for s in range(steps)]
    counts = Counter((int(s), int(d)) for s, d in pairs)
    assert all(s != d for s, d in counts)
    assert len(counts) == n * (n - 1)  # every ordered pair occurs
    expect = steps / (n * (n - 1))
    assert all(abs(c - expect) < 0.3 * expect for c in counts.values())


def test_ranks_split_the_same_draws():
    # two ranks with batch 1 draw what one process with batch 2 draws, step by step
    for step in range(10):
        whole = domain_pairs(5, step, 3, batch=2)
        for rank in range(2):
            part = domain_pairs(5, step, 3, batch=1, rank=rank, world=2)
            assert part[0].item() == whole[0][rank].item() and part[1].item() == whole[1][rank].item()


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        domain_pairs(0, 0, 1)
    with pytest.raises(ValueError, match="rank"):
        domain_pairs(0, 0, 3, rank=2, world=2)
