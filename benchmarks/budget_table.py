"""Quality per CPU budget: which configuration gives the best look in 5, 20 or 60 minutes on 2 cores.

    python benchmarks/budget_table.py --work /tmp/budget                  # the table of docs/benchmarks.md
    python benchmarks/budget_table.py --work /tmp/budget --budgets 300 --configs tiny/64/transpose tiny/64/resize

The whole-frame ground-truth task of ``benchmarks/quality_frames.py`` (domain A = the first
half of a video, domain B = the second half under a known look, the truth = the look on
every frame at the source's size), extracted once at ``--extract-size`` (a user's
``retarget extract VIDEO --size 128``), then trained at each configuration
(``PRESET/SIZE/UPSAMPLE``) for each budget and scored as ``retarget render`` renders it.

**Budgets are 2-core budgets, run as steps.** First each configuration trains alone for
``--probe`` seconds on the first instance, at one torch thread and at ``--threads`` (2), and
keeps the faster (what ``retarget train`` does without ``--threads``); its steps per second
turn a budget into the steps that budget reaches on this machine. Then every
(instance, configuration, budget, seed) trains exactly that many steps (the LR decays over
them, as ``--time-limit`` decays it over the time), ``--parallel`` jobs at a time with one
thread each. So the results do not depend on what else the machine runs meanwhile, and a
budget means what ``retarget train --time-limit`` would reach with the whole machine.

Scores (``retarget eval``'s library) at the source's size: PSNR and SSIM against the truth,
flicker against the truth, warping error along the source's motion; and ``grid``: the
peaks of period-2 and period-4 patterns in the spectrum of the generator's output at model
scale (what transposed convolutions leave; about 1 without a grid, :func:`grid_energy`). Each job's result is a JSON file in
``WORK/results``: a rerun skips what is done, so budgets and configurations can be added.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import budget_config, environment  # noqa: E402
from quality_frames import Instance, build_instance, render_clip, score_all  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIPS = {"bikes": DATA / "bikes.mp4", "carphone": DATA / "carphone_pristine.mp4"}
INSTANCES = ("bikes:painterly", "carphone:cartoon", "bikes:duotone")
CONFIGS = ("tiny/64/transpose", "tiny/64/resize", "tiny/96/transpose", "default/64/transpose")


def grid_energy(frames: np.ndarray) -> float:
    """How strongly ``frames`` (``T x H x W x 3`` uint8) hold a fixed pattern of period 2 or 4 (a checkerboard).

    A pattern repeating every 2 or 4 pixels puts its energy at the frequencies (a H/4, b W/4),
    a, b in 0..3: peaks of the luma's spectrum there, where a natural picture's spectrum is
    smooth. Returns the mean over those 15 frequencies (DC left out) of the spectrum's
    magnitude divided by the median of its 5 x 5 neighbourhood, over the frames: about 1
    for a picture without a grid (the benchmark's truths: 1.0-1.1), more with one.
    """
    ratios = []
    for f in frames:
        g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32)
        h, w = (g.shape[0] // 4) * 4, (g.shape[1] // 4) * 4
        spectrum = np.abs(np.fft.fft2(g[:h, :w] - g[:h, :w].mean()))
        for a, b in itertools.product(range(4), range(4)):
            if a == b == 0:
                continue
            y, x = a * h // 4, b * w // 4
            near = spectrum[np.ix_([(y + d) % h for d in range(-2, 3)], [(x + d) % w for d in range(-2, 3)])]
            near = np.delete(near.ravel(), 12)  # the peak itself left out
            ratios.append(spectrum[y, x] / (np.median(near) + 1e-6))
    return float(np.mean(ratios))


def parse_config(text: str) -> tuple[str, int, str]:
    """``PRESET/SIZE/UPSAMPLE`` (``tiny/64/resize``) -> its parts."""
    preset, size, upsample = text.split("/")
    return preset, int(size), upsample


def spec_of(config: str) -> str:
    preset, size, upsample = parse_config(config)
    return f"recycle+preset={preset},size={size},upsample={upsample}"


# -- phase 1: the speed of each configuration on the whole machine ---------------------


def probe_speed(config: str, a_dir: str, b_dir: str, out: Path, seconds: float, threads: int) -> float:
    """Steps per second of ``config`` trained alone for ``seconds`` at ``threads`` threads (runs in a worker)."""
    import torch

    from retarget.progress import console
    from retarget.train import train

    torch.set_num_threads(threads)
    preset, size, _ = parse_config(config)
    cfg = budget_config(spec_of(config), preset, size, a_dir, b_dir, str(out), 0, seconds, threads)
    with console.capture():
        result = train(cfg)
    return result.steps / seconds  # the run stops at the first step past the budget: within one step of it


# -- phase 2: one job = one configuration, budget, instance and seed --------------------


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train ``job['steps']`` steps at one thread, render the test clip, score it; returns the result row."""
    import torch

    from retarget.progress import console
    from retarget.train import train

    torch.set_num_threads(1)
    preset, size, _ = parse_config(job["config"])
    cfg = budget_config(
        spec_of(job["config"]), preset, size, job["a_dir"], job["b_dir"], job["run"], job["seed"], 0, 1, job["steps"]
    )
    t0 = time.perf_counter()
    with console.capture():
        result = train(cfg)
    seconds = time.perf_counter() - t0
    if result.interrupted or result.steps != job["steps"]:  # a killed job is no result
        raise SystemExit(f"{job['run']}: stopped at step {result.steps} of {job['steps']}")
    row = {**{k: v for k, v in job.items() if k not in ("a_dir", "b_dir")}, "seconds_1_thread": seconds}
    return {**row, **score_run(job["run"], _load_instance(Path(job["instance"])), Path(job["result"]))}


def score_run(run: str, inst: Instance, result: Path) -> dict[str, Any]:
    """The test clip through ``run`` as ``retarget render`` renders it by default, scored; its middle frame saved.

    ``source``: the default render (for a run with transposed convolutions, its grid
    filtered: :mod:`retarget.render.degrid`); ``raw``: the generator's output as it is
    (the same for other runs). ``grid`` (:func:`grid_energy`) is of the default render at model scale.
    """
    from retarget.geometry import full_cut, place_back
    from retarget.render.degrid import degrid, wants_degrid
    from retarget.run import open_run

    outs = render_clip(run, inst.clip, "full")
    raw = outs["model"]
    opened = open_run(run)
    model = raw
    if wants_degrid(None, opened.model_cfg.upsample, "none", "full"):
        model = np.stack([degrid(f) for f in raw])
    h, w = inst.clip.shape[1:3]
    cut = full_cut(w, h, opened.data_of("A").scale)
    source = np.stack([place_back(f, r, cut.matrix) for f, r in zip(inst.clip, model)])
    wh = raw.shape[2], raw.shape[1]
    scores = score_all({"source/bilinear": source, "model": model}, inst, wh)
    plain = score_all({"source/bilinear": outs["source/bilinear"], "model": raw}, inst, wh)
    truth_m = np.stack([cv2.resize(f, wh, interpolation=cv2.INTER_AREA) for f in inst.truth])
    mid = len(inst.clip) // 2
    cv2.imwrite(str(result.with_suffix(".png")), source[mid][:, :, ::-1])
    return {
        "source": scores["source/bilinear @source"],
        "model": scores["model @model"],
        "raw": plain["source/bilinear @source"],
        "grid": grid_energy(model),
        "grid_raw": grid_energy(raw),
        "grid_truth": grid_energy(truth_m),
    }


def _load_instance(folder: Path) -> Instance:
    z = np.load(folder / "clip.npz")
    info = json.loads((folder / "instance.json").read_text())
    return Instance(info.pop("dirs"), z["clip"], z["truth"], info)


def prepare(name: str, work: Path, extract_size: int, clip: int) -> Path:
    """The instance ``CLIP:LOOK`` extracted into ``work/NAME`` once (reused by later calls)."""
    folder = work / name.replace(":", "_")
    if (folder / "instance.json").exists():
        return folder
    video, look = name.split(":")
    folder.mkdir(parents=True, exist_ok=True)
    inst = build_instance(str(CLIPS[video]), look, extract_size, folder, 0.5, clip, modes=("full",))
    np.savez(folder / "clip.npz", clip=inst.clip, truth=inst.truth)
    baseline = score_all({"source/bilinear": inst.clip}, inst, (inst.clip.shape[2], inst.clip.shape[1]))
    info = {**inst.info, "dirs": inst.dirs, "input": baseline["source/bilinear @source"]}
    (folder / "instance.json").write_text(json.dumps(info, indent=2))
    return folder


def run_pool(jobs: list[dict[str, Any]], parallel: int) -> None:
    """Run ``python budget_table.py --worker JOB`` for every job, ``parallel`` at a time."""
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            spec = Path(job["result"]).with_suffix(".job.json")
            spec.write_text(json.dumps(job))
            running.append((subprocess.Popen([sys.executable, __file__, "--worker", str(spec)]), job))
        time.sleep(2)
        for proc, job in list(running):
            if proc.poll() is not None:
                running.remove((proc, job))
                state = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"{job['config']} {job['budget']:g}s {job['instance_name']} seed {job['seed']}: {state}",
                      flush=True)  # fmt: skip


