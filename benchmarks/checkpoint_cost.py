"""What checkpointing costs a training run: steps/s with --checkpoint-every 5 against 1000.

    python benchmarks/checkpoint_cost.py                  # tiny preset, 32 px, 60 steps, 3 rounds
    python benchmarks/checkpoint_cost.py --size 64 --steps 100 --rounds 5

Both settings run the same tiny run (``--preset tiny``, generated frames, one torch
thread, previews off) in alternating rounds, so load from other processes hits both
alike; the figure to read is their ratio. The rate is timed from the end of step 1 to
the end of the last step (setup excluded, checkpoints and metrics included). Also
prints the milliseconds one checkpoint costs, ``(1/rate_5 - 1/rate_1000) * 5``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import environment  # noqa: I001

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from retarget.config import TrainConfig, model_preset  # noqa: E402
from retarget.train import train  # noqa: E402


def make_frames(folder: Path, count: int, size: int, seed: int) -> str:
    """``count`` smooth random PNG frames (a plain image-folder dataset)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    for i in range(count):
        img = cv2.resize(np.roll(base, i, axis=1), (size, size), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(folder / f"{i:05d}.png"), img)
    return str(folder)


def rate(a: str, b: str, out: Path, size: int, steps: int, every: int) -> float:
    """Steps per second from the end of step 1 to the end of the last step."""
    times: dict[int, float] = {}
    cfg = TrainConfig(
        a,
        b,
        out=str(out),
        preset="tiny",
        model=model_preset("tiny", size=size),
        steps=steps,
        pool=4,
        checkpoint_every=every,
        preview_every=10**6,
        preview_frames=0,
        log_every=10,
        device="cpu",
        threads=1,
    )
    train(cfg, on_step=lambda done, losses: times.__setitem__(done, time.perf_counter()))
    return (steps - 1) / (times[steps] - times[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(environment(threads=1))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        load = int(args.size * 1.12) + 2
        a, b = make_frames(root / "a", 12, load, 0), make_frames(root / "b", 12, load, 1)
        rates: dict[int, list[float]] = {5: [], 1000: []}
        for r in range(args.rounds):
            for every in (5, 1000):
                rates[every].append(rate(a, b, root / f"run_{every}_{r}", args.size, args.steps, every))
    for every, values in rates.items():
        print(
            f"--checkpoint-every {every:>4}: {statistics.median(values):6.2f} steps/s  (rounds: "
            + ", ".join(f"{v:.2f}" for v in values)
            + ")"
        )
    ratios = [x / y for x, y in zip(rates[5], rates[1000])]
    ms = [(1 / x - 1 / y) * 5 * 1000 for x, y in zip(rates[5], rates[1000])]
    print(
        f"ratio every-5 / every-1000: {statistics.median(ratios):.2f} (rounds: "
        + ", ".join(f"{v:.2f}" for v in ratios)
        + ")"
    )
    print(f"one checkpoint: {statistics.median(ms):.0f} ms")


if __name__ == "__main__":
    main()
