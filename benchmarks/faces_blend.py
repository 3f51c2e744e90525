"""Paste-back settings compared on the face benchmark's trained runs: blend, colour match, mask.

    python benchmarks/faces.py --pairs d19:d18 --systems cyclegan+ngf=32 --keep --out faces_1h
    python benchmarks/faces_blend.py faces_1h [more benchmark folders] --out faces_blend

Each ``DIR[:INDEX]`` is a ``benchmarks/faces.py --keep`` output and the index of a system
on its command line (default 0). For every pair in it, that system's run of ``--seed`` renders the
pair's held-out clip once per setting (``render --blend``, ``--color-match``,
``--mask-erode`` / ``--mask-dilate``; everything else at its default, the stabilizer
included); each render is scored with ``retarget eval --faces --target B`` (identity,
mouth, sharpness of the face box's centre, warping error). A pasted look (a colour step
or a hard edge at the mask) is not in those numbers: read it on the strip per pair, a
column per setting at ``--points`` times of the clip. Table: stdout and
``OUT/results.md``; numbers: ``OUT/results.json``.

Settings are ``BLEND,COLOR[,erode=PX|dilate=PX][,enhance[=SIGMA]]``, e.g. ``alpha,lab`` (the
defaults), ``seamless,none``, ``alpha,lab,erode=8``, ``alpha,lab,enhance=0``. ``enhance``
renders with ``--enhancer`` (and ``--enhancer-blur SIGMA`` when given): B's video is extracted at ``--enhancer-scale`` x the run's
face size (its margin) and ``retarget train-enhancer`` learns from it for
``--enhancer-time`` seconds (``OUT/enhancers/``; reused when it is there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment  # noqa: E402
from faces import DEFAULT_DATA, _crop, _pick, find_video, markdown_table, pick, score  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_SETTINGS = (
    "alpha,lab",
    "alpha,hist",
    "alpha,none",
    "seamless,lab",
    "seamless,none",
    "alpha,lab,erode=8",
    "alpha,lab,dilate=8",
)


def parse_setting(text: str) -> dict[str, Any]:
    """``BLEND,COLOR[,erode=PX|dilate=PX][,enhance[=SIGMA]]`` as RenderConfig fields, ``enhance`` as a
    flag (SIGMA: ``--enhancer-blur``) (SystemExit on a typo)."""
    parts = text.split(",")
    if len(parts) < 2 or parts[0] not in ("alpha", "seamless") or parts[1] not in ("lab", "hist", "none"):
        raise SystemExit(f"setting {text!r}: write BLEND,COLOR[,erode=PX|dilate=PX][,enhance], e.g. alpha,lab")
    out: dict[str, Any] = {"blend": parts[0], "color_match": parts[1]}
    for part in parts[2:]:
        key, _, value = part.partition("=")
        if key == "enhance" and "enhance" not in out:
            out["enhance"] = True
            if value:
                try:
                    out["enhancer_blur"] = float(value)
                except ValueError:
                    raise SystemExit(f"setting {text!r}: enhance=SIGMA takes a number") from None
            continue
        key, _, px = part.partition("=")
        if key not in ("erode", "dilate") or not px.isdigit() or "mask_erode" in out or "mask_dilate" in out:
            raise SystemExit(f"setting {text!r}: after BLEND,COLOR come erode=PX or dilate=PX, and enhance[=SIGMA]")
        out[f"mask_{key}"] = int(px)
    return out


def make_enhancer(b_video: Path, run: Path, args: argparse.Namespace, out: Path) -> Path:
    """An enhancer of B for ``run``'s faces: B extracted at ``--enhancer-scale`` x the run's size
    with its margin, ``retarget train-enhancer`` for ``--enhancer-time`` seconds; reused when it exists."""
    from retarget.config import EnhancerConfig, ExtractConfig
    from retarget.dataset.extract import extract
    from retarget.progress import console
    from retarget.run import open_run
    from retarget.train.enhancer import train_enhancer

    info = open_run(str(run)).data_of("B")
    size = info.size * args.enhancer_scale
    folder = out / "enhancers" / f"{b_video.stem}_{size}px_m{info.face.margin:g}"
    if (folder / "enhancer").is_dir():
        return folder / "enhancer"
    with console.capture():
        extract(ExtractConfig(videos=(str(b_video),), output=str(folder / "B"), size=size, align="face",
                              face=info.face, overwrite=True))  # fmt: skip
        res = train_enhancer(
            EnhancerConfig(
                data=str(folder / "B"),
                out=str(folder / "enhancer"),
                scale=args.enhancer_scale,
                time_limit=args.enhancer_time,
                threads=args.threads,
                overwrite=True,
            )  # fmt: skip
        )
    print(f"enhancer {folder.name}: {res.steps} steps, {res.psnr:.2f} dB vs {res.psnr_bilinear:.2f} dB bilinear")
    return res.out


def write_strip(clip: str, renders: dict[str, str], path: Path, points: int, tile: int) -> None:
    """Rows at ``points`` times of the clip: the source, then one column per setting; a header row."""
    from retarget.eval.faces import FaceComparer
    from retarget.faces.backends import get_backend

    comparer = FaceComparer(get_backend("dlib"))
    columns = {"source": _pick(clip, points), **{k: _pick(v, points) for k, v in renders.items()}}
    rows = []
    for t, src in enumerate(columns["source"]):
        found = comparer.face(src)
        box = found[0] if found is not None else None
        rows.append(np.hstack([_crop(frames[t], box, tile) for frames in columns.values()]))
    header = np.full((28, tile * len(columns), 3), 255, np.uint8)
    for i, text in enumerate(columns):
        cv2.putText(header, text[:24], (i * tile + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack([header, *rows]), cv2.COLOR_RGB2BGR))


def run_bench(spec: str, args: argparse.Namespace, out: Path) -> dict[str, dict[str, Any]]:
    """Render and score every setting for every pair of one benchmark folder (``DIR`` or ``DIR:INDEX``)."""
    from retarget.config import RenderConfig
    from retarget.eval.faces import FaceComparer
    from retarget.eval.identity import get_descriptor, target_faces
    from retarget.faces.backends import get_backend
    from retarget.progress import console
    from retarget.render.render import render

    folder, _, index = spec.partition(":")
    bench, system = Path(folder), int(index or 0)
    if not (bench / "results.json").is_file():
        raise SystemExit(f"{bench}: no results.json (give a benchmarks/faces.py --keep output folder)")
    pairs = json.loads((bench / "results.json").read_text())["pairs"]
    results: dict[str, dict[str, Any]] = {}
    for name, info in pairs.items():
        tag = name.replace(":", "-")
        clip, run = bench / "work" / tag / "clip.mp4", bench / "work" / "jobs" / tag / f"run_{system}_{args.seed}"
        if not clip.is_file() or not run.is_dir():
            raise SystemExit(f"{bench}: no kept clip or run for {name} (was it run with --keep?)")
        b_video = find_video(Path(info["b"]).stem.removeprefix("talk_"), Path(args.data))
        target = target_faces(str(b_video), FaceComparer(get_backend("dlib")), get_descriptor())
        renders, rows = {}, {}
        for setting in args.settings:
            video = out / f"{tag}_{setting.replace(',', '_').replace('=', '')}.mp4"
            options = parse_setting(setting)
            if options.pop("enhance", False):
                options["enhancer"] = str(make_enhancer(b_video, run, args, out))
            cfg = RenderConfig(
                input=str(clip), output=str(video), model=str(run), device="cpu", overwrite=True, **options
            )
            with console.capture():
                render(cfg)
            renders[setting] = str(video)
            rows[setting] = {**score(str(video), str(clip), target)}
            print(f"{name} {setting}: " + ", ".join(f"{k}={v}" for k, v in rows[setting].items()), flush=True)
        write_strip(str(clip), renders, out / f"{tag}_blend.png", args.points, args.tile)
        results[name] = rows
    return results


#: the faces.py columns this table shows
COLUMNS = pick("found", "nearer_b", "same_person_b", "distance_b", "mouth_r", "sharpness", "warp_ratio")


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benches", nargs="+", help="DIR[:INDEX]: a faces.py --keep output, the system's index (0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--settings",
        nargs="+",
        default=list(DEFAULT_SETTINGS),
        help="BLEND,COLOR[,erode=PX|dilate=PX][,enhance[=SIGMA]]",
    )
    ap.add_argument("--enhancer-time", type=float, default=600.0, help="seconds of train-enhancer per target")
    ap.add_argument("--enhancer-scale", type=int, default=4, help="train-enhancer --scale")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of train-enhancer")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the videos (default: %(default)s)")
    ap.add_argument("--points", type=int, default=3, help="time points (rows) of each strip")
    ap.add_argument("--tile", type=int, default=160, help="side of each strip image (px)")
    ap.add_argument("--out", default="faces_blend_out", help="renders, strips and results go here")
    args = ap.parse_args(argv)
    for s in args.settings:
        parse_setting(s)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment(1)
    results: dict[str, dict[str, Any]] = {}
    for bench in args.benches:
        results.update(run_bench(bench, args, out))
    rows = [([pair, setting], r) for pair, settings in results.items() for setting, r in settings.items()]
    lines = markdown_table(["pair", "setting"], rows, COLUMNS)
    lines += ["", env]
    print("\n".join(lines))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"environment": env, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
