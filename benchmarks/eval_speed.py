"""eval speed: frames/s of ``retarget eval`` and where its time goes.

Usage: python benchmarks/eval_speed.py [--data ../shared/data] [--repeat 2] [--video bikes.mp4]

Evaluates the video against itself at its native size (``--source`` = ``--truth`` = the
video, medium DIS flow) and prints, per configuration, the wall-clock frames/s and
the CPU milliseconds per frame (user + system of this process; the machine is shared,
so CPU time is the steadier figure), best of ``--repeat`` runs. Then the CPU cost of
each step per frame pair: two DIS flows, the forward-backward check, one warping
error, PSNR + SSIM.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
from pathlib import Path

import numpy as np

from retarget.config import EvalConfig
from retarget.eval.evaluate import evaluate
from retarget.eval.metrics import psnr, ssim
from retarget.eval.temporal import pair_warping_error
from retarget.video.flow import FlowEstimator, Motion, consistent
from retarget.video.reader import VideoReader

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(cfg: EvalConfig, repeat: int) -> tuple[float, float, int]:
    """(best frames/s, best CPU ms per frame, frames) of evaluate(cfg)."""
    best_fps, best_cpu, n = 0.0, float("inf"), 0
    for _ in range(repeat):
        t, c = time.perf_counter(), cpu_seconds()
        res = evaluate(cfg)
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        n = res.frames["matched"]
        best_fps = max(best_fps, n / wall)
        best_cpu = min(best_cpu, 1000 * cpu / n)
    return best_fps, best_cpu, n


def steps(path: Path, pairs: int = 30) -> dict[str, float]:
    """CPU ms per frame pair of each step, on the first ``pairs`` + 1 frames."""
    frames = [f.image for f in VideoReader(path, max_frames=pairs + 1)]
    est = FlowEstimator("medium")
    cost = {"DIS flow x2": 0.0, "forward-backward check": 0.0, "warping error (one video)": 0.0, "PSNR + SSIM": 0.0}
    for prev, cur in itertools.pairwise(frames):
        c = cpu_seconds()
        b, f = est(cur, prev), est(prev, cur)
        c1 = cpu_seconds()
        valid = consistent(b, f)
        c2 = cpu_seconds()
        pair_warping_error(prev, cur, Motion(b, valid))
        c3 = cpu_seconds()
        psnr(cur, prev), ssim(cur, prev)
        c4 = cpu_seconds()
        for k, v in zip(cost, (c1 - c, c2 - c1, c3 - c2, c4 - c3)):
            cost[k] += v
    return {k: 1000 * v / (len(frames) - 1) for k, v in cost.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--video", default="bikes.mp4")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    path = Path(args.data) / args.video
    one, five, _ = os.getloadavg()
    print(f"{path.name}, load {one:.2f}/{five:.2f}")
    configs = {
        "--source": EvalConfig(output=str(path), source=str(path)),
        "--source --truth": EvalConfig(output=str(path), source=str(path), truth=str(path)),
        "--source --flow fast": EvalConfig(output=str(path), source=str(path), flow="fast"),
    }
    print(f"{'options':<24} {'frames':>6} {'frames/s':>9} {'CPU ms/frame':>13}")
    for name, cfg in configs.items():
        fps, cpu, n = run(cfg, args.repeat)
        print(f"{name:<24} {n:>6} {fps:>9.1f} {cpu:>13.1f}")
    print("CPU ms per frame pair:")
    for k, v in steps(path).items():
        print(f"  {k:<28} {v:6.1f}")
    one, five, _ = os.getloadavg()
    print(f"load after: {one:.2f}/{five:.2f}; numpy {np.__version__}")


if __name__ == "__main__":
    main()
