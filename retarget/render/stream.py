"""The streaming core of render: a checked :class:`Plan` through source, translate and sink stages into a file.

A render is planned once (:mod:`retarget.render.plan`: a trained run's, a multi-domain
run's, a whole-frame run's or a face swap's plan), every option checked there, and
:func:`stream` runs the plan without checking anything again. :func:`translate_video` is
the same core for a library caller's own generator: it plans with :func:`prepare` and
streams. :func:`check_paths` and :func:`check_options` are the checks before any work,
each called once per render. The stages are described in :mod:`retarget.render.render`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from rich.markup import escape

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
from retarget.render.source import CutAligner, Decoded, Lanes, Source, batches
from retarget.options import check_config
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

    The output is checked by the rule every command shares (:func:`retarget.outputs.check_output`):
    never an input (the video, the run, the enhancer, the refiner, the face reference, the
    target's faces) nor inside one or another command's folder, replaced only with ``overwrite``.

    Raises:
        RetargetError: OUT is empty, is IN or lies inside an input, exists without
            ``overwrite``, is a folder, cannot be written there, or has a container H.264
            cannot go in.
    """
    from retarget.outputs import check_output

    inputs = (cfg.input, cfg.model, cfg.enhancer, cfg.refiner, cfg.face_ref, cfg.target_faces)
    out = check_output(
        cfg.output, kind="video", inputs=inputs, overwrite=cfg.overwrite, command="render", option="--output"
    )
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise RetargetError(f"{out}: unsupported output format {out.suffix or '(none)'}; use .mp4, .mkv or .mov")
    return Path(cfg.input), out


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


@dataclass
class Plan:
    """A render resolved and checked once: everything :func:`stream` needs, nothing to check.

    Built by :mod:`retarget.render.plan` (or :func:`translate_video`); the mode decides
    the translate stage and the aligner, the streaming core is the same for all.
    """

    cfg: RenderConfig  # the options, already checked
    src: Path  # the input video
    out: Path  # the output file, written under a temporary name and renamed
    info: VideoInfo  # the input's probe
    size: int  # face crop side (face mode), or the square side of frame "square" (px)
    stage: Callable[[list], list]  # the translate stage: a batch of Items -> the same, ``result`` set
    cut: Cut  # align none: the cut of every frame; face mode: the square of a frame without a face
    aligner: Optional[Aligner] = None  # face mode when set: ``aligner(image, time)`` -> AlignedFace or None
    frame: str = ""  # align none: "full" or "square"; "" in face mode
    scene_threshold: float = 0.5  # scene cuts reset the aligner and the stabilizer
    enhance: Optional[Callable[[list[np.ndarray]], list[np.ndarray]]] = None  # face mode: crops -> sharper crops
    forehead: float = FOREHEAD  # face mode: the paste mask's reach above the brows
    encoder_threads: int = 0  # libx264 threads; 0 lets it choose
    precision: str = ""  # the generator's arithmetic ("bf16", "fp16", "fp32"; "" = no generator)
    model: str = ""  # the run folder, or the swap's face dataset
    direction: str = "a2b"  # "a2b", "b2a", a multi-domain run's "FROM->TO", or "swap"
    faceless_ok: bool = False  # face mode: a video with no face anywhere is copied (else refused, nothing written)
    notes: Optional[Callable[[], list[str]]] = None  # lines said after the summary (what the render saw)
    finish: Optional[Callable[[Any], None]] = None  # face mode: each face's last step, stabilized, before the paste


@dataclass(frozen=True)
class Prepared:
    """The checks every render makes first, once: paths, the input's probe, options that depend on each other."""

    src: Path
    out: Path
    info: VideoInfo


def prepare(cfg: RenderConfig, info: Optional[VideoInfo] = None) -> Prepared:
    """Check ``cfg``'s ranges and choices, its paths, the input and its interplay; once per render.

    ``info``: the input's :func:`probe` when the caller already made it.

    Raises:
        RetargetError: an option outside its range or choices (named), bad paths, an input
            that is missing, no video or a still image, or options that contradict each other.
    """
    check_config(cfg)  # the ranges and choices the CLI enforces, for library callers
    src, out = check_paths(cfg)
    info = info or probe(src)  # RetargetError for missing/unreadable/no video stream/a still image
    check_options(cfg, info)
    return Prepared(src, out, info)


def whole_frame_cut(
    cfg: RenderConfig, info: VideoInfo, frame: str, side: int, crop: Optional[tuple[int, int, int, int]]
) -> Cut:
    """The ``--align none`` cut of every frame: ``frame`` ("full" or "square") at short side ``side``.

    Raises:
        RetargetError: a run's ``--crop`` region outside this video's frame.
    """
    if frame not in FRAME_MODES:
        raise RetargetError(f"--frame {frame}: choose {' or '.join(FRAME_MODES)}")
    if side < 4:
        raise RetargetError(f"--scale {side}: must be at least 4 px")
    try:
        return frame_cut(frame, info.width, info.height, side, crop)
    except ValueError as exc:
        raise RetargetError(f"{info.path}: the run's --{exc}") from None


def _window(cfg: RenderConfig) -> str:
    if cfg.start is None and cfg.end is None:
        return ""
    return f"{cfg.start or 0:.2f}-" + ("end" if cfg.end is None else f"{cfg.end:.2f} s")


