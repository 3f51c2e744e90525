"""Whole-frame ground-truth benchmark: centre squares against whole frames, at model scale and at the source's size.

    python benchmarks/quality_frames.py                                   # bikes.mp4 (2.35:1), painterly, 300 s
    python benchmarks/quality_frames.py ../shared/data/carphone_pristine.mp4 --style cartoon --seeds 0 1

The truth is the stylisation (benchmarks/quality_styles.py) of every **whole** frame at
the source's resolution. Domain A is the first ``--a-fraction`` of the video, domain B
the stylisation of the rest (unpaired), both written losslessly and extracted twice with
``retarget extract``: ``--frame square`` (the centre square, as every run before whole
frames) and ``--frame full`` (the whole frame, aspect kept). The same system trains on
each at the same time for the same wall-clock budget (one process and one torch thread
each), then the test clip (the last ``--clip`` frames of A's longest shot) is rendered
the way ``retarget render`` renders it:

* ``square``: the centre square through the generator, upscaled into the frame; the
  sides keep the input (what a run of square frames gives a landscape video);
* ``full``: the whole frame at the training scale through the generator (reflect-padded
  to multiples of 4), then back to the source's size with each ``--upscale``
  (``bilinear``, ``detail``).

Scores (``retarget eval``'s library: PSNR, SSIM, flicker against the truth, warping error
along the source's motion; docs/eval.md) over the whole frame at model scale (the
frame's short side = the training scale; the square system's output is its source-size
picture scaled down), over the whole frame at the source's size, and inside the centre
square at model scale (where both systems translate). Baseline: the input unchanged.

Each mode trains with its own defaults, as ``retarget train`` would: a system that leaves
``identity`` unset gets 0.5 x cycle on the squares and 1.5 x cycle on the whole frames
(docs/training.md, "Whole frames: a stronger identity default"); ``recycle+identity=W``
gives both modes W.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import budget_config, parse_system, summarise  # noqa: E402
from quality import run_parallel, score  # noqa: E402
from quality_styles import STYLES, stylise  # noqa: E402

from retarget.config import ExtractConfig  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "bikes.mp4"
MODES = ("square", "full")


def decode(video: str) -> tuple[list[np.ndarray], float]:
    """Every frame of ``video`` (``H x W x 3`` uint8 RGB) and its frame rate."""
    with av.open(video) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate or 25)
        return [f.to_ndarray(format="rgb24") for f in c.decode(stream)], fps


def write_lossless(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """``frames`` into an FFV1 .mkv (lossless, any size), so extract sees exactly these pixels."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        for f in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


@dataclasses.dataclass
class Instance:
    """The datasets of both modes and the test clip at the source's size."""

    dirs: dict[str, tuple[str, str]]  # mode -> (A dataset, B dataset)
    clip: np.ndarray  # T x H x W x 3 source frames
    truth: np.ndarray  # their stylisation at the source's size
    info: dict[str, Any]


def build_instance(
    video: str, style: str, size: int, work: Path, a_fraction: float, clip_len: int, modes: tuple[str, ...] = MODES
) -> Instance:
    """Domains A (first ``a_fraction`` of ``video``) and B (the rest, stylised) extracted at ``size`` in each of
    ``modes``, and the test clip with its truth at the source's size."""
    from retarget.dataset.extract import extract
    from retarget.dataset.manifest import read_dataset
    from retarget.progress import console

    frames, fps = decode(video)
    k = round(len(frames) * a_fraction)
    if k < 3 or len(frames) - k < 3:
        raise SystemExit(f"{video}: {len(frames)} frames are too few to split (--a-fraction {a_fraction})")
    write_lossless(work / "a.mkv", frames[:k], fps)
    write_lossless(work / "b.mkv", [stylise(f, style) for f in frames[k:]], fps)
    dirs = {}
    for mode in modes:
        for name in ("a", "b"):
            out = work / f"{name}_{mode}"
            with console.capture():
                extract(ExtractConfig(videos=(str(work / f"{name}.mkv"),), output=str(out), size=size, frame=mode))
        dirs[mode] = (str(work / f"a_{mode}"), str(work / f"b_{mode}"))
    ds = read_dataset(dirs[modes[-1]][0])
    longest = max(ds.segments(), key=len)
    idx = [ds.frames[i].index for i in longest[-clip_len:]]
    clip = np.stack([frames[i] for i in idx])
    truth = np.stack([stylise(f, style) for f in clip])
    h, w = clip.shape[1:3]
    info = dict(video=str(video), style=style, size=size, frames=len(frames), a_frames=k, source=f"{w}x{h}")
    info.update(clip_frames=len(idx), clip_first_index=int(idx[0]))
    return Instance(dirs, clip, truth, info)


