"""Sanity sweep of ``render --stabilize`` on a real clip with a known truth (no model needed).

The "truth" is a fixed colour map of the clip's 256 px centre crops (a per-channel gamma
and a channel swap: a stand-in for a translation that follows the source exactly). Three
"outputs" are judged against it at several strengths S, through
:func:`retarget.render.stabilize.stabilize_frames` (the render code path):

- noisy: truth + per-pixel noise (sigma 6) + a per-frame colour shift (sigma 6);
- jitter: truth + blurred noise (sigma ~3) + a per-frame colour shift (sigma 4);
- clean: the truth itself (whatever the stabilizer changes is its own error: smearing).

Figures: PSNR against the truth, flicker = mean |e_t - e_{t-1}| of the error e against
the truth, and the warping error of :mod:`retarget.eval.temporal`.

    python benchmarks/stabilize_sanity.py [VIDEO ...] [--frames 250] [--size 256]

The ground-truth benchmark with trained models (benchmarks/quality.py) is the real test;
this only checks the mechanics on real motion, cuts included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retarget.eval.temporal import warping_errors  # noqa: E402
from retarget.geometry import center_crop  # noqa: E402
from retarget.render.stabilize import stabilize_frames  # noqa: E402
from retarget.video.flow import FlowEstimator  # noqa: E402
from retarget.video.reader import VideoReader  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
LUT = np.stack([np.clip(255 * (np.arange(256) / 255) ** g, 0, 255) for g in (0.7, 1.0, 1.4)], 1).astype(np.uint8)


def truth_of(frame: np.ndarray) -> np.ndarray:
    """The fixed "translation": per-channel gamma, then R and B swapped (uint8 RGB)."""
    return np.ascontiguousarray(np.stack([LUT[frame[..., c], c] for c in range(3)], -1)[..., ::-1])


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    mse = np.mean([np.mean((x.astype(np.float32) - y) ** 2) for x, y in zip(a, b)])
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def flicker(a: list[np.ndarray], truth: list[np.ndarray]) -> float:
    err = [x.astype(np.float32) - y for x, y in zip(a, truth)]
    return float(np.mean([np.abs(e1 - e0).mean() for e0, e1 in zip(err, err[1:])]))


def outputs(truth: list[np.ndarray], kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    res = []
    for t in truth:
        x = t.astype(np.float32)
        if kind == "noisy":
            x = x + rng.normal(0, 6, t.shape) + rng.normal(0, 6, 3)
        elif kind == "jitter":
            x = x + cv2.GaussianBlur(rng.normal(0, 12, t.shape).astype(np.float32), (0, 0), 4) + rng.normal(0, 4, 3)
        res.append(np.clip(x + 0.5, 0, 255).astype(np.uint8))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", default=[str(DATA / "bikes.mp4"), str(DATA / "bigbuckbunny.mp4")])
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--strengths", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1.0])
    args = ap.parse_args()
    est = FlowEstimator()
    for video in args.videos:
        with VideoReader(video, max_frames=args.frames) as reader:
            sources = [center_crop(f.image, args.size) for f in reader]
        truth = [truth_of(s) for s in sources]
        print(f"{Path(video).name}: {len(sources)} frames at {args.size} px")
        for kind in ("noisy", "jitter", "clean"):
            outs = outputs(truth, kind, np.random.default_rng(0))
            for s in args.strengths:
                if kind == "clean" and s == 0:
                    continue
                st = stabilize_frames(outs, sources, s)
                warp = float(np.nanmean(warping_errors(st, sources, est)))
                print(
                    f"  {kind:6s} S={s:<4g} PSNR {psnr(st, truth):6.2f} dB  flicker {flicker(st, truth):5.2f}  "
                    f"warping error {warp:5.2f}"
                )


if __name__ == "__main__":
    main()
