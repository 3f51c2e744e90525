"""Decoding with PyAV: probe a file, iterate its frames as upright RGB arrays.

Timestamps come from each frame's pts, so variable-frame-rate input keeps its real
times; ``fps`` resampling picks, for each output tick, the source frame nearest to it
(never "drop every n-th"). Packets or frames that fail to decode are counted in
``VideoReader.bad_frames`` and skipped, so a truncated download still yields what it
holds. Files whose timestamps are in decode order while their pictures come out in
display order (B-frames with pts == dts) get their timestamps sorted back
(:class:`~retarget.video.timing.PtsReorder`), so every consumer sees rising, correctly paired times.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import av
import cv2
import numpy as np

from retarget.errors import RetargetError
from retarget.video.frame import Frame
from retarget.video.timing import PtsReorder, Resampler

# av.open on a non-media file, a damaged header or an unknown format raises one of
# these; everything else (MemoryError, KeyboardInterrupt) must pass through.
_OPEN_ERRORS = (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a file's first video stream."""

    path: str
    width: int  # display width (px), after rotation
    height: int  # display height (px), after rotation
    fps: float  # average frame rate (frames/s)
    time_base: Fraction  # stream time base (seconds per pts unit)
    frame_count: int  # container's frame count; 0 if unknown
    duration: float  # seconds; 0.0 if unknown
    rotation: int  # degrees counter-clockwise applied on decode (0/90/180/270)
    codec: str
    audio_streams: int


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise RetargetError(f"{path}: no such file")
    if path.is_dir():
        raise RetargetError(f"{path}: is a folder, not a video file")
    if not os.access(path, os.R_OK):
        raise RetargetError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise RetargetError(f"{path}: file is empty")
    try:
        return av.open(str(path), mode="r")
    except _OPEN_ERRORS as exc:
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RetargetError(f"{path}: not a video file FFmpeg can read ({reason})") from None


#: FFmpeg demuxers of one picture: a file of any of them is a still image, not a video.
#: (Every ``*_pipe`` demuxer is an image format too: png_pipe, jpeg_pipe, bmp_pipe, webp_pipe...)
_STILL_FORMATS = frozenset({"image2", "image2pipe"})
#: Demuxers of animations (GIF, APNG): a video when they hold more than one picture.
_ANIMATION_FORMATS = frozenset({"gif", "apng"})


def _still_image(container: av.container.InputContainer, path: Path) -> bool:
    """Whether ``container`` holds a still image: an image format (see :data:`_STILL_FORMATS`), or a GIF
    or APNG of a single picture (its packets are counted, up to two; nothing is decoded)."""
    names = set((container.format.name or "").split(","))
    if names & _STILL_FORMATS or any(n.endswith("_pipe") for n in names):
        return True
    if not names & _ANIMATION_FORMATS:
        return False
    with _open(path) as other:  # a fresh container: probe reads this one from its start
        count = 0
        try:
            for packet in other.demux(other.streams.video[0]):
                count += packet.size > 0
                if count > 1:
                    return False
        except (av.error.FFmpegError, IndexError):
            return False  # left to the reader, which counts what fails to decode
    return True


