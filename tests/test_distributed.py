"""Process-group set-up (faked device counts, no group made) and rank 0's lone jobs (main_first)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from retarget.errors import RetargetError
from retarget.train import distributed as ddp


@pytest.fixture
def joined(monkeypatch):
    """A torchrun environment of 4 ranks (this is local rank 1) and a fake init_process_group."""
    for k, v in dict(WORLD_SIZE="4", RANK="1", LOCAL_RANK="1", LOCAL_WORLD_SIZE="4").items():
        monkeypatch.setenv(k, v)
    calls: list[dict] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(kw))
    return calls


def test_more_nccl_ranks_than_gpus_fail_before_the_process_group(monkeypatch, joined):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: pytest.fail("no GPU may be taken"))
    with pytest.raises(RetargetError, match="4 training processes on this machine but 2 visible GPU"):
        ddp.setup("cuda")
    assert joined == []  # refused before init_process_group


def test_nccl_rank_takes_its_gpu_and_the_group_gets_the_timeout(monkeypatch, joined):
    taken = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", taken.append)
    ctx = ddp.setup("cuda", timeout=120.0)
    assert taken == [1] and ctx.device == "cuda:1" and (ctx.rank, ctx.world, ctx.local_rank) == (1, 4, 1)
    assert joined == [dict(backend="nccl", rank=1, world_size=4, timeout=timedelta(seconds=120))]
    ddp.setup("cpu")  # gloo, the default timeout
    assert joined[1]["backend"] == "gloo" and joined[1]["timeout"] == timedelta(seconds=ddp.DEFAULT_TIMEOUT)


def _ranks(store, work0, work1):
    """Run main_first as rank 0 and rank 1 in two threads; returns {rank: result or exception}."""
    out: dict[int, object] = {}

    def rank(r, work):
        try:
            out[r] = ddp.main_first(ddp.DistContext(rank=r, world=2), "cache_A", work, "the frame cache of A", store)
        except BaseException as exc:  # handed to the test
            out[r] = exc

    threads = [threading.Thread(target=rank, args=(r, w)) for r, w in ((0, work0), (1, work1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return out


def test_other_ranks_wait_out_a_long_build_beyond_the_stale_time(monkeypatch):
    monkeypatch.setattr(ddp, "BEAT_S", 0.05)
    monkeypatch.setattr(ddp, "STALE_S", 0.5)
    order = []

    def build():
        time.sleep(1.5)  # three times the stale time: the heartbeat keeps rank 1 waiting
        order.append("built")
        return "cache"

    out = _ranks(dist.HashStore(), build, lambda: order.append("mapped") or "mapped")
    assert out == {0: "cache", 1: "mapped"} and order == ["built", "mapped"]


def test_a_failure_on_rank_0_reaches_the_others():
    def fail():
        raise RetargetError("data/a: no images found")

    out = _ranks(dist.HashStore(), fail, lambda: pytest.fail("rank 1 must not start"))
    assert isinstance(out[0], RetargetError)
    assert isinstance(out[1], RetargetError)
    assert str(out[1]) == "rank 0 failed to make the frame cache of A: data/a: no images found"


def test_a_dead_rank_0_is_noticed(monkeypatch):
    monkeypatch.setattr(ddp, "STALE_S", 0.5)
    store = dist.HashStore()
    store.set("retarget/0/cache_A/beat", "7")  # rank 0 started, then died: no more beats, no outcome
    t0 = time.monotonic()
    with pytest.raises(RetargetError, match="rank 0 stopped responding while it made the frame cache of A"):
        ddp.main_first(ddp.DistContext(rank=1, world=2), "cache_A", lambda: None, "the frame cache of A", store)
    assert time.monotonic() - t0 < 5


def test_a_lost_store_is_one_line():
    class Gone:
        def check(self, keys):
            raise RuntimeError("Connection reset by peer")

    with pytest.raises(RetargetError, match="lost contact with rank 0 while it made the frame cache of A"):
        ddp.main_first(ddp.DistContext(rank=1, world=2), "cache_A", lambda: None, "the frame cache of A", Gone())


def test_a_single_process_just_runs_the_job():
    assert ddp.main_first(ddp.DistContext(), "k", lambda: 5, "x", store=object()) == 5