def speeds(args: argparse.Namespace, work: Path, first: Path) -> dict[str, float]:
    """Steps per second of every configuration on the whole machine, measured once and kept in ``work``:
    the faster of one thread and ``--threads`` threads, as ``retarget train`` picks when ``--threads`` is not given."""
    path = work / "speeds.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    known.setdefault("_threads", {})
    info = json.loads((first / "instance.json").read_text())
    a_dir, b_dir = info["dirs"]["full"]
    for config in args.configs:
        if config in known:
            continue
        measured = {}
        for threads in sorted({1, args.threads}):
            out = work / "probe" / f"{config.replace('/', '_')}_{threads}"
            code = (
                f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import budget_table as b; "
                f"print(b.probe_speed({config!r}, {a_dir!r}, {b_dir!r}, __import__('pathlib').Path({str(out)!r}), "
                f"{args.probe}, {threads}))"
            )
            done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
            measured[threads] = float(done.stdout.split()[-1])
        best = max(measured, key=lambda n: measured[n])
        known[config], known["_threads"][config] = measured[best], best
        print(f"{config}: " + ", ".join(f"{v:.2f} steps/s at {n} threads" for n, v in measured.items()), flush=True)
        path.write_text(json.dumps({**known, "_machine": environment(args.threads)}, indent=2))
    return known


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        job = json.loads(Path(argv[1]).read_text())
        row = run_job(job)
        Path(job["result"]).write_text(json.dumps(row, indent=2))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="datasets, runs and results (kept; a rerun skips what is done)")
    ap.add_argument("--instances", nargs="+", default=list(INSTANCES), help="CLIP:LOOK, CLIP one of bikes, carphone")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), help="PRESET/SIZE/UPSAMPLE")
    ap.add_argument("--budgets", type=float, nargs="+", default=[300, 1200], help="2-core budgets (s)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--extract-size", type=int, default=128, help="extract --size of both domains")
    ap.add_argument("--clip", type=int, default=60, help="test clip length (frames)")
    ap.add_argument("--probe", type=float, default=40.0, help="seconds each configuration trains to time it")
    ap.add_argument("--threads", type=int, default=2, help="threads of the speed probe (the budget's machine)")
    ap.add_argument("--parallel", type=int, default=2, help="jobs at a time, one thread each")
    ap.add_argument("--report", action="store_true", help="only print the table of what is done")
    ap.add_argument("--speeds-only", action="store_true", help="only time the configurations")
    ap.add_argument("--rescore", action="store_true", help="measure the grid of every finished run again")
    ap.add_argument("--montage", help="also write the middle frames of each budget to MONTAGE_<minutes>min.jpg")
    args = ap.parse_args(argv)
    work = Path(args.work)
    (work / "results").mkdir(parents=True, exist_ok=True)
    folders = {name: prepare(name, work, args.extract_size, args.clip) for name in args.instances}
    if not args.report:
        its = speeds(args, work, folders[args.instances[0]])
        if args.speeds_only:
            return
        jobs = []
        for budget, config, name, seed in itertools.product(args.budgets, args.configs, args.instances, args.seeds):
            key = f"{config.replace('/', '_')}_{budget:g}_{name.replace(':', '_')}_{seed}"
            result = work / "results" / f"{key}.json"
            if result.exists():
                continue
            dirs = json.loads((folders[name] / "instance.json").read_text())["dirs"]["full"]
            jobs.append(dict(config=config, budget=budget, instance_name=name, seed=seed, a_dir=dirs[0],
                             b_dir=dirs[1], steps=max(1, round(its[config] * budget)), run=str(work / "runs" / key),
                             instance=str(folders[name]), result=str(result), its_2_threads=its[config]))  # fmt: skip
        run_pool(jobs, args.parallel)
    if args.rescore:
        rescore(work)
    print(report(work))
    if args.montage:
        for path in montage(work, args.montage):
            print(f"wrote {path}")


