"""VideoWriter: H.264 with the source's timestamps, audio copied or transcoded, odd sizes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from helpers import audio_codecs, make_video, read_video_pts, stream_durations
from retarget.video.writer import VideoWriter, even_size, pad_to_even


def _copy_through(src: Path, dst: Path, invert: bool = True):
    """Decode ``src`` and write every frame (inverted) to ``dst`` with its pts and audio."""
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        tb, fps, w, h = s.time_base, float(s.average_rate or 25), s.width, s.height
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    with VideoWriter(dst, w, h, tb, fps, audio_from=src, preset="ultrafast") as writer:
        for pts, img in frames:
            writer.write(255 - img if invert else img, pts)
    return writer.summary, frames


def _video_codec_and_format(path: Path) -> tuple[str, str]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, s.codec_context.pix_fmt


@pytest.mark.parametrize(
    "name,audio,expect_codec,mode",
    [
        ("aac.mp4", "aac", "aac", "copy"),
        ("mp3.mp4", "mp3", "mp3", "copy"),
        ("ac3.avi", "ac3", "ac3", "copy"),
    ],
)
def test_audio_copied_and_in_sync(tmp_path, name, audio, expect_codec, mode):
    src = make_video(tmp_path / name, frames=15, audio=audio, codec="h264" if name.endswith("mp4") else "mpeg4")
    out = tmp_path / "out.mp4"
    summary, frames = _copy_through(src, out)
    assert summary.frames == len(frames) == 15
    assert summary.audio == [mode]
    assert "copied" in summary.audio_text
    codecs = audio_codecs(out)
    assert len(codecs) == 1 and codecs[0].startswith(expect_codec)
    assert _video_codec_and_format(out) == ("h264", "yuv420p")
    period = 1 / 25
    d_in, d_out = stream_durations(src), stream_durations(out)
    audio_in = [v for k, v in d_in.items() if k.startswith("audio")][0]
    audio_out = [v for k, v in d_out.items() if k.startswith("audio")][0]
    assert abs(audio_out - audio_in) < 1e-3  # copied packet for packet
    assert abs(audio_out - d_out["video"]) <= period + 1e-6
    assert read_video_pts(out)[0] == pytest.approx(read_video_pts(src)[0], abs=1e-4)


def test_pcm_audio_is_transcoded_to_aac(tmp_path):
    src = make_video(tmp_path / "pcm.avi", audio="pcm_s16le", codec="mpeg4", frames=15)
    out = tmp_path / "out.mp4"
    summary, _ = _copy_through(src, out)
    assert summary.audio == ["transcode"]
    assert "transcoded to AAC" in summary.audio_text
    assert audio_codecs(out) == ["aac"]
    d = stream_durations(out)
    # AAC adds at most one 1024-sample frame of padding: still within one video frame
    assert abs(d["audio1"] - stream_durations(src)["audio1"]) < 1 / 25
    assert abs(d["audio1"] - d["video"]) < 1 / 25


def test_transcoded_audio_keeps_its_start_time(tmp_path):
    src = make_video(tmp_path / "late.mkv", audio="pcm_s16le", codec="ffv1", frames=15, audio_offset=0.2)
    out = tmp_path / "out.mp4"
    summary, _ = _copy_through(src, out)
    assert summary.audio == ["transcode"]

    def audio_start(path):
        with av.open(str(path)) as c:
            s = c.streams.audio[0]
            return min(float(p.pts * p.time_base) for p in c.demux(s) if p.pts is not None and p.size)

    assert audio_start(src) == pytest.approx(0.2, abs=0.002)
    # the AAC encoder's priming (1024 samples) may show as an earlier first packet
    assert abs(audio_start(out) - 0.2) <= 1024 / 44100 + 1e-3


def test_vfr_timestamps_kept(tmp_path):
    src = make_video(tmp_path / "vfr.mp4", frames=12, vfr=True, audio="aac")
    out = tmp_path / "out.mp4"
    _copy_through(src, out)
    t_in, t_out = read_video_pts(src)[0], read_video_pts(out)[0]
    assert len(t_out) == 12
    assert t_out == pytest.approx(t_in, abs=1e-4)
    gaps = np.diff(t_out)
    assert gaps.max() > 2 * gaps.min()  # really variable


def test_odd_size_is_padded_to_even_and_plays(tmp_path):
    src = make_video(tmp_path / "odd.mkv", size=(47, 33), codec="ffv1", audio=False, frames=6)
    out = tmp_path / "out.mp4"
    summary, frames = _copy_through(src, out, invert=False)
    assert (summary.width, summary.height) == (48, 34)
    with av.open(str(out)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (34, 48, 3)
    # the picture itself is kept (lossy codec: approximately), the pad repeats the edge
    diff = np.abs(decoded[2][:33, :47].astype(int) - frames[2][1].astype(int))
    assert diff.mean() < 4
    assert np.abs(decoded[2][:, 47].astype(int) - decoded[2][:, 46].astype(int)).mean() < 6


def test_no_audio_source_writes_video_only(tmp_path):
    src = make_video(tmp_path / "silent.mp4", frames=8, audio=False)
    out = tmp_path / "out.mkv"
    summary, _ = _copy_through(src, out)
    assert summary.audio == [] and summary.audio_text == "no audio"
    assert audio_codecs(out) == []
    t_in, t_out = read_video_pts(src)[0], read_video_pts(out)[0]
    assert np.allclose(np.array(t_out) - t_out[0], np.array(t_in) - t_in[0], atol=1e-3)


def test_missing_pts_are_spaced_by_the_frame_rate(tmp_path):
    out = tmp_path / "gen.mp4"
    img = np.full((16, 16, 3), 100, np.uint8)
    with VideoWriter(out, 16, 16, Fraction(1, 1000), 20.0, preset="ultrafast") as w:
        for pts in (None, None, 150, 150, None):  # repeated/missing pts must not break the order
            w.write(img, pts)
    times = read_video_pts(out)[0]
    assert times == pytest.approx([0.0, 0.05, 0.15, 0.151, 0.201], abs=1e-4)


def test_a_step_back_moves_only_the_frames_it_must(tmp_path):
    """A duplicate or a timestamp that goes back is moved one unit past the last: the frames after
    it keep their own times, so a copied audio track stays in sync with them."""
    out = tmp_path / "back.mp4"
    img = np.full((16, 16, 3), 100, np.uint8)
    with VideoWriter(out, 16, 16, Fraction(1, 1000), 20.0, preset="ultrafast") as w:
        for pts in (0, 50, 100, 60, 100, 150, 200):
            w.write(img, pts)
    assert read_video_pts(out)[0] == pytest.approx([0.0, 0.05, 0.1, 0.101, 0.102, 0.15, 0.2], abs=1e-4)


def test_a_source_that_starts_before_zero_starts_at_zero_with_its_audio(tmp_path):
    """Timestamps below 0 (an MPEG-TS clock that wrapped, an edit list) would hide the frames before
    0 in an mp4: the output starts at 0 with every frame, and the audio moves with it."""
    src = make_video(tmp_path / "a.mp4", frames=15, audio="aac")
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        tb, frames = s.time_base, [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    early = round(Fraction(1, 2) / tb)  # the video stamped half a second early
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 64, 48, tb, 25.0, audio_from=src, preset="ultrafast") as w:
        for pts, img in frames:
            w.write(img, pts - early)
    times = read_video_pts(out)[0]
    assert len(times) == 15 and times[0] == pytest.approx(0.0, abs=1e-3)
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        first = min(float(p.pts * p.time_base) for p in c.demux(a) if p.pts is not None and p.size)
    assert abs(first - 0.5) <= 1024 / 44100 + 1e-3  # where the video's 0.5 s now is (AAC priming aside)


def test_an_mpegts_audio_packet_stamped_before_its_clock_wrapped_is_muxed_in_place(tmp_path):
    """An AAC encoder's priming before 0 in MPEG-TS can read back as a time 26 hours on (here: a
    video with a gap, where the demuxer does not unwrap it): it is unwrapped, not held to the
    end, where the muxer refused it."""
    src = tmp_path / "wrap.ts"
    with av.open(str(src), "w", format="mpegts") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        v.codec_context.options = {"bf": "0"}
        a = out.add_stream("aac", rate=44100, layout="mono")
        packets = []
        for i in range(10):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            packets += v.encode(f)
        packets += v.encode(None)
        for i, p in enumerate(packets):  # 25 frames/s with a 10 s gap after frame 4
            p.pts = p.dts = 3600 * i + (900000 if i >= 5 else 0)
            p.time_base = Fraction(1, 90000)
            out.mux(p)
        tone = (0.3 * np.sin(np.arange(17640) * 2 * np.pi * 440 / 44100)).astype(np.float32)
        for k in range(0, len(tone), 1024):
            f = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = 44100, k, Fraction(1, 44100)
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    with av.open(str(src)) as c:
        assert max(p.dts for p in c.demux(c.streams.audio[0]) if p.size) >= 2**32  # the wrapped one
    summary, frames = _copy_through(src, tmp_path / "out.mp4")
    assert summary.audio == ["copy"] and len(read_video_pts(tmp_path / "out.mp4")[0]) == len(frames) == 10
    with av.open(str(tmp_path / "out.mp4")) as c:
        times = [float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.pts is not None and p.size]
    assert min(times) < 0.05 and max(times) < 0.5  # the tone where it was, not 26 hours on


def test_wrong_frame_shape_rejected(tmp_path):
    with pytest.raises(ValueError, match="expected 16x16x3"):
        with VideoWriter(tmp_path / "x.mp4", 16, 16, Fraction(1, 25), 25.0) as w:
            w.write(np.zeros((8, 16, 3), np.uint8))


def test_even_helpers():
    assert even_size(47, 33) == (48, 34) and even_size(48, 34) == (48, 34)
    a = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    b = pad_to_even(a)
    assert b.shape == (4, 6, 3)
    assert (b[:3, :5] == a).all() and (b[3, :5] == a[2]).all() and (b[:3, 5] == a[:, 4]).all()
    c = np.zeros((4, 6, 3), np.uint8)
    assert pad_to_even(c) is c


def test_crf_sets_quality(tmp_path):
    from helpers import synth_frame

    sizes = {}
    for crf in (0, 40):
        path = tmp_path / f"crf{crf}.mp4"
        with VideoWriter(path, 64, 48, Fraction(1, 25), 25.0, crf=crf) as w:
            for i in range(8):
                w.write(synth_frame(i, (64, 48)), i)
        sizes[crf] = path.stat().st_size
        with av.open(str(path)) as c:
            decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        err = np.abs(decoded[3].astype(int) - synth_frame(3, (64, 48)).astype(int)).mean()
        sizes[f"err{crf}"] = err
    assert sizes[0] > 2 * sizes[40] and sizes["err0"] < sizes["err40"]
