"""Shared test setup: one torch thread, the shared videos, small generated videos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two cores shared with pytest itself: OpenMP spin-waits make multi-threaded torch
# dramatically slower on a loaded machine, so tests use one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_video():
    """Path to a video in ../shared/data; skips the test when the folder is absent."""

    def get(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.exists():
            pytest.skip(f"{path} not available")
        return path

    return get