def rescore(work: Path) -> None:
    """Every finished job scored again from its run (after a change of :func:`score_run`)."""
    for path in sorted((work / "results").glob("*.json")):
        if ".job." in path.name:
            continue
        row = json.loads(path.read_text())
        row.update(score_run(row["run"], _load_instance(Path(row["instance"])), path))
        path.write_text(json.dumps(row, indent=2))


def montage(work: Path, stem: str, width: int = 240) -> list[Path]:
    """Per budget, one picture: a row per instance, the truth, the input and each configuration's middle frame."""
    rows = [json.loads(p.read_text()) for p in sorted((work / "results").glob("*.json")) if ".job." not in p.name]
    written = []
    for budget in sorted({r["budget"] for r in rows}):
        configs = sorted({r["config"] for r in rows if r["budget"] == budget})
        lines = []
        for name in sorted({r["instance_name"] for r in rows}):
            inst = _load_instance(work / name.replace(":", "_"))
            mid = len(inst.clip) // 2
            tiles = [("truth", inst.truth[mid][:, :, ::-1]), ("input", inst.clip[mid][:, :, ::-1])]
            for config in configs:
                mine = [
                    r for r in rows if r["budget"] == budget and r["config"] == config and r["instance_name"] == name
                ]
                pic = cv2.imread(str(Path(mine[0]["result"]).with_suffix(".png"))) if mine else None
                tiles.append((config, pic if pic is not None else np.zeros_like(tiles[0][1])))
            lines.append(np.concatenate([_label(t, text, width) for text, t in tiles], axis=1))
        out = Path(f"{stem}_{budget / 60:g}min.jpg")
        cv2.imwrite(str(out), np.concatenate(lines, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 88])
        written.append(out)
    return written


