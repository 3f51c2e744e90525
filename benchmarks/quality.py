"""Ground-truth quality benchmark: CycleGAN vs Recycle-GAN at equal wall-clock budget.

    python benchmarks/quality.py                                  # bikes.mp4, painterly, 1 seed, 150 s
    python benchmarks/quality.py my_video.mp4 --style cartoon --seeds 0 1 2 --budget 300
    python benchmarks/quality.py --systems cyclegan recycle "recycle+p_residual=1" --json out.json

The instance is built from a real video (default ../shared/data/bikes.mp4) and a
deterministic stylisation (benchmarks/quality_styles.py), so the true translation of
every frame is known exactly:

* ``retarget extract --align none --size S`` of the whole video (centre crop, scene cuts
  split segments); domain A = the first ``--a-fraction`` of the frames, domain B = the
  stylisation of the other frames (unpaired: no B frame shows an A frame's content).
* test clip = up to ``--clip`` consecutive A frames of A's longest segment (inside one
  shot); their truth is their stylisation. The models see these frames in A during
  training (unsupervised, like a user translating their own footage), never their truth.
* every system trains for ``--budget`` seconds of wall clock (``train --time-limit``:
  same seed, same data, the LR decaying over the budget), its G_AB translates the clip
  crops (the Translator of ``retarget render``), and the output is scored by
  :func:`score` with ``retarget eval``'s library; ``--stabilize S ...`` also scores each
  clip after ``render --stabilize S`` (the same code path on the in-memory clip).

Systems are ``MODEL[+field=value,...]``: a model kind (``cyclegan`` or ``recycle``) and
overrides of ModelConfig, LossConfig or TrainConfig fields by name, e.g.
``recycle+recycle=2,recurrent=2`` or ``recycle+p_residual=1,lr=0.0004``.

Timing on a shared machine: by default (``--parallel``) all systems of one seed train
at the same time, each in its own process with one torch thread, so they see the same
load from anything else on the machine; equal budget then means equal share of the
CPU. ``--sequential`` trains them one after another with ``--threads`` threads (use it
on an otherwise idle machine). Steps reached and it/s are reported beside the scores.

Baselines beside the models: the input unchanged, and a global Lab mean/std colour
transfer fitted on the unpaired A and B training sets.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import budget_config, parse_system, run_workers, summarise  # noqa: E402,F401  (parse_system: tests)
from quality_styles import STYLES, stylise  # noqa: E402

from retarget.config import ExtractConfig  # noqa: E402
from retarget.render.stabilize import stabilize_frames  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "bikes.mp4"


# -- scoring: retarget eval's library -------------------------------------------------


def score(outputs: np.ndarray, truth: np.ndarray, sources: np.ndarray) -> dict[str, float]:
    """Quality of a translated clip against its exact truth, as ``retarget eval`` measures it.

    Args:
        outputs, truth, sources: ``T x H x W x 3`` uint8 RGB (the translation, the true
            translation, the frames that were translated), consecutive frames of one shot.

    Returns:
        ``psnr``: mean per-frame PSNR vs truth (dB, capped at 100 for identical frames);
        ``ssim``: mean SSIM on luma; ``flicker``: mean over consecutive pairs of
        |(out_t+1 - out_t) - (truth_t+1 - truth_t)| (0-255; 0 = exactly the truth's
        changes); ``warp``: mean warping error of the output along the source's motion
        (0-255). All from :func:`retarget.eval.score_frames` (docs/eval.md).
    """
    from retarget.eval.score import score_frames

    out = score_frames(list(outputs), list(sources), list(truth))
    t = out["truth"]
    return {
        "psnr": float(t["psnr"]),
        "ssim": float(t["ssim"]),
        "flicker": float(t["flicker"]),
        "warp": float(out["warping_error"]["output"]),
    }


# -- baselines --------------------------------------------------------------------------


def _lab(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f.astype(np.float32) / 255, cv2.COLOR_RGB2LAB) for f in frames])


def lab_transfer(a_train: np.ndarray, b_train: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Global colour transfer (Reinhard): per-channel Lab mean/std of A mapped onto B's, applied to ``clip``."""
    la, lb = _lab(a_train).reshape(-1, 3), _lab(b_train).reshape(-1, 3)
    ma, sa, mb, sb = la.mean(0), la.std(0) + 1e-6, lb.mean(0), lb.std(0)
    out = []
    for f in _lab(clip):
        rgb = cv2.cvtColor(((f - ma) / sa * sb + mb).astype(np.float32), cv2.COLOR_LAB2RGB)
        out.append(np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8))
    return np.stack(out)


# -- the instance -----------------------------------------------------------------------


@dataclasses.dataclass
class Instance:
    """Datasets on disk and the test clip in memory (all frames ``S x S x 3`` uint8 RGB)."""

    a_dir: str
    b_dir: str
    a_frames: np.ndarray  # domain A training frames (test clip included)
    b_frames: np.ndarray  # domain B training frames (stylised)
    clip: np.ndarray  # test clip sources, consecutive frames of one segment
    truth: np.ndarray  # their stylisation
    info: dict[str, Any]


