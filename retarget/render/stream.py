"""The streaming core of render: a video through source, translate and sink stages into a file.

:func:`translate_video` takes the translate stage as a function (a generator's
:class:`~retarget.render.translate.Translator`, or a whole stage of items: the face swap)
and the aligner, and writes the output under a temporary name renamed at the end;
:func:`check_paths` and :func:`check_options` are the checks before any work. The stages
are described in :mod:`retarget.render.render`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from retarget.atomic import atomic_file, clean_stale_temps, write_errors
from retarget.config import RenderConfig
from retarget.device import precision_name
from retarget.errors import RetargetError
from retarget.faces.aligner import Aligner
from retarget.geometry import FRAME_MODES, Cut, frame_cut, square_cut
from retarget.progress import console, make_progress
from retarget.faces.paste import FOREHEAD
from retarget.render.compose import Composer, face_paste
from retarget.render.stages import run_stages
from retarget.render.sink import Sink
from retarget.render.source import CutAligner, Decoded, Source, batches
from retarget.render.translate import FitTranslate, translate_items
from retarget.video.reader import VideoInfo, probe
from retarget.video.writer import VideoWriter

#: Containers the H.264 output can be written to.
OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")


@dataclass
class RenderSummary:
    """What :func:`render` wrote."""

    output: str
    frames: int
    duration: float  # seconds
    width: int
    height: int
    audio: list[str] = field(default_factory=list)  # "copy" / "transcode" per audio stream
    audio_text: str = "no audio"
    model: str = ""
    direction: str = "a2b"  # a pair's a2b / b2a; a multi-domain run's "FROM->TO"
    align: str = "none"
    faces: int = 0  # frames where a face was found and translated (face mode)
    seconds: float = 0.0  # wall time
    fps: float = 0.0  # frames per second end to end
    stabilize: float = 0.0  # --stabilize strength used (0 = off)
    frame: str = ""  # align none: "full" (whole frames) or "square" (centre squares); "" in face mode
    scale: int = 0  # align none: short side (px) of the picture the generator saw
    precision: str = ""  # the generator's arithmetic: "bf16", "fp16" or "fp32" ("" = not a Translator)
    translated: int = 0  # frames inside --start/--end (every frame without them); the others were copied
    window: str = ""  # "2.00-5.00 s" with --start/--end, else ""


def check_paths(cfg: RenderConfig) -> tuple[Path, Path]:
    """Validate input/output paths before any work; returns (input, output) paths.

    Raises:
        RetargetError: OUT is IN, OUT exists without ``overwrite``, OUT is a folder or has
            a container H.264 cannot go in.
    """
    src, out = Path(cfg.input), Path(cfg.output)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise RetargetError(f"{out}: unsupported output format {out.suffix or '(none)'}; use .mp4, .mkv or .mov")
    if src.exists() and out.exists() and src.resolve() == out.resolve():
        raise RetargetError(f"{out}: output is the input file; choose another output name")
    if out.is_dir():
        raise RetargetError(f"{out}: is a folder; give an output file name")
    if out.exists() and not cfg.overwrite:
        raise RetargetError(f"{out}: already exists (pass --overwrite to replace it)")
    return src, out


def check_options(cfg: RenderConfig, info: VideoInfo) -> None:
    """Render options that depend on each other or on the input; a one-line RetargetError before any work."""
    if cfg.mask_erode and cfg.mask_dilate:
        raise RetargetError(
            f"--mask-erode {cfg.mask_erode} --mask-dilate {cfg.mask_dilate}: give one of them (the mask shrinks or grows)"
        )
    if cfg.start is not None and cfg.end is not None and cfg.start >= cfg.end:
        raise RetargetError(f"--start {cfg.start:g} --end {cfg.end:g}: the start must come before the end")
    if cfg.start is not None and info.duration > 0 and cfg.start >= info.duration:
        raise RetargetError(f"--start {cfg.start:g}: beyond the end of {info.path} ({info.duration:.2f} s)")


def _window(cfg: RenderConfig) -> str:
    if cfg.start is None and cfg.end is None:
        return ""
    return f"{cfg.start or 0:.2f}-" + ("end" if cfg.end is None else f"{cfg.end:.2f} s")


def _cut(cfg: RenderConfig, info: VideoInfo, frame: str, side: int, crop: Optional[tuple[int, int, int, int]]) -> Cut:
    """The ``--align none`` cut of every frame; RetargetError for bad options or a crop outside the frame."""
    if frame not in FRAME_MODES:
        raise RetargetError(f"--frame {frame}: choose full or square")
    if side < 4:
        raise RetargetError(f"--scale {side}: must be at least 4 px")
    if cfg.tile is not None and cfg.tile < 16:
        raise RetargetError(f"--tile {cfg.tile}: must be at least 16 px")
    if cfg.upscale not in ("bilinear", "detail"):
        raise RetargetError(f"--upscale {cfg.upscale}: choose bilinear or detail")
    try:
        return frame_cut(frame, info.width, info.height, side, crop)
    except ValueError as exc:
        raise RetargetError(f"{info.path}: the run's --{exc}") from None


def _output_size(cfg: RenderConfig, info: VideoInfo, model: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of the written pictures, ``model`` being the translation's size."""
    out_w, out_h = model if cfg.output_size == "model" else (info.width, info.height)
    if cfg.side_by_side:
        left_w = out_w if cfg.output_size == "source" else max(1, round(info.width * out_h / info.height))
        out_w = left_w + out_w
    return out_w, out_h