def _label(image: np.ndarray, text: str, width: int) -> np.ndarray:
    """``image`` (BGR) scaled to ``width`` px wide with ``text`` written in its top-left corner."""
    h = round(image.shape[0] * width / image.shape[1])
    tile = cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def report(work: Path) -> str:
    """The markdown tables of every result in ``work``: one per budget, a row per configuration."""
    rows = [json.loads(p.read_text()) for p in sorted((work / "results").glob("*.json")) if ".job." not in p.name]
    names = sorted({r["instance_name"] for r in rows})
    lines = []
    for name in names:
        info = json.loads((work / name.replace(":", "_") / "instance.json").read_text())
        i = info["input"]
        lines.append(f"- {name}: input unchanged {i['psnr']:.2f} dB, flicker {i['flicker']:.2f}, warp {i['warp']:.2f}")
    lines.append("")
    for budget in sorted({r["budget"] for r in rows}):
        lines.append(f"**{budget / 60:g} minutes on 2 cores** (PSNR dB / flicker / warping error / grid; steps)\n")
        lines.append("| configuration | " + " | ".join(names) + " | mean PSNR |")
        lines.append("|---|" + "---|" * len(names) + "---:|")
        for config in sorted({r["config"] for r in rows if r["budget"] == budget}):
            cells, psnrs = [], []
            for name in names:
                mine = [
                    r for r in rows if r["budget"] == budget and r["config"] == config and r["instance_name"] == name
                ]
                if not mine:
                    cells.append("-")
                    continue
                s = {k: float(np.mean([r["source"][k] for r in mine])) for k in ("psnr", "flicker", "warp")}
                grid = float(np.mean([r["grid"] for r in mine]))
                psnrs.append(s["psnr"])
                cells.append(f"{s['psnr']:.2f} / {s['flicker']:.2f} / {s['warp']:.2f} / {grid:.2f}; {mine[0]['steps']}")
            mean = f"{np.mean(psnrs):.2f}" if len(psnrs) == len(names) else "-"
            lines.append(f"| {config} | " + " | ".join(cells) + f" | {mean} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