def build_instance(video: str, style: str, size: int, work: Path, a_fraction: float, clip_len: int) -> Instance:
    """Extract ``video`` at ``size`` px, split it into A and stylised B, pick the test clip."""
    from retarget.dataset.extract import extract
    from retarget.dataset.manifest import read_dataset, write_manifest
    from retarget.progress import console

    with console.capture():  # keep the benchmark's own output readable
        extract(ExtractConfig(videos=(video,), output=str(work / "all"), size=size, overwrite=True, workers=2))
    ds = read_dataset(work / "all")
    n = len(ds.frames)
    k = round(n * a_fraction)
    if k < 3 or n - k < 3:
        raise SystemExit(f"{video}: {n} frames are too few to split into A and B (--a-fraction {a_fraction})")
    parts: dict[str, list[np.ndarray]] = {}
    for name, recs, styled in (("A", ds.frames[:k], False), ("B", ds.frames[k:], True)):
        root = work / name
        (root / "frames").mkdir(parents=True, exist_ok=True)
        imgs = []
        for rec in recs:
            img = _load(ds.root / rec.file)
            img = stylise(img, style) if styled else img
            cv2.imwrite(str(root / rec.file), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            imgs.append(img)
        write_manifest(dataclasses.replace(ds, root=root, frames=list(recs)), root)
        parts[name] = imgs
    a_segs = [s for s in read_dataset(work / "A").segments()]
    longest = max(a_segs, key=len)
    idx = longest[-clip_len:]
    clip = np.stack([parts["A"][i] for i in idx])
    truth = np.stack([stylise(f, style) for f in clip])
    info = {
        "video": str(video),
        "style": style,
        "size": size,
        "frames": n,
        "a_frames": k,
        "b_frames": n - k,
        "segments": len(ds.segments()),
        "clip_frames": len(idx),
        "clip_first_index": int(idx[0]),
    }
    return Instance(str(work / "A"), str(work / "B"), np.stack(parts["A"]), np.stack(parts["B"]), clip, truth, info)


def _load(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# -- systems and training -----------------------------------------------------------------


def train_and_translate(
    spec: str,
    preset: str,
    size: int,
    a_dir: str,
    b_dir: str,
    out: str,
    seed: int,
    budget: float,
    threads: int,
    clip: np.ndarray,
    steps: Optional[int] = None,
) -> dict[str, Any]:
    """Train one system for ``budget`` seconds (or ``steps`` steps) and translate ``clip`` with its G_AB
    in float32 (runs in a worker)."""
    import torch

    from retarget.progress import console
    from retarget.render.translate import Translator
    from retarget.train import train

    torch.set_num_threads(threads)
    cfg = budget_config(spec, preset, size, a_dir, b_dir, out, seed, budget, threads, steps)
    t0 = time.perf_counter()
    with console.capture():
        result = train(cfg)
    seconds = time.perf_counter() - t0
    g = result.networks["G_AB"].eval()
    tr = Translator(g, "cpu", amp="off")  # the models are compared, not render's precision
    outputs = np.stack([o for i in range(0, len(clip), 16) for o in tr(list(clip[i : i + 16]))])
    return {"outputs": outputs, "steps": result.steps, "seconds": seconds}


def run_parallel(jobs: list[dict[str, Any]], work: Path, script: str = __file__) -> list[dict[str, Any]]:
    """Run every job at the same time, each in its own Python process (``script --worker``)."""
    paths = run_workers(script, [{**job, "clip": str(work / "clip.npy")} for job in jobs], work, suffix=".npz")
    results = []
    for path in paths:
        with np.load(path) as z:
            results.append({"outputs": z["outputs"], "steps": int(z["steps"]), "seconds": float(z["seconds"])})
    return results


def worker(spec_file: str) -> None:
    """Entry of one ``--worker`` process: train, translate, write the result file."""
    job = json.loads(Path(spec_file).read_text())
    clip, result = np.load(job.pop("clip")), job.pop("result")
    r = train_and_translate(**job, clip=clip)
    np.savez(result, outputs=r["outputs"], steps=r["steps"], seconds=r["seconds"])


# -- report -----------------------------------------------------------------------------

KEYS = ("psnr", "flicker", "warp")


def print_table(summary: dict[str, dict[str, Any]], info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"{Path(info['video']).name}, style {info['style']}, {info['size']} px, "
        + (f"{info['steps']} steps" if info.get("steps") else f"budget {info['budget']} s")
        + f", seeds {info['seeds']}"
    )
    for col in ("system", "PSNR vs truth (dB)", "SSIM", "flicker", "warp err", "steps", "it/s"):
        t.add_column(col, justify="left" if col == "system" else "right")

    def pm(s: dict[str, Any], k: str, d: int) -> str:
        if k not in s:
            return "-"
        return f"{s[k]:.{d}f}" + (f" ± {s[k + '_sd']:.{d}f}" if s.get(k + "_sd") else "")

    for name, s in summary.items():
        t.add_row(
            name,
            pm(s, "psnr", 2),
            pm(s, "ssim", 3),
            pm(s, "flicker", 3),
            pm(s, "warp", 3),
            pm(s, "steps", 0),
            pm(s, "it_s", 2),
        )
    Console().print(t)
    print(f"truth's own warping error along the source motion: {info['warp_truth']:.3f}")
    print(
        f"flicker of a still output (the first true frame held): {info['flicker_still']:.3f}; "
        "'input unchanged' is the flicker of a steady video with the source's look"
    )


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO), help="source video (default: %(default)s)")
    ap.add_argument("--style", default="painterly", choices=sorted(STYLES), help="stylisation of domain B")
    ap.add_argument("--size", type=int, default=64, help="training size (px)")
    ap.add_argument("--preset", default="tiny", choices=("tiny", "default", "official"))
    ap.add_argument("--systems", nargs="+", default=["cyclegan", "recycle"], help="MODEL[+field=value,...]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", type=float, default=150.0, help="wall-clock training seconds per system")
    ap.add_argument("--steps", type=int, help="train every system this many steps instead (equal steps, not time)")
    ap.add_argument("--sequential", action="store_true", help="train systems one after another (idle machine)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    ap.add_argument("--a-fraction", type=float, default=0.5, help="share of the frames that form domain A")
    ap.add_argument("--clip", type=int, default=120, help="test clip length (frames)")
    ap.add_argument("--work", help="keep datasets, runs and translations here (default: a temporary folder)")
    ap.add_argument("--json", help="write the results to this JSON file")
    ap.add_argument(
        "--stabilize",
        type=float,
        nargs="*",
        default=[],
        help="also score each system's clip after `render --stabilize S` for these S",
    )
    args = ap.parse_args(argv)
    for spec in args.systems:
        parse_system(spec, args.preset, args.size)  # fail early on a typo

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="retarget-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        inst = build_instance(args.video, args.style, args.size, work, args.a_fraction, args.clip)
        info = {
            **inst.info,
            "budget": args.budget,
            "steps": args.steps,
            "seeds": args.seeds,
            "preset": args.preset,
            "mode": "sequential" if args.sequential else "parallel",
            "threads": args.threads,
        }
        base = {
            "input unchanged": inst.clip,
            "Lab colour transfer": lab_transfer(inst.a_frames, inst.b_frames, inst.clip),
        }
        rows = {name: [score(out, inst.truth, inst.clip)] for name, out in base.items()}
        # the truth's own warping error: the level a perfect translation reaches (once)
        info["warp_truth"] = score(inst.truth, inst.truth, inst.clip)["warp"]
        # the flicker of an output that never changes, the other reference of the flicker column
        info["flicker_still"] = score(inst.truth[:1].repeat(len(inst.truth), 0), inst.truth, inst.clip)["flicker"]
        for seed in args.seeds:
            jobs = [
                dict(
                    spec=spec,
                    preset=args.preset,
                    size=args.size,
                    a_dir=inst.a_dir,
                    b_dir=inst.b_dir,
                    out=str(work / f"run_{i}_{seed}"),
                    seed=seed,
                    budget=args.budget,
                    threads=args.threads,
                    steps=args.steps,
                )
                for i, spec in enumerate(args.systems)
            ]
            np.save(work / "clip.npy", inst.clip)
            if args.sequential:
                results = [train_and_translate(**j, clip=inst.clip) for j in jobs]
            else:
                results = run_parallel(jobs, work)
            if args.work:  # keep the translations for a look: out_<system index>_<seed>.npy, T x S x S x 3
                np.save(work / "truth.npy", inst.truth)
                for i, r in enumerate(results):
                    np.save(work / f"out_{i}_{seed}.npy", r["outputs"])
            for spec, r in zip(args.systems, results):
                s = score(r["outputs"], inst.truth, inst.clip)
                s.update(steps=float(r["steps"]), it_s=r["steps"] / r["seconds"], seed=float(seed))
                rows.setdefault(spec, []).append(s)
                print(f"seed {seed} {spec}: " + " ".join(f"{k}={v:.3f}" for k, v in s.items()), flush=True)
                for strength in args.stabilize:
                    st = score(stabilize_frames(list(r["outputs"]), list(inst.clip), strength), inst.truth, inst.clip)
                    rows.setdefault(f"{spec} +stabilize {strength:g}", []).append({**st, "seed": float(seed)})
        summary = summarise(rows)
        print_table(summary, info)
        if args.json:
            Path(args.json).write_text(json.dumps({"info": info, "systems": summary}, indent=2) + "\n")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
