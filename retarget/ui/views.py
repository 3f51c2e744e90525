"""What the pages show of a dataset and a run, read from their folders (nothing is written)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from retarget.dataset.manifest import Dataset, read_dataset
from retarget.run import layout

#: Frames in a dataset's preview grid, and the height of each (px).
PREVIEW_FRAMES, PREVIEW_HEIGHT = 8, 112


def dataset_summary(ds: Dataset, name: str) -> str:
    """The manifest in a few Markdown lines: frames, segments, size, alignment, source videos."""
    kind = "aligned faces" if ds.align == "face" else ("whole frames" if ds.frame == "full" else "square frames")
    lines = [
        f"**{name}**: {len(ds.frames)} frames in {len(ds.segments())} segments, {kind}, "
        f"{ds.size} px, {ds.image_format}",
    ]
    for v in ds.videos:
        lines.append(f"- {Path(v.path).name}: {v.width}x{v.height}, {v.fps:.2f} fps, {v.duration:.1f} s, {v.codec}")
    return "\n".join(lines)


def _with_landmarks(ds: Dataset, i: int, image: np.ndarray) -> np.ndarray:
    """``image`` (frame ``i`` of a face dataset) with its 68 landmarks drawn, moved into the crop."""
    import cv2

    rec = ds.frames[i]
    if rec.landmarks is None or rec.matrix is None:
        return image
    pts = np.c_[rec.landmarks.astype(np.float64), np.ones(len(rec.landmarks))] @ rec.matrix.T
    out = image.copy()
    radius = max(1, image.shape[0] // 96)
    for x, y in pts:
        cv2.circle(out, (int(round(x)), int(round(y))), radius, (0, 255, 0), -1, cv2.LINE_AA)
    return out


def dataset_preview(ds: Dataset, frames: int = PREVIEW_FRAMES, height: int = PREVIEW_HEIGHT) -> Optional[np.ndarray]:
    """A row of ``frames`` evenly spaced frames (faces with their landmarks), H x W x 3 uint8; None if empty."""
    import cv2

    if not ds.frames:
        return None
    picks = np.unique(np.linspace(0, len(ds.frames) - 1, min(frames, len(ds.frames))).round().astype(int))
    tiles = []
    for i in picks:
        img = ds.load(int(i))
        if ds.align == "face":
            img = _with_landmarks(ds, int(i), img)
        w = max(1, round(img.shape[1] * height / img.shape[0]))
        tiles.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA))
        tiles.append(np.full((height, 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def load_dataset(path: Path) -> Dataset:
    """:func:`retarget.dataset.manifest.read_dataset` (raises its one-line RetargetError)."""
    return read_dataset(path)


@dataclass(frozen=True)
class RunFiles:
    """The newest files of a run folder the Train page shows; None where there is none yet."""

    grid: Optional[Path]  # newest preview grid (previews/step_N.png)
    grid_step: Optional[int]
    clip: Optional[Path]  # newest temporal preview (previews/step_N.mp4)
    source_clip: Optional[Path]  # previews/source.mp4, the frames the clips translate
    loss_chart: Optional[Path]  # loss_curve.png
    report: Optional[Path]  # report.html
    eval: Optional[dict[str, Any]]  # eval.json, when one was saved there


def _newest(folder: Path, suffix: str) -> tuple[Optional[Path], Optional[int]]:
    """The preview file of the highest step with ``suffix`` in ``folder``."""
    best: tuple[Optional[Path], Optional[int]] = (None, None)
    if not folder.is_dir():
        return best
    for p in folder.iterdir():
        step = layout.parse_step(p.name, suffix)
        if step is not None and (best[1] is None or step > best[1]) and p.is_file():
            best = (p, step)
    return best


def run_files(run: Path) -> RunFiles:
    """The newest preview grid and clip, the loss chart, report and saved eval of ``run``."""
    previews = run / layout.PREVIEWS
    grid, step = _newest(previews, layout.GRID)
    clip, _ = _newest(previews, layout.CLIP)
    source = previews / layout.SOURCE_CLIP
    chart = run / layout.LOSS_CURVE
    report = run / layout.REPORT
    try:
        scores = json.loads((run / layout.EVAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        scores = None
    return RunFiles(
        grid=grid,
        grid_step=step,
        clip=clip,
        source_clip=source if source.is_file() else None,
        loss_chart=chart if chart.is_file() else None,
        report=report if report.is_file() else None,
        eval=scores if isinstance(scores, dict) else None,
    )
