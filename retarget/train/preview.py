"""Preview grids and loss curves drawn during training (the metrics log is :mod:`retarget.run.layout`'s).

A preview grid has one row per direction (``A->B``, ``B->A``, in a left margin) and a
header band above each row naming its columns: the source frames ``t``, ``t+1``,
``t+2``, their translations, the prediction of ``t+2`` from the translations, that
prediction translated back (recycled), the reconstruction of ``t`` and the own-domain
prediction (:func:`preview_rows`, :func:`grid_image`). A multi-domain run's grid starts
with a row per domain, its fixed frame translated to every domain (:func:`domain_rows`),
then the training batch's row (:func:`name_targets`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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


#: Column order inside a row, and each visual kind's label.
KINDS = {
    "real": "source",
    "fake": "translation",
    "pred": "prediction",
    "recycled": "recycled",
    "rec": "reconstruction",
    "next": "own prediction",
}
#: Row labels by domain prefix.
DIRECTIONS = {"A": "A->B", "B": "B->A"}
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK = (0, 0, 0)


@dataclass
class PreviewRow:
    """One row of a preview grid: a direction's pictures and what each shows.

    Attributes:
        label: the direction, ``"A->B"`` or ``"B->A"``.
        keys: the visuals' keys, in column order.
        titles: what each column is, e.g. ``"source t+1"``, ``"reconstruction t"``.
        images: ``H x W x 3`` uint8 RGB, one per key.
    """

    label: str
    keys: list[str]
    titles: list[str]
    images: list[np.ndarray] = field(default_factory=list)


def _kind(key: str) -> str:
    return key.split("/", 1)[-1].split("_", 1)[0]


def column_title(key: str, frames: int) -> str:
    """The label of the visual ``key`` (e.g. ``"A/fake_1"``) in a row of ``frames`` source frames.

    Frame ``t+i`` for the source frames and their translations; the predictions (and the
    recycled and own predictions) are of the last frame, ``t+frames-1``; the
    reconstruction is of the first. Single-frame rows (CycleGAN) have no times.
    """
    kind = _kind(key)
    name = KINDS.get(kind, key.split("/", 1)[-1])
    if frames <= 1:
        return name
    if kind in ("real", "fake"):
        i = int(key.rsplit("_", 1)[1])
        return f"{name} t" + (f"+{i}" if i else "")
    if kind in ("pred", "recycled", "next"):
        return f"{name} t+{frames - 1}"
    return f"{name} t" if kind == "rec" else name


def preview_rows(visuals: Mapping[str, torch.Tensor], sample: int = 0) -> list[PreviewRow]:
    """One labelled row of images per domain prefix of ``visuals``, in the dict's order.

    Args:
        visuals: ``{"A/real_0": [B, 3, H, W], ..., "B/rec": ...}`` in [-1, 1], as from
            :meth:`retarget.nn.objectives.Objective.visuals` (real triplet, translations,
            predicted frame, recycled frame, reconstruction, for both directions).
        sample: which batch element to show.

    Returns:
        :class:`PreviewRow` s (A->B first, then B->A), each ordered real frames,
        translations, prediction, recycled, reconstruction, own prediction, with a title
        per column (:func:`column_title`).
    """
    order = list(KINDS)

    def rank(key: str) -> tuple[int, str]:
        kind = _kind(key)
        return (order.index(kind) if kind in order else len(order), key)

    groups: dict[str, list[str]] = {}
    for key in visuals:
        groups.setdefault(key.split("/", 1)[0], []).append(key)
    rows = []
    for prefix, keys in groups.items():
        keys = sorted(keys, key=rank)
        frames = sum(1 for k in keys if _kind(k) == "real")
        titles = [column_title(k, frames) for k in keys]
        images = [to_uint8(visuals[k][sample]) for k in keys]
        rows.append(PreviewRow(DIRECTIONS.get(prefix, prefix), keys, titles, images))
    return rows


def preview_still(domain: DomainData, size: int) -> np.ndarray:
    """A fixed frame of ``domain`` for the multi-domain preview rows: the middle frame of its
    longest segment, its centre ``size x size`` square (``H x W x 3`` uint8 RGB, a copy)."""
    longest = max(domain.segments, key=len)  # the first of equally long ones
    frame = domain.clip(int(longest[len(longest) // 2]), 1)[0]
    h, w = frame.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.array(frame[y : y + size, x : x + size])


@torch.no_grad()
def domain_rows(
    generator: torch.nn.Module, stills: np.ndarray, device: torch.device, names: Sequence[str]
) -> list[PreviewRow]:
    """The multi-domain preview rows: for each domain's still, the still and its translation to every domain.

    Args:
        generator: the conditional ``G(x, c)`` (``c`` a ``[B]`` long target index), in eval mode.
        stills: ``n x S x S x 3`` uint8, one frame per domain in label order (:func:`preview_still`).
        names: the domains' names, in label order.

    Returns:
        ``n`` rows, labelled with their source domain ``d``: ``[x_d, G(x_d, 0), ...,
        G(x_d, n - 1)]``, titled ``source``, ``to <name>``...; ``G(x_d, d)`` is the model's
        image of ``x_d`` in its own domain.
    """
    x = torch.from_numpy(stills).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    n = x.shape[0]
    outs = [generator(x, torch.full((n,), k, dtype=torch.long, device=device)) for k in range(n)]
    keys = ["real", *(f"to_{k}" for k in range(n))]
    titles = ["source", *(f"to {name}" for name in names)]
    return [PreviewRow(names[d], keys, titles, [to_uint8(x[d]), *(to_uint8(out[d]) for out in outs)]) for d in range(n)]


def name_targets(rows: Sequence[PreviewRow], names: Sequence[str], label: str = "batch") -> list[PreviewRow]:
    """A multi-domain batch's rows (:meth:`retarget.nn.multi.MultiObjective.visuals`) labelled ``label``, their
    ``x/to_k`` columns titled ``to <name of k>``."""
    out = []
    for row in rows:
        titles = [
            f"to {names[int(k.rsplit('_', 1)[1])]}" if _kind(k) == "to" else t for k, t in zip(row.keys, row.titles)
        ]
        out.append(PreviewRow(label, row.keys, titles, row.images))
    return out


def _lines(title: str) -> list[str]:
    """A title on two lines: what it is, then which frame (``"own prediction"``, ``"t+2"``)."""
    head, _, last = title.rpartition(" ")
    return [head, last] if head and last.startswith("t") and last[1:2] in ("", "+") else [title]


def _text_cell(lines: Sequence[str], width: int, height: int, scale: float) -> np.ndarray:
    """White ``height x width x 3`` uint8 with ``lines`` centred in black (clipped at the sides)."""
    cell = np.full((height, width, 3), 255, np.uint8)
    line_h = cv2.getTextSize("Ag", _FONT, scale, 1)[0][1] + max(2, round(6 * scale))
    top = (height - line_h * len(lines)) // 2
    for i, line in enumerate(lines):
        (tw, th), _ = cv2.getTextSize(line, _FONT, scale, 1)
        cv2.putText(
            cell, line, (max(1, (width - tw) // 2), top + (i + 1) * line_h - 3), _FONT, scale, _INK, 1, cv2.LINE_AA
        )
    return cell


# Longer than 60 lines on purpose: one layout (scale, bands, margin) whose parts size each other.
def grid_image(rows: Sequence[PreviewRow | Sequence[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Rows of equal-size ``H x W x 3`` uint8 RGB images tiled on white, ``grid H x grid W x 3`` uint8.

    Labelled rows (:class:`PreviewRow`) get a header band above their images with each
    column's title, and their direction in a left margin; plain lists of images are tiled
    as they are. Titles are scaled to the column width (within limits; a very narrow
    column clips them).
    """
    images = [r.images if isinstance(r, PreviewRow) else list(r) for r in rows]
    labelled = [r for r in rows if isinstance(r, PreviewRow)]
    h, w = images[0][0].shape[:2]
    cols = max(len(r) for r in images)
    scale, band, margin = 0.0, 0, 0
    if labelled:
        widest = max(cv2.getTextSize(x, _FONT, 1.0, 1)[0][0] for r in labelled for t in r.titles for x in _lines(t))
        scale = float(np.clip((w - 4) / max(widest, 1), 0.3, 0.5))
        line_h = cv2.getTextSize("Ag", _FONT, scale, 1)[0][1] + max(2, round(6 * scale))
        band = 2 * line_h + 4
        margin = max(cv2.getTextSize(r.label, _FONT, scale * 1.2, 1)[0][0] for r in labelled) + 8
    row_h = band + h + pad
    grid = np.full((len(rows) * row_h + pad, margin + cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, (row, pictures) in enumerate(zip(rows, images)):
        top = pad + i * row_h
        if isinstance(row, PreviewRow):
            side = _text_cell([row.label], margin, h, scale * 1.2)
            grid[top + band : top + band + h, :margin] = side
        for j, img in enumerate(pictures):
            x = margin + pad + j * (w + pad)
            if isinstance(row, PreviewRow) and j < len(row.titles):
                grid[top : top + band, x : x + w] = _text_cell(_lines(row.titles[j]), w, band, scale)
            grid[top + band : top + band + h, x : x + w] = img
    return grid


def save_grid(path: str | os.PathLike[str], rows: Sequence[PreviewRow | Sequence[np.ndarray]], pad: int = 2) -> None:
    """:func:`grid_image` of ``rows`` into one PNG, atomically."""
    grid = grid_image(rows, pad)
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
