"""``retarget demo``: the whole pipeline on two synthetic domains, measured.

The demo writes, into ``cfg.out``::

    videos/A/A_00.mp4 ...      domain A clips (warm ellipse on a gradient, with audio)
    videos/B/B_00.mp4 ...      domain B clips (cool star on stripes, with audio)
    videos/heldout_00.mp4      an A clip the model never sees, to translate
    data/A, data/B             their datasets (``retarget extract``)
    run/                       the trained run (``retarget train``, tiny preset)
    translated.mp4             the held-out clip rendered A -> B (``retarget render``)
    side_by_side.mp4           input | translation | the same motion drawn as B
    preview.png                stills of the three rows above
    summary.json               what was measured, and how long each stage took

and prints a short summary. Success means the translation looks like B (its mean
colour is closer to B's than to A's) while it moves like A (the shape's centroid
track correlates with the input's).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from retarget.atomic import atomic_file
from retarget.config import DemoConfig, ExtractConfig, LossConfig, TrainConfig, model_preset
from retarget.options import check_config
from retarget.outputs import DEMO_MARKER, check_output
from retarget.demo import synth
from retarget.errors import RetargetError
from retarget.progress import console

MARKER = DEMO_MARKER  # the file that marks a demo folder (retarget.outputs recognises it)
#: Clips per domain and their lengths; sized so the whole demo runs in minutes on 2 cores.
CLIPS, FRAMES, HELDOUT_FRAMES, FPS = 4, 48, 60, 25.0


@dataclass(frozen=True)
class DemoSummary:
    """What the demo wrote and measured.

    Colour distances are Euclidean distances between mean RGB colours (0-441, in
    8-bit units); ``motion_correlation`` is :func:`synth.track_correlation` of the
    shape's centroid track in the input and in the translation (-1..1, 1 = same motion).
    """

    out: str
    run: str
    translated: str
    side_by_side: str
    preview: str
    color_a: list[float]  # mean RGB of the A training clips
    color_b: list[float]  # mean RGB of the B training clips
    color_before: list[float]  # mean RGB of the held-out input
    color_after: list[float]  # mean RGB of its translation
    dist_before_to_a: float
    dist_before_to_b: float
    dist_after_to_a: float
    dist_after_to_b: float
    motion_correlation: float  # input track vs translated track
    motion_error: float  # mean distance between the tracks, fraction of the frame side
    steps: int
    size: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def looks_like_b(self) -> bool:
        """The translation's colour is nearer B's than A's."""
        return self.dist_after_to_b < self.dist_after_to_a

    @property
    def moves_like_a(self) -> bool:
        """The translation's shape follows the input's track (correlation > 0.8)."""
        return self.motion_correlation > 0.8


def _prepare(given: str | Path, overwrite: bool) -> Path:
    """Make ``given`` an empty demo folder (returned as a Path); never delete a folder the demo did not make.

    :func:`retarget.outputs.check_output` lets through only a missing or empty folder or an
    earlier demo, in a place that takes files; an earlier demo is replaced only with ``overwrite``.
    """
    out = check_output(given, kind="demo", overwrite=overwrite, reuse=True)  # -o "" is refused, not read as "."
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RetargetError(f"{out}: holds an earlier demo; pass overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by retarget demo; the whole folder is replaced by the next demo\n")
    return out


