"""Temporal previews: a fixed clip of A translated at every preview, as a video and a number.

(A multi-domain run: a clip of its first domain, translated to every other domain.)

A still grid cannot show flicker. At every preview this hook translates the same short
run of consecutive A frames with ``G_AB`` and writes ``previews/step_N.mp4`` (H.264, plays
in browsers), and logs the clip's warping error (:func:`retarget.eval.temporal.warping_errors`,
0-255 scale, along the source's own motion) to ``metrics.jsonl`` as
``temporal/warp_error``, beside the source clip's own ``temporal/warp_error_source``.
The source clip is written once as ``previews/source.mp4``.

The clip comes from the training data (datasets have no held-out split): the middle of
A's longest segment, centre-cropped at the training size, or whole for a dataset of whole
frames (``extract --frame full``), as render translates them. It shows how steady the
translation is, not how well it generalises.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from retarget.atomic import atomic_file
from retarget.eval.temporal import warping_errors
from retarget.nn.conditional import FixedTarget
from retarget.nn.networks import fit_sides
from retarget.run import layout
from retarget.train.data import DomainData
from retarget.train.hooks import eval_mode, note
from retarget.train.loop import Hook, Trainer
from retarget.video.writer import VideoWriter

#: Frames per second of the preview videos (datasets do not all record a frame rate).
FPS = 25


def preview_clip(domain: DomainData, length: int, size: int) -> np.ndarray:
    """``length`` consecutive frames from the middle of ``domain``'s longest segment.

    Args:
        domain: a loaded dataset (frames at the load size).
        length: frames wanted; fewer when the longest segment is shorter.
        size: side of the centre crop taken from each frame (the training size, px), for
            square and face datasets; whole-frame datasets (``info.frame == "full"``) keep the
            whole frame, as render translates it.

    Returns:
        ``T x H x W x 3`` uint8 RGB (``H = W = size`` but for whole frames), the same
        frames on every call.
    """
    longest = max(domain.segments, key=len)  # the first of equally long ones
    take = min(length, len(longest))
    start = (len(longest) - take) // 2
    idx = longest[start : start + take]
    frames = domain.clip(int(idx[0]), len(idx))  # consecutive frames of one segment
    if domain.info.frame == "full":
        return np.array(frames)  # a copy: the cache may be a read-only memory map
    h, w = frames.shape[1:3]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(frames[:, y : y + size, x : x + size])


def translate_clip(net: torch.nn.Module, clip: np.ndarray, device: torch.device, batch: int = 16) -> np.ndarray:
    """``net`` applied to ``clip`` (``T x H x W x 3`` uint8, any size) in batches; returns the same shape and dtype.

    Frames whose sides are not multiples of 4 (what the generator needs) are reflect-padded
    and cropped back (:func:`retarget.nn.networks.fit_sides`).
    """
    out = []
    for i in range(0, len(clip), batch):
        x = torch.from_numpy(clip[i : i + batch]).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        y = fit_sides(net, x).float().add(1.0).mul(127.5).clamp(0, 255).round().to(torch.uint8)
        out.append(y.permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def write_clip(path: Path, frames: np.ndarray) -> None:
    """Encode ``frames`` (``T x H x W x 3`` uint8) to an H.264 file at :data:`FPS`, atomically."""
    with atomic_file(path) as tmp:
        with VideoWriter(tmp, frames.shape[2], frames.shape[1], Fraction(1, FPS), FPS, crf=18) as writer:
            for i, frame in enumerate(frames):
                writer.write(frame, i)


class TemporalPreview(Hook):
    """Every ``every`` steps (and at the last), translate ``clip`` with ``G_AB``; rank 0 only.

    Runs before :class:`~retarget.train.hooks.Metrics`, which writes its numbers. A
    multi-domain run (``targets`` given) translates the clip of its first domain to every
    other domain with ``G(x, k)``: the video holds the translations side by side (in the
    order of ``targets``), ``temporal/warp_error/<name>`` is each one's warping error and
    ``temporal/warp_error`` their mean.

    Args:
        clip: ``T x H x W x 3`` uint8 consecutive A frames (:func:`preview_clip`), T >= 2.
        every: steps between previews.
        targets: a multi-domain run's ``(name, label)`` of each target domain; None for a pair.
    """

    def __init__(self, clip: np.ndarray, every: int, targets: Optional[Sequence[tuple[str, int]]] = None) -> None:
        self.clip = clip
        self.every = every
        self.targets = tuple(targets) if targets is not None else None
        self.source_error: Optional[float] = None

    def before_train(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        self.source_error = float(np.nanmean(warping_errors(self.clip, self.clip)))
        path = trainer.run_dir / layout.source_clip_file()
        if not path.exists():
            write_clip(path, self.clip)

    def after_step(self, trainer: Trainer) -> None:
        if not (trainer.is_main and trainer.due(self.every)):
            return
        if self.targets is None:
            nets = {"G_AB": trainer.nets["G_AB"]}
            wanted: list[tuple[str, torch.nn.Module]] = [("", nets["G_AB"])]
        else:
            nets = {"G": trainer.nets["G"]}
            wanted = [(name, FixedTarget(nets["G"], k)) for name, k in self.targets]
        with eval_mode(nets):
            outs = [(name, translate_clip(net, self.clip, trainer.device)) for name, net in wanted]
        try:
            frames = np.concatenate([f for _, f in outs], axis=2)  # side by side
            write_clip(trainer.run_dir / layout.preview_file(trainer.step, layout.CLIP), frames)
        except OSError as exc:  # a preview is not worth stopping the run for
            note(trainer, f"{trainer.run_dir / layout.PREVIEWS}: could not write the temporal preview ({exc})")
        errors = {name: float(np.nanmean(warping_errors(f, self.clip))) for name, f in outs}
        for name, error in errors.items():
            if name:
                trainer.put_metric(f"temporal/warp_error/{name}", error)
        trainer.put_metric("temporal/warp_error", float(np.mean(list(errors.values()))))
        trainer.put_metric("temporal/warp_error_source", self.source_error)