def _stages(
    cfg: RenderConfig,
    info: VideoInfo,
    cut: Cut,
    size: int,
    aligner: Optional[Aligner],
    scene_threshold: float,
    crop: Optional[tuple[int, int, int, int]],
    enhance: Optional[Callable[[list[np.ndarray]], list[np.ndarray]]] = None,
    forehead: float = FOREHEAD,
) -> tuple[Source, Composer, Any]:
    """The source stage, the composer and the stabilizer (or None) of :func:`translate_video`."""
    stabilizer = None
    if cfg.stabilize > 0:  # flow in the source stage (overlaps the generator), blend in the sink (in order)
        from retarget.render.stabilize import Stabilizer

        stabilizer = Stabilizer(cfg.stabilize)
    paste = face_paste(cfg, enhance, forehead) if aligner is not None else None
    fallback = cut if aligner is None else square_cut(info.width, info.height, size, crop)
    compose = Composer(fallback, cfg.output_size, cfg.side_by_side, cfg.upscale, paste)
    source = Source(
        aligner or CutAligner(cut),
        face=aligner is not None,
        stabilizer=stabilizer,
        scene_threshold=scene_threshold,
        start=cfg.start,
        end=cfg.end,
    )
    return source, compose, stabilizer


def translate_video(
    cfg: RenderConfig,
    translate: Callable[[Sequence[np.ndarray]], list[np.ndarray]],
    size: int,
    *,
    info: Optional[VideoInfo] = None,
    aligner: Optional[Aligner] = None,
    scene_threshold: float = 0.5,
    crop: Optional[tuple[int, int, int, int]] = None,
    frame: Optional[str] = None,
    scale: Optional[int] = None,
    encoder_threads: int = 0,
    quiet: bool = False,
    enhance: Optional[Callable[[list[np.ndarray]], list[np.ndarray]]] = None,
    transform: Optional[Callable[[list], list]] = None,
    forehead: float = FOREHEAD,
) -> RenderSummary:
    """The streaming core of :func:`render`, with the generator (and aligner) given.

    Args:
        cfg: render options (input, output, frame, scale, tile, upscale, output_size,
            mask, feather, color_match, batch_size, crf, side_by_side, overwrite,
            stabilize are used here).
        translate: list of equal-sized ``h x w x 3`` uint8 RGB pictures -> list of the same
            (sides multiples of 4; :class:`~retarget.render.translate.FitTranslate` pads).
        size: face crop side, and the square side of ``frame="square"`` (px).
        info: :func:`probe` of the input (probed when None).
        aligner: face mode when given: ``aligner(image, time)`` returns an AlignedFace
            (``matrix``, ``landmarks``, ``crop``) or None; ``aligner.reset()`` at scene cuts.
        scene_threshold: scene-cut threshold for resetting the aligner (and the
            stabilizer, with ``cfg.stabilize`` > 0).
        crop: ``--align none``: extract's ``--crop`` region ``(x, y, w, h)`` the training
            data were cut from; None = the whole frame.
        frame: ``--align none``: ``"full"`` translates the whole frame (or ``crop``) with its
            short side at ``scale``; ``"square"`` the centre square at ``scale``; ``cfg.frame``
            wins; None = ``"square"``.
        scale: see ``frame``; ``cfg.scale`` wins; None = ``size``.
        encoder_threads: libx264 threads; 0 lets it choose.
        quiet: no final line.
        enhance: face mode: translated crops -> larger crops, before the paste (``--enhancer``).
        transform: the translate stage itself, a batch of :class:`~retarget.render.source.Item`
            -> the same batch with ``result`` set, in place of ``translate`` (the face swap,
            :mod:`retarget.render.swap`); ``translate`` is then not called.
        forehead: face mode: how far above the brows the paste's mask reaches
            (:func:`retarget.faces.paste.face_outline`).

    Returns:
        :class:`RenderSummary`.
    """
    src, out = check_paths(cfg)
    info = info or probe(src)
    check_options(cfg, info)
    clean_stale_temps(out.parent, quiet=quiet)
    if not 0.0 <= cfg.stabilize <= 1.0:
        raise RetargetError(f"--stabilize must be between 0 and 1, got {cfg.stabilize}")
    frame = cfg.frame or frame or "square"
    cut = _cut(cfg, info, frame, int(cfg.scale or scale or size), crop if aligner is None else None)
    source, compose, stabilizer = _stages(cfg, info, cut, size, aligner, scene_threshold, crop, enhance, forehead)
    batch_size = max(1, int(cfg.batch_size))
    fit = FitTranslate(translate, tile=cfg.tile, batch=batch_size)
    out_size = _output_size(cfg, info, (size, size) if aligner is not None else cut.size)
    started = time.perf_counter()
    with write_errors(out), make_progress("frames") as progress:
        out.parent.mkdir(parents=True, exist_ok=True)
        task = progress.add_task("render", total=info.frame_count or None)
        with atomic_file(out) as tmp:
            writer = VideoWriter(tmp, *out_size, info.time_base, info.fps, crf=cfg.crf, audio_from=src,
                                 threads=encoder_threads)  # fmt: skip
            with writer:
                sink = Sink(writer.write, compose, stabilizer, functools.partial(progress.advance, task))
                decoded = Decoded(src, info)
                items = source.items(decoded, lambda: decoded.bad_frames)
                stage = transform or functools.partial(translate_items, translate=fit)
                run_stages(batches(items, batch_size), stage, sink, depth=2)
            if not source.inside:  # the container did not say how long the video is
                raise RetargetError(f"--start {cfg.start or 0:g}: no frame of {src} lies between --start and --end")
    summary = _summary(cfg, out, writer.summary, source, time.perf_counter() - started)
    summary.align, summary.frame = ("face", "") if aligner is not None else ("none", frame)
    summary.scale = 0 if aligner is not None else min(cut.size)
    summary.precision = precision_name(amp) if (amp := getattr(translate, "amp", None)) else ""
    if not quiet:
        _print_summary(summary)
    return summary


