#!/usr/bin/env python
"""CycleGAN versus Recycle-GAN on the same data, the same seed and the same budget.

    python examples/compare_cyclegan_recycle.py --steps 600                  # synthetic domains
    python examples/compare_cyclegan_recycle.py --a a.mp4 --b b.mp4 --steps 5000 --size 128

Both models are trained from the same datasets with the same seed, steps, size and
preset; the only difference is the objective (``model="cyclegan"``: adversarial + cycle
+ identity; ``model="recycle"``: adversarial + cycle + recurrent + recycle, see
docs/training.md). Then the same held-out video is rendered with both and the script
writes, under ``--out``:

- ``comparison.mp4``: input | CycleGAN | Recycle-GAN, with the input's audio;
- ``comparison.png``: stills of the three, and a plot of frame-to-frame change;
- ``comparison.json``: the figures printed at the end.

Figures: *flicker*, the mean absolute change between consecutive output frames divided
by the same for the input (1 = as steady as the input; higher = temporal flicker that the
input does not have); with the synthetic domains (no ``--a``/``--b``) also the colour
distance to each domain and the correlation of the shape's track with the input's
(see docs/quickstart.md). Without ``--a``/``--b`` it generates the demo's synthetic
domains, so it runs anywhere with no data; ``--steps 600`` takes a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from retarget.config import ExtractConfig, RenderConfig, TrainConfig, model_preset
from retarget.demo import synth
from retarget.errors import RetargetError
from retarget.pipeline import extract_domains, render_with, train_on


def flicker(frames: np.ndarray) -> np.ndarray:
    """Mean absolute change between consecutive frames: ``(T-1,)`` in [0, 255]."""
    f = frames.astype(np.float32)
    return np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--a", nargs="+", help="videos of domain A [default: synthetic]")
    p.add_argument("--b", nargs="+", help="videos of domain B [default: synthetic]")
    p.add_argument("--input", help="video of A to translate [default: a held-out clip / the first --a video]")
    p.add_argument("--out", default="compare_out", help="working folder")
    p.add_argument("--steps", type=int, default=600, help="training steps of each model")
    p.add_argument("--size", type=int, default=64, help="frame and training size (px)")
    p.add_argument("--preset", default="tiny", choices=["default", "official", "tiny"])
    p.add_argument("--max-frames", type=int, default=None, help="at most this many frames per video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    args = p.parse_args(argv)
    if bool(args.a) != bool(args.b):
        p.error("give both --a and --b, or neither for the synthetic domains")

    out = Path(args.out)
    synthetic = not args.a
    try:
        if synthetic:
            kw = dict(seed=args.seed, size=args.size, clips=4, frames=48)
            a_videos = [str(c.path) for c in synth.make_domain(out / "videos" / "A", "A", **kw)]
            b_videos = [str(c.path) for c in synth.make_domain(out / "videos" / "B", "B", **kw)]
            held = synth.make_domain(
                out / "videos", "A", seed=args.seed, size=args.size, clips=1, frames=60, first=4, prefix="heldout"
            )[0]
            source = held.path
        else:
            a_videos, b_videos = args.a, args.b
            source = Path(args.input or args.a[0])
        data = extract_domains(
            {"A": a_videos, "B": b_videos}, out, ExtractConfig(videos=(), size=args.size, max_frames=args.max_frames)
        )
        results = {}
        for model in ("cyclegan", "recycle"):
            run = out / f"run_{model}"
            train_on(
                data,
                run,
                TrainConfig(
                    "",
                    "",
                    preset=args.preset,
                    model=model_preset(args.preset, model=model, size=args.size),
                    steps=args.steps,
                    seed=args.seed,
                    device=args.device,
                    checkpoint_every=args.steps,
                    preview_every=max(args.steps // 4, 1),
                ),
            )
            # stabilize 0: compare what the two objectives learned, not the render-time smoothing
            render_with(run, source, out / f"{model}.mp4", RenderConfig("", "", device=args.device, stabilize=0.0))
            results[model] = synth.read_frames(out / f"{model}.mp4", max_frames=300)
    except RetargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    frames_in = synth.read_frames(source, max_frames=300)
    n = min(len(frames_in), *(len(v) for v in results.values()))
    frames_in = frames_in[:n]
    results = {k: v[:n] for k, v in results.items()}
    base = float(flicker(frames_in).mean()) or 1.0
    figures: dict[str, dict[str, float]] = {}
    for model, frames in results.items():
        fig = {"flicker": round(float(flicker(frames).mean()) / base, 3)}
        if synthetic:
            ca = synth.mean_rgb(np.concatenate([synth.read_frames(v) for v in a_videos]))
            cb = synth.mean_rgb(np.concatenate([synth.read_frames(v) for v in b_videos]))
            after = synth.mean_rgb(frames)
            fig["dist_to_a"] = round(float(np.linalg.norm(after - ca)), 1)
            fig["dist_to_b"] = round(float(np.linalg.norm(after - cb)), 1)
            fig["motion_correlation"] = round(
                synth.track_correlation(synth.object_centroids(frames_in), synth.object_centroids(frames)), 3
            )
        figures[model] = fig

    panel = np.concatenate([frames_in, results["cyclegan"], results["recycle"]], axis=2)
    synth.write_video(out / "comparison.mp4", panel, fps=25.0)
    _figure(out / "comparison.png", frames_in, results)
    (out / "comparison.json").write_text(json.dumps(figures, indent=2) + "\n")
    for model, fig in figures.items():
        print(f"{model:9s} " + "  ".join(f"{k} {v}" for k, v in fig.items()))
    print(f"wrote {out / 'comparison.mp4'} and {out / 'comparison.png'}")
    return 0


def _figure(path: Path, frames_in: np.ndarray, results: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("input", frames_in), ("CycleGAN", results["cyclegan"]), ("Recycle-GAN", results["recycle"])]
    picks = np.linspace(0, len(frames_in) - 1, 5).round().astype(int)
    fig = plt.figure(figsize=(10, 8))
    grid = fig.add_gridspec(4, 5, height_ratios=[1, 1, 1, 1.3])
    for r, (label, frames) in enumerate(rows):
        for c, i in enumerate(picks):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(frames[i])
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label)
            if r == 0:
                ax.set_title(f"frame {i}", fontsize=9)
    ax = fig.add_subplot(grid[3, :])
    for label, frames in rows:
        ax.plot(flicker(frames), label=label)
    ax.set_xlabel("frame")
    ax.set_ylabel("mean |frame t+1 - frame t|")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
