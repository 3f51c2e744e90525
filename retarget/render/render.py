"""``retarget render``: translate a whole video with a trained run, keeping sound and timing.

Frames stream through three overlapped stages (see :mod:`retarget.render.pipeline`):

1. decode (:class:`~retarget.video.reader.VideoReader`, rotation applied) and prepare the
   network input: extract's ``--align none`` centre crop, or the aligned face crop from
   :class:`~retarget.faces.tracker.FaceAligner` (reset at scene cuts, as extract does);
   with ``--stabilize``, also the optical flow between consecutive crops
   (:mod:`retarget.render.stabilize`);
2. translate batches with the generator (``G_AB`` for a2b, ``G_BA`` for b2a);
3. with ``--stabilize``, blend each translation, in order, with the previous one warped
   along that flow; put the translation back (upscaled into its crop region, or pasted
   along the face mask) and encode with :class:`~retarget.video.writer.VideoWriter`,
   which carries each frame's timestamp and the source's audio.

The output is written under a temporary name beside OUT and renamed at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import cv2
import numpy as np
import torch

from retarget.atomic import atomic_file, clean_stale_temps, write_errors
from retarget.config import FaceConfig, RenderConfig
from retarget.device import AMP_DTYPES, precision_name, resolve_amp, resolve_device
from retarget.errors import RetargetError
from retarget.faces.aligner import Aligner, Continuity
from retarget.geometry import center_crop, center_crop_matrix, place_back
from retarget.progress import console, make_progress
from retarget.render.compose import side_by_side
from retarget.render.pipeline import run_stages
from retarget.run import load_run
from retarget.video.reader import VideoInfo, VideoReader, probe
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
    direction: str = "a2b"
    align: str = "none"
    faces: int = 0  # frames where a face was found and translated (face mode)
    seconds: float = 0.0  # wall time
    fps: float = 0.0  # frames per second end to end
    stabilize: float = 0.0  # --stabilize strength used (0 = off)
    precision: str = ""  # the generator's arithmetic: "bf16", "fp16" or "fp32" ("" = not a Translator)


class Translator:
    """Apply a generator to batches of uint8 crops.

    Args:
        net: maps float ``[B, 3, S, S]`` in [-1, 1] to the same shape and range.
        device: where ``net`` lives.
        amp: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"off"``: autocast on CUDA and CPU
            (:func:`retarget.device.resolve_amp`); ``self.amp`` is the resolved value.
        channels_last: memory format of ``net`` and its inputs; None = on for CUDA only
            (on CPU it measured slower). On CUDA cuDNN also picks its fastest kernels
            once (``cudnn.benchmark``: the batches have one size, the last one aside).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        device: torch.device | str = "cpu",
        amp: str = "off",
        channels_last: Optional[bool] = None,
    ) -> None:
        self.net = net
        self.device = torch.device(device)
        self.amp = resolve_amp(amp, self.device)
        self.amp_dtype = AMP_DTYPES.get(self.amp)
        cuda = self.device.type == "cuda"
        on = cuda if channels_last is None else channels_last
        self.memory_format = torch.channels_last if on else torch.contiguous_format
        if on:
            self.net = self.net.to(memory_format=self.memory_format)
        if cuda:
            torch.backends.cudnn.benchmark = True

    @torch.inference_mode()
    def __call__(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Translate ``crops`` (each S x S x 3 uint8 RGB); returns the same count and shape."""
        if not crops:
            return []
        x = torch.from_numpy(np.stack(crops)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        x = x.contiguous(memory_format=self.memory_format)  # the permute alone leaves a channels_last view
        if self.amp_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                y = self.net(x)
        else:
            y = self.net(x)
        y = y.float().add_(1.0).mul_(127.5).clamp_(0, 255).round_().to(torch.uint8)
        out = y.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return list(out)


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


def render(cfg: RenderConfig) -> RenderSummary:
    """Translate ``cfg.input`` into ``cfg.output`` with a trained run.

    The run is ``cfg.model`` (run folder or weights file) or the newest under
    ``./models``, at its newest checkpoint or that of ``cfg.step``; ``cfg.direction`` picks ``G_AB`` (a2b) or ``G_BA`` (b2a). The alignment
    mode, face options and crop size default to those of the run's source-domain
    training data (A for a2b, B for b2a).

    Returns:
        :class:`RenderSummary`; a final line is printed to the console.

    Raises:
        RetargetError: bad paths, unreadable input, no video stream, missing or
            incompatible model.
    """
    src, out = check_paths(cfg)
    info = probe(src)  # RetargetError for missing/unreadable/no video stream
    device = resolve_device(cfg.device)
    gen_name = "G_AB" if cfg.direction == "a2b" else "G_BA"
    run = load_run(cfg.model, device, names=(gen_name,), step=cfg.step)
    console.print(f"model: {run.path}" + ("" if cfg.model else " (newest run under ./models)"), markup=False)
    side = "A" if cfg.direction == "a2b" else "B"
    data = run.data_of(side)
    size = data.size or run.model_cfg.size
    align = cfg.align or data.align
    aligner: Optional[Aligner] = None
    if align == "face":
        face_cfg = cfg.face or data.face or FaceConfig()
        from retarget.faces.tracker import FaceAligner

        aligner = FaceAligner(face_cfg, size)
    translator = Translator(run.networks[gen_name], device, cfg.amp)
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
        encoder_threads=threads,
    )
    summary.model = str(run.path)
    return summary


@dataclass
class _Item:
    index: int
    pts: Optional[int]
    image: np.ndarray  # source frame, H x W x 3 uint8
    crop: Optional[np.ndarray]  # network input, or None (no face: pass through)
    matrix: Optional[np.ndarray] = None
    landmarks: Optional[np.ndarray] = None
    result: Optional[np.ndarray] = None
    link: Any = None  # --stabilize: stabilize.Link from the previous frame, or None


# Longer than 60 lines on purpose: the produce/transform/compose closures share the render state; to split with --stabilize.
def translate_video(
    cfg: RenderConfig,
    translate: Callable[[Sequence[np.ndarray]], list[np.ndarray]],
    size: int,
    *,
    info: Optional[VideoInfo] = None,
    aligner: Optional[Aligner] = None,
    scene_threshold: float = 0.5,
    crop: Optional[tuple[int, int, int, int]] = None,
    encoder_threads: int = 0,
    quiet: bool = False,
) -> RenderSummary:
    """The streaming core of :func:`render`, with the generator (and aligner) given.

    Args:
        cfg: render options (input, output, output_size, mask, feather, color_match,
            batch_size, crf, side_by_side, overwrite, stabilize are used here).
        translate: list of ``size x size x 3`` uint8 RGB crops -> list of the same.
        size: network crop side (px).
        info: :func:`probe` of the input (probed when None).
        aligner: face mode when given: ``aligner(image, time)`` returns an AlignedFace
            (``matrix``, ``landmarks``, ``crop``) or None; ``aligner.reset()`` at scene cuts.
        scene_threshold: scene-cut threshold for resetting the aligner (and the
            stabilizer, with ``cfg.stabilize`` > 0).
        crop: full-frame mode: extract's ``--crop`` region ``(x, y, w, h)`` the training
            data were cut from; None = the centre square.
        encoder_threads: libx264 threads; 0 lets it choose.
        quiet: no final line.

    Returns:
        :class:`RenderSummary`.
    """
    src, out = check_paths(cfg)
    info = info or probe(src)
    clean_stale_temps(out.parent, quiet=quiet)
    face_mode = aligner is not None
    paste = None
    if face_mode:
        from retarget.faces.paste import paste_back as paste

    if cfg.output_size == "model":
        out_w, out_h = size, size
    else:
        out_w, out_h = info.width, info.height
    if cfg.side_by_side:
        left_w = out_w if cfg.output_size == "source" else max(1, round(info.width * out_h / info.height))
        out_w = left_w + out_w
    full_matrix = center_crop_matrix(info.width, info.height, size, crop)
    batch_size = max(1, int(cfg.batch_size))
    faces = 0
    # --stabilize: flow in produce (overlaps the generator), blend in consume (in order)
    stabilizer = None
    if not 0.0 <= cfg.stabilize <= 1.0:
        raise RetargetError(f"--stabilize must be between 0 and 1, got {cfg.stabilize}")
    if cfg.stabilize > 0:
        from retarget.render.stabilize import Stabilizer

        stabilizer = Stabilizer(cfg.stabilize)

    def produce():
        nonlocal faces
        detector = continuity = None
        if face_mode or stabilizer is not None:
            from retarget.dataset.scenes import SceneDetector

            detector = SceneDetector(scene_threshold)
            # every decoded frame is rendered: no time gaps; the aligner (if any) resets at breaks
            continuity = Continuity(aligner if face_mode else None)
        batch: list[_Item] = []
        track = None  # face track of the previous frame (--stabilize restarts on a new one)
        with VideoReader(src) as reader:
            for frame in reader:
                image = frame.image
                if image.shape[:2] != (info.height, info.width):
                    # a stream that changes resolution midway: keep the output size fixed
                    image = cv2.resize(image, (info.width, info.height), interpolation=cv2.INTER_AREA)
                # as extract: smoothing must not blend across a cut or a decode hole
                broken = continuity is not None and continuity(detector(image), reader.bad_frames, frame.time)
                if face_mode:
                    face = aligner(image, frame.time)
                    if face is None:
                        item = _Item(frame.index, frame.pts, image, None)
                    else:
                        faces += 1
                        item = _Item(frame.index, frame.pts, image, face.crop, face.matrix, face.landmarks)
                else:
                    item = _Item(frame.index, frame.pts, image, center_crop(image, size, crop), full_matrix)
                if stabilizer is not None:
                    new_track = face_mode and getattr(face, "track", None) != track
                    track = getattr(face, "track", None) if face_mode and face is not None else None
                    item.link = stabilizer.prepare(item.crop, reset=broken or new_track)
                batch.append(item)
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def transform(batch: list[_Item]) -> list[_Item]:
        todo = [it for it in batch if it.crop is not None]
        if not todo:
            return batch
        for it, res in zip(todo, translate([it.crop for it in todo])):
            it.result = res
        return batch

    def compose(it: _Item) -> np.ndarray:
        if cfg.output_size == "model":
            if it.result is not None:
                picture = it.result
            else:
                picture = center_crop(it.image, size, crop)
        elif it.result is None:
            picture = it.image
        elif face_mode:
            picture = paste(
                it.image,
                it.result,
                it.matrix,
                it.landmarks,
                mask=cfg.mask,
                feather=cfg.feather,
                color_match=cfg.color_match,
            )
        else:
            picture = place_back(it.image, it.result, it.matrix)
        if cfg.side_by_side:
            picture = side_by_side(it.image, picture)
        return picture

    started = time.perf_counter()
    with write_errors(out), make_progress("frames") as progress:
        out.parent.mkdir(parents=True, exist_ok=True)
        task = progress.add_task("render", total=info.frame_count or None)
        with atomic_file(out) as tmp:
            writer = VideoWriter(
                tmp, out_w, out_h, info.time_base, info.fps, crf=cfg.crf, audio_from=src, threads=encoder_threads
            )
            with writer:

                def consume(batch: list[_Item]) -> None:
                    for it in batch:
                        if stabilizer is not None and it.result is not None:
                            it.result = stabilizer.blend(it.result, it.link)
                        writer.write(compose(it), it.pts)
                    progress.advance(task, len(batch))

                run_stages(produce(), transform, consume, depth=2)
            written = writer.summary
    seconds = time.perf_counter() - started
    summary = RenderSummary(
        output=str(out),
        frames=written.frames,
        duration=written.duration,
        width=written.width,
        height=written.height,
        audio=list(written.audio),
        audio_text=written.audio_text,
        direction=cfg.direction,
        align="face" if face_mode else "none",
        faces=faces,
        seconds=seconds,
        fps=written.frames / seconds if seconds > 0 else 0.0,
        stabilize=float(cfg.stabilize),
        precision=precision_name(amp) if (amp := getattr(translate, "amp", None)) else "",
    )
    if not quiet:
        face_note = f", face found in {faces}" if face_mode else ""
        face_note += f", stabilized (strength {cfg.stabilize:g})" if stabilizer is not None else ""
        console.print(
            f"wrote {out}: {summary.frames} frames{face_note}, {summary.duration:.2f} s, "
            f"{summary.width}x{summary.height}, {summary.audio_text} "
            f"({summary.fps:.1f} frames/s{', ' + summary.precision if summary.precision else ''})",
            markup=False,
        )
    return summary
