"""One prepared check of everything that needs a GPU, sized to finish within 8 minutes on one.

    python benchmarks/gpu_check.py --out gpu_check/             # on a CUDA machine
    python benchmarks/gpu_check.py --dry-run --out /tmp/gc      # the same steps, tiny, on the CPU

Steps (each a subprocess with its own timeout; a failing step is recorded with its error
text and the others still run; the exit status is 1 if any failed):

1. ``cuda_tests``: ``pytest -m cuda`` over the test files that carry the marker; on a
   GPU any skip fails the step (a test that did not run proved nothing). Dry-run:
   the skips are expected and counted.
2. ``train_auto`` / ``train_fp16`` / ``train_off``: the default preset at 256 px on
   carphone (A) and bikes (B) from ../shared/data, extracted with ``retarget extract``,
   150 steps with ``--amp auto`` (bf16 on sm80+), ``fp16`` (GradScaler) and ``off``:
   steps/s, finite losses, peak memory. ``vs_official``: the release's step beside ours
   (benchmarks/vs_official.py's functions) in one process.
3. ``ddp``: ``python -m torch.distributed.run`` with one rank per GPU (NCCL), 20 steps.
4. ``resume``: save on the GPU, resume on the CPU, resume on the GPU; each resume
   must start at the saved step with the saved RNG state.
5. ``render_<scale>``: 300 frames of bigbuckbunny (1280x720, looped) with the trained
   run, whole frames at 256 and 512 px; ``swap``: ``render --target-faces`` of one
   talking head onto another; frames/s.
6. ``DIR/gpu_check.json`` and ``DIR/gpu_check.md``: every step, with the device's name,
   torch and CUDA versions.

``--dry-run`` runs the same steps on the CPU: tiny preset, 32 px, 3 steps, synthetic
clips, gloo with two ranks, cpu->cpu->cpu resume, 10 frames at 32 and 48 px.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from common import ROOT  # noqa: I001  (sets OMP_WAIT_POLICY before torch loads)

import torch  # noqa: E402

from gpu_check_report import StepResult, cell, machine, write_report  # noqa: E402

#: ../shared beside the checkout, or shared/ inside it (a device machine's copy)
SHARED = next((p for p in (ROOT.parent / "shared", ROOT / "shared") if p.is_dir()), ROOT.parent / "shared")
BIG = 10**9
#: time.monotonic() by which every subprocess must end (--budget); steps past it fail
DEADLINE = [float("inf")]


@dataclass(frozen=True)
class Plan:
    """The sizes of one check: the GPU's or the dry-run's."""

    device: str
    preset: str
    size: int
    steps: int
    ddp_steps: int
    ddp_ranks: int
    resume_steps: int  # per leg
    resume_devices: tuple[str, str, str]
    render_frames: int
    scales: tuple[int, ...]
    swap_frames: int  # 0 = the whole talking head
    official_rounds: int  # 0 = skipped
    threads: int | None
    timeout: float  # seconds, per subprocess (scaled by the step)


GPU = Plan("cuda", "default", 256, 150, 20, 1, 4, ("cuda", "cpu", "cuda"), 300, (256, 512), 0, 5, None, 120)
DRY = Plan("cpu", "tiny", 32, 3, 2, 2, 2, ("cpu", "cpu", "cpu"), 10, (32, 48), 10, 0, 1, 60)


class StepFailed(RuntimeError):
    """A step's check did not hold, or its subprocess failed."""


class StepSkipped(Exception):
    """A step that cannot run here (its message says why): recorded, not a failure."""


@dataclass
class Context:
    """What the steps share: the plan, the work folder, the datasets and the trained run."""

    plan: Plan
    dry: bool
    work: Path
    official: Path
    data: dict[str, str] | None = None
    run: str | None = None


# --- subprocesses ---------------------------------------------------------------------


