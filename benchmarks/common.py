"""What every benchmark shares: the import path, the thread policy and a line on the machine.

Import it before torch: it puts the repository on ``sys.path`` and imports ``retarget``,
whose ``__init__`` sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads libgomp (idle
OpenMP threads sleep instead of spinning; see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import retarget  # noqa: E402,F401  (sets OMP_WAIT_POLICY)


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
