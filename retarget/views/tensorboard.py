"""Optional TensorBoard logging of a run into ``RUN/tb/`` (when the ``tensorboard`` package is installed).

The logger mirrors what the run folder already holds, so it needs no hooks into the
loop beyond :meth:`Board.sync`: it tails ``metrics.jsonl`` (every numeric key becomes a
scalar: ``loss/...``, ``lr``, ``it_s``, ``data_s``, ``temporal/warp_error``, per-rank
speeds; a multi-domain run's ``temporal/warp_error/<name>`` per target) and picks up new files in ``previews/`` (grids as images, temporal preview
clips as strips of frames, since TensorBoard's video summaries need moviepy). Images
are stored as PNG bytes, encoded here with OpenCV, so Pillow is not needed either.
Without the package :func:`open_board` returns None and nothing of TensorBoard is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from retarget.run import layout
from retarget.views.runs import run_domains

STRIP_FRAMES = 8  # frames of a preview clip shown side by side


def clip_strip(path: Path, frames: int = STRIP_FRAMES) -> Optional[np.ndarray]:
    """Up to ``frames`` evenly spaced frames of a video side by side: ``H x (n*W) x 3`` uint8 RGB; None if unreadable."""
    from retarget.errors import RetargetError
    from retarget.video.reader import VideoReader

    try:
        with VideoReader(path) as reader:
            images = [f.image for f in reader]
    except (RetargetError, OSError, ValueError):
        return None
    if not images:
        return None
    idx = np.unique(np.linspace(0, len(images) - 1, min(frames, len(images))).round().astype(int))
    return np.concatenate([images[i] for i in idx], axis=1)


def _png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk."""
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


class Board:
    """A TensorBoard writer that follows one run folder (rank 0 only).

    Args:
        run_dir: the run folder; events go to ``run_dir/tb``.
        writer: a ``torch.utils.tensorboard.SummaryWriter`` on that folder.
        skip_existing: treat the metrics lines and preview files already present as
            logged (a resumed run logged them in its earlier session).
    """

    def __init__(self, run_dir: Path, writer: Any, skip_existing: bool) -> None:
        self.run_dir = Path(run_dir)
        self.writer = writer
        self.metrics = layout.MetricsTail(self.run_dir, skip_existing)
        self._seen: set[str] = set()
        if skip_existing:
            folder = self.run_dir / layout.PREVIEWS
            self._seen = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        else:
            self.domains()

    def domains(self) -> None:
        """Log the run's domains as the text ``run/domains`` (a multi-domain run's in label order)."""
        cfg = layout.read_config_dict(self.run_dir)
        names = run_domains(cfg)
        if not names:
            return
        many = isinstance(cfg.get("names"), list) and bool(cfg["names"])
        text = f"{len(names)} domains, in label order: {', '.join(names)}" if many else f"A: {names[0]}, B: {names[-1]}"
        self.writer.add_text("run/domains", text, 0)

    def image(self, tag: str, png: bytes, step: int) -> None:
        """Log PNG-encoded bytes as an image summary."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        h, w = _png_size(png)
        img = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=png)
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=img)]), int(step))

    def sync(self) -> None:
        """Log the metrics lines and preview files that appeared since the last call."""
        for rec in self.metrics.new_records():
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(k, float(v), int(rec["step"]))
        folder = self.run_dir / layout.PREVIEWS
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.name in self._seen or not p.is_file():
                    continue
                grid, clip = layout.parse_step(p.name, layout.GRID), layout.parse_step(p.name, layout.CLIP)
                if grid is not None:
                    self.image("preview/grid", p.read_bytes(), grid)
                elif clip is not None or p.name == layout.SOURCE_CLIP:
                    strip = clip_strip(p)
                    if strip is None:
                        continue  # not readable yet: try again next time
                    tag = "preview/clip" if clip is not None else "preview/source_clip"
                    self.image(tag, _png(strip), clip if clip is not None else 0)
                self._seen.add(p.name)
        self.writer.flush()

    def close(self) -> None:
        """Log what is left and close the event file."""
        self.sync()
        self.writer.close()


def open_board(run_dir: Path, start_step: int = 0) -> Optional[Board]:
    """A :class:`Board` writing to ``run_dir/tb`` when TensorBoard is installed, else None.

    Args:
        run_dir: the run folder.
        start_step: steps done before this session (a resume): earlier events of later
            steps are hidden (TensorBoard's purge step) and existing files are not relogged.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    log_dir = Path(run_dir) / layout.TB
    writer = SummaryWriter(str(log_dir), purge_step=start_step + 1 if start_step > 0 else None, flush_secs=30)
    from retarget.progress import console

    console.print(
        f"TensorBoard logs in {log_dir} (view with: tensorboard --logdir {log_dir})", soft_wrap=True, markup=False
    )
    return Board(Path(run_dir), writer, skip_existing=start_step > 0)