def train_only(spec: str, preset: str, size: int, a_dir: str, b_dir: str, out: str, seed: int, budget: float,
               threads: int) -> dict[str, Any]:  # fmt: skip
    """Train one system for ``budget`` seconds (runs in a worker process); returns steps and seconds."""
    import time

    import torch

    from retarget.progress import console
    from retarget.train import train

    torch.set_num_threads(threads)
    cfg = budget_config(spec, preset, size, a_dir, b_dir, out, seed, budget, threads)
    t0 = time.perf_counter()
    with console.capture():
        result = train(cfg)
    return {"outputs": np.zeros(0), "steps": result.steps, "seconds": time.perf_counter() - t0}


def render_clip(run_dir: str, clip: np.ndarray, mode: str) -> dict[str, np.ndarray]:
    """The clip rendered as ``retarget render`` does: ``{"source/<upscale>": T x H x W x 3, "model": ...}``."""
    from retarget.geometry import full_cut, place_back, square_cut
    from retarget.render.translate import Translator
    from retarget.render.translate import FitTranslate
    from retarget.render.upscale import place_back_detail
    from retarget.run import load_run

    run = load_run(run_dir, "cpu", names=("G_AB",))
    info = run.data_of("A")
    h, w = clip.shape[1:3]
    translate = FitTranslate(Translator(run.networks["G_AB"], "cpu", amp="off"), batch=8)  # models compared, in fp32
    if mode == "square":
        cut = square_cut(w, h, info.size)
        res = translate([cut.apply(f) for f in clip])
        return {"source/bilinear": np.stack([place_back(f, r, cut.matrix) for f, r in zip(clip, res)])}
    cut = full_cut(w, h, info.scale)
    inputs = [cut.apply(f) for f in clip]
    res = translate(inputs)
    return {
        "model": np.stack(res),
        "source/bilinear": np.stack([place_back(f, r, cut.matrix) for f, r in zip(clip, res)]),
        "source/detail": np.stack([place_back_detail(f, r, i, cut.matrix) for f, r, i in zip(clip, res, inputs)]),
    }


def _resize(frames: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.resize(f, wh, interpolation=cv2.INTER_AREA) for f in frames])


