"""What the warp term costs a training step, before and after its flow moved into the data.

    python benchmarks/warp_cost.py                       # 64, 128, 256 px, batch 1 and 4
    python benchmarks/warp_cost.py --sizes 128 --batch 8 --rounds 20

Before, the step copied the real frames to the host and ran two DIS optical flows per
sample inside the generator pass (the host copy, the flows and the sampling grid are
:func:`retarget.nn.warp_loss.add_motion`'s work, timed here as "flow in the step"). Now
the flow of every consecutive frame pair is computed once when a domain is loaded
(:mod:`retarget.train.motion`) and the sampler cuts each window's motion out of it in
the batch thread ("cut per batch", off the step's critical path with prefetching); the
step only samples the grid ("in-step term": the warp, the L1 and their backward on the
translations).

Everything runs in one process with ``--threads`` torch threads, rounds interleaved, so
load from other processes hits every column alike; medians in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import environment, load_average  # noqa: I001

import numpy as np  # noqa: E402
import torch  # noqa: E402

from retarget.nn.warp_loss import add_motion, warp_consistency  # noqa: E402
from retarget.train.motion import compute_motion, window_motion  # noqa: E402


def _frames(n: int, size: int, load: int) -> np.ndarray:
    """``n`` frames ``load x load`` of a smooth texture moving 2 px per frame."""
    rng = np.random.default_rng(0)
    import cv2

    tex = cv2.GaussianBlur(rng.integers(0, 256, (load, load + 2 * n, 3)).astype(np.uint8), (0, 0), 2.0)
    return np.stack([tex[:, 2 * (n - t) : 2 * (n - t) + load] for t in range(n)])


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def measure(size: int, batch: int, rounds: int) -> dict[str, float]:
    load = round(size * 1.12)
    frames = _frames(3, size, load)
    flow = np.zeros((3, load, load, 2), np.float16)
    valid = np.zeros((3, load, load), np.uint8)
    x = torch.from_numpy(frames[:, :size, :size]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    clip = x[None].repeat(batch, 1, 1, 1, 1)  # [B, 3, 3, S, S]
    fy = clip[:, :2].clone().requires_grad_(True)
    motion = add_motion({"A": clip})
    times: dict[str, list[float]] = {
        "flow in the step": [],
        "cut per batch": [],
        "in-step term": [],
        "per pair once": [],
    }
    for r in range(rounds + 1):
        t_old = _timed(lambda: add_motion({"A": clip}))
        t_once = _timed(lambda: compute_motion(frames, [(0, 1), (1, 2)], flow, valid, workers=1)) / 2
        t_cut = _timed(lambda: [window_motion(flow[1], valid[1], 3, 5, size, b % 2 == 1) for b in range(batch)])

        def term() -> None:
            loss = warp_consistency(fy[:, 0], fy[:, 1], motion["A.flow"][:, 0], motion["A.valid"][:, 0])
            loss.backward()

        t_term = _timed(term)
        if r:  # the first round warms up allocators and OpenCV
            for k, v in zip(times, (t_old, t_cut, t_term, t_once)):
                times[k].append(v)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(environment(args.threads))
    print(
        f"{'size':>5} {'batch':>5} | {'before: flow in the step':>25} | after: in-step term, cut per batch | per pair once"
    )
    for size in args.sizes:
        for b in args.batch:
            m = measure(size, b, args.rounds)
            print(
                f"{size:5d} {b:5d} | {m['flow in the step'] + m['in-step term']:22.1f} ms | "
                f"{m['in-step term']:8.1f} ms {m['cut per batch']:12.1f} ms      | {m['per pair once']:8.1f} ms",
                flush=True,
            )
    print(f"at the end: {load_average()}")


if __name__ == "__main__":
    main()
