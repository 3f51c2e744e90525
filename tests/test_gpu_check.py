"""benchmarks/gpu_check.py --dry-run: every step runs on the CPU and lands in the JSON and the table."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = [
    "cuda_tests",
    "train_auto",
    "train_fp16",
    "train_off",
    "vs_official",
    "ddp",
    "resume",
    "render_small",
    "render_large",
    "swap",
]
#: steps the dry-run may skip, with a reason: the release needs 128 px, the swap the shared talking heads
MAY_SKIP = {"vs_official", "swap"}


def _numbers(figures: dict) -> list[float]:
    return [v for v in figures.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]


@pytest.mark.slow
def test_dry_run_reports_every_step_with_finite_figures(tmp_path):
    out = tmp_path / "gc"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.count("] ") >= len(STEPS)  # a progress line per step
    doc = json.loads((out / "gpu_check.json").read_text())
    assert doc["machine"]["device"] and doc["machine"]["torch"] and "cuda" in doc["machine"]
    steps = {s["name"]: s for s in doc["steps"]}
    assert list(steps) == STEPS and doc["failed"] == []
    for name, s in steps.items():
        if s["status"] == "skipped":
            assert name in MAY_SKIP and s["note"], name
            continue
        assert s["status"] == "ok", (name, s["note"])
        nums = _numbers(s["figures"])
        assert nums and all(math.isfinite(v) for v in nums), (name, s["figures"])
    for name in ("train_auto", "train_fp16", "train_off"):
        assert steps[name]["figures"]["its_per_s"] > 0 and steps[name]["figures"]["peak_mib"] > 0
    assert steps["cuda_tests"]["figures"]["tests"] > 0  # the CUDA tests were collected (and skipped here)
    assert steps["ddp"]["figures"]["ranks"] == 2 and steps["ddp"]["figures"]["backend"] == "gloo"
    assert steps["resume"]["figures"]["leg2_rng_checked"] > 0 and steps["resume"]["figures"]["leg3_rng_checked"] > 0
    assert steps["render_small"]["figures"]["frames"] == steps["render_large"]["figures"]["frames"] == 10
    table = (out / "gpu_check.md").read_text()
    assert doc["machine"]["device"] in table and doc["machine"]["torch"] in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    assert [r.split("|")[1].strip() for r in rows] == STEPS


def test_a_failing_step_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    """One step raising fails the check (exit 1) with its error text; the next step still runs and reports."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    def boom(ctx):
        raise gpu_check.StepFailed("the check did not hold")

    monkeypatch.setattr(gpu_check, "STEPS", {"first": boom, "second": lambda ctx: {"value": 1.5}})
    code = gpu_check.main(["--dry-run", "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 1 and doc["failed"] == ["first"]
    assert doc["steps"][0]["note"].endswith("the check did not hold")
    assert doc["steps"][1]["status"] == "ok" and doc["steps"][1]["figures"] == {"value": 1.5}