def _stage(name: str, timings: dict[str, float], label: str = ""):
    """Time a stage into ``timings[name]`` and announce it."""

    class _Timer:
        def __enter__(self) -> None:
            console.print(f"[bold]demo[/]: {label or name} ...")
            self.t0 = time.perf_counter()

        def __exit__(self, *exc: Any) -> None:
            timings[name] = round(time.perf_counter() - self.t0, 2)

    return _Timer()


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    scale = max(img.shape[0] / 300.0, 0.35)
    org = (int(6 * scale / 0.5), int(20 * scale / 0.5))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def preview_grid(rows: list[tuple[str, np.ndarray]], columns: int = 6, scale: int = 3) -> np.ndarray:
    """Stills of several aligned clips: one labelled row per clip, ``columns`` time points.

    Args:
        rows: (label, ``T x H x W x 3`` uint8 RGB) per row; all with the same ``H x W``.
        columns: frames per row, evenly spaced over the shortest clip.
        scale: integer upscaling (cubic) so small demo frames read well.

    Returns:
        ``H' x W' x 3`` uint8 RGB, white gaps between stills.
    """
    t = min(len(clip) for _, clip in rows)
    picks = np.linspace(0, t - 1, columns).round().astype(int)
    gap = 4
    out_rows = []
    for label, clip in rows:
        stills = []
        for i in picks:
            big = cv2.resize(clip[i], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            stills.append(big)
            stills.append(np.full((big.shape[0], gap, 3), 255, np.uint8))
        row = np.concatenate(stills[:-1], axis=1)
        row[:, : stills[0].shape[1]] = _label(row[:, : stills[0].shape[1]], label)
        out_rows.append(row)
        out_rows.append(np.full((gap, row.shape[1], 3), 255, np.uint8))
    return np.concatenate(out_rows[:-1], axis=0)


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_file(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise RetargetError(f"{path}: could not write the image")


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.linalg.norm(a - b)), 2)


def demo(cfg: DemoConfig) -> DemoSummary:
    """Build two synthetic domains, extract, train (tiny preset), render, and measure.

    Args:
        cfg: ``out`` folder (replaced when it holds an earlier demo and ``overwrite``),
            ``seed``, ``steps`` of training and frame ``size`` (px, even, >= 32).

    Returns:
        :class:`DemoSummary`; also written to ``<out>/summary.json``.

    Raises:
        RetargetError: an option outside its range (named), ``out`` is a non-demo folder, or a stage fails on its input.
    """
    from retarget.pipeline import extract_domains, render_with, train_on

    if cfg.size < 32 or cfg.size % 2:
        raise RetargetError(f"demo size {cfg.size}: must be even and at least 32 px")
    check_config(cfg)  # the other ranges the CLI enforces, for library callers
    out = _prepare(cfg.out, cfg.overwrite)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    with _stage("synth", timings, "synthesise videos"):
        kw = dict(seed=cfg.seed, size=cfg.size, fps=FPS)
        clips_a = synth.make_domain(out / "videos" / "A", "A", clips=CLIPS, frames=FRAMES, **kw)
        clips_b = synth.make_domain(out / "videos" / "B", "B", clips=CLIPS, frames=FRAMES, **kw)
        held = synth.make_domain(
            out / "videos", "A", clips=1, frames=HELDOUT_FRAMES, first=CLIPS, prefix="heldout", **kw
        )[0]

    with _stage("extract", timings):
        videos = {"A": [c.path for c in clips_a], "B": [c.path for c in clips_b]}
        data = extract_domains(videos, out, ExtractConfig(videos=(), size=cfg.size, workers=2))

    run_dir = out / "run"
    with _stage("train", timings, f"train ({cfg.steps} steps, tiny preset, {cfg.size} px)"):
        train_on(data, run_dir, _train_config(cfg))

    translated = out / "translated.mp4"
    with _stage("render", timings):
        render_with(run_dir, held.path, translated)

    with _stage("measure", timings):
        measured = _measure(out, cfg, held, clips_a, clips_b, translated)
    timings["total"] = round(time.perf_counter() - t_start, 2)

    summary = DemoSummary(
        out=str(out),
        run=str(run_dir),
        translated=str(translated),
        steps=cfg.steps,
        size=cfg.size,
        timings=timings,
        **measured,
    )
    with atomic_file(out / "summary.json") as tmp:
        record = asdict(summary) | {"looks_like_b": summary.looks_like_b, "moves_like_a": summary.moves_like_a}
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    _print(summary)
    return summary


