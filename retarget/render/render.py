"""``retarget render``: translate a whole video with a trained run, keeping sound and timing.

Frames stream through overlapped stages (:func:`retarget.render.stages.run_stages`), each
its own module and testable on arrays:

1. **source** (:mod:`retarget.render.source`): decode (rotation applied) and prepare the
   network input: the aligned face crop (face mode, reset at scene cuts as extract does),
   or, with ``--align none``, the frame as the run's training data saw it: the whole frame
   (or its ``--crop`` region) at the training scale (``--frame full``), or the centre
   square (``--frame square``, runs from before full frames); with ``--stabilize``, also
   the optical flow between consecutive inputs (:mod:`retarget.render.stabilize`);
2. **translate** (:mod:`retarget.render.translate`): batches through the generator
   (``G_AB`` for a2b, ``G_BA`` for b2a), reflect-padded to the sides it needs and cropped
   back, in overlapping tiles with ``--tile``;
3. **sink** (:mod:`retarget.render.sink`): with ``--stabilize``, blend each translation, in
   order, with the previous one warped along that flow; **compose**
   (:mod:`retarget.render.compose`) the output picture (face pasted along its mask, cut
   upscaled into its region, ``--side-by-side``) and encode it with
   :class:`~retarget.video.writer.VideoWriter`, which carries each frame's timestamp and
   the source's audio.

The output is written under a temporary name beside OUT and renamed at the end.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from retarget.atomic import atomic_file, clean_stale_temps, write_errors
from retarget.config import FaceConfig, RenderConfig
from retarget.options import check_config
from retarget.device import precision_name, resolve_device
from retarget.errors import RetargetError
from retarget.faces.aligner import Aligner
from retarget.geometry import FRAME_MODES, Cut, frame_cut, square_cut
from retarget.progress import console, make_progress
from retarget.render.compose import Composer, face_paste
from retarget.render.stages import run_stages
from retarget.render.sink import Sink
from retarget.render.source import CutAligner, Decoded, Source, batches
from retarget.render.translate import FitTranslate, Translator, translate_items
from retarget.render.direction import pick_direction
from retarget.run import load_networks, open_run
from retarget.video.reader import VideoInfo, probe
from retarget.video.writer import VideoWriter

#: Containers the H.264 output can be written to.
OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
#: Training resizes frames to ``round(size * LOAD_FACTOR)`` before its random crops unless
#: ``--load-size`` says otherwise (:func:`retarget.train.data.default_load_size`); the scale
#: of whole-frame renders for runs that did not record theirs.
LOAD_FACTOR = 1.12


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


def render(cfg: RenderConfig) -> RenderSummary:
    """Translate ``cfg.input`` into ``cfg.output`` with a trained run.

    The run is ``cfg.model`` (run folder or weights file) or the newest under
    ``./models``, at its newest checkpoint or that of ``cfg.step``; ``cfg.direction`` picks
    ``G_AB`` (a2b) or ``G_BA`` (b2a), ``cfg.to_domain`` / ``cfg.from_domain`` a direction by
    domain name (a multi-domain run's target: :mod:`retarget.render.direction`). The
    alignment mode, frame mode, face options, crop region and scale default to those of
    the run's source-domain training data (A for a2b, B for b2a, the ``from_domain`` of a
    multi-domain run): a run trained on whole frames (``frame="full"``) translates the
    whole frame at the short side its frames had in training.

    Returns:
        :class:`RenderSummary`; a final line is printed to the console.

    Raises:
        RetargetError: an option outside its range (named), bad paths, unreadable input, no video stream, missing or
            incompatible model, a ``--face-ref`` image missing or without a face, ``--start`` not before
            ``--end`` or beyond the video, both ``--mask-erode`` and ``--mask-dilate``, an ``--enhancer``
            that is missing or learnt other faces (:func:`face_enhancer`).
    """
    check_config(cfg)  # the ranges the CLI enforces, for library callers
    src, out = check_paths(cfg)
    info = probe(src)  # RetargetError for missing/unreadable/no video stream
    check_options(cfg, info)
    device = resolve_device(cfg.device)
    run = open_run(cfg.model, step=cfg.step)
    way = pick_direction(run, cfg)
    load_networks(run, (way.network,), device)
    net = run.networks[way.network]
    if way.target is not None:  # the multi-domain G, told its target
        from retarget.nn.conditional import FixedTarget  # not at import: retarget.nn loads the trainer's step

        net = FixedTarget(net, way.target)
    where = "" if cfg.model else " (newest run under ./models)"
    console.print(f"model: {run.path}{where}" + (f" ({way.text})" if way.target is not None else ""), markup=False)
    data = run.data_of(way.source)
    size = data.size or run.model_cfg.size
    align = cfg.align or data.align
    aligner: Optional[Aligner] = None
    if cfg.face_ref is not None and align != "face":
        raise RetargetError(f"--face-ref applies to face mode only (this render is --align {align})")
    if align == "face":
        face_cfg = cfg.face or data.face or FaceConfig()
        from retarget.faces.aligner import face_aligner

        aligner = face_aligner(face_cfg, size, cfg.face_ref)
    enhance = face_enhancer(cfg, align, size, face_cfg if align == "face" else None, device)
    frame = cfg.frame or data.frame
    scale = (data.scale or round(run.model_cfg.size * LOAD_FACTOR)) if frame == "full" else size
    translator = Translator(net, device, cfg.amp)
    # on CPU the generator is the bottleneck and needs every core: a single-threaded
    # encoder keeps up and disturbs it least; with a GPU the encoder may use all cores
    threads = 1 if device.type == "cpu" else 0
    summary = translate_video(
        cfg,
        translator,
        size,
        info=info,
        aligner=aligner,
        scene_threshold=data.scene_threshold(),
        crop=data.crop,
        frame=frame,
        scale=scale,
        encoder_threads=threads,
        enhance=enhance,
    )
    summary.model = str(run.path)
    summary.direction = way.text
    return summary


def face_enhancer(
    cfg: RenderConfig, align: str, size: int, face: Optional[FaceConfig], device: Any
) -> Optional[Translator]:
    """``--enhancer``: the enhancer as a crops -> larger crops function, or None without one.

    Raises:
        RetargetError: not face mode, ``--output-size model``, or an enhancer that learnt
            other faces than this run's (another crop size or margin).
    """
    if cfg.enhancer is None:
        return None
    if align != "face":
        raise RetargetError(f"--enhancer applies to face mode only (this render is --align {align})")
    if cfg.output_size == "model":
        raise RetargetError("--enhancer sharpens the pasted faces: it does not apply with --output-size model")
    from retarget.nn.enhancer import PreBlur
    from retarget.run.enhancer import describe, load_enhancer

    enh = load_enhancer(cfg.enhancer, device)
    if enh.input_size != size:
        raise RetargetError(
            f"{cfg.enhancer}: learnt {enh.input_size} px faces, this run's are {size} px "
            f"(extract the target at {size * enh.config.scale} px for --scale {enh.config.scale})"
        )
    margin = enh.data.face.margin if enh.data.face else None
    if face is not None and margin is not None and abs(margin - face.margin) > 1e-6:
        raise RetargetError(
            f"{cfg.enhancer}: learnt faces cut with --margin {margin:g}, this render's use {face.margin:g}"
        )
    console.print(describe(enh), markup=False)
    return Translator(PreBlur(enh.net, cfg.enhancer_blur), device, cfg.amp)


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
) -> tuple[Source, Composer, Any]:
    """The source stage, the composer and the stabilizer (or None) of :func:`translate_video`."""
    stabilizer = None
    if cfg.stabilize > 0:  # flow in the source stage (overlaps the generator), blend in the sink (in order)
        from retarget.render.stabilize import Stabilizer

        stabilizer = Stabilizer(cfg.stabilize)
    paste = face_paste(cfg, enhance) if aligner is not None else None
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
    source, compose, stabilizer = _stages(cfg, info, cut, size, aligner, scene_threshold, crop, enhance)
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
                run_stages(batches(items, batch_size), functools.partial(translate_items, translate=fit), sink, depth=2)
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