def env() -> dict[str, str]:
    """The subprocesses' environment: the repository importable, idle OpenMP threads asleep."""
    out = dict(
        os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    return out


def run(cmd: list[str], timeout: float, cwd: Path = ROOT) -> str:
    """Run ``cmd``; its stdout and stderr together, or StepFailed naming the exit or the timeout.

    The timeout is cut to what is left of the whole check's ``--budget``.
    """
    left = DEADLINE[0] - time.monotonic()
    if left < 5:
        raise StepFailed(f"not run: the check's --budget was spent ({' '.join(cmd[:4])} ...)")
    timeout = min(timeout, left)
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        tail = ((exc.stdout or b"")[-1500:]).decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        raise StepFailed(f"timed out after {timeout:.0f} s: {' '.join(cmd[:6])} ...\n{tail}") from None
    text = p.stdout + p.stderr
    if p.returncode != 0:
        raise StepFailed(f"exit {p.returncode}: {' '.join(cmd[:6])} ...\n{text[-2000:]}")
    return text


def cli(args: list[str], timeout: float) -> str:
    """``retarget ARGS`` in a subprocess."""
    return run([sys.executable, "-m", "retarget", *args], timeout)


def worker(ctx: Context, kind: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """A library call of benchmarks/gpu_check_worker.py in its own process; its result dict."""
    tag = f"{kind}_{len(list(ctx.work.glob('job_*.json')))}"
    job_file, result_file = ctx.work / f"job_{tag}.json", ctx.work / f"result_{tag}.json"
    job_file.write_text(json.dumps({"threads": ctx.plan.threads, **job}))
    run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check_worker.py"), kind, str(job_file), str(result_file)],
        timeout,
    )
    return json.loads(result_file.read_text())


def need(cond: bool, message: str) -> None:
    if not cond:
        raise StepFailed(message)


# --- data -----------------------------------------------------------------------------


def prepare_data(ctx: Context) -> dict[str, str]:
    """Datasets A and B (``retarget extract``), made once: shared clips on a GPU, synthetic ones in dry-run."""
    if ctx.data is not None:
        return ctx.data
    src = ctx.work / "videos"
    if ctx.dry:
        from retarget.demo.synth import make_domain

        videos = {d: str(make_domain(src / d, d, clips=1, frames=12, size=48)[0].path) for d in "AB"}
    else:
        videos = {"A": str(SHARED / "data" / "carphone_pristine.mp4"), "B": str(SHARED / "data" / "bikes.mp4")}
    data = {}
    for d, video in videos.items():
        need(Path(video).is_file(), f"{video}: not found")
        out = ctx.work / "data" / d
        cli(["extract", video, "-o", str(out), "--size", str(ctx.plan.size * 9 // 8), "--overwrite"], ctx.plan.timeout)
        data[d] = str(out)
    ctx.data = data
    return data


def clip_frames(video: Path | None, frames: int, size: tuple[int, int]) -> Any:
    """``frames`` frames of ``video`` (looped as often as needed), or of a synthetic clip when None."""
    import numpy as np

    from retarget.demo.synth import make_motion, read_frames, render_clip

    if video is None:
        return render_clip("A", make_motion(frames, 0), size[0])[:, : size[1]]
    src = read_frames(video, max_frames=frames)
    return np.concatenate([src] * math.ceil(frames / len(src)))[:frames]


# --- steps ----------------------------------------------------------------------------


def cuda_tests(ctx: Context) -> dict[str, Any]:
    """``pytest -m cuda`` on the files that use the marker; a skip fails on a GPU."""
    import xml.etree.ElementTree as ET

    files = sorted(str(p) for p in (ROOT / "tests").glob("test_*.py") if "pytest.mark.cuda" in p.read_text())
    need(bool(files), "no test file carries @pytest.mark.cuda")
    xml = ctx.work / "cuda_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    try:
        run([*cmd, *files], ctx.plan.timeout * 2)
    except StepFailed as exc:
        if not xml.exists():
            raise
        failed = str(exc)
    else:
        failed = ""
    suite = ET.parse(xml).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    skips = [c.get("message", "") for c in suite.iter("skipped")]
    need(not failed, f"pytest failed: {failed[-1500:]}")
    need(counts["tests"] > 0, "pytest -m cuda selected no test")
    if not ctx.dry:
        need(not counts["skipped"], f"{counts['skipped']} CUDA test(s) skipped on a GPU machine: {skips[:3]}")
    return {**counts, "passed": counts["tests"] - counts["skipped"] - counts["failures"] - counts["errors"]}


def train_step(amp: str) -> Callable[[Context], dict[str, Any]]:
    """The step training ``ctx.plan.steps`` steps of a fresh run with ``--amp amp``."""

    def step(ctx: Context) -> dict[str, Any]:
        data, p = prepare_data(ctx), ctx.plan
        out = str(ctx.work / "runs" / f"amp_{amp}")
        job = dict(a_dir=data["A"], b_dir=data["B"], out=out, preset=p.preset, size=p.size, steps=p.steps)
        res = worker(ctx, "train", {**job, "amp": amp, "device": p.device, "checkpoint_every": p.steps}, p.timeout)
        need(res["steps"] == p.steps, f"trained {res['steps']} steps, not {p.steps}")
        need(res["losses_finite"], "a loss was not finite")
        if amp == "auto" or ctx.run is None:
            ctx.run = out  # the run render uses
        return {k: res[k] for k in ("its_per_s", "peak_mib", "loss_G", "steps", "precision")}

    return step


def vs_official(ctx: Context) -> dict[str, Any]:
    """benchmarks/vs_official.py's two steps side by side in one process."""
    if ctx.plan.official_rounds == 0:
        raise StepSkipped("the release's unet_128 predictor needs 128 px or more and a 128 px step of it takes "
                "seconds on one CPU core: left out of the dry-run (it runs on the GPU)")  # fmt: skip
    need((ctx.official / "models" / "recycle_gan_model.py").is_file(), f"{ctx.official}: the release is not there")
    job = dict(official=str(ctx.official), size=ctx.plan.size, rounds=ctx.plan.official_rounds, device=ctx.plan.device)
    return worker(ctx, "official", job, ctx.plan.timeout * 2)


def ddp(ctx: Context) -> dict[str, Any]:
    """``torch.distributed.run`` with ``ddp_ranks`` ranks (NCCL on CUDA, gloo on the CPU)."""
    data, p = prepare_data(ctx), ctx.plan
    ranks = max(p.ddp_ranks, torch.cuda.device_count()) if p.device == "cuda" else p.ddp_ranks
    out = ctx.work / "runs" / "ddp"
    args = [data["A"], data["B"], "-o", str(out), "--preset", p.preset, "--size", str(p.size)]
    args += ["--steps", str(p.ddp_steps), "--device", p.device, "--checkpoint-every", str(p.ddp_steps)]
    args += ["--preview-every", str(BIG), "--preview-frames", "0", "--log-every", "1", "--overwrite"]
    args += ["--threads", str(p.threads)] if p.threads else []
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    text = run([*launch, "-m", "retarget", "train", *args], p.timeout * 2)
    m = re.search(r"trained (\d+) steps.*?\(([0-9.]+) it/s", text)
    need(m is not None, f"no summary line in the output: {text[-500:]}")
    need(int(m.group(1)) == p.ddp_steps, f"trained {m.group(1)} steps, not {p.ddp_steps}")
    from retarget.run import checkpoint as ckpt
    from retarget.run import layout

    state = ckpt.load_state(ckpt.latest_checkpoint(out) / layout.STATE)
    need(int(state["step"]) == p.ddp_steps, f"checkpoint at step {state['step']}")
    need(len(state["rng"]) == ranks, f"{len(state['rng'])} ranks' RNG states saved, {ranks} ranks ran")
    backend = ("nccl" if p.device == "cuda" else "gloo") if ranks > 1 else "none (one rank joins no process group)"
    return {"ranks": ranks, "backend": backend, "its_per_s": float(m.group(2)), "steps": p.ddp_steps}


def resume(ctx: Context) -> dict[str, Any]:
    """Save on one device, resume on the next: each leg starts at the saved step with the saved RNG."""
    from retarget.run import checkpoint as ckpt
    from retarget.run import layout
    from gpu_check_worker import rng_digest

    data, p = prepare_data(ctx), ctx.plan
    n, out = p.resume_steps, str(ctx.work / "runs" / "resume")
    first = dict(a_dir=data["A"], b_dir=data["B"], out=out, preset=p.preset, size=p.size, steps=n, amp="auto")
    res = worker(ctx, "train", {**first, "device": p.resume_devices[0], "checkpoint_every": n}, p.timeout)
    figures: dict[str, Any] = {"leg1_its_per_s": res["its_per_s"]}
    for leg, device in enumerate(p.resume_devices[1:], start=2):
        saved = ckpt.load_state(ckpt.latest_checkpoint(out) / layout.STATE)
        want = rng_digest(saved["rng"][0])
        job = {"out": out, "steps": n * leg, "device": device, "checkpoint_every": n}
        res = worker(ctx, "resume", job, p.timeout)
        need(
            res["start_step"] == int(saved["step"]), f"leg {leg} started at {res['start_step']}, saved {saved['step']}"
        )
        differ = sorted(k for k in want if k in res["start_rng"] and res["start_rng"][k] != want[k])
        need(not differ, f"leg {leg} ({device}) started with other RNG states than saved: {differ}")
        need(
            res["steps"] == n * leg and res["losses_finite"],
            f"leg {leg}: {res['steps']} steps, finite {res['losses_finite']}",
        )
        figures[f"leg{leg}_its_per_s"] = res["its_per_s"]
        figures[f"leg{leg}_rng_checked"] = len(want)
    figures["steps"] = n * len(p.resume_devices)
    return figures


def render_step(index: int) -> Callable[[Context], dict[str, Any]]:
    """Render ``render_frames`` frames at ``scales[index]`` with the trained run."""

    def step(ctx: Context) -> dict[str, Any]:
        p = ctx.plan
        need(ctx.run is not None, "no trained run (the train steps failed)")
        clip = ctx.work / "render_in.mp4"
        if not clip.exists():
            from retarget.demo.synth import write_video

            video = None if ctx.dry else SHARED / "data" / "bigbuckbunny.mp4"
            write_video(clip, clip_frames(video, p.render_frames, (64, 48)))
        scale = p.scales[index]
        args = ["render", str(clip), str(ctx.work / f"render_{scale}.mp4"), "-m", ctx.run, "--scale", str(scale)]
        text = cli([*args, "--frame", "full", "--device", p.device, "--overwrite"], p.timeout * 2)
        return {"scale": scale, **_render_figures(text, p.render_frames)}

    return step


def _render_figures(text: str, frames: int | None) -> dict[str, Any]:
    m = re.search(r"wrote .*?: (\d+) frames.*?\(([0-9.]+) frames/s", text, re.S)
    need(m is not None, f"no summary line in render's output: {text[-500:]}")
    if frames:
        need(int(m.group(1)) == frames, f"wrote {m.group(1)} frames, not {frames}")
    return {"frames": int(m.group(1)), "frames_per_s": float(m.group(2))}


def swap(ctx: Context) -> dict[str, Any]:
    """``render --target-faces``: one shared talking head (d19) swapped onto another (d18's faces)."""
    faces = SHARED / "data" / "faces"
    src, target = faces / "talk_d19.mp4", faces / "talk_d18.mp4"
    if not (src.is_file() and target.is_file()):
        if ctx.dry:
            raise StepSkipped(f"{faces}: no talking heads there")
        raise StepFailed(f"{faces}: talk_d18.mp4 and talk_d19.mp4 are needed")
    p, dataset = ctx.plan, ctx.work / "faces_d18"
    limit = ["--max-frames", str(p.swap_frames * 2)] if p.swap_frames else []
    cli(["extract", str(target), "-o", str(dataset), "--align", "face", "--overwrite", *limit], p.timeout * 2)
    if p.swap_frames:
        from retarget.demo.synth import write_video

        short = ctx.work / "swap_in.mp4"
        write_video(short, clip_frames(src, p.swap_frames, (0, 0)))
        src = short
    args = ["render", str(src), str(ctx.work / "swap.mp4"), "--target-faces", str(dataset), "--overwrite"]
    # no --device: the swap has no network to place (render refuses the option with --target-faces)
    return _render_figures(cli(args, p.timeout * 2), p.swap_frames or None)


STEPS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "cuda_tests": cuda_tests,
    "train_auto": train_step("auto"),
    "train_fp16": train_step("fp16"),
    "train_off": train_step("off"),
    "vs_official": vs_official,
    "ddp": ddp,
    "resume": resume,
    "render_small": render_step(0),
    "render_large": render_step(1),
    "swap": swap,
}


# --- the check ------------------------------------------------------------------------


def run_step(name: str, fn: Callable[[Context], dict[str, Any]], ctx: Context) -> StepResult:
    """Run one step; StepSkipped becomes a skipped result, any other exception a failed one."""
    t = time.perf_counter()
    try:
        figures = fn(ctx)
    except StepSkipped as exc:
        return StepResult(name, "skipped", time.perf_counter() - t, {}, str(exc))
    except Exception as exc:  # a failing step is recorded, the others still run
        return StepResult(name, "failed", time.perf_counter() - t, {}, f"{type(exc).__name__}: {exc}".strip())
    return StepResult(name, "ok", time.perf_counter() - t, figures)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, gpu_check.md and work/")
    ap.add_argument("--dry-run", action="store_true", help="the same steps at tiny sizes on the CPU")
    ap.add_argument("--only", nargs="+", choices=list(STEPS), help="run these steps only")
    ap.add_argument("--budget", type=float, default=480, help="seconds for the whole check (default 8 minutes)")
    ap.add_argument("--official", type=Path, default=SHARED / "official-recycle-gan" / "rg", help="the release's rg/")
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU machine, or try the steps with --dry-run")
    plan = DRY if args.dry_run else GPU
    if plan.threads:
        torch.set_num_threads(plan.threads)
    DEADLINE[0] = time.monotonic() + args.budget
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(plan, args.dry_run, work.resolve(), args.official)
    info = machine(args.dry_run)
    print(f"gpu check on {info['device']} (torch {info['torch']}, CUDA {info['cuda']})", flush=True)
    names = args.only or list(STEPS)
    results = []
    for i, name in enumerate(names, start=1):
        r = run_step(name, STEPS[name], ctx)
        results.append(r)
        brief = (
            ", ".join(f"{k}={cell(v)}" for k, v in list(r.figures.items())[:3])
            or (r.note.splitlines() or [""])[0][:160]
        )
        print(f"[{i}/{len(names)}] {name}: {r.status} in {r.seconds:.1f} s  {brief}", flush=True)
    write_report(args.out, info, results)
    failed = [r.name for r in results if r.status == "failed"]
    print(
        f"wrote {args.out / 'gpu_check.json'} and gpu_check.md; "
        + (f"FAILED: {', '.join(failed)}" if failed else "all steps passed")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
