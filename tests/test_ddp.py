"""Two-process training with the gloo backend on CPU (what torchrun sets up)."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from helpers import write_frames

from retarget.config import TrainConfig, model_preset
from retarget.run import checkpoint as ckpt
from retarget.run import layout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, a: str, b: str, out: str, dump: str, loss: dict, cache: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    from retarget.config import LossConfig
    from retarget.train import train
    from retarget.train.data import load_domain
    from retarget.train.sampler import TripletSampler

    cfg = TrainConfig(
        a,
        b,
        out=out,
        model=model_preset("tiny", size=32),
        steps=3,
        loss=LossConfig(**loss),
        pool=2,
        device="cpu",
        checkpoint_every=100,
        preview_every=100,
        log_every=1,
        cache=cache,
    )
    result = train(cfg)
    state = {f"{n}.{k}": v.detach().clone() for n, m in result.networks.items() for k, v in m.state_dict().items()}
    sampler = TripletSampler(load_domain(a, 36), 3, 32, 1, cfg.seed, 0, True, rank, world)
    torch.save({"weights": state, "steps": result.steps, "first_batch": sampler.batch(0)}, f"{dump}/rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.parametrize(
    "loss,cache",
    [({}, "memory"), ({"gp": 1.0}, "memory"), ({"feature_match": 1.0}, "memory"), ({}, "mmap")],
    ids=["plain", "gradient-penalty", "feature-match", "mmap-cache"],  # mmap: rank 0 builds it, rank 1 waits
)
def test_two_process_gloo_run_keeps_ranks_identical(tmp_path, loss, cache):
    a = str(write_frames(tmp_path / "a", 8, size=36))
    b = str(write_frames(tmp_path / "b", 8, size=36, start=4))
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), a, b, str(out), str(tmp_path), loss, cache), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["steps"] == r1["steps"] == 3
    assert not torch.equal(r0["first_batch"], r1["first_batch"])  # ranks see different data
    for k, v in r0["weights"].items():
        assert torch.equal(v, r1["weights"][k]), f"{k} differs between ranks"
    latest = ckpt.latest_checkpoint(out)
    saved = ckpt.read_weights(latest / layout.WEIGHTS)[1]  # rank 0 wrote the run
    assert all(torch.equal(saved[k], v) for k, v in r0["weights"].items())
    assert (
        ckpt.load_state(latest / layout.STATE)["step"] == 3 and len(ckpt.load_state(latest / layout.STATE)["rng"]) == 2
    )
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]  # every rank's speed, gathered into rank 0's log
    assert all(r[f"{k}/rank{i}"] > 0 for r in lines for k in ("it_s", "data_s") for i in (0, 1))
    assert lines[-1]["it_s/rank0"] == lines[-1]["it_s"]
    logged = (out / "metrics.jsonl").read_text()
    assert all(f'"loss/A/{k}"' in logged for k in loss if k != "gp")  # generator-side terms of the run


def _nan_worker(rank: int, world: int, port: int, a: str, b: str, out: str, dump: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    from pathlib import Path

    from retarget.errors import RetargetError
    from retarget.nn import objectives
    from retarget.train import train

    original = objectives.Objective.generator_terms
    calls = [0]

    def poisoned(self, batch):  # rank 1 alone produces a NaN at its second step
        terms, fakes = original(self, batch)
        if any(getattr(v, "is_meta", False) for v in batch.values()):
            return terms, fakes  # the memory budget's pass on shapes only (retarget.nn.sizes), not a step
        calls[0] += 1
        if rank == 1 and calls[0] == 2:
            name = next(iter(terms))
            terms[name] = terms[name] * float("nan")
        return terms, fakes

    objectives.Objective.generator_terms = poisoned
    cfg = TrainConfig(
        a,
        b,
        out=out,
        model=model_preset("tiny", size=32),
        steps=4,
        pool=0,
        device="cpu",
        checkpoint_every=1,
        preview_every=100,
        log_every=1,
    )
    try:
        train(cfg)
        message = "finished"
    except RetargetError as exc:
        message = str(exc)
    Path(dump, f"nan{rank}.txt").write_text(message)


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    a = str(write_frames(tmp_path / "a", 8, size=36))
    b = str(write_frames(tmp_path / "b", 8, size=36, start=4))
    ctx = mp.spawn(
        _nan_worker, args=(2, _free_port(), a, b, str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=False
    )
    import time

    deadline = time.monotonic() + 120
    while not ctx.join(timeout=5):  # join returns as each process ends; True once all have
        if time.monotonic() > deadline:  # a hang is the bug under test: fail, don't wait forever
            for p in ctx.processes:
                p.terminate()
            pytest.fail("ranks did not stop together after a NaN on one rank")
    messages = [(tmp_path / f"nan{r}.txt").read_text() for r in range(2)]
    assert all("at step 2" in m and "step 1" in m for m in messages), messages
    assert ckpt.checkpoint_steps(tmp_path / "run") == [1]


def _time_worker(rank: int, world: int, port: int, a: str, b: str, out: str, dump: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    import itertools

    import retarget.train.loop as loop
    from retarget.train import train

    ticks = itertools.count()
    tick = 0.05 if rank == 0 else 0.15  # rank 1's clock runs three times faster
    loop._now = lambda: next(ticks) * tick
    cfg = TrainConfig(
        a,
        b,
        out=out,
        model=model_preset("tiny", size=32),
        steps=40,
        time_limit=2.0,
        pool=0,
        device="cpu",
        checkpoint_every=100,
        preview_every=100,
        preview_frames=0,
        log_every=1,
    )
    result = train(cfg)
    state = {f"{n}.{k}": v.detach().clone() for n, m in result.networks.items() for k, v in m.state_dict().items()}
    torch.save({"weights": state, "steps": result.steps, "stopped": result.stopped or ""}, f"{dump}/time{rank}.pt")


@pytest.mark.slow
def test_time_limit_ranks_agree_on_the_clock(tmp_path):
    a = str(write_frames(tmp_path / "a", 8, size=36))
    b = str(write_frames(tmp_path / "b", 8, size=36, start=4))
    ctx = mp.spawn(
        _time_worker, args=(2, _free_port(), a, b, str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=False
    )
    import time

    deadline = time.monotonic() + 120
    while not ctx.join(timeout=5):  # ranks that disagree on the clock would hang in a collective
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("ranks did not stop together at the time limit")
    r0 = torch.load(tmp_path / "time0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "time1.pt", weights_only=True)
    # the slower clock alone would have run ~10 steps: the ranks stop together at the faster one's budget
    assert r0["steps"] == r1["steps"] < 8 and "time limit" in r0["stopped"]
    for k, v in r0["weights"].items():  # the same LR on both ranks: the weights stay identical
        assert torch.equal(v, r1["weights"][k]), f"{k} differs between ranks"
    assert ckpt.checkpoint_steps(tmp_path / "run")[-1] == r0["steps"]


def _term_worker(rank: int, world: int, port: int, a: str, b: str, out: str, dump: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    import signal

    from retarget.train import train

    def term(done, losses):  # the scheduler's SIGTERM reaches rank 1 only, at its step 2
        if rank == 1 and done == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    cfg = TrainConfig(
        a,
        b,
        out=out,
        model=model_preset("tiny", size=32),
        steps=6,
        pool=0,
        device="cpu",
        checkpoint_every=100,
        preview_every=100,
        preview_frames=0,
        log_every=1,
    )
    result = train(cfg, on_step=term)
    state = {f"{n}.{k}": v.detach().clone() for n, m in result.networks.items() for k, v in m.state_dict().items()}
    torch.save(
        {"weights": state, "steps": result.steps, "signal": result.signal or 0, "interrupted": result.interrupted},
        f"{dump}/term{rank}.pt",
    )


@pytest.mark.slow
def test_sigterm_on_one_rank_stops_and_saves_every_rank_at_the_same_step(tmp_path):
    a = str(write_frames(tmp_path / "a", 8, size=36))
    b = str(write_frames(tmp_path / "b", 8, size=36, start=4))
    mp.spawn(_term_worker, args=(2, _free_port(), a, b, str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "term0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "term1.pt", weights_only=True)
    assert r0["steps"] == r1["steps"] == 2 and r0["interrupted"] and r1["interrupted"]
    assert r0["signal"] == r1["signal"] == 15  # both report SIGTERM: the CLI exits 143 on every rank
    assert ckpt.checkpoint_steps(tmp_path / "run") == [2]
    saved = ckpt.read_weights(ckpt.latest_checkpoint(tmp_path / "run") / layout.WEIGHTS)[1]
    assert all(torch.equal(saved[k], v) and torch.equal(r1["weights"][k], v) for k, v in r0["weights"].items())


def _multi_worker(rank: int, world: int, port: int, dirs: list, out: str, dump: str, cache: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    from retarget.train import train
    from retarget.train.loop import Trainer

    seen = []
    original = Trainer.run_step

    def run_step(self):  # the domain pairs this rank trained on
        original(self)
        seen.append((self.batch["src"].tolist(), self.batch["dst"].tolist()))

    Trainer.run_step = run_step
    cfg = TrainConfig(
        dirs[0],
        dirs[1],
        more=tuple(dirs[2:]),
        out=out,
        model=model_preset("tiny", size=32),
        steps=3,
        pool=2,
        batch_size=2,
        device="cpu",
        checkpoint_every=100,
        preview_every=2,
        preview_frames=3,
        log_every=1,
        cache=cache,
    )
    result = train(cfg)
    state = {f"{n}.{k}": v.detach().clone() for n, m in result.networks.items() for k, v in m.state_dict().items()}
    torch.save({"weights": state, "steps": result.steps, "pairs": seen}, f"{dump}/multi{rank}.pt")


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["memory", "mmap"])
def test_two_process_multi_domain_run_keeps_ranks_identical(tmp_path, cache):
    dirs = [str(write_frames(tmp_path / n, 7, size=36, start=s)) for n, s in (("a", 0), ("b", 4), ("c", 9))]
    out = tmp_path / "run"
    mp.spawn(_multi_worker, args=(2, _free_port(), dirs, str(out), str(tmp_path), cache), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "multi0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "multi1.pt", weights_only=True)
    assert r0["steps"] == r1["steps"] == 3 and set(n.split(".")[0] for n in r0["weights"]) == {"G", "D", "P"}
    for k, v in r0["weights"].items():
        assert torch.equal(v, r1["weights"][k]), f"{k} differs between ranks"
    assert r0["pairs"] != r1["pairs"]  # the ranks draw other domain pairs
    sources = [d for r in (r0, r1) for src, _ in r["pairs"] for d in src]
    assert sorted(sources) == [0] * 4 + [1] * 4 + [2] * 4  # 12 draws over both ranks: 4 rounds of 3 domains
    saved = ckpt.read_weights(ckpt.latest_checkpoint(out) / layout.WEIGHTS)[1]
    assert all(torch.equal(saved[k], v) for k, v in r0["weights"].items())
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3] and "temporal/warp_error/c" in lines[-1]
    if cache == "mmap":
        names = {p.name for p in out.glob("cache_*.npy")}  # one cache per domain, named after it
        assert names == {f"cache_{n}{s}.npy" for n in "abc" for s in ("", ".flow", ".valid")}
