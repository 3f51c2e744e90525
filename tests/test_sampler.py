"""Batches from the sampler to the device: uint8 across, float there, the next one prepared ahead."""

from __future__ import annotations

import torch
from helpers import write_frames

from retarget.train.data import load_domain
from retarget.train.sampler import BatchLoader, TripletSampler, frames_to_float, to_device


def _samplers(tmp_path):
    a = load_domain(write_frames(tmp_path / "a", 8, size=24), 24, motion=True)
    b = load_domain(write_frames(tmp_path / "b", 6, size=24, start=5), 24, motion=True)
    return {"A": TripletSampler(a, 3, 16, 2, seed=1), "B": TripletSampler(b, 3, 16, 2, seed=1, domain=1)}


def test_uint8_crosses_and_float_arrives(tmp_path):
    samplers = _samplers(tmp_path)
    raw = {k: s.raw(4, motion=True) for k, s in samplers.items()}
    assert raw["A"]["frames"].dtype == torch.uint8 and raw["A"]["frames"].shape == (2, 3, 16, 16, 3)
    batch = to_device(raw, torch.device("cpu"))
    assert batch["A"].dtype == torch.float32 and batch["A"].shape == (2, 3, 3, 16, 16)
    assert batch["A"].min() >= -1 and batch["A"].max() <= 1 and batch["A"].is_contiguous()
    assert torch.equal(batch["A"], samplers["A"].batch(4))  # the same numbers as the float path
    assert batch["B.flow"].shape == (2, 2, 16, 16, 2) and batch["B.valid"].shape == (2, 2, 1, 16, 16)
    assert set(batch["B.valid"].unique().tolist()) <= {0.0, 1.0}


def test_frames_to_float_is_the_networks_range():
    x = torch.tensor([0, 255, 128], dtype=torch.uint8).view(1, 1, 1, 1, 3)  # one RGB pixel, channels last
    y = frames_to_float(x)
    want = torch.tensor([-1.0, 1.0, 128 / 127.5 - 1])
    assert y.shape == (1, 1, 3, 1, 1) and torch.allclose(y.flatten(), want, atol=1e-6)


def test_loader_prepares_the_next_step_and_equals_direct_sampling(tmp_path):
    samplers = _samplers(tmp_path)
    loader = BatchLoader(samplers, torch.device("cpu"), motion=True)
    made = []
    real = loader._make
    loader._make = lambda step: made.append(step) or real(step)
    try:
        for step in (0, 1, 2, 7, 8):  # a jump (resume) is served directly
            got = loader.get(step)
            want = to_device({k: s.raw(step, motion=True) for k, s in samplers.items()}, torch.device("cpu"))
            assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
            assert loader._next is not None and loader._next[0] == step + 1  # already on its way
    finally:
        loader.close()
    assert made.count(1) == 1 and made.count(2) == 1  # prefetched once, not drawn again
    plain = BatchLoader(samplers, torch.device("cpu"), prefetch=False)
    assert set(plain.get(0)) == {"A", "B"} and plain._next is None
