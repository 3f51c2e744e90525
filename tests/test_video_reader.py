"""Decoding with PyAV: containers/codecs, rotation, pts times, resampling, ranges, bad input."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from retarget.errors import RetargetError
from retarget.video.reader import VideoReader, probe
from helpers import (
    faststart,
    frame_times,
    make_audio_only,
    make_video,
    read_code,
    restamp_pts_as_dts,
    synth_frame,
    truncate,
    write_text_file,
)

SIZE = (64, 48)


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """25 fps, 30 frames, keyframe every 10, with audio."""
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames=30, size=SIZE, fps=25, audio=True, gop=10)


def test_probe_describes_the_stream(clip):
    info = probe(clip)
    assert (info.width, info.height) == SIZE
    assert info.fps == pytest.approx(25.0)
    assert info.frame_count == 30
    assert info.duration == pytest.approx(1.2, abs=0.05)
    assert info.codec == "h264" and info.audio_streams == 1 and info.rotation == 0
    assert isinstance(info.time_base, Fraction)


CASES = [
    ("mp4", "h264"),
    ("mkv", "h264"),
    ("mov", "h264"),
    ("avi", "mpeg4"),
    ("avi", "msmpeg4"),
    ("avi", "cinepak"),
    ("webm", "vp9"),
    ("avi", "mjpeg"),
]


@pytest.mark.parametrize("ext,codec", CASES)
def test_decodes_each_container_and_codec(tmp_path, ext, codec):
    path = make_video(tmp_path / f"v.{ext}", frames=12, size=SIZE, codec=codec, audio=True)
    with VideoReader(path) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(12))
    assert [read_code(f.image) for f in frames] == list(range(12))
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    # RGB, not BGR: the picture matches what was encoded.
    assert _mean_abs(frames[5].image, synth_frame(5, SIZE, 0, 12)) < 12
    assert reader.bad_frames == 0


def test_audio_tracks_do_not_disturb_video(tmp_path):
    for ext, audio in [("mp4", "aac"), ("mkv", "ac3"), ("avi", "mp3"), ("webm", True)]:
        path = make_video(tmp_path / f"a.{ext}", frames=6, size=SIZE, audio=audio)
        assert probe(path).audio_streams == 1
        assert [read_code(f.image) for f in VideoReader(path)] == list(range(6))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    path = make_video(tmp_path / "r.mp4", frames=4, size=SIZE, rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation
    expect_wh = (48, 64) if rotation in (90, 270) else (64, 48)
    assert (info.width, info.height) == expect_wh
    frame = list(VideoReader(path))[2]
    want = np.rot90(synth_frame(2, SIZE, 0, 4), rotation // 90)
    assert frame.image.shape == want.shape
    assert _mean_abs(frame.image, want) < 10
    # A wrong turn would put the dark corner marker elsewhere.
    assert _mean_abs(frame.image, np.rot90(want, 2)) > 20


def test_vfr_timestamps_come_from_pts(tmp_path):
    path = make_video(tmp_path / "vfr.mkv", frames=15, size=SIZE, fps=20, vfr=True)
    times = [f.time for f in VideoReader(path)]
    assert times == pytest.approx(frame_times(15, 20, vfr=True), abs=2e-3)
    # Not evenly spaced: a decoder assuming a constant rate would fail this.
    assert len({round(b - a, 3) for a, b in zip(times, times[1:])}) == 3


def _nearest_selection(times: list[float], fps: float) -> list[int]:
    """Reference: for each tick the index of the nearest frame, each frame once."""
    picked: list[int] = []
    k = 0
    last = times[-1] + (times[-1] - times[-2])
    while times[0] + k / fps < last - 1e-9:
        tick = times[0] + k / fps
        i = min(range(len(times)), key=lambda j: abs(times[j] - tick))
        if not picked or picked[-1] != i:
            picked.append(i)
        k += 1
    return picked


# Rates chosen so no tick falls exactly between two frames.
@pytest.mark.parametrize("vfr,fps", [(False, 9.0), (False, 7.0), (True, 8.3)])
def test_fps_resampling_picks_the_nearest_frame(tmp_path, vfr, fps):
    path = make_video(tmp_path / "f.mkv", frames=30, size=SIZE, fps=25, vfr=vfr)
    frames = list(VideoReader(path, fps=fps))
    got = [f.index for f in frames]
    assert got == _nearest_selection(frame_times(30, 25, vfr), fps)
    assert [read_code(f.image) for f in frames] == got
    # Output times follow the target rate, not every n-th source frame.
    assert len(got) == pytest.approx(1.2 * fps, abs=1.01)


def test_fps_above_source_rate_keeps_each_frame_once(tmp_path):
    path = make_video(tmp_path / "f.mp4", frames=10, size=SIZE, fps=10)
    assert [f.index for f in VideoReader(path, fps=30)] == list(range(10))


def test_every_and_max_frames(clip):
    reader = VideoReader(clip, every=4, max_frames=5)
    assert [f.index for f in reader] == [0, 4, 8, 12, 16]
    assert reader.stats.every > 0


def test_start_end_seek_then_decode(clip):
    reader = VideoReader(clip, start=0.5, end=0.8)  # frames 12.5 .. 20 -> 13..19
    frames = list(reader)
    assert [f.index for f in frames] == list(range(13, 20))
    assert [read_code(f.image) for f in frames] == list(range(13, 20))
    assert all(0.5 <= f.time < 0.8 for f in frames)
    # Seeked to the keyframe at 10, not decoded from the start.
    assert reader.stats.decoded < 20


def test_start_past_the_end_is_an_error(clip):
    with pytest.raises(RetargetError, match="past the end"):
        VideoReader(clip, start=5.0)


def test_iterating_twice_gives_the_same_frames(clip):
    reader = VideoReader(clip, max_frames=3)
    assert [f.index for f in reader] == [f.index for f in reader] == [0, 1, 2]


# --- bad input ------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(RetargetError, match=r"nope\.mp4: no such file"):
        probe(tmp_path / "nope.mp4")


def test_text_file_named_mp4(tmp_path):
    path = write_text_file(tmp_path / "notes.mp4")
    with pytest.raises(RetargetError, match=r"notes\.mp4: not a video"):
        VideoReader(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(RetargetError, match="empty"):
        probe(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(RetargetError, match="folder"):
        probe(tmp_path)


def test_audio_only_file(tmp_path):
    path = make_audio_only(tmp_path / "sound.m4a")
    with pytest.raises(RetargetError, match=r"sound\.m4a: no video stream"):
        probe(path)


def test_zero_decodable_frames(tmp_path):
    path = tmp_path / "garbage.avi"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            packet = av.Packet(rng.integers(0, 256, 400, dtype=np.uint8).tobytes())
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, Fraction(1, 25)
            out.mux(packet)
    reader = VideoReader(path)
    with pytest.raises(RetargetError, match=r"garbage\.avi: no decodable video frames"):
        list(reader)
    assert reader.bad_frames > 0


def test_truncated_file_yields_what_decodes(tmp_path):
    full = make_video(tmp_path / "full.avi", frames=40, size=SIZE, codec="mpeg4")
    cut = truncate(full, 0.5)
    reader = VideoReader(cut)
    frames = list(reader)
    assert 5 < len(frames) < 40
    assert [read_code(f.image) for f in frames] == list(range(len(frames)))
    assert reader.bad_frames >= 1


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path):
    # PyAV writes the mp4 index at the end: cut it off and nothing can be located.
    cut = truncate(make_video(tmp_path / "full.mp4", frames=20, size=SIZE), 0.5)
    with pytest.raises(RetargetError, match=r"full_truncated\.mp4"):
        probe(cut)


def test_a_cut_short_file_whose_index_survived_says_so(tmp_path):
    """An mp4 with its index first, cut in half: the frames it holds decode, and the reader tells
    that the stream ends well before its header's length; the whole file does not."""
    whole = faststart(make_video(tmp_path / "v.mp4", frames=40, size=SIZE), tmp_path / "fast.mp4")
    reader = VideoReader(whole)
    assert len(list(reader)) == 40 and reader.stats.cut_short(25.0) is None
    cut = truncate(whole, 0.5)
    reader = VideoReader(cut)
    frames = list(reader)
    assert 5 < len(frames) < 40
    why = reader.stats.cut_short(25.0)
    assert why is not None and "of the 1.60 s its header gives: the file may be cut short" in why
    stopped = VideoReader(whole, max_frames=10)  # a caller that stops early: nothing to say
    assert len(list(stopped)) == 10 and stopped.stats.cut_short(25.0) is None