def _normalise_rotation(degrees: float) -> int:
    # Display matrices can hold any angle; only right angles can be undone losslessly.
    return int(round(degrees / 90.0)) * 90 % 360


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn ``image`` counter-clockwise by ``rotation`` degrees (0/90/180/270)."""
    if rotation == 90:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if rotation == 180:
        return cv2.rotate(image, cv2.ROTATE_180)
    if rotation == 270:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


def _first_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Rotation of the first decodable frame (PyAV exposes the display matrix per frame)."""
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return _normalise_rotation(frame.rotation or 0)
            except av.error.FFmpegError:
                continue
    except av.error.FFmpegError:
        pass
    return 0


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe the first video stream of ``path``.

    A still image is refused, whatever its name: a file FFmpeg opens with an image
    demuxer (PNG, JPEG, BMP, WebP, TIFF... files; FFmpeg decodes only the first picture
    of an animated WebP, so that is one too), and a GIF or APNG of a single picture. A
    GIF or APNG of several pictures is an animation, and read as a video of them.

    Raises:
        RetargetError: the file is missing, is not a media file FFmpeg can open, has
            no video stream, or is a still image (``<path>: a still image, not a video``).
            Each message names the file.
    """
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise RetargetError(f"{path}: no video stream (contains {kinds})")
        if _still_image(container, path):
            raise RetargetError(f"{path}: a still image, not a video")
        stream = container.streams.video[0]
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        time_base = stream.time_base or Fraction(1, 1000)
        if stream.duration:
            duration = float(stream.duration * time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        rotation = _first_rotation(container, stream)
        width, height = cc.width, cc.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=str(path),
            width=width,
            height=height,
            fps=fps,
            time_base=Fraction(time_base),
            frame_count=int(stream.frames or 0),
            duration=duration,
            rotation=rotation,
            codec=cc.name,
            audio_streams=len(container.streams.audio),
        )
    finally:
        container.close()


#: A stream whose last frame comes this many frame periods before its header's end is reported cut short.
SHORT_FRAMES = 3


@dataclass
class ReadStats:
    """Counts of what a :class:`VideoReader` decoded and why frames were left out."""

    decoded: int = 0  # frames that decoded
    yielded: int = 0  # frames handed out
    bad_frames: int = 0  # packets/frames that failed to decode
    outside_range: int = 0  # before --start or at/after --end
    resampled: int = 0  # not picked by --fps resampling
    every: int = 0  # dropped by --every
    reordered: int = 0  # frames whose decode-order timestamp was put back in display order
    skipped: dict[str, int] = field(default_factory=dict)
    ended_at: Optional[float] = None  # time (s) of the last decoded frame, once the stream was read to its end
    stream_end: Optional[float] = None  # the video stream's length by its header (s), when it says

    def cut_short(self, rate: float) -> Optional[str]:
        """Why the stream seems cut short (its last frame more than :data:`SHORT_FRAMES` frame periods at
        ``rate`` before the header's end: a truncated file whose index survived), or None."""
        if self.ended_at is None or not self.stream_end:
            return None
        if self.ended_at >= self.stream_end - SHORT_FRAMES / max(rate, 1e-6):
            return None
        return f"the video ends at {self.ended_at:.2f} s of the {self.stream_end:.2f} s its header gives: the file may be cut short"

    def warnings(self, path: str | os.PathLike[str], rate: float) -> list[str]:
        """What the read lost, a line each naming ``path``: frames that failed to decode, a file cut short
        (``rate``: the video's frame rate, for :meth:`cut_short`)."""
        lines = []
        if self.bad_frames:
            lines.append(
                f"{path}: {self.bad_frames} packet(s)/frame(s) failed to decode; kept the {self.decoded} that did"
            )
        short = self.cut_short(rate)
        if short:
            lines.append(f"{path}: {short}; kept the {self.decoded} frames it holds")
        return lines


class VideoReader:
    """Iterate the frames of a video as :class:`Frame` (upright RGB, pts times).

    Args:
        path: video file.
        fps: resample to this rate by timestamp (nearest frame per tick); None keeps all.
        every: keep every N-th frame after resampling (N >= 1).
        start: first second to read (seeks to the keyframe before it, then decodes).
        end: stop before this second (exclusive).
        max_frames: stop after handing out this many frames.
        info: the file's :func:`probe` result when the caller already has it.

    ``info`` is available at once; ``bad_frames`` and ``stats`` fill in while iterating.
    Iterating a second time re-opens the file. Use as a context manager or plain
    iterator.

    Raises:
        RetargetError: from :func:`probe`; also when the stream holds no decodable frame
            (raised at the end of iteration) or ``start`` lies past the end.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: Optional[float] = None,
        every: int = 1,
        start: Optional[float] = None,
        end: Optional[float] = None,
        max_frames: Optional[int] = None,
        info: Optional[VideoInfo] = None,
    ) -> None:
        if fps is not None and fps <= 0:
            raise ValueError("fps must be > 0")
        if every < 1:
            raise ValueError("every must be >= 1")
        self.path = Path(path)
        self.info = info if info is not None else probe(self.path)
        self.fps = fps
        self.every = every
        self.start = start if start else None
        self.end = end
        self.max_frames = max_frames
        self.stats = ReadStats()
        self._container: Optional[av.container.InputContainer] = None
        if self.start is not None and self.info.duration and self.start >= self.info.duration:
            raise RetargetError(
                f"{self.path}: start {self.start:g} s is past the end of the video ({self.info.duration:.2f} s)"
            )
        if self.end is not None and self.start is not None and self.end <= self.start:
            raise RetargetError(f"{self.path}: end {self.end:g} s is not after start {self.start:g} s")

    @property
    def bad_frames(self) -> int:
        """Packets or frames that failed to decode so far."""
        return self.stats.bad_frames

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file (also done when iteration ends)."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def _open_stream(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, bool]:
        """Open the file, seek to ``start`` if set; returns (container, stream, seeked)."""
        self.close()
        container = _open(self.path)
        self._container = container
        stream = container.streams.video[0]
        # Frame threads let FFmpeg decode on all cores while Python converts pictures.
        stream.thread_type = "AUTO"
        if self.start is None:
            return container, stream, False
        tb = stream.time_base or Fraction(1, 1000)
        try:
            container.seek(
                (stream.start_time or 0) + int(self.start / tb), stream=stream, backward=True, any_frame=False
            )
            return container, stream, True
        except av.error.FFmpegError:
            # Some containers (raw streams, broken indexes) cannot seek: decode through.
            container.close()
            container = _open(self.path)
            self._container = container
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            return container, stream, False

    def _pictures(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[Optional[av.VideoFrame]]:
        """Decoded pictures in output (display) order; None for a corrupt one."""
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError:
                # The container itself is damaged here; nothing after it can be trusted.
                self.stats.bad_frames += 1
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                self.stats.bad_frames += 1
                continue
            for frame in frames:
                yield None if getattr(frame, "is_corrupt", False) else frame

    def _decoded(self) -> Iterator[Frame]:
        """Every decodable frame from ``start`` on, before range and rate selection."""
        container, stream, seeked = self._open_stream()
        tb = stream.time_base or Fraction(1, 1000)
        origin = stream.start_time or 0
        rate = self.info.fps or 25.0
        index = 0
        last_time = -math.inf
        reorder = PtsReorder()
        for picture, pts in reorder(self._pictures(container, stream), stream.codec_context):
            self.stats.reordered = reorder.reordered
            if picture is None:
                self.stats.bad_frames += 1
                continue
            if pts is not None:
                time = float((pts - origin) * tb)
            else:
                time = last_time + 1.0 / rate if last_time > -math.inf else 0.0
            if seeked:
                # After a seek the decode-order position is unknown; the timestamp
                # gives it exactly for constant-rate video.
                index = max(int(round(time * rate)), 0)
            last_time = time
            self.stats.decoded += 1
            image = picture.to_ndarray(format="rgb24")
            rotation = _normalise_rotation(picture.rotation or 0)
            if rotation:
                image = _rotate(image, rotation)
            yield Frame(index=index, pts=pts, time=time, image=np.ascontiguousarray(image))
            index += 1
        # read to its end (a caller that stops early never gets here)
        self.stats.ended_at = last_time if last_time > -math.inf else None
        self.stats.stream_end = float(stream.duration * tb) if stream.duration else None

    def __iter__(self) -> Iterator[Frame]:
        self.stats = ReadStats()
        resampler = Resampler(self.fps, self.start) if self.fps else None
        kept = 0
        done = False

        def select(frame: Frame) -> Iterator[Frame]:
            nonlocal kept, done
            if kept % self.every != 0:
                self.stats.every += 1
            else:
                self.stats.yielded += 1
                yield frame
                if self.max_frames is not None and self.stats.yielded >= self.max_frames:
                    done = True
            kept += 1

        try:
            for frame in self._decoded():
                if self.start is not None and frame.time < self.start - 1e-6:
                    self.stats.outside_range += 1
                    continue
                if self.end is not None and frame.time >= self.end - 1e-9:
                    self.stats.outside_range += 1
                    break
                candidates = resampler.push(frame) if resampler else [frame]
                for chosen in candidates:
                    yield from select(chosen)
                    if done:
                        break
                if done:
                    break
            if resampler is not None and not done:
                period = 1.0 / self.info.fps if self.info.fps else 0.0
                for chosen in resampler.finish(period):
                    yield from select(chosen)
            if resampler is not None:
                self.stats.resampled = resampler.dropped
        finally:
            self.close()
        if self.stats.decoded == 0:
            where = f" after {self.start:g} s" if self.start else ""
            bad = f" ({self.stats.bad_frames} failed to decode)" if self.stats.bad_frames else ""
            raise RetargetError(f"{self.path}: no decodable video frames{where}{bad}")
        self.stats.skipped = {
            k: v
            for k, v in (
                ("bad frames", self.stats.bad_frames),
                ("outside range", self.stats.outside_range),
                ("fps resampling", self.stats.resampled),
                ("every", self.stats.every),
            )
            if v
        }
