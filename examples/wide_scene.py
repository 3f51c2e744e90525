#!/usr/bin/env python
"""A 16:9 scene end to end: whole frames extracted, trained on and rendered, no centre square.

    python examples/wide_scene.py                       # synthetic day -> dusk, under a minute on 2 cores
    python examples/wide_scene.py --steps 2000 --out work/wide

Landscape scenes (a sunrise, clouds, a street) fill the whole width; a model trained on the
centre square of each frame leaves the sides untranslated. Here everything keeps the
frame's aspect:

1. two synthetic 16:9 domains are written as videos (``128 x 72``, with sound): A, a day
   sky with a sun crossing the whole width above green hills; B, the same kind of scene at
   dusk (orange-violet sky, a pale moon, dark hills);
2. ``extract`` with ``frame="full"`` (the default for ``--align none``) keeps whole frames,
   short side ``--size`` (the manifest records ``"frame": "full"``);
3. ``train`` (tiny preset) draws random square windows of the whole frames;
4. ``render`` sees that the run was trained on whole frames and translates the whole frame
   at the training scale, then upscales it back to 128 x 72 (``--upscale detail`` also puts
   the source's fine detail back); the audio is kept.

At the end it prints the mean colour of the left edge, the centre and the right edge of the
input and of the translation, next to each domain's sky colour: all three move to B's.
Writes ``data/``, ``run/``, ``wide_a.mp4`` and ``wide_a_as_B.mp4`` under ``--out``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from retarget.config import ExtractConfig, RenderConfig, TrainConfig, model_preset
from retarget.demo import synth
from retarget.errors import RetargetError
from retarget.pipeline import extract_domains, render_with, train_on

WIDTH, HEIGHT, FPS = 128, 72, 25.0
#: Sky (top, bottom), disc and hill colours of the two domains, RGB.
LOOKS = {
    "A": ((70, 130, 230), (190, 220, 250), (255, 236, 120), (60, 150, 70)),
    "B": ((60, 30, 110), (250, 140, 70), (235, 235, 220), (30, 25, 45)),
}


def scene(domain: str, frames: int, seed: int) -> np.ndarray:
    """``frames x HEIGHT x WIDTH x 3`` uint8: a disc crossing the sky left to right above hills."""
    rng = np.random.default_rng(seed)
    top, bottom, disc, hill = (np.array(c, np.float32) for c in LOOKS[domain])
    t = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top * (1 - t) + bottom * t, (HEIGHT, WIDTH, 3))
    xs = np.arange(WIDTH)
    phase, amp = rng.uniform(0, 2 * math.pi), rng.uniform(3, 7)
    ridge = (0.72 * HEIGHT + amp * np.sin(xs / WIDTH * 2 * math.pi * 1.5 + phase)).astype(int)
    start, speed = rng.uniform(-0.1, 0.3), rng.uniform(0.6, 0.9)
    out = np.empty((frames, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(frames):
        img = np.ascontiguousarray(sky.copy())
        x = (start + speed * i / max(frames - 1, 1)) * WIDTH
        y = 0.3 * HEIGHT - 0.1 * HEIGHT * math.sin(math.pi * i / max(frames - 1, 1))
        cv2.circle(img, (int(x * 16), int(y * 16)), int(0.11 * HEIGHT * 16), disc.tolist(), -1, cv2.LINE_AA, 4)
        for col in range(WIDTH):
            img[ridge[col] :, col] = hill
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def write_domain(folder: Path, domain: str, clips: int, frames: int, seed: int) -> list[Path]:
    """Write ``clips`` videos of ``domain`` (with a tone as sound) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(clips):
        s = seed * 100 + k + (0 if domain == "A" else 50)
        audio = synth.tone(frames / FPS, s, "A" if domain == "A" else "B")
        paths.append(synth.write_video(folder / f"{domain}{k}.mp4", scene(domain, frames, s), FPS, audio))
    return paths


def bands(video: Path) -> list[np.ndarray]:
    """Mean sky colour (top third) of the left edge, the centre and the right edge over the video."""
    frames = synth.read_frames(video).astype(np.float32)
    w, sky = frames.shape[2], frames[:, : frames.shape[1] // 3]
    return [
        sky[:, :, s].mean(axis=(0, 1, 2))
        for s in (slice(0, w // 8), slice(3 * w // 8, 5 * w // 8), slice(-w // 8, None))
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="wide_scene_out", help="working folder")
    p.add_argument("--steps", type=int, default=150, help="training steps")
    p.add_argument("--size", type=int, default=40, help="short side of the extracted frames (px)")
    p.add_argument("--train-size", type=int, default=32, help="training window side (px)")
    p.add_argument("--upscale", default="detail", choices=["bilinear", "detail"], help="back to the source size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    args = p.parse_args(argv)

    out = Path(args.out)
    try:
        videos = {d: write_domain(out / "videos", d, 2, 24, args.seed) for d in ("A", "B")}
        held = write_domain(out / "held", "A", 1, 30, args.seed + 7)[0]
        data = extract_domains(videos, out, ExtractConfig(videos=(), size=args.size, frame="full", workers=2))
        train_cfg = TrainConfig(
            "",
            "",
            preset="tiny",
            model=model_preset("tiny", size=args.train_size),
            steps=args.steps,
            seed=args.seed,
            device=args.device,
            checkpoint_every=args.steps,
            preview_every=args.steps,
            preview_frames=0,
            log_every=max(args.steps // 10, 1),
        )
        train_on(data, out / "run", train_cfg)
        result = out / "wide_a_as_B.mp4"
        summary = render_with(out / "run", held, result, RenderConfig("", "", upscale=args.upscale, device=args.device))
    except RetargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {result}: {summary.width}x{summary.height}, {summary.frames} frames, whole frames at {summary.scale} px"
    )
    sky = {d: np.array(LOOKS[d][0], np.float32) for d in ("A", "B")}
    for name, before, after in zip(("left", "centre", "right"), bands(held), bands(result)):
        closer = "B" if np.abs(after - sky["B"]).mean() < np.abs(after - sky["A"]).mean() else "A"
        print(
            f"{name:>6} sky: input {before.round().astype(int)} -> {after.round().astype(int)} (closer to {closer}'s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