def _output_size(cfg: RenderConfig, info: VideoInfo, model: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of the written pictures, ``model`` being the translation's size."""
    out_w, out_h = model if cfg.output_size == "model" else (info.width, info.height)
    if cfg.side_by_side:
        left_w = out_w if cfg.output_size == "source" else max(1, round(info.width * out_h / info.height))
        out_w = left_w + out_w
    return out_w, out_h


def _stages(plan: Plan) -> tuple[Source, Composer, Any]:
    """The source stage, the composer and the stabilizer (or None) of :func:`stream`."""
    cfg = plan.cfg
    stabilizer = None
    if cfg.stabilize > 0:  # flow in the source stage (overlaps the generator), blend in the sink (in order)
        from retarget.render.stabilize import Stabilizer

        stabilizer = Lanes(functools.partial(Stabilizer, cfg.stabilize))  # one per face lane
    paste = face_paste(cfg, plan.enhance, plan.forehead) if plan.aligner is not None else None
    compose = Composer(plan.cut, cfg.output_size, cfg.side_by_side, cfg.upscale, paste)
    source = Source(
        plan.aligner or CutAligner(plan.cut),
        face=plan.aligner is not None,
        stabilizer=stabilizer,
        scene_threshold=plan.scene_threshold,
        start=cfg.start,
        end=cfg.end,
    )
    return source, compose, stabilizer


def stream(plan: Plan, quiet: bool = False) -> RenderSummary:
    """Run a checked :class:`Plan`: decode, translate and encode in overlapped stages into ``plan.out``.

    Nothing is checked here (the plan was); the output appears only when complete.

    Returns:
        :class:`RenderSummary`; unless ``quiet``, its line is printed.
    """
    cfg, src, out, info = plan.cfg, plan.src, plan.out, plan.info
    clean_stale_temps(out.parent, quiet=quiet)
    source, compose, stabilizer = _stages(plan)
    face = plan.aligner is not None
    out_size = _output_size(cfg, info, (plan.size, plan.size) if face else plan.cut.size)
    started = time.perf_counter()
    with write_errors(out), make_progress("frames") as progress:
        out.parent.mkdir(parents=True, exist_ok=True)
        task = progress.add_task("render", total=info.frame_count or None)
        with atomic_file(out) as tmp:
            writer = VideoWriter(tmp, *out_size, info.time_base, info.fps, crf=cfg.crf, audio_from=src,
                                 threads=plan.encoder_threads)  # fmt: skip
            with writer:
                sink = Sink(writer.write, compose, stabilizer, functools.partial(progress.advance, task), plan.finish)
                decoded = Decoded(src, info)
                items = source.items(decoded, lambda: decoded.bad_frames)
                stage = functools.partial(every_face, stage=plan.stage)
                run_stages(batches(items, max(1, int(cfg.batch_size))), stage, sink, depth=2)
            if not source.inside:  # the container did not say how long the video is
                window = " ".join(f"--{k} {v:g}" for k, v in (("start", cfg.start), ("end", cfg.end)) if v is not None)
                raise RetargetError(f"{window or '--start 0'}: no frame of {src} lies in that window")
            if face and not source.faces and not plan.faceless_ok:  # the output would be the input
                raise RetargetError(f"{src}: no face found in any frame, so nothing was translated (face mode)")
    summary = _summary(cfg, out, writer.summary, source, time.perf_counter() - started)
    summary.align, summary.frame = ("face", "") if face else ("none", plan.frame)
    summary.scale = 0 if face else min(plan.cut.size)
    summary.precision = plan.precision
    summary.model, summary.direction = plan.model, plan.direction
    if not quiet:
        _print_summary(summary)
        for line in decoded.warnings():
            console.print(f"[yellow]warning:[/] {escape(line)}")
        for line in plan.notes() if plan.notes is not None else []:
            console.print(line, markup=False)
    return summary


def every_face(batch: list, stage: Callable[[list], list]) -> list:
    """``stage`` on every face of ``batch``'s frames (each item and its ``more``) at once; returns ``batch``."""
    stage([face for item in batch for face in item.faces()])
    return batch


def generator_stage(translate: Callable[[Sequence[np.ndarray]], list[np.ndarray]], cfg: RenderConfig) -> Callable:
    """The translate stage of a generator: batches of items through ``translate``, padded, in ``--tile`` tiles."""
    fit = FitTranslate(translate, tile=cfg.tile, batch=max(1, int(cfg.batch_size)))
    return functools.partial(translate_items, translate=fit)


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
) -> RenderSummary:
    """Render ``cfg.input`` with a library caller's own generator: plan once (:func:`prepare`), then :func:`stream`.

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
        scene_threshold: scene-cut threshold for resetting the aligner (and the stabilizer).
        crop: ``--align none``: extract's ``--crop`` region ``(x, y, w, h)``; None = the whole frame.
        frame: ``--align none``: ``"full"`` (whole frame, short side ``scale``) or
            ``"square"`` (centre square); ``cfg.frame`` wins; None = ``"square"``.
        scale: see ``frame``; ``cfg.scale`` wins; None = ``size``.
        encoder_threads: libx264 threads; 0 lets it choose.
        quiet: no final line.
        enhance: face mode: translated crops -> larger crops, before the paste (``--enhancer``).

    Returns:
        :class:`RenderSummary`.
    """
    ready = prepare(cfg, info)
    frame = cfg.frame or frame or "square"
    if aligner is None:
        cut = whole_frame_cut(cfg, ready.info, frame, int(cfg.scale or scale or size), crop)
    else:
        cut = square_cut(ready.info.width, ready.info.height, size, crop)
    plan = Plan(
        cfg, ready.src, ready.out, ready.info, size, generator_stage(translate, cfg), cut,
        aligner=aligner, frame="" if aligner is not None else frame, scene_threshold=scene_threshold,
        enhance=enhance, encoder_threads=encoder_threads, faceless_ok=True,
        precision=precision_name(amp) if (amp := getattr(translate, "amp", None)) else "",
        direction=cfg.direction,
    )  # fmt: skip
    return stream(plan, quiet=quiet)


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
