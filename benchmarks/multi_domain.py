"""Multi-domain benchmark: one model over a source and 3 looks against 3 pairwise runs, at equal total time.

    python benchmarks/multi_domain.py                               # bikes.mp4, 64 px, tiny preset, 1 seed, 600 s
    python benchmarks/multi_domain.py my_video.mp4 --budget 1800 --preset default --size 128 --seeds 0 1 2
    python benchmarks/multi_domain.py --systems pairs:recycle multi:recycle "multi:recycle+condition=concat"

The instance is the ground truth of benchmarks/quality.py with several looks: a real
video (default ../shared/data/bikes.mp4) is extracted once (``--align none``), its first
``--source-fraction`` of the frames form the source domain, and the rest is cut into
three consecutive parts, each stylised with one look of benchmarks/quality_styles.py
(painterly, cartoon, duotone): four domains, unpaired (no style domain shows a source
frame's content). The test clip is the last ``--clip`` frames of the source's longest
segment; its truth in each look is its stylisation, so every translation is scored
exactly (PSNR against the truth, flicker against the truth's changes, warping error
along the source's motion: :func:`quality.score`, ``retarget eval``'s library).

Systems are ``KIND:MODEL[+field=value,...]`` (the MODEL part as in quality.py):

* ``pairs:SPEC``: three pairwise runs, source <-> each look, trained one after another
  for ``--budget / 3`` seconds each, in one process; each look's clip comes from its
  run's ``G_AB``;
* ``multi:SPEC``: one multi-domain run over the four datasets for ``--budget`` seconds
  (``retarget train SRC LOOK1 LOOK2 LOOK3``); the clip goes to each look with
  ``G(x, k)``. ``multi:cyclegan`` is the multi-domain model without temporal terms
  (StarGAN's terms on this code base's networks).

So every system spends the same total wall clock. By default all systems of a seed
train at the same time, one process and one torch thread each (equal share of a
shared machine; ``--sequential`` runs them one after another with ``--threads``). The
table has, per system and look, PSNR, flicker and warping error, their mean over the
looks, the steps reached and the total parameters of the models (the pairwise column
counts all three runs). The acceptance of issue 20: the multi-domain model within
0.5 dB of the pairwise mean PSNR at about a third of the total size or less, and
steadier (lower flicker and warping error) than ``multi:cyclegan``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from common import budget_config, environment, parse_system, run_workers, summarise  # sets up sys.path first

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from quality import DEFAULT_VIDEO, score  # noqa: E402
from quality_styles import STYLES, stylise  # noqa: E402

from retarget.config import ExtractConfig, replace  # noqa: E402

LOOKS = tuple(STYLES)  # painterly, cartoon, duotone
KINDS = ("pairs", "multi")


@dataclasses.dataclass
class Instance:
    """The four datasets on disk (source first) and the test clip with its truth in every look."""

    dirs: list[str]  # source, then one dataset per look
    names: list[str]  # "source", then the looks
    clip: np.ndarray  # T x S x S x 3 uint8: consecutive source frames of one segment
    truths: np.ndarray  # looks x T x S x S x 3: the clip in each look
    info: dict[str, Any]


def build_instance(video: str, size: int, work: Path, source_fraction: float, clip_len: int) -> Instance:
    """Extract ``video`` at ``size`` px; split it into the source and three stylised looks; pick the clip."""
    from retarget.dataset.extract import extract
    from retarget.dataset.manifest import read_dataset, write_manifest
    from retarget.progress import console

    with console.capture():
        extract(ExtractConfig(videos=(video,), output=str(work / "all"), size=size, overwrite=True, workers=2))
    ds = read_dataset(work / "all")
    n = len(ds.frames)
    k = round(n * source_fraction)
    cuts = [0, k, *(k + round((n - k) * i / len(LOOKS)) for i in range(1, len(LOOKS) + 1))]
    if min(b - a for a, b in zip(cuts, cuts[1:])) < 3:
        raise SystemExit(f"{video}: {n} frames are too few for a source and {len(LOOKS)} looks")
    names = ["source", *LOOKS]
    frames: dict[str, list[np.ndarray]] = {}
    for i, name in enumerate(names):
        recs = ds.frames[cuts[i] : cuts[i + 1]]
        (work / name / "frames").mkdir(parents=True, exist_ok=True)
        frames[name] = []
        for rec in recs:
            img = cv2.cvtColor(cv2.imread(str(ds.root / rec.file), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            img = img if name == "source" else stylise(img, name)
            cv2.imwrite(str(work / name / rec.file), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            frames[name].append(img)
        write_manifest(dataclasses.replace(ds, root=work / name, frames=list(recs)), work / name)
    longest = max(read_dataset(work / "source").segments(), key=len)
    idx = longest[-clip_len:]
    clip = np.stack([frames["source"][i] for i in idx])
    truths = np.stack([np.stack([stylise(f, look) for f in clip]) for look in LOOKS])
    info = {
        "video": str(video),
        "size": size,
        "frames": n,
        "domain_frames": {name: cuts[i + 1] - cuts[i] for i, name in enumerate(names)},
        "clip_frames": len(idx),
    }
    return Instance([str(work / name) for name in names], names, clip, truths, info)


def parse(system: str, preset: str, size: int) -> tuple[str, str]:
    """``KIND:SPEC`` -> (kind, spec); SystemExit on an unknown kind or a typo in the spec."""
    kind, _, spec = system.partition(":")
    if kind not in KINDS or not spec:
        raise SystemExit(f"system {system!r}: write KIND:MODEL[+field=value,...] with KIND one of {', '.join(KINDS)}")
    parse_system(spec, preset, size)
    return kind, spec


def _translate(net: Any, clip: np.ndarray) -> np.ndarray:
    from retarget.render.translate import Translator

    tr = Translator(net.eval(), "cpu")
    return np.stack([o for i in range(0, len(clip), 16) for o in tr(list(clip[i : i + 16]))])


def _params(nets: dict[str, Any]) -> int:
    return sum(p.numel() for net in nets.values() for p in net.parameters())


def train_and_translate(
    kind: str,
    spec: str,
    preset: str,
    size: int,
    dirs: list[str],
    names: list[str],
    out: str,
    seed: int,
    budget: float,
    threads: int,
    clip: np.ndarray,
) -> dict[str, Any]:
    """Train one system (three pairs, or one multi-domain run) and translate ``clip`` to every look."""
    import torch

    from retarget.nn.conditional import FixedTarget
    from retarget.progress import console
    from retarget.train import train

    torch.set_num_threads(threads)
    outputs, steps, params = [], [], 0
    t0 = time.perf_counter()
    if kind == "pairs":
        for k, look in enumerate(dirs[1:]):
            cfg = budget_config(spec, preset, size, dirs[0], look, f"{out}_{k}", seed, budget / len(dirs[1:]), threads)
            with console.capture():
                result = train(cfg)
            outputs.append(_translate(result.networks["G_AB"], clip))
            steps.append(result.steps)
            params += _params(result.networks)
    else:
        cfg = budget_config(spec, preset, size, dirs[0], dirs[1], out, seed, budget, threads)
        cfg = replace(cfg, more=tuple(dirs[2:]), names=tuple(names))
        with console.capture():
            result = train(cfg)
        outputs = [_translate(FixedTarget(result.networks["G"], k), clip) for k in range(1, len(dirs))]
        steps = [result.steps]
        params = _params(result.networks)
    return {"outputs": np.stack(outputs), "steps": sum(steps), "seconds": time.perf_counter() - t0, "params": params}


def worker(spec_file: str) -> None:
    """Entry of one ``--worker`` process: train, translate, write the result file."""
    job = json.loads(Path(spec_file).read_text())
    clip, result = np.load(job.pop("clip")), job.pop("result")
    r = train_and_translate(**job, clip=clip)
    np.savez(result, **r)


def print_table(summary: dict[str, dict[str, Any]], info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"{Path(info['video']).name}, {info['size']} px, {info['preset']}, total budget {info['budget']} s "
        f"per system, seeds {info['seeds']}"
    )
    for col in ("system", "look", "PSNR (dB)", "flicker", "warp err", "steps", "parameters"):
        t.add_column(col, justify="left" if col in ("system", "look") else "right", no_wrap=col == "system")

    def pm(s: dict[str, Any], k: str, d: int) -> str:
        v = s.get(k)
        return "-" if v is None else f"{v:.{d}f}" + (f" ± {s[k + '_sd']:.{d}f}" if s.get(k + "_sd") else "")

    for name, s in summary.items():
        for look in (*LOOKS, "mean"):
            t.add_row(
                name if look == LOOKS[0] else "",
                look,
                pm(s, f"{look}/psnr", 2),
                pm(s, f"{look}/flicker", 3),
                pm(s, f"{look}/warp", 3),
                pm(s, "steps", 0) if look == "mean" else "",
                f"{s['params'] / 1e6:.2f} M" if look == "mean" else "",
            )
    Console().print(t)


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO), help="source video (default: %(default)s)")
    ap.add_argument("--size", type=int, default=64, help="training size (px)")
    ap.add_argument("--preset", default="tiny", choices=("tiny", "default", "official"))
    ap.add_argument(
        "--systems",
        nargs="+",
        default=["pairs:recycle", "multi:recycle", "multi:cyclegan"],
        help="KIND:MODEL[+k=v,...]",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", type=float, default=600.0, help="total wall-clock training seconds per system")
    ap.add_argument("--sequential", action="store_true", help="train systems one after another (idle machine)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    ap.add_argument("--source-fraction", type=float, default=0.4, help="share of the frames in the source domain")
    ap.add_argument("--clip", type=int, default=120, help="test clip length (frames)")
    ap.add_argument("--work", help="keep datasets, runs and translations here (default: a temporary folder)")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)
    systems = [parse(s, args.preset, args.size) for s in args.systems]  # fail early on a typo
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="retarget-multi-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        inst = build_instance(args.video, args.size, work, args.source_fraction, args.clip)
        info = {**inst.info, "budget": args.budget, "seeds": args.seeds, "preset": args.preset}
        info["environment"] = environment(args.threads)
        np.save(work / "clip.npy", inst.clip)
        rows: dict[str, list[dict[str, Any]]] = {}
        for seed in args.seeds:
            shared = dict(preset=args.preset, size=args.size, dirs=inst.dirs, names=inst.names, seed=seed)
            shared.update(budget=args.budget, threads=args.threads)
            jobs = [
                dict(kind=kind, spec=spec, out=str(work / f"run_{i}_{seed}"), **shared)
                for i, (kind, spec) in enumerate(systems)
            ]
            if args.sequential:
                results = [train_and_translate(**j, clip=inst.clip) for j in jobs]
            else:
                paths = run_workers(__file__, [{**j, "clip": str(work / "clip.npy")} for j in jobs], work, ".npz")
                results = [dict(np.load(p)) for p in paths]
            for system, r in zip(args.systems, results):
                row: dict[str, Any] = {"steps": float(r["steps"]), "params": float(r["params"]), "seed": float(seed)}
                for look, outputs, truth in zip(LOOKS, r["outputs"], inst.truths):
                    row.update({f"{look}/{k}": v for k, v in score(outputs, truth, inst.clip).items()})
                for k in ("psnr", "flicker", "warp"):
                    row[f"mean/{k}"] = float(np.mean([row[f"{look}/{k}"] for look in LOOKS]))
                rows.setdefault(system, []).append(row)
                print(f"seed {seed} {system}: " + " ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
        summary = summarise(rows)
        print_table(summary, info)
        print(info["environment"])
        if args.json:
            Path(args.json).write_text(json.dumps({"info": info, "systems": summary}, indent=2) + "\n")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