def _train_config(cfg: DemoConfig) -> TrainConfig:
    """The demo's training options (the paths are filled in by :func:`retarget.pipeline.train_on`)."""
    return TrainConfig(
        "",
        "",
        preset="tiny",
        model=model_preset("tiny", model="recycle", size=cfg.size),
        loss=LossConfig(),
        steps=cfg.steps,
        # B's stripes run one way only; mirrored crops would teach a criss-cross texture
        flip=False,
        seed=cfg.seed,
        checkpoint_every=cfg.steps,
        preview_every=max(cfg.steps // 3, 1),
        log_every=max(cfg.steps // 60, 1),
        # The tiny networks gain little from a second thread (~105 vs ~90 ms a step on
        # 2 cores), but on a busy machine 2 threads can be 6x slower than 1.
        threads=1,
    )


def _measure(out: Path, cfg: DemoConfig, held: Any, clips_a: list, clips_b: list, translated: Path) -> dict[str, Any]:
    """Compare the translation with the input, the domains' colours and B rendered with the same motion.

    Writes ``side_by_side.mp4`` and ``preview.png``; returns the :class:`DemoSummary` fields it measured.
    """
    frames_in = synth.read_frames(held.path)
    frames_out = synth.read_frames(translated)
    n = min(len(frames_in), len(frames_out))
    if n == 0:
        raise RetargetError(f"{translated}: the render wrote no frames")
    frames_in, frames_out = frames_in[:n], frames_out[:n]
    if frames_out.shape[1:3] != frames_in.shape[1:3]:
        frames_out = np.stack(
            [cv2.resize(f, frames_in.shape[2:0:-1], interpolation=cv2.INTER_AREA) for f in frames_out]
        )
    reference = synth.render_clip("B", held.motion, cfg.size, seed=held.seed)[:n]
    color_a = synth.mean_rgb(np.concatenate([synth.read_frames(c.path) for c in clips_a]))
    color_b = synth.mean_rgb(np.concatenate([synth.read_frames(c.path) for c in clips_b]))
    before, after = synth.mean_rgb(frames_in), synth.mean_rgb(frames_out)
    track_in, track_out = synth.object_centroids(frames_in), synth.object_centroids(frames_out)

    side = np.concatenate([frames_in, frames_out, reference], axis=2)
    side_path = synth.write_video(
        out / "side_by_side.mp4", side, fps=FPS, audio=synth.tone(HELDOUT_FRAMES / FPS, held.seed, "A")
    )
    preview = out / "preview.png"
    _write_png(
        preview,
        preview_grid([("input A", frames_in), ("A -> B", frames_out), ("B, same motion", reference)]),
    )
    return dict(
        side_by_side=str(side_path),
        preview=str(preview),
        color_a=[round(v, 2) for v in color_a.tolist()],
        color_b=[round(v, 2) for v in color_b.tolist()],
        color_before=[round(v, 2) for v in before.tolist()],
        color_after=[round(v, 2) for v in after.tolist()],
        dist_before_to_a=_dist(before, color_a),
        dist_before_to_b=_dist(before, color_b),
        dist_after_to_a=_dist(after, color_a),
        dist_after_to_b=_dist(after, color_b),
        motion_correlation=round(synth.track_correlation(track_in, track_out), 4),
        motion_error=round(float(np.linalg.norm(track_in - track_out, axis=1).mean()), 4),
    )


def _print(s: DemoSummary) -> None:
    ok = lambda flag: "[green]yes[/]" if flag else "[red]no[/]"  # noqa: E731
    console.print(
        f"[bold]demo done[/] in {s.timings['total']:.0f} s  "
        + "  ".join(f"{k} {v:.1f}s" for k, v in s.timings.items() if k != "total")
    )
    console.print(
        f"  colour distance to A / to B: input {s.dist_before_to_a:.0f} / {s.dist_before_to_b:.0f}, "
        f"translation {s.dist_after_to_a:.0f} / {s.dist_after_to_b:.0f}  -> looks like B: {ok(s.looks_like_b)}"
    )
    console.print(
        f"  motion: centroid-track correlation {s.motion_correlation:.3f}, mean offset "
        f"{100 * s.motion_error:.1f}% of the frame  -> moves like A: {ok(s.moves_like_a)}"
    )
    console.print(f"  see {s.preview} and {s.side_by_side}")
