"""Probe every command with bad input: each must run, or exit non-zero with one line, lose nothing, leave nothing.

    python benchmarks/probe_cli.py --out probe/            # every case (about 10 minutes on 2 cores)
    python benchmarks/probe_cli.py --out probe/ --limit 40 # a sample, evenly spread

The cases come from the commands themselves: for every option of every command (read
from the CLI's own parameters, so a new option is probed without new code), values
below and above its range, far out of reach (100000), of the wrong type, not finite,
empty, an unknown choice, and every path given as a missing file, an empty file, text,
a still image, an audio-only file, a truncated video and another command's folder; then
the combinations a user gets wrong (``--overwrite`` over an input, a run or a dataset;
the same dataset twice; options that do nothing where they are given). Each case runs as
``retarget ...`` in a fresh copy of small fixtures (a video, two datasets, a face
dataset, a trained run, an enhancer) with a timeout and a memory cap, and is judged:

- ``clean``: non-zero exit, one ``error:`` line, no traceback, nothing left, inputs intact;
- ``kept``: a training that saved good checkpoints, then stopped in one line saying they are kept;
- ``warned``: exit 0 with a ``warning:`` line; ``ran``: exit 0 (the value was valid);
- ``lost``: an input changed or vanished; ``traceback``; ``left``: a failed command left
  files; ``lines``: more than one line of error; ``hang``: timed out or killed.

Writes ``probe.json`` (every case) and ``probe.md`` (the counts and every case that is
not clean, warned or ran) under ``--out``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import environment

from probe_cases import FIXTURE_ARGS, all_cases, make_fixtures  # noqa: E402

BAD = ("lost", "traceback", "left", "lines", "hang")


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``root``."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _limit_memory(gib: float) -> Any:
    def apply() -> None:  # a runaway allocation fails in the process instead of taking the machine
        cap = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return apply


def judge(case: dict[str, Any], rc: int, err: str, before: dict, after: dict) -> str:
    """The verdict of one case (see the module docstring)."""
    product = case.get("product") or "\0"  # the command's own output may change
    inputs = {k: v for k, v in before.items() if not k.startswith(product)}
    if any(after.get(k) != v for k, v in inputs.items()):
        return "lost"
    if "Traceback (most recent call last)" in err:
        return "traceback"
    if rc in (124, -9, 137) or rc < 0:
        return "hang"
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if rc != 0:
        new = set(after) - set(before)
        if new and any("is kept" in line for line in errors):  # a run that saved good steps, then stopped
            return "kept"
        if new:
            return "left"
        return "clean" if len(errors) == 1 and len(lines) <= 3 else "lines"
    return "warned" if any(line.startswith("warning:") for line in lines + err.splitlines()) else "ran"


def run_case(case: dict[str, Any], fixtures: Path, timeout: float, memory_gib: float) -> dict[str, Any]:
    """Run one case in a fresh copy of the fixtures; returns the case with its verdict."""
    work = Path(tempfile.mkdtemp(prefix="probe_"))
    try:
        shutil.copytree(fixtures, work / "w", symlinks=True)
        cwd = work / "w"
        before = _snapshot(cwd)
        argv = [a.format(**FIXTURE_ARGS) for a in case["argv"]]
        env = dict(os.environ, OMP_NUM_THREADS="1", RETARGET_NO_BROWSER="1")
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "retarget", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                timeout=timeout, preexec_fn=_limit_memory(memory_gib), errors="replace",
            )  # fmt: skip
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = 124, str(exc.stdout or ""), str(exc.stderr or "")
        seconds = time.perf_counter() - started
        after = _snapshot(cwd)
        verdict = judge(case, rc, err, before, after)
        if verdict == "ran" and any(line.startswith("warning:") for line in out.splitlines()):
            verdict = "warned"  # the console's warnings go to standard output
        first = next((line for line in err.splitlines() if line.strip()), "")
        return {**case, "argv": argv, "rc": rc, "verdict": verdict, "first": first[:300], "seconds": round(seconds, 1),
                "left": sorted(set(after) - set(before))[:5] if rc else []}  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(rows: list[dict[str, Any]], out: Path, env: str) -> str:
    """Write probe.json and probe.md; returns the markdown."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    lines = [f"# CLI probe: {len(rows)} cases", "", f"Machine: {env}", "", "| verdict | cases |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    lines += [
        "",
        "## Cases not clean, warned or ran",
        "",
        "| case | rc | verdict | first line |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["verdict"] in BAD:
            lines.append(f"| `{' '.join(r['argv'])[:140]}` | {r['rc']} | {r['verdict']} | {r['first'][:140]} |")
    lines += ["", "## Cases that ran (exit 0): valid values, or silently accepted", ""]
    lines += [f"- `{' '.join(r['argv'])[:160]}` ({r['why']})" for r in rows if r["verdict"] == "ran"]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps({"environment": env, "counts": counts, "cases": rows}, indent=1))
    (out / "probe.md").write_text(text, errors="backslashreplace")  # a case's path may hold a non-UTF-8 byte
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("probe"), help="folder for probe.json and probe.md")
    ap.add_argument("--limit", type=int, default=0, help="run this many cases, evenly spread (0 = all)")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a case counts as a hang")
    ap.add_argument("--memory", type=float, default=12.0, help="address-space cap of each case (GiB)")
    ap.add_argument("--only", default="", help="run only cases whose command line contains this text")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="probe_fixtures_"))
    try:
        print("making fixtures...", flush=True)
        make_fixtures(work)
        cases = [c for c in all_cases(work) if args.only in " ".join(c["argv"])]
        if args.limit and args.limit < len(cases):
            step = len(cases) / args.limit
            cases = [cases[int(i * step)] for i in range(args.limit)]
        print(f"{len(cases)} cases, {args.jobs} at once", flush=True)
        rows: list[dict[str, Any]] = []
        with futures.ThreadPoolExecutor(args.jobs) as pool:
            jobs = [pool.submit(run_case, c, work, args.timeout, args.memory) for c in cases]
            for i, job in enumerate(futures.as_completed(jobs), 1):
                row = job.result()
                rows.append(row)
                if row["verdict"] in BAD:
                    print(f"[{i}/{len(cases)}] {row['verdict']}: {' '.join(row['argv'])[:120]} -> {row['first'][:120]}")
        rows.sort(key=lambda r: r["id"])
        print(report(rows, args.out, environment(1)).split("## Cases not")[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
