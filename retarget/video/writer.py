"""H.264 encoding through PyAV, carrying timestamps and the source's audio.

:class:`VideoWriter` encodes RGB frames with libx264 (yuv420p) at the presentation
timestamps it is given, so a variable-frame-rate source keeps its timing exactly.
Audio streams are taken straight from the source file: copied packet for packet
when the output container accepts the codec, otherwise decoded and re-encoded to
AAC. Audio packets are interleaved with the video as it is written, so memory stays
constant in the video's length.

Odd frame sizes: H.264 in 4:2:0 cannot describe an odd width or height (its crop
unit is 2 pixels), so such frames are padded by one replicated row/column on the
right/bottom. Nothing of the picture is lost; the output is at most 1 pixel larger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Optional

import av
import numpy as np

from retarget.errors import RetargetError

AudioMode = Literal["copy", "transcode", "none"]


def even_size(width: int, height: int) -> tuple[int, int]:
    """The frame size the encoder writes for a ``width x height`` picture (rounded up to even)."""
    return width + (width & 1), height + (height & 1)


def pad_to_even(image: np.ndarray) -> np.ndarray:
    """Pad an ``H x W x C`` image to even height and width by replicating its last row/column."""
    h, w = image.shape[:2]
    ph, pw = h & 1, w & 1
    if not (ph or pw):
        return image
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")


@dataclass
class WriteSummary:
    """What a :class:`VideoWriter` wrote."""

    path: str
    frames: int
    width: int
    height: int
    duration: float  # seconds from the first frame's start to the last frame's end
    audio: list[AudioMode] = field(default_factory=list)  # one entry per source audio stream

    @property
    def audio_text(self) -> str:
        """``"audio copied"``, ``"audio transcoded to AAC"``, a mix, or ``"no audio"``."""
        if not self.audio:
            return "no audio"
        parts = []
        copied = self.audio.count("copy")
        coded = self.audio.count("transcode")
        if copied:
            parts.append("audio copied" if copied == 1 else f"{copied} audio streams copied")
        if coded:
            parts.append("audio transcoded to AAC" if coded == 1 else f"{coded} audio streams transcoded to AAC")
        return ", ".join(parts)


class _AudioTrack:
    """One source audio stream and its output stream (copied or transcoded)."""

    def __init__(self, out: Any, src_stream: Any) -> None:
        self.src = src_stream
        name = src_stream.codec_context.name
        accepted = set(getattr(out, "supported_codecs", ()) or ())
        # mp4/mov accept raw PCM only in odd variants players rarely read; re-encode it.
        pcm_in_mp4 = name.startswith("pcm_") and Path(out.name).suffix.lower() in (".mp4", ".m4v", ".mov")
        self.mode: AudioMode = "copy" if name in accepted and not pcm_in_mp4 else "transcode"
        if self.mode == "copy":
            self.out = out.add_stream_from_template(src_stream)
            self.resampler = None
        else:
            rate = src_stream.codec_context.sample_rate or 48000
            # by channel count: sources with an unspecified order ("2 channels") make the
            # AAC encoder refuse to open; other counts are downmixed to stereo
            layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(src_stream.codec_context.channels, "stereo")
            self.out = out.add_stream("aac", rate=rate, layout=layout)
            self.out.bit_rate = 192000
            self.out.codec_context.format = "fltp"
            self.out.codec_context.time_base = Fraction(1, rate)
            self.out.time_base = Fraction(1, rate)
            self.resampler = None  # built on the first frame: frame_size is known once the encoder opens
        self.offset: Optional[int] = None  # transcode: first sample's time, in output samples
        self.samples = 0  # transcode: samples sent to the encoder


class VideoWriter:
    """Encode RGB frames to H.264 with the audio of a source file.

    Args:
        path: output file; the container follows its suffix (.mp4, .mkv, .mov, .avi).
        width, height: picture size in pixels (any size >= 2; odd sizes are padded, see
            the module notes).
        time_base: unit of the ``pts`` passed to :meth:`write`, seconds (the source
            stream's time base, so timestamps are carried unchanged).
        fps: average frame rate; used for rate control and for timestamps of frames
            given without a ``pts``.
        crf: libx264 constant rate factor, 0..51 (lower is better).
        audio_from: file whose audio streams are copied/transcoded into the output;
            ``None`` writes no audio.
        preset: libx264 speed preset.
        threads: encoder threads; 0 lets libx264 choose.

    Use as a context manager: leaving it normally flushes and finalises the file,
    leaving it with an exception closes it without finalising (the caller discards it).
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        time_base: Fraction,
        fps: float,
        *,
        crf: int = 18,
        audio_from: Optional[str | Path] = None,
        preset: str = "veryfast",
        threads: int = 0,
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"bad frame size {width}x{height}")
        self.path = str(path)
        self.src_width, self.src_height = width, height
        self.width, self.height = even_size(width, height)
        self.time_base = Fraction(time_base)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self._frame_step = max(1, round(1.0 / (self.fps * self.time_base)))
        self._last_pts: Optional[int] = None
        self._first_pts: Optional[int] = None
        self._shift = 0  # added to every pts: a source that starts before 0 starts at 0 (audio moved along)
        self._shift_s = 0.0  # the same in seconds
        self.audio_dropped = 0  # audio packets the output could not take (timestamps out of order)
        self.frames = 0
        self._audio_in: Any = None
        self._tracks: list[_AudioTrack] = []
        self._pending: list[Any] = []
        self._audio_iter: Any = None
        self._audio_done = True
        try:
            self._out = av.open(self.path, "w")
        except (av.FFmpegError, ValueError) as exc:
            raise RetargetError(f"{path}: cannot create output video ({exc})") from None
        try:
            rate = Fraction(self.fps).limit_denominator(100000)
            self._video = self._out.add_stream("libx264", rate=rate)
            self._video.width, self._video.height = self.width, self.height
            self._video.pix_fmt = "yuv420p"
            self._video.time_base = self.time_base
            self._video.codec_context.time_base = self.time_base
            opts = {"crf": str(int(crf)), "preset": preset}
            if threads:
                opts["threads"] = str(threads)
            self._video.codec_context.options = opts
            if audio_from is not None:
                self._open_audio(audio_from)
        except BaseException:
            self._abort()
            raise

    # -- audio -----------------------------------------------------------------
    def _open_audio(self, src: str | Path) -> None:
        try:
            self._audio_in = av.open(str(src))
        except av.FFmpegError as exc:
            raise RetargetError(f"{src}: cannot read audio ({exc})") from None
        streams = list(self._audio_in.streams.audio)
        if not streams:
            self._audio_in.close()
            self._audio_in = None
            return
        self._tracks = [_AudioTrack(self._out, s) for s in streams]
        self._by_index = {t.src.index: t for t in self._tracks}
        self._audio_iter = self._audio_in.demux(streams)
        self._audio_done = False

    def _packet_time(self, packet: Any) -> float:
        """The packet's time (s) on the output's clock (the video's shift added)."""
        ts = packet.dts if packet.dts is not None else packet.pts
        if ts is None or packet.time_base is None:
            return -math.inf  # no timing: write it as soon as possible
        return float(ts * packet.time_base) + self._shift_s

    def _unwrap(self, packet: Any) -> Any:
        """An MPEG-TS packet stamped just before its 33-bit clock wrapped (an encoder's priming
        samples before 0) as the small negative time it stands for."""
        if packet.time_base != Fraction(1, 90000) or "mpegts" not in self._audio_in.format.name:
            return packet
        for name in ("pts", "dts"):
            ts = getattr(packet, name)
            if ts is not None and ts >= 2**32:
                setattr(packet, name, ts - 2**33)
        return packet

    def _next_audio(self) -> Optional[Any]:
        while not self._audio_done:
            try:
                packet = next(self._audio_iter)
            except StopIteration:
                self._audio_done = True
                return None
            except av.FFmpegError:
                continue  # a damaged audio packet: skip it, keep the rest in sync
            if packet.size == 0 and packet.dts is None:
                continue  # demuxer flush marker
            return self._unwrap(packet)
        return None

    def _emit_audio(self, packet: Any) -> None:
        track = self._by_index[packet.stream.index]
        if track.mode == "copy":
            if self._shift_s and packet.time_base is not None:
                moved = round(self._shift_s / packet.time_base)
                packet.pts = None if packet.pts is None else packet.pts + moved
                packet.dts = None if packet.dts is None else packet.dts + moved
            packet.stream = track.out
            try:
                self._out.mux(packet)
            except av.FFmpegError:  # a timestamp out of order (a damaged source): this packet only
                self.audio_dropped += 1
            return
        try:
            frames = track.src.codec_context.decode(packet)
        except av.FFmpegError:
            return
        for frame in frames:
            self._encode_audio(track, frame)

    def _encode_audio(self, track: _AudioTrack, frame: Any) -> None:
        ctx = track.out.codec_context
        if track.resampler is None:
            track.resampler = av.AudioResampler(
                format="fltp",
                layout=ctx.layout.name,
                rate=ctx.sample_rate,
                frame_size=ctx.frame_size or 1024,  # the AAC encoder takes 1024-sample frames
            )
        if frame is not None:
            if track.offset is None and frame.pts is not None and frame.time_base is not None:
                # the first sample's time, so a transcoded track starts where the source's did
                track.offset = round((float(frame.pts * frame.time_base) + self._shift_s) * ctx.sample_rate)
            frame.pts = None  # restamped below: contiguous samples, no drift from rounding
        for out_frame in track.resampler.resample(frame):
            out_frame.pts = (track.offset or 0) + track.samples
            out_frame.time_base = Fraction(1, ctx.sample_rate)
            track.samples += out_frame.samples
            for pkt in track.out.encode(out_frame):
                self._out.mux(pkt)

    def _audio_until(self, seconds: float) -> None:
        """Mux audio packets whose time is at or before ``seconds`` (keeps the file interleaved)."""
        while True:
            if not self._pending:
                packet = self._next_audio()
                if packet is None:
                    return
                self._pending.append(packet)
            packet = self._pending[0]
            if self._packet_time(packet) > seconds:
                return
            self._pending.pop(0)
            self._emit_audio(packet)

    def _finish_audio(self) -> None:
        self._audio_until(math.inf)
        for track in self._tracks:
            if track.mode != "transcode":
                continue
            try:
                for frame in track.src.codec_context.decode(None):
                    self._encode_audio(track, frame)
            except av.FFmpegError:
                pass
            if track.resampler is not None:
                self._encode_audio(track, None)
            for pkt in track.out.encode(None):
                self._out.mux(pkt)

    # -- video -----------------------------------------------------------------
    def write(self, image: np.ndarray, pts: Optional[int] = None) -> None:
        """Encode one frame.

        Args:
            image: ``H x W x 3`` uint8 RGB at the size given to the constructor.
            pts: presentation timestamp in ``time_base`` units; ``None`` places the frame one
                frame period after the last, a value not after the previous one one unit after
                it (later frames keep their own times, so the audio stays in sync). A first
                value below 0 moves the whole output (audio too) to start at 0.
        """
        if image.shape[:2] != (self.src_height, self.src_width) or image.dtype != np.uint8:
            raise ValueError(
                f"frame of shape {image.shape} {image.dtype}, expected {self.src_height}x{self.src_width}x3 uint8"
            )
        if pts is not None and self._last_pts is None and pts < 0:  # mp4 would hide the frames before 0
            self._shift, self._shift_s = -int(pts), float(-int(pts) * self.time_base)
        pts = None if pts is None else int(pts) + self._shift
        if pts is None:  # no time: a frame period after the last
            pts = 0 if self._last_pts is None else self._last_pts + self._frame_step
        elif self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # a duplicate or a step back: the least move, so the frames after keep their times
        if self._first_pts is None:
            self._first_pts = pts
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pad_to_even(image)), format="rgb24")
        frame.pts = int(pts)
        frame.time_base = self.time_base
        if self._tracks:
            self._audio_until(float(pts * self.time_base))
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        self.frames += 1

    def close(self) -> WriteSummary:
        """Flush the encoder and the remaining audio and finalise the file."""
        for packet in self._video.encode(None):
            self._out.mux(packet)
        if self._tracks:
            self._finish_audio()
        self._out.close()
        if self._audio_in is not None:
            self._audio_in.close()
        duration = 0.0
        if self._first_pts is not None and self._last_pts is not None:
            duration = float((self._last_pts - self._first_pts) * self.time_base) + 1.0 / self.fps
        return WriteSummary(
            path=self.path,
            frames=self.frames,
            width=self.width,
            height=self.height,
            duration=duration,
            audio=[t.mode for t in self._tracks],
        )

    def _abort(self) -> None:
        for c in (self._out, self._audio_in):
            if c is None:
                continue
            try:
                c.close()
            except Exception:  # closing a broken file: nothing more to save
                pass

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.summary = self.close()
        else:
            self._abort()
