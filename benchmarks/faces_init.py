"""Time to a face that looks like B, with and without ``retarget train --init-from RUN``.

    python benchmarks/faces_init.py --init-from RUN --pair d3:d18 --system cyclegan+ngf=32 --time-limit 1200
    python benchmarks/faces_init.py --init-from RUN --pair d18:d19 --swap ...   # RUN's B becomes the new A

``RUN`` is a finished face run (for example one kept by ``benchmarks/faces.py --keep``);
``--pair A:B`` is the new pair, sharing one person with it (a new A, or with ``--swap`` a
run trained the other way round). The pair is extracted and split as in
``benchmarks/faces.py`` (A's last ``--holdout`` is the held-out clip), then two runs of
the same system train side by side for ``--time-limit`` seconds, one torch thread each:
``scratch`` (random weights) and ``init`` (``--init-from RUN``, fresh optimiser and LR
schedule). Both keep a checkpoint every ``--checkpoint-every`` steps; afterwards every
checkpoint (and, for ``init``, RUN itself at 0 s) renders the clip and is scored with
``retarget eval --faces --target B``. Each checkpoint's time is its save time from the
start of training, so the rows are a time-to-quality curve.

The goal is the face recipe's identity target (docs/benchmarks.md, face pairs): output
faces found in >= ``--goal-found`` of the frames, nearer B than A in >= ``--goal-nearer``
of them and within dlib's same-person distance of B in >= ``--goal-same``. The report
gives, per run, the first checkpoint that meets it ("time to goal"). The table is
printed and written to ``OUT/results.md``, everything to ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import budget_config, environment, parse_system, run_workers  # noqa: E402
from faces import DEFAULT_DATA, markdown_table, pick, prepare_pair, score  # noqa: E402

#: Per row: JSON key, column title, digits (None: a share in %): the time, then faces.py's columns.
COLUMNS = (
    ("seconds", "time s", 0),
    ("step", "step", 0),
    *pick("found", "nearer_b", "same_person_b", "distance_b", "distance_a", "mouth_r", "sharpness"),
)


def _checkpoints(run_dir: Path, t0: float) -> list[tuple[int, float]]:
    """``(step, seconds after t0)`` of every complete checkpoint of ``run_dir``, oldest first."""
    root = run_dir / "checkpoints"
    found = []
    for d in sorted(root.glob("step_*")) if root.is_dir() else []:
        if d.is_dir() and d.name[5:].isdigit():
            found.append((int(d.name[5:]), max(0.0, d.stat().st_mtime - t0)))
    return found


def _target(b_video: str) -> Any:
    from retarget.eval.faces import FaceComparer
    from retarget.eval.identity import get_descriptor, target_faces
    from retarget.faces.backends import get_backend

    return target_faces(b_video, FaceComparer(get_backend("dlib")), get_descriptor())


def train_and_score(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one run with checkpoints kept, then render and score the clip at each of them."""
    import torch

    from retarget.config import RenderConfig
    from retarget.progress import console
    from retarget.render.render import render
    from retarget.train import train

    torch.set_num_threads(job["threads"])
    cfg = budget_config(
        job["spec"],
        job["preset"],
        job["size"],
        job["a_dir"],
        job["b_dir"],
        job["out"],
        0,
        job["budget"],
        job["threads"],
    )
    cfg = dataclasses.replace(
        cfg, checkpoint_every=job["every"], keep=10**6, init_from=job["init_from"], init_swap=job["swap"]
    )
    target, rows = _target(job["b_video"]), []
    points = []
    if job["init_from"]:  # the starting point itself, before any step on the new pair
        points.append((job["init_from"], 0, 0.0, None))
    t0 = time.time()
    with console.capture():
        train(cfg)
    points += [(job["out"], step, seconds, step) for step, seconds in _checkpoints(Path(job["out"]), t0)]
    for model, step, seconds, at_step in points:
        video = Path(job["renders"]) / f"{job['label']}_step{step:07d}.mp4"
        with console.capture():
            render(
                RenderConfig(
                    input=job["clip"], output=str(video), model=model, step=at_step, device="cpu", overwrite=True
                )
            )
        rows.append({"step": step, "seconds": seconds, **score(str(video), job["clip"], target)})
    return rows


