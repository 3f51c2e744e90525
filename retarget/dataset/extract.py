"""``retarget extract``: videos in, one sequence dataset folder out.

Each video is decoded in order (:mod:`retarget.video.reader`), each frame becomes an
image (``align none``: with ``frame full`` the whole frame, or its ``--crop`` region,
scaled so its short side is ``size``, aspect kept; with ``frame square`` the centre
square of it at ``size``; ``align face``: the face aligned and temporally smoothed by
:class:`retarget.faces.aligner.FaceAligner`, square), images are written by a thread pool and
described in ``manifest.json`` (docs/dataset.md). Frames are grouped into segments
that break at scene cuts, lost faces, decoding holes and new videos, because the
training sampler draws (t, t+1, t+2) from inside one segment.

Everything is written into a temporary folder beside the target and renamed when
complete, so an interrupted run leaves nothing under the target name.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from retarget.atomic import atomic_dir, clean_stale_temps, write_error
from retarget.budget import check_extract
from retarget.config import ExtractConfig, to_dict
from retarget.options import check_config, check_effects
from retarget.outputs import check_output
from retarget.dataset.manifest import (
    Dataset,
    FrameRecord,
    VideoRecord,
    file_sha256,
    read_dataset,
    video_record,
    write_manifest,
)
from retarget.dataset.scenes import SceneDetector
from retarget.dataset.writer import ImageWriter
from retarget.errors import RetargetError
from retarget.faces.aligner import Aligner, face_aligner
from retarget.faces.continuity import Continuity
from retarget.geometry import Cut, frame_cut
from retarget.progress import console, make_progress
from rich.markup import escape
from retarget.video.reader import VideoInfo, VideoReader, probe

FRAMES_DIR = "frames"
#: A jump in time of more than this many expected frame steps breaks the segment.
GAP_FACTOR = 2.5


@dataclass
class ExtractSummary:
    """What an extract run did; also printed as a table at the end."""

    output: str  # the dataset folder
    videos: int  # videos read in this run
    frames_read: int  # frames decoded (before range, rate and face selection)
    frames_written: int  # images written in this run
    faces_found: int  # frames with an aligned face (align face; 0 for align none)
    segments: int  # segments added in this run
    cuts: int  # scene cuts detected
    bad_frames: int  # packets/frames that failed to decode
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> frames left out
    short_segments: int = 0  # new segments with fewer than 3 frames (no training triplet)
    total_frames: int = 0  # frames in the dataset after this run (append included)
    seconds: float = 0.0  # wall time

    @property
    def fps(self) -> float:
        """Frames read per second of wall time."""
        return self.frames_read / self.seconds if self.seconds > 0 else 0.0


def _estimate_frames(info: VideoInfo, cfg: ExtractConfig) -> Optional[int]:
    """Expected frames handed out for a video, for the progress bar; None if unknown."""
    if not info.fps:
        return None
    length = info.duration or (info.frame_count / info.fps if info.frame_count else 0.0)
    if not length:
        return None
    span = min(cfg.end, length) if cfg.end is not None else length
    span -= cfg.start or 0.0
    rate = min(cfg.fps, info.fps) if cfg.fps else info.fps
    n = max(1, math.ceil(span * rate / cfg.every))
    return min(n, cfg.max_frames) if cfg.max_frames else n


def _check_output(cfg: ExtractConfig, out: Path) -> Optional[Dataset]:
    """Refuse or accept an existing output folder; return the dataset to append to."""
    if cfg.overwrite and cfg.append:
        raise RetargetError("--overwrite and --append exclude each other: pick one")
    # the one rule (retarget.outputs): never an input, another command's product or an unwritable place
    given = out if cfg.output is None else cfg.output  # -o "" is refused, not read as "."
    check_output(given, kind="dataset", inputs=(*cfg.videos, cfg.face_ref), overwrite=cfg.overwrite, reuse=True)
    if not out.exists():
        return None
    if cfg.append:
        old = read_dataset(out)
        if old.plain:
            raise RetargetError(f"{out}: not a retarget dataset (no manifest.json); cannot --append to it")
        theirs = (old.align, old.size, old.image_format, old.face if old.align == "face" else None)
        ours = (cfg.align, cfg.size, cfg.format, cfg.face if cfg.align == "face" else None)
        if theirs != ours:
            raise RetargetError(
                f"{out}: was extracted with --align {old.align} --size {old.size} --format {old.image_format}"
                + (" and other face options" if theirs[:3] == ours[:3] else "")
                + "; --append needs the same settings"
            )
        if old.frame != frame_mode(cfg):
            raise RetargetError(
                f"{out}: was extracted with --frame {old.frame}; --append needs the same (pass --frame {old.frame})"
            )
        return old
    if cfg.overwrite:  # check_output let through only a dataset or an empty folder
        return None
    raise RetargetError(f"{out}: already exists; use --overwrite to replace it or --append to add to it")


def frame_mode(cfg: ExtractConfig) -> str:
    """The dataset's frame mode: ``cfg.frame`` for ``align none``; face crops are always square."""
    return cfg.frame if cfg.align == "none" else "square"


