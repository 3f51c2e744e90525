"""What every benchmark shares: the import path, the thread policy, a line on the machine, and
systems trained side by side at a wall-clock budget.

Import it before torch: it puts the repository on ``sys.path`` and imports ``retarget``,
whose ``__init__`` sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads libgomp (idle
OpenMP threads sleep instead of spinning; see docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import retarget  # noqa: E402,F401  (sets OMP_WAIT_POLICY)
import numpy as np  # noqa: E402


def load_average() -> str:
    """``"load 1.20/0.95/0.80"``: the 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}/{fifteen:.2f}"


def environment(threads: int | None = None) -> str:
    """One line on the machine: cores, Python, torch (when loaded), threads, OMP policy, load."""
    parts = [f"{os.cpu_count()} cores", f"Python {platform.python_version()}"]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__}")
    if threads is not None:
        parts.append(f"{threads} threads")
    parts += [f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}", load_average()]
    return ", ".join(parts)


# -- systems trained side by side at a wall-clock budget (quality.py, faces.py) ------------


def parse_system(spec: str, preset: str, size: int) -> tuple[Any, Any, dict[str, Any]]:
    """``MODEL[+field=value,...]`` -> (ModelConfig, LossConfig, TrainConfig overrides).

    ``MODEL`` is ``recycle`` (``default`` is the same: what ``retarget train`` builds
    without options) or ``cyclegan``; each ``field=value`` sets a ModelConfig, LossConfig
    or TrainConfig field by name (``recycle+identity=2,lr=0.0004,ngf=32``). ``preset=``
    and ``size=`` replace the benchmark's preset and training size for this system.

    Raises:
        SystemExit: an unknown model or field (a typo is caught before any training).
    """
    from retarget.config import LossConfig, ModelConfig, TrainConfig, model_preset

    kind, _, rest = spec.partition("+")
    kind = "recycle" if kind == "default" else kind
    if kind not in ("cyclegan", "recycle"):
        raise SystemExit(f"system {spec!r}: the model must be default, recycle or cyclegan")
    items = [item.partition("=")[::2] for item in filter(None, rest.split(","))]
    for key, raw in items:
        preset = raw if key == "preset" else preset
        size = int(raw) if key == "size" else size
    try:
        model: ModelConfig = model_preset(preset, model=kind, size=size)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SystemExit(f"system {spec!r}: {exc}") from exc
    loss, train = LossConfig(), {}
    for key, raw in items:
        for target in (model, loss, TrainConfig("a", "b")):
            if key in {f.name for f in dataclasses.fields(target)}:
                value = _typed(getattr(target, key), raw)
                if target is model:
                    model = dataclasses.replace(model, **{key: value})
                elif target is loss:
                    loss = dataclasses.replace(loss, **{key: value})
                else:
                    train[key] = value
                break
        else:
            raise SystemExit(f"system {spec!r}: no option named {key!r}")
    return model, loss, train


def _typed(default: Any, raw: str) -> Any:
    """``raw`` as the type of a field's ``default`` (None defaults take floats)."""
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float) or default is None:
        return float(raw)
    return raw


def budget_config(
    spec: str,
    preset: str,
    size: int,
    a_dir: str,
    b_dir: str,
    out: str,
    seed: int,
    budget: float,
    threads: int,
    steps: Optional[int] = None,
) -> Any:
    """The TrainConfig of one system trained for ``budget`` seconds of wall clock on the CPU.

    As a user's ``retarget train --time-limit`` run: the run stops after the step where
    the budget is spent and the LR decays over the budget; no previews, one checkpoint
    at the end. With ``steps``, the run trains that many steps instead (no time limit,
    the LR decays over the steps): for comparisons at equal steps.
    """
    from retarget.config import TrainConfig

    model, loss, extra = parse_system(spec, preset, size)
    big = 10**9
    return TrainConfig(
        a_dir=a_dir,
        b_dir=b_dir,
        out=out,
        preset=extra.pop("preset", preset),
        model=model,
        loss=loss,
        seed=seed,
        steps=steps or big,
        time_limit=None if steps else budget,
        checkpoint_every=big,
        preview_every=big,
        preview_frames=0,
        log_every=50,
        overwrite=True,
        threads=threads,
        device="cpu",
        **extra,
    )


def run_workers(script: str, jobs: list[dict[str, Any]], work: Path, suffix: str = ".json") -> list[Path]:
    """Run ``python script --worker JOB.json`` for every job at the same time; wait for all.

    Each job is written to ``work/job_<i>.json`` with a ``result`` key added (the file
    the worker must write, ``work/result_<i><suffix>``). Running all systems at once,
    one torch thread each, gives them the same share of a shared machine, so equal
    budgets are equal-time comparisons.

    Returns:
        The result paths, in job order.

    Raises:
        SystemExit: a worker failed.
    """
    procs, results = [], []
    for i, job in enumerate(jobs):
        spec_file, result = work / f"job_{i}.json", work / f"result_{i}{suffix}"
        spec_file.write_text(json.dumps({**job, "result": str(result)}))
        procs.append(subprocess.Popen([sys.executable, script, "--worker", str(spec_file)]))
        results.append(result)
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a training process failed (exit {p.returncode})")
    return results


def summarise(rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per system: mean and sample standard deviation over seeds of every number.

    Values that are None (undefined, e.g. a correlation without variance) are left
    out of their mean; a key that is None in every run stays None.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, runs in rows.items():
        s: dict[str, Any] = {"runs": runs}
        for key in runs[0]:
            vals = np.array([np.nan if r.get(key) is None else r[key] for r in runs], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            s[key] = float(vals.mean()) if len(vals) else None
            s[key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out[name] = s
    return out
