"""The report of benchmarks/gpu_check.py: the machine, one JSON and one markdown table."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from retarget.atomic import atomic_file


@dataclass
class StepResult:
    """One step's outcome: ``ok``, ``failed`` (with the error text) or ``skipped`` (with why)."""

    name: str
    status: str
    seconds: float
    figures: dict[str, Any]
    note: str = ""


def machine(dry: bool) -> dict[str, Any]:
    """The device's name (the CPU model in dry-run), torch, CUDA and cuDNN versions."""
    if dry or not torch.cuda.is_available():
        name = cpu_model()
    else:
        name = torch.cuda.get_device_name(0)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device": name,
        "device_kind": "dry-run on the CPU" if dry else "CUDA",
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": cudnn or "none",
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``lscpu`` elsewhere), or the platform's processor."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"Model name:\s*(.+)", text)
        if m:
            return m.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown CPU"


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(info: dict[str, Any], results: list[StepResult]) -> str:
    """The report as a markdown table, the machine above it."""
    head = ", ".join(f"{k} {v}" for k, v in info.items() if k in ("device", "torch", "cuda", "cudnn"))
    lines = [
        f"# GPU check: {info['device_kind']}",
        "",
        head,
        "",
        "| step | status | s | figures | note |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        figs = ", ".join(f"{k}={cell(v)}" for k, v in r.figures.items())
        note = (r.note.splitlines() or [""])[0][:200].replace("|", "/")
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.1f} | {figs} | {note} |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, info: dict[str, Any], results: list[StepResult]) -> None:
    """``out/gpu_check.json`` and ``out/gpu_check.md``, each written to a temporary name then renamed."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "machine": info,
        "steps": [asdict(r) for r in results],
        "failed": [r.name for r in results if r.status == "failed"],
    }
    with atomic_file(out / "gpu_check.json") as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=2, default=str))
    with atomic_file(out / "gpu_check.md") as tmp:
        Path(tmp).write_text(markdown(info, results))
