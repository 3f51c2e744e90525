"""Image pool: pass-through, filling, mixing, exact state round trip."""

from __future__ import annotations

import pytest
import torch

from retarget.nn.pool import ImagePool


def _imgs(start: int, n: int) -> torch.Tensor:
    # image k is filled with the value k, so returned images can be identified
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def _ids(x: torch.Tensor) -> list[int]:
    return [int(v) for v in x[:, 0, 0, 0]]


def test_size_zero_passes_through():
    pool = ImagePool(0)
    x = _imgs(0, 3)
    assert torch.equal(pool.query(x), x) and len(pool) == 0


def test_fills_then_mixes_old_and_new():
    pool = ImagePool(4, seed=1)
    assert _ids(pool.query(_imgs(0, 4))) == [0, 1, 2, 3]  # filling: returns the new ones
    assert len(pool) == 4
    seen_old = seen_new = 0
    for step in range(1, 40):
        out = _ids(pool.query(_imgs(100 * step, 3)))
        assert len(out) == 3
        seen_new += sum(v >= 100 * step for v in out)
        seen_old += sum(v < 100 * step for v in out)
        assert len(pool) == 4  # never grows past its size
    assert seen_old > 20 and seen_new > 20  # about half each of 117 draws


def test_partial_fill_in_one_query():
    pool = ImagePool(2)
    out = pool.query(_imgs(0, 3))
    assert out.shape == (3, 3, 2, 2) and len(pool) == 2


def test_state_round_trip_is_exact():
    a = ImagePool(5, seed=7)
    for s in range(4):
        a.query(_imgs(10 * s, 3))
    state = a.state_dict()
    assert set(state) == {"images", "rng"} and all(isinstance(v, torch.Tensor) for v in state.values())
    b = ImagePool(5, seed=123)
    b.load_state_dict(state)
    for s in range(4, 12):
        x = _imgs(10 * s, 3)
        assert torch.equal(a.query(x), b.query(x))


def test_empty_state_and_oversized_state():
    a = ImagePool(3)
    b = ImagePool(3, seed=9)
    b.load_state_dict(a.state_dict())
    assert len(b) == 0
    full = ImagePool(5)
    full.query(_imgs(0, 5))
    with pytest.raises(ValueError, match="more than its size"):
        ImagePool(2).load_state_dict(full.state_dict())