def _link_or_copy(src: Path, dst: Path) -> None:
    # Hard links make --append cost nothing on disk and keep it atomic: the old folder
    # stays whole until the new one replaces it.
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class _Run:
    """State of one extract run (counts, segment ids, records)."""

    def __init__(self, cfg: ExtractConfig, tmp: Path, base: Optional[Dataset], aligner: Optional[Aligner]) -> None:
        self.cfg = cfg
        self.tmp = tmp
        self.frames: list[FrameRecord] = list(base.frames) if base else []
        self.videos: list[VideoRecord] = list(base.videos) if base else []
        self.next_segment = base.next_segment() if base else 0
        self.first_new_frame = len(self.frames)
        self.aligner = aligner
        self.read = self.faces = self.cuts = self.bad = 0
        self.skipped: dict[str, int] = {}

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    # Longer than 60 lines on purpose: the per-frame loop: cuts, holes, faces and segment bookkeeping decide together.
    def video(self, path: str, info: VideoInfo, sha: str, writer: ImageWriter, progress: Any) -> None:
        cfg = self.cfg
        vid = len(self.videos)
        resize: Optional[Cut] = None
        if cfg.align == "none":
            try:
                resize = frame_cut(cfg.frame, info.width, info.height, cfg.size, cfg.crop)
            except ValueError as exc:
                raise RetargetError(f"{path}: --{exc}") from None
        detector = SceneDetector(cfg.cut_threshold)
        if self.aligner is not None:
            self.aligner.reset()
        reader = VideoReader(
            path, fps=cfg.fps, every=cfg.every, start=cfg.start, end=cfg.end, max_frames=cfg.max_frames, info=info
        )
        step = cfg.every / (cfg.fps if cfg.fps else (info.fps or 25.0))
        task = progress.add_task(Path(path).name, total=_estimate_frames(info, cfg))
        segment: Optional[int] = None
        continuity = Continuity(self.aligner, max_gap=GAP_FACTOR * step)
        prev_track: Any = None
        n = 0
        with reader:
            for frame in reader:
                progress.advance(task)
                cut = detector(frame.image)
                if cut:
                    self.cuts += 1
                if continuity(cut, reader.bad_frames, frame.time):  # resets the aligner
                    segment = None
                landmarks = None
                transform = None
                if self.aligner is not None:
                    face = self.aligner(frame.image, frame.time)
                    if face is None:
                        self.skip("no face")
                        segment = None  # a lost face ends the segment
                        continue
                    self.faces += 1
                    # The aligner numbers its tracks; a new one (switched face, restarted
                    # smoothing) is a discontinuity in the crops, so the segment ends.
                    track = getattr(face, "track", None)
                    if track != prev_track:
                        segment = None
                    prev_track = track
                    image, m, landmarks = face.crop, np.asarray(face.matrix, np.float64), face.landmarks
                else:
                    assert resize is not None
                    image, m, transform = frame.image, resize.matrix, resize.apply
                if segment is None:
                    segment = self.next_segment
                    self.next_segment += 1
                name = f"{FRAMES_DIR}/{vid:03d}_{n:06d}.{cfg.format}"
                writer.write(image, self.tmp / name, transform)
                n += 1
                lm = None if landmarks is None else np.asarray(landmarks, np.float32).reshape(-1, 2)
                self.frames.append(FrameRecord(name, segment, vid, frame.index, frame.time, m, lm))
        done = next((t.completed for t in progress.tasks if t.id == task), None)
        progress.update(task, total=done)  # the estimate was only an estimate
        stats = reader.stats
        self.read += stats.decoded
        self.bad += stats.bad_frames
        for reason, count in stats.skipped.items():
            self.skip(reason, count)
        for line in stats.warnings(path, info.fps or 25.0):
            console.print(f"[yellow]warning:[/] {escape(line)}")
        self.videos.append(video_record(info, sha, stats.bad_frames))