def _centre(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return frames[:, y : y + side, x : x + side]


def score_all(outputs: dict[str, np.ndarray], inst: Instance, model_wh: tuple[int, int]) -> dict[str, dict]:
    """Every output scored at model scale (whole and centre square) and at the source's size."""
    src_m, truth_m = _resize(inst.clip, model_wh), _resize(inst.truth, model_wh)
    rows: dict[str, dict] = {}
    for name, out in outputs.items():
        if name.startswith("source/"):
            rows[f"{name} @source"] = score(out, inst.truth, inst.clip)
    model = outputs.get("model")
    if model is None:  # the square system: its source-size picture, scaled down like the truth
        model = _resize(outputs["source/bilinear"], model_wh)
    rows["model @model"] = score(model, truth_m, src_m)
    rows["model @centre"] = score(_centre(model), _centre(truth_m), _centre(src_m))
    return rows


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        job = json.loads(Path(argv[1]).read_text())
        result = job.pop("result")
        job.pop("clip", None)
        r = train_only(**job)
        np.savez(result, outputs=r["outputs"], steps=r["steps"], seconds=r["seconds"])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    ap.add_argument("--style", default="painterly", choices=sorted(STYLES))
    ap.add_argument("--size", type=int, default=64, help="training size (px)")
    ap.add_argument("--preset", default="tiny", choices=("tiny", "default", "official"))
    ap.add_argument("--system", default="recycle", help="MODEL[+field=value,...] (see benchmarks/quality.py)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", type=float, default=300.0, help="wall-clock training seconds per mode")
    ap.add_argument("--a-fraction", type=float, default=0.5)
    ap.add_argument("--clip", type=int, default=60, help="test clip length (frames)")
    ap.add_argument("--work", help="keep datasets, runs and outputs here (default: a temporary folder)")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)
    parse_system(args.system, args.preset, args.size)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="retarget-frames-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        inst = build_instance(args.video, args.style, args.size, work, args.a_fraction, args.clip)
        from retarget.geometry import full_cut

        load = round(args.size * 1.12)
        model_wh = full_cut(inst.clip.shape[2], inst.clip.shape[1], load).size
        rows: dict[str, list[dict]] = {}
        for name, r in score_all({"source/input": inst.clip, "model": _resize(inst.clip, model_wh)}, inst,
                                 model_wh).items():  # fmt: skip
            rows[f"input unchanged: {name}"] = [r]
        for seed in args.seeds:
            jobs = [
                dict(
                    spec=args.system,
                    preset=args.preset,
                    size=args.size,
                    a_dir=inst.dirs[m][0],
                    b_dir=inst.dirs[m][1],
                    out=str(work / f"run_{m}_{seed}"),
                    seed=seed,
                    budget=args.budget,
                    threads=1,
                )  # fmt: skip
                for m in MODES
            ]
            results = run_parallel(jobs, work, script=__file__)
            for mode, job, r in zip(MODES, jobs, results):
                outs = render_clip(job["out"], inst.clip, mode)
                if args.work:
                    np.savez_compressed(
                        work / f"out_{mode}_{seed}.npz", **{k.replace("/", "_"): v for k, v in outs.items()}
                    )
                for name, s in score_all(outs, inst, model_wh).items():
                    s.update(steps=float(r["steps"]), seed=float(seed))
                    rows.setdefault(f"{mode}: {name}", []).append(s)
                    print(f"seed {seed} {mode} {name}: " + " ".join(f"{k}={v:.3f}" for k, v in s.items()), flush=True)
        summary = summarise(rows)
        info = {**inst.info, "budget": args.budget, "seeds": args.seeds, "system": args.system, "preset": args.preset,
                "model_scale": list(model_wh)}  # fmt: skip
        print_table(summary, info)
        if args.json:
            Path(args.json).write_text(json.dumps({"info": info, "rows": summary}, indent=2) + "\n")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def print_table(summary: dict[str, dict[str, Any]], info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{Path(info['video']).name} ({info['source']}), {info['style']}, {info['size']} px, "
              f"{info['system']}, budget {info['budget']} s, seeds {info['seeds']}")  # fmt: skip
    for col in ("system: output @ where scored", "PSNR (dB)", "SSIM", "flicker", "warp err", "steps"):
        t.add_column(col, justify="left" if col.startswith("system") else "right")

    def pm(s: dict[str, Any], k: str, d: int) -> str:
        if k not in s:
            return "-"
        return f"{s[k]:.{d}f}" + (f" ± {s[k + '_sd']:.{d}f}" if s.get(k + "_sd") else "")

    for name, s in summary.items():
        t.add_row(name, pm(s, "psnr", 2), pm(s, "ssim", 3), pm(s, "flicker", 3), pm(s, "warp", 3), pm(s, "steps", 0))
    Console().print(t)


if __name__ == "__main__":
    main()