def first_at_goal(rows: list[dict[str, Any]], found: float, nearer: float, same: float) -> Optional[dict[str, Any]]:
    """The earliest row whose identity shares meet the goal; None if none does."""
    for r in sorted(rows, key=lambda r: r["seconds"]):
        if r["found"] >= found and (r["nearer_b"] or 0) >= nearer and (r["same_person_b"] or 0) >= same:
            return r
    return None


def report(runs: dict[str, list[dict[str, Any]]], goal: tuple[float, float, float], budget: float) -> list[str]:
    """The Markdown table (a row per checkpoint) and one "time to goal" line per run."""
    lines = markdown_table(["run"], [([label], r) for label, rows in runs.items() for r in rows], COLUMNS)
    lines.append("")
    for label, rows in runs.items():
        hit = first_at_goal(rows, *goal)
        when = f"{hit['seconds']:.0f} s (step {hit['step']})" if hit else f"not within {budget:g} s"
        lines.append(f"time to goal, {label}: {when}")
    return lines


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        job = json.loads(Path(argv[1]).read_text())
        Path(job["result"]).write_text(json.dumps(train_and_score(job)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init-from", required=True, help="the finished run the init run starts from")
    ap.add_argument("--swap", action="store_true", help="start A->B from RUN's B->A side")
    ap.add_argument("--pair", required=True, help="the new pair, A:B video names")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the videos (default: %(default)s)")
    ap.add_argument("--system", default="cyclegan+ngf=32", help="MODEL[+field=value,...]; must match RUN's networks")
    ap.add_argument("--size", type=int, default=64, help="extract and training size (px); RUN's")
    ap.add_argument("--preset", default="default", choices=("tiny", "default", "official"))
    ap.add_argument("--time-limit", type=float, default=1200.0, help="wall-clock training seconds per run")
    ap.add_argument("--checkpoint-every", type=int, default=300, help="steps between scored checkpoints")
    ap.add_argument("--holdout", type=float, default=0.2, help="share of A's video (its end) kept out of training")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    ap.add_argument("--goal-found", type=float, default=0.9)
    ap.add_argument("--goal-nearer", type=float, default=0.9)
    ap.add_argument("--goal-same", type=float, default=0.8)
    ap.add_argument("--out", default="faces_init_out", help="renders and results go here")
    ap.add_argument("--keep", action="store_true", help="keep the datasets and runs (in OUT/work)")
    args = ap.parse_args(argv)
    parse_system(args.system, args.preset, args.size)  # fail early on a typo
    if not Path(args.init_from).exists():
        raise SystemExit(f"--init-from {args.init_from}: no such run")
    out = Path(args.out)
    work, renders = out / "work", out / "renders"
    for d in (work / "jobs", renders):
        d.mkdir(parents=True, exist_ok=True)
    import torch  # noqa: F401  (named in the machine line)

    env = environment(args.threads)
    print(env, flush=True)
    try:
        pair = prepare_pair(args.pair, Path(args.data), args.size, args.holdout, work)
        base = dict(
            spec=args.system, preset=args.preset, size=args.size, a_dir=pair.a_dir, b_dir=pair.b_dir,
            budget=args.time_limit, threads=args.threads, every=args.checkpoint_every, swap=False,
            clip=pair.clip, b_video=pair.b_video, renders=str(renders),
        )  # fmt: skip
        jobs = [
            {**base, "label": "scratch", "out": str(work / "run_scratch"), "init_from": None},
            {**base, "label": "init", "out": str(work / "run_init"), "init_from": args.init_from, "swap": args.swap},
        ]
        results = [json.loads(p.read_text()) for p in run_workers(__file__, jobs, work / "jobs")]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    runs = {
        "scratch": results[0],
        f"init from {Path(args.init_from).name}" + (" (swap)" if args.swap else ""): results[1],
    }
    goal = (args.goal_found, args.goal_nearer, args.goal_same)
    title = (
        f"--init-from on {args.pair} ({pair.info['a']} -> {pair.info['b']}), {args.system}, {args.size} px, "
        f"{args.time_limit:g} s per run, goal: found >= {goal[0]:.0%}, nearer B >= {goal[1]:.0%}, B < 0.6 >= {goal[2]:.0%}"
    )
    lines = [title, "", *report(runs, goal, args.time_limit), env]
    print("\n".join(lines))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    info = {**vars(args), "environment": env, "pair_info": pair.info}
    (out / "results.json").write_text(json.dumps({"info": info, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
