"""The batches of a multi-domain step: balanced sources over datasets of very different lengths, exact per step."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from retarget.config import ModelConfig, TrainConfig
from retarget.train.data import load_domain
from retarget.train.multi import MultiBatches, make_batches
from retarget.train.sampler import BatchLoader, PairBatches, TripletSampler


def _domain(folder, frames, domain, size=20):
    """Frames whose red is their index and blue names the domain (``40 + 50 * domain``)."""
    folder.mkdir(parents=True)
    for i in range(frames):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 2] = i  # BGR on disk: channel 2 is red
        img[..., 0] = 40 + 50 * domain
        cv2.imwrite(str(folder / f"f{i:03d}.png"), img)
    return load_domain(folder, size, motion=True)


@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    root = tmp_path_factory.mktemp("uneven")
    # one long dataset and two very short ones: 38, 3 and 2 possible windows of 3 frames
    return [_domain(root / name, n, d) for d, (name, n) in enumerate([("big", 40), ("small", 5), ("tiny", 4)])]


def _samplers(data, batch, rank=0, world=1):
    return {
        f"d{k}": TripletSampler(d, 3, 16, batch, seed=7, domain=k, rank=rank, world=world) for k, d in enumerate(data)
    }


@pytest.mark.parametrize("batch", [1, 2])
def test_small_datasets_are_sources_as_often_as_a_large_one(uneven, batch):
    maker = MultiBatches(_samplers(uneven, batch), seed=7, batch=batch, motion=True)
    seen: Counter = Counter()
    for step in range(30 // batch):  # 30 draws: 10 rounds of the 3 domains
        raw = maker.raw(step)
        frames, src, dst = raw["x"]["frames"], raw["labels"]["src"], raw["labels"]["dst"]
        assert frames.shape == (batch, 3, 16, 16, 3) and frames.dtype == torch.uint8
        assert raw["x"]["flow"].shape == (batch, 2, 16, 16, 2) and bool((src != dst).all())
        for i, d in enumerate(src.tolist()):
            blue, red = frames[i, :, 0, 0, 2], frames[i, :, 0, 0, 0]
            assert bool((blue == 40 + 50 * d).all()), "the window comes from its source domain"
            assert (red[1:] - red[:-1]).tolist() == [1, 1], "consecutive frames of one segment"
        seen.update(src.tolist())
    assert seen == {0: 10, 1: 10, 2: 10}  # the 40-frame dataset does not crowd out the 4-frame one


def test_each_sample_is_its_source_samplers_draw_and_steps_repeat(uneven):
    samplers = _samplers(uneven, 4)
    maker = MultiBatches(samplers, seed=7, batch=4, motion=True)
    raw = maker.raw(5)
    for i, d in enumerate(raw["labels"]["src"].tolist()):
        own = list(samplers.values())[d].raw(5, motion=True, only=[i])  # the i-th draw of that domain's step
        assert torch.equal(raw["x"]["frames"][i], own["frames"][0])
        assert torch.equal(raw["x"]["flow"][i], own["flow"][0])
    again = MultiBatches(_samplers(uneven, 4), seed=7, batch=4, motion=True).raw(5)  # a resumed run
    assert all(torch.equal(raw["x"][k], again["x"][k]) for k in raw["x"])
    assert torch.equal(raw["labels"]["src"], again["labels"]["src"])


def test_ranks_draw_other_pairs(uneven):
    r0 = MultiBatches(_samplers(uneven, 1, 0, 2), seed=7, batch=1, rank=0, world=2)
    r1 = MultiBatches(_samplers(uneven, 1, 1, 2), seed=7, batch=1, rank=1, world=2)
    pairs = [(r0.pairs(s)[0].item(), r1.pairs(s)[0].item()) for s in range(6)]
    # draws are numbered step-major then rank: each step's two ranks take consecutive draws of a round
    assert sorted(Counter(d for p in pairs for d in p).values()) == [4, 4, 4]


def test_the_loader_prefetches_multi_batches_as_it_does_pairs(uneven):
    maker = MultiBatches(_samplers(uneven, 2), seed=7, batch=2, motion=True)
    loader = BatchLoader(maker, torch.device("cpu"))
    try:
        for step in (0, 1, 2, 9):
            got = loader.get(step)
            want = maker.to_device(maker.raw(step), torch.device("cpu"))
            assert set(got) == {"x", "src", "dst", "x.flow", "x.valid"} == set(want)
            assert all(torch.equal(got[k], want[k]) for k in want)
            assert loader._next is not None and loader._next[0] == step + 1
    finally:
        loader.close()
    assert got["x"].shape == (2, 3, 3, 16, 16) and got["x"].dtype == torch.float32
    assert got["src"].dtype == torch.long and got["x.valid"].shape == (2, 2, 1, 16, 16)


def test_make_batches_picks_by_the_model(uneven):
    cfg = TrainConfig("a", "b")
    two = dict(list(_samplers(uneven, 1).items())[:2])
    assert isinstance(make_batches(cfg, two, 0, 1, False), PairBatches)
    multi = TrainConfig("a", "b", more=("c",), model=ModelConfig(domains=3))
    assert isinstance(make_batches(multi, _samplers(uneven, 1), 0, 1, False), MultiBatches)
