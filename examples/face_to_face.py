#!/usr/bin/env python
"""Face-to-face retargeting: make person A's talking-head video play as person B.

    python examples/face_to_face.py --a alice1.mp4 alice2.mp4 --b bob.mp4 \
        --input alice3.mp4 --out work/alice2bob --steps 20000

What it does, with the library API (the same as the three CLI commands):

1. ``extract`` each person's videos with ``align="face"``: the dlib backend finds the face,
   68 landmarks give a similarity transform to a canonical template, the transform is
   smoothed over time, and the aligned crops (``--size`` px) become a dataset with one
   segment per shot;
2. ``train`` Recycle-GAN between the two face datasets (``--steps``, ``--preset``);
3. ``render`` ``--input`` (default: A's first video): each frame's face is aligned,
   translated A -> B, colour-matched and pasted back along a feathered landmark hull,
   and the audio is kept. With ``--side-by-side`` the output shows input and result.

Needs the ``face`` extra (``pip install -e '.[face]'``). Results worth looking at need a
few minutes of video per person, ``--size 128`` or more and 10k+ steps on a GPU; on a
CPU, ``--steps 200 --size 64`` checks that everything runs. Everything is written under
``--out``: ``data/A``, ``data/B``, ``run/`` and ``<input name>_as_B.mp4``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retarget.config import ExtractConfig, FaceConfig, RenderConfig, TrainConfig, model_preset
from retarget.errors import RetargetError
from retarget.pipeline import run_pipeline


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--a", nargs="+", required=True, help="videos of person A (the source)")
    p.add_argument("--b", nargs="+", required=True, help="videos of person B (the target look)")
    p.add_argument("--input", help="video of A to translate [default: the first --a video]")
    p.add_argument("--out", default="face_to_face_out", help="working folder")
    p.add_argument("--steps", type=int, default=2000, help="training steps")
    p.add_argument("--size", type=int, default=128, help="face crop and training size (px)")
    p.add_argument("--preset", default="default", choices=["default", "official", "tiny"])
    p.add_argument("--max-frames", type=int, default=None, help="at most this many frames per video")
    p.add_argument("--backend", default="dlib", choices=["dlib", "fan"], help="face landmark backend")
    p.add_argument("--side-by-side", action="store_true", help="write input and result side by side")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    args = p.parse_args(argv)

    out = Path(args.out)
    face = FaceConfig(backend=args.backend)
    try:
        result = run_pipeline(
            args.a,
            args.b,
            args.input or args.a[0],
            out,
            extract_cfg=ExtractConfig(videos=(), size=args.size, align="face", face=face, max_frames=args.max_frames),
            train_cfg=TrainConfig(
                "",
                "",
                preset=args.preset,
                model=model_preset(args.preset, model="recycle", size=args.size),
                steps=args.steps,
                device=args.device,
                checkpoint_every=max(args.steps // 5, 1),
                preview_every=max(args.steps // 10, 1),
            ),
            render_cfg=RenderConfig("", "", side_by_side=args.side_by_side, device=args.device),
        )
    except RetargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