# Longer than 60 lines on purpose: one sequential story (check, probe and hash, write, summarise) over shared locals.
def extract(cfg: ExtractConfig, *, aligner: Optional[Aligner] = None) -> ExtractSummary:
    """Decode ``cfg.videos`` into a sequence dataset folder and print a summary table.

    Args:
        cfg: the options (see :class:`retarget.config.ExtractConfig`).
        aligner: face aligner to use with ``align="face"`` instead of building
            ``FaceAligner(cfg.face, cfg.size)`` (with ``cfg.face_ref``'s person; tests inject
            fakes, and ``cfg.face_ref`` is then the aligner's business). Called as
            ``aligner(image, time) -> AlignedFace | None`` with image H x W x 3 uint8 RGB.

    Returns:
        an :class:`ExtractSummary`.

    Raises:
        RetargetError: an option outside its range (named); a video is missing, not a video, has no video stream or no
            decodable frame; the ``--face-ref`` image is missing or shows no face; the output exists (without overwrite/append) or cannot be
            written; no frame at all was written.
    """
    t0 = time.perf_counter()
    check_config(cfg)  # the ranges the CLI enforces, for library callers
    check_effects(cfg)  # options given where they do nothing (--quality with png frames...)
    if not cfg.videos:
        raise RetargetError("no input videos given")
    if cfg.crop is not None and cfg.align != "none":
        raise RetargetError("--crop applies to --align none only")
    if cfg.face_ref is not None and cfg.align != "face":
        raise RetargetError("--face-ref applies to --align face only")
    if cfg.frame not in ("full", "square"):
        raise RetargetError(f"--frame {cfg.frame}: choose full or square")
    out = Path(cfg.output) if cfg.output is not None else Path("data") / Path(cfg.videos[0]).stem
    clean_stale_temps(out.parent, out)  # before the checks: a parked old dataset may be put back
    base = _check_output(cfg, out)
    # Probe and hash everything first so a bad file fails before any work is done.
    infos = [probe(v) for v in cfg.videos]
    check_extract(cfg, [(i.width, i.height) for i in infos])  # an absurd --size before any frame
    shas = [file_sha256(v) for v in cfg.videos]
    if base is not None:
        known = {v.sha256: v.path for v in base.videos}
        for v, sha in zip(cfg.videos, shas):
            if sha in known:
                console.print(
                    f"[yellow]warning:[/] {v}: same content as {known[sha]}, already in {out}; adding it again"
                )
    if cfg.align == "face" and aligner is None:
        aligner = face_aligner(cfg.face, cfg.size, cfg.face_ref)
    try:
        with atomic_dir(out, replace=out.exists()) as tmp:
            (tmp / FRAMES_DIR).mkdir()
            if base is not None:
                for rec in base.frames:
                    if not (base.root / rec.file).is_file():
                        raise RetargetError(
                            f"{base.root / rec.file}: listed in the manifest but missing; cannot --append"
                        )
                    _link_or_copy(base.root / rec.file, tmp / rec.file)
            run = _Run(cfg, tmp, base, aligner if cfg.align == "face" else None)
            progress = make_progress("frames")
            writer = ImageWriter(cfg.workers, cfg.format, cfg.quality)
            ok = False
            try:
                with progress:
                    for path, info, sha in zip(cfg.videos, infos, shas):
                        run.video(path, info, sha, writer, progress)
                writer.flush()
                ok = True
            finally:
                writer.close(wait=ok)
            new = run.frames[run.first_new_frame :]
            if not new:
                why = ", ".join(f"{k}: {v}" for k, v in run.skipped.items()) or "no frames in range"
                raise RetargetError(f"{', '.join(cfg.videos)}: no frames to write ({why}); nothing written to {out}")
            options = dict(base.options) if base is not None else {}
            runs = list(options.get("runs", [])) + [to_dict(cfg)]
            ds = Dataset(
                root=out,
                size=cfg.size,
                align=cfg.align,
                face=cfg.face if cfg.align == "face" else None,
                frames=run.frames,
                frame=frame_mode(cfg),
                videos=run.videos,
                image_format=cfg.format,
                options={"runs": runs},
                created=base.created if base is not None else "",
            )
            write_manifest(ds, tmp)
    except OSError as exc:
        err = write_error(out, exc) or RetargetError(f"{out}: cannot write the dataset ({exc.strerror or exc})")
        raise err from None
    seg_sizes: dict[int, int] = {}
    for rec in new:
        seg_sizes[rec.segment] = seg_sizes.get(rec.segment, 0) + 1
    summary = ExtractSummary(
        output=str(out),
        videos=len(cfg.videos),
        frames_read=run.read,
        frames_written=len(new),
        faces_found=run.faces,
        segments=len(seg_sizes),
        cuts=run.cuts,
        bad_frames=run.bad,
        skipped=dict(run.skipped),
        short_segments=sum(1 for n in seg_sizes.values() if n < 3),
        total_frames=len(run.frames),
        seconds=time.perf_counter() - t0,
    )
    print_summary(summary, cfg.align)
    return summary


def print_summary(s: ExtractSummary, align: str = "none") -> None:
    """Print the end-of-run table (to stderr, like the progress bar)."""
    from rich.table import Table

    table = Table(title=f"extract -> {s.output}", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("videos", str(s.videos))
    table.add_row("frames read", str(s.frames_read))
    table.add_row("frames written", str(s.frames_written))
    if align == "face":
        table.add_row("faces found", str(s.faces_found))
    table.add_row("segments", str(s.segments))
    if s.short_segments:
        table.add_row("  shorter than 3 frames", str(s.short_segments))
    table.add_row("scene cuts", str(s.cuts))
    for reason, count in sorted(s.skipped.items()):
        table.add_row(f"skipped: {reason}", str(count))
    if s.total_frames != s.frames_written:
        table.add_row("frames in dataset", str(s.total_frames))
    table.add_row("time", f"{s.seconds:.1f} s ({s.fps:.1f} frames/s)")
    console.print(table)


__all__ = ["ExtractSummary", "extract", "frame_mode", "print_summary"]
