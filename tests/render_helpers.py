"""Small synthetic videos for the writer and render tests (PyAV only).

Covers what the shared helper may not: MP3/AC-3 audio, avi containers, variable
frame rate and odd sizes. Frames are a moving gradient with a square, so encoded
frames differ and a translation visibly changes them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import av
import numpy as np


def synth_frame(i: int, width: int, height: int) -> np.ndarray:
    """Frame ``i`` of the synthetic clip: ``height x width x 3`` uint8 RGB."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack(
        [(x * 255 // max(width - 1, 1) + 8 * i) % 256, y * 255 // max(height - 1, 1), np.full_like(x, 96)], -1
    ).astype(np.uint8)
    s = max(2, min(width, height) // 4)
    x0 = (3 * i) % max(width - s, 1)
    img[height // 3 : height // 3 + s, x0 : x0 + s] = (255, 255, 40)
    return img


def make_test_video(
    path: Path,
    *,
    frames: int = 12,
    width: int = 48,
    height: int = 32,
    fps: int = 25,
    audio: Optional[str] = "aac",
    sample_rate: int = 44100,
    pts: Optional[Sequence[int]] = None,
    time_base: Optional[Fraction] = None,
    video_codec: str = "libx264",
    audio_offset: float = 0.0,
) -> Path:
    """Write a small video with an optional sine-wave audio track.

    Args:
        path: output; the suffix picks the container (.mp4, .avi, .mkv).
        audio: audio encoder name (``aac``, ``libmp3lame``, ``ac3``) or ``None``.
        pts: explicit presentation timestamps (in ``time_base``) for a variable frame
            rate; default is one frame every ``1/fps`` seconds.
        video_codec: ``libx264`` (needs even sizes) or ``mpeg4``/``ffv1`` etc.
        audio_offset: seconds of silence-free delay before the audio starts (its first
            timestamp), to check that timing survives a transcode.

    The audio lasts exactly as long as the video (frames / fps seconds, or up to the
    last pts plus one frame period).
    """
    path = Path(path)
    # avi stores one tick per frame; mp4/mkv get a fine time base so VFR pts fit
    tb = time_base or (Fraction(1, fps) if path.suffix.lower() == ".avi" else Fraction(1, fps * 512))
    if pts is None:
        step = int(round(1 / (fps * tb)))
        pts = [i * step for i in range(frames)]
    else:
        frames = len(pts)
    duration = float((pts[-1] * tb)) + 1.0 / fps
    with av.open(str(path), "w") as out:
        vs = out.add_stream(video_codec, rate=fps)
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv420p" if video_codec != "ffv1" else "yuv444p"
        vs.time_base = tb
        vs.codec_context.time_base = tb
        a_stream = None
        if audio:
            a_stream = out.add_stream(audio, rate=sample_rate, layout="stereo")
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(synth_frame(i, width, height), format="rgb24")
            frame.pts = int(p)
            frame.time_base = tb
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if a_stream is not None:
            n = int(round(duration * sample_rate))
            ctx = a_stream.codec_context
            chunk = ctx.frame_size or 1024
            fmt = ctx.format.name
            t = np.arange(n) / sample_rate
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, n, chunk):
                piece = wave[start : start + chunk]
                if len(piece) < chunk and not ctx.codec.capabilities & (0x40 | 0x10000):
                    piece = np.pad(piece, (0, chunk - len(piece)))  # encoder needs full frames
                if fmt.endswith("p"):
                    data = np.stack([piece, piece])
                else:
                    data = np.stack([piece, piece], -1).reshape(1, -1)
                if fmt.startswith("s16"):
                    data = (data * 32767).astype(np.int16)
                elif fmt.startswith("s32"):
                    data = (data * 2**31 - 1).astype(np.int32)
                frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
                frame.sample_rate = sample_rate
                frame.pts = start + int(round(audio_offset * sample_rate))
                frame.time_base = Fraction(1, sample_rate)
                for packet in a_stream.encode(frame):
                    out.mux(packet)
            for packet in a_stream.encode(None):
                out.mux(packet)
    return path


def read_video_pts(path: Path) -> tuple[list[float], Fraction, float]:
    """Decode ``path``: (frame times in seconds, in presentation order), time base, fps."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [float(f.pts * s.time_base) for f in c.decode(s)]
        return sorted(times), s.time_base, float(s.average_rate or 0)


def stream_durations(path: Path) -> dict[str, float]:
    """Seconds covered by the video and each audio stream, from their packets (pts + duration)."""
    out: dict[str, float] = {}
    with av.open(str(path)) as c:
        for s in c.streams:
            if s.type not in ("video", "audio"):
                continue
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for p in c.demux():
            if p.pts is None or p.size == 0:
                continue
            t0 = float(p.pts * p.time_base)
            t1 = t0 + float((p.duration or 0) * p.time_base)
            i = p.stream.index
            first[i] = min(first.get(i, t0), t0)
            last[i] = max(last.get(i, t1), t1)
        for s in c.streams:
            if s.index in last:
                key = s.type if s.type == "video" else f"audio{s.index}"
                out[key] = last[s.index] - first[s.index]
    return out


def audio_codecs(path: Path) -> list[str]:
    """Codec names of the audio streams of ``path``."""
    with av.open(str(path)) as c:
        return [s.codec_context.name for s in c.streams.audio]