@pytest.fixture(scope="module")
def decode_order_pts(tmp_path_factory):
    """H.264 with 2 B-frames whose packets carry pts == dts, and the clean original."""
    folder = tmp_path_factory.mktemp("bf")
    clean = make_video(folder / "clean.mp4", frames=30, size=SIZE, fps=25, bframes=2, audio=True)
    return restamp_pts_as_dts(clean, folder / "pts_dts.mp4"), clean


def test_decode_order_timestamps_are_put_back_in_display_order(decode_order_pts):
    shuffled, clean = decode_order_pts
    with av.open(str(shuffled)) as c:  # the file really has the fault
        raw = [f.pts for f in c.decode(video=0)]
    assert raw != sorted(raw)
    reader = VideoReader(shuffled)
    frames = list(reader)
    assert [read_code(f.image) for f in frames] == list(range(30))
    expected = [f.time for f in VideoReader(clean)]
    assert [f.time for f in frames] == pytest.approx(expected, abs=1e-6)
    assert [f.pts for f in frames] == sorted(raw)
    assert [f.index for f in frames] == list(range(30))
    assert reader.stats.reordered > 10
    # A well-timed stream with B-frames passes through unchanged.
    clean_reader = VideoReader(clean)
    assert [f.time for f in clean_reader] == pytest.approx(frame_times(30, 25))
    assert clean_reader.stats.reordered == 0


def test_decode_order_timestamps_with_range_and_resampling(decode_order_pts):
    shuffled, _ = decode_order_pts
    picked = list(VideoReader(shuffled, start=0.4, end=0.8))
    assert [read_code(f.image) for f in picked] == list(range(10, 20))
    assert [f.time for f in picked] == pytest.approx(frame_times(30, 25)[10:20])
    resampled = list(VideoReader(shuffled, fps=12.5))
    assert [read_code(f.image) for f in resampled] == list(range(0, 30, 2))