def _summary(cfg: RenderConfig, out: Path, written: Any, source: Source, seconds: float) -> RenderSummary:
    """What the writer wrote and the source counted, as a :class:`RenderSummary`."""
    return RenderSummary(
        output=str(out),
        frames=written.frames,
        duration=written.duration,
        width=written.width,
        height=written.height,
        audio=list(written.audio),
        audio_text=written.audio_text,
        direction=cfg.direction,
        faces=source.faces,
        seconds=seconds,
        fps=written.frames / seconds if seconds > 0 else 0.0,
        stabilize=float(cfg.stabilize),
        translated=source.inside,
        window=_window(cfg),
    )


def _print_summary(summary: RenderSummary) -> None:
    """The final line of a render."""
    note = f", face found in {summary.faces}" if summary.align == "face" else ""
    note += f", whole frames at {summary.scale} px" if summary.frame == "full" else ""
    note += f", stabilized (strength {summary.stabilize:g})" if summary.stabilize > 0 else ""
    note += f", {summary.translated} translated ({summary.window}), the rest copied" if summary.window else ""
    console.print(
        f"wrote {summary.output}: {summary.frames} frames{note}, {summary.duration:.2f} s, "
        f"{summary.width}x{summary.height}, {summary.audio_text} "
        f"({summary.fps:.1f} frames/s{', ' + summary.precision if summary.precision else ''})",
        markup=False,
    )
