"""Preview grids, loss curves and the metrics log written during training."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch

from retarget.atomic import atomic_file


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` float in [-1, 1] -> ``H x W x 3`` uint8 RGB."""
    img = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return img.permute(1, 2, 0).numpy()


def preview_rows(visuals: Mapping[str, torch.Tensor], sample: int = 0) -> list[list[np.ndarray]]:
    """One row of images per domain prefix of ``visuals``, in the dict's order.

    Args:
        visuals: ``{"A/real_0": [B, 3, H, W], ..., "B/rec": ...}`` in [-1, 1], as from
            :meth:`retarget.nn.objectives.Objective.visuals` (real triplet, translations,
            predicted frame, recycled frame, reconstruction, for both directions).
        sample: which batch element to show.

    Returns:
        rows of ``H x W x 3`` uint8 RGB images (A->B first, then B->A), each ordered
        real frames, translations, prediction, recycled, reconstruction, own prediction.
    """
    order = ("real", "fake", "pred", "recycled", "rec", "next")

    def rank(key: str) -> tuple[int, str]:
        kind = key.split("/", 1)[-1].split("_", 1)[0]
        return (order.index(kind) if kind in order else len(order), key)

    rows: dict[str, list[str]] = {}
    for key in visuals:
        rows.setdefault(key.split("/", 1)[0], []).append(key)
    return [[to_uint8(visuals[k][sample]) for k in sorted(keys, key=rank)] for keys in rows.values()]


def save_grid(path: str | os.PathLike[str], rows: Sequence[Sequence[np.ndarray]], pad: int = 2) -> None:
    """Tile rows of equal-size ``H x W x 3`` uint8 RGB images into one PNG, atomically."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = img
    with atomic_file(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")


def save_loss_curve(path: str | os.PathLike[str], records: Sequence[Mapping[str, Any]]) -> None:
    """Plot every loss term of the metrics records against the step into a PNG, atomically.

    Args:
        records: ``metrics.jsonl`` lines; keys starting with ``loss/`` are plotted.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in records for k in r if k.startswith("loss/")})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, side in zip(axes, ("G", "D")):
        for k in keys:
            name = k[len("loss/") :]
            if (side == "D") != (name.startswith("D") or name == "loss_D"):
                continue
            pts = [(r["step"], r[k]) for r in records if k in r and r[k] is not None]
            if pts:
                s, v = zip(*pts)
                ax.plot(s, v, label=name, linewidth=1)
        ax.set_title("discriminator terms" if side == "D" else "generator terms")
        ax.set_xlabel("step")
        values = [v for line in ax.get_lines() for v in line.get_ydata()]
        if values and min(values) > 0:  # hinge terms can be negative
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def read_metrics(path: Path, upto: int) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` up to step ``upto``; later ones belong to steps a resume redoes."""
    if not path.exists() or upto <= 0:
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(rec, dict) and rec.get("step", math.inf) <= upto:
            out.append(rec)
    return out


def write_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace ``metrics.jsonl`` with ``records``, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Add one line to ``metrics.jsonl`` (flushed at once, so a crash loses at most that line)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
