"""Preview grids and loss curves drawn during training (the metrics log is :mod:`retarget.run.layout`'s)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch

from retarget.atomic import atomic_file
from retarget.train.data import DomainData


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


def preview_still(domain: DomainData, size: int) -> np.ndarray:
    """A fixed frame of ``domain`` for the multi-domain preview rows: the middle frame of its
    longest segment, its centre ``size x size`` square (``H x W x 3`` uint8 RGB, a copy)."""
    longest = max(domain.segments, key=len)  # the first of equally long ones
    frame = domain.clip(int(longest[len(longest) // 2]), 1)[0]
    h, w = frame.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.array(frame[y : y + size, x : x + size])


@torch.no_grad()
def domain_rows(generator: torch.nn.Module, stills: np.ndarray, device: torch.device) -> list[list[np.ndarray]]:
    """The multi-domain preview rows: for each domain's still, the still and its translation to every domain.

    Args:
        generator: the conditional ``G(x, c)`` (``c`` a ``[B]`` long target index), in eval mode.
        stills: ``n x S x S x 3`` uint8, one frame per domain in label order (:func:`preview_still`).

    Returns:
        ``n`` rows (source domain ``d``): ``[x_d, G(x_d, 0), ..., G(x_d, n - 1)]``, each
        ``S x S x 3`` uint8 RGB; ``G(x_d, d)`` is the model's image of ``x_d`` in its own domain.
    """
    x = torch.from_numpy(stills).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    n = x.shape[0]
    outs = [generator(x, torch.full((n,), k, dtype=torch.long, device=device)) for k in range(n)]
    return [[to_uint8(x[d]), *(to_uint8(out[d]) for out in outs)] for d in range(n)]


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
