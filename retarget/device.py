"""Devices and mixed precision: the one ``--device`` resolver and the one ``--amp`` map.

Used by training (:mod:`retarget.train.launch`, one device per DDP rank), the
optimisation step (:mod:`retarget.nn.step`) and render (:mod:`retarget.render.render`).
"""

from __future__ import annotations

from typing import Optional

import torch

from retarget.errors import RetargetError

#: ``--amp`` value -> autocast dtype; ``"off"`` (absent) means float32.
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def has_mps() -> bool:
    """Whether Apple's MPS backend is usable."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def device_kind(name: str) -> str:
    """``auto`` -> ``cuda`` > ``mps`` > ``cpu``; other names unchanged (not checked)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else ("mps" if has_mps() else "cpu")
    return name


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device of a ``--device`` value.

    Args:
        name: ``auto``, ``cpu``, ``cuda`` or ``mps``; ``auto`` picks CUDA, then MPS, then CPU.
        local_rank: this process's rank on its machine; CUDA ranks share the visible GPUs
            round-robin.

    Raises:
        RetargetError: an explicit ``cuda`` or ``mps`` that is not available.
    """
    kind = device_kind(name)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RetargetError("--device cuda: no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if kind == "mps" and not has_mps():
        raise RetargetError("--device mps: no MPS device is available")
    return torch.device(kind)


def amp_dtype(amp: str, device: torch.device | str) -> Optional[torch.dtype]:
    """The autocast dtype of ``--amp`` on ``device``: None (float32) off CUDA or for ``off``."""
    return AMP_DTYPES.get(amp) if torch.device(device).type == "cuda" else None
