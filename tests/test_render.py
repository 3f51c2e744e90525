"""render: streaming translation of whole videos with a tiny run; timing, audio, safety."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from helpers import (
    audio_codecs,
    faststart,
    frame_times,
    make_audio_only,
    make_video,
    read_code,
    read_video_pts,
    restamp_pts_as_dts,
    stream_durations,
    tiny_pair_run,
    truncate,
    write_text_file,
)
from retarget.config import FaceConfig, RenderConfig, model_preset
from retarget.errors import RetargetError
from retarget.nn.networks import build_generator
from retarget.render import Translator, render, translate_video
from retarget.geometry import center_crop, center_crop_matrix, place_back
from retarget.render.compose import side_by_side
from retarget.render.stages import run_stages

SIZE = 32


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny untrained run saved the way training saves it (G_AB/G_BA only)."""
    return tiny_pair_run(tmp_path_factory.mktemp("models") / "a-to-b", SIZE)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _render(src: Path, out: Path, run: Path, **kw):
    return render(RenderConfig(input=str(src), output=str(out), model=str(run), device="cpu", batch_size=4, **kw))


def test_full_frame_keeps_frames_timestamps_and_aac(tmp_path, run_dir):
    src = make_video(tmp_path / "in.mp4", frames=14, size=(64, 48), audio="aac")
    out = tmp_path / "out.mp4"
    summary = _render(src, out, run_dir, crf=0)
    assert summary.frames == 14 and (summary.width, summary.height) == (64, 48)
    assert summary.audio == ["copy"] and summary.model.endswith("weights.safetensors")
    assert read_video_pts(out)[0] == pytest.approx(read_video_pts(src)[0], abs=1e-4)
    d = stream_durations(out)
    assert audio_codecs(out) == ["aac"] and abs(d["audio1"] - d["video"]) <= 1 / 25
    a, b = _frames(src), _frames(out)
    diff = np.abs(a[5].astype(int) - b[5].astype(int)).mean(axis=2)
    # the centre 48x48 square is the translated crop; the 8-px side bands stay the input
    assert diff[:, 10:54].mean() > 20
    assert diff[:, :6].mean() < 1.5 and diff[:, 58:].mean() < 1.5
    assert not list(tmp_path.glob(".*tmp*"))


def test_mp3_and_avi_ac3_inputs_keep_audio(tmp_path, run_dir):
    for name, audio, codec in (("m.mp4", "mp3", "h264"), ("a.avi", "ac3", "mpeg4")):
        src = make_video(tmp_path / name, frames=10, size=(48, 32), audio=audio, codec=codec)
        out = tmp_path / f"{name}.out.mp4"
        summary = _render(src, out, run_dir)
        assert summary.audio == ["copy"] and audio_codecs(out)[0].startswith(audio)
        d, d_in = stream_durations(out), stream_durations(src)
        assert summary.frames == 10
        # each stream as long as the input's (MP3 frames are 1152 samples, so the
        # input's own audio may overhang its video by a little more than a frame)
        assert abs(d["audio1"] - d_in["audio1"]) <= 1 / 25 and abs(d["video"] - d_in["video"]) <= 1 / 25


def test_vfr_odd_size_and_no_audio(tmp_path, run_dir):
    src = make_video(tmp_path / "vfr.mkv", frames=12, size=(48, 32), vfr=True)
    out = tmp_path / "vfr.out.mp4"
    summary = _render(src, out, run_dir)
    assert summary.audio == [] and audio_codecs(out) == []
    assert read_video_pts(out)[0] == pytest.approx(read_video_pts(src)[0], abs=1e-3)

    odd = make_video(tmp_path / "odd.mkv", size=(45, 35), codec="ffv1", audio="aac", frames=6)
    out = tmp_path / "odd.out.mp4"
    summary = _render(odd, out, run_dir, output_size="source")
    assert (summary.width, summary.height) == (46, 36)
    frames = _frames(out)
    assert len(frames) == 6 and frames[0].shape == (36, 46, 3)


def test_a_damaged_input_renders_what_decodes_and_says_what_it_lost(tmp_path, run_dir, capsys):
    """A file cut short behind its index, and one whose frames fail to decode: each renders the
    frames it holds, and a warning line after the summary names the file and the loss."""
    whole = faststart(make_video(tmp_path / "v.mp4", frames=40, size=(32, 32)), tmp_path / "fast.mp4")
    out = tmp_path / "short.out.mp4"
    _render(truncate(whole, 0.5), out, run_dir)
    err = capsys.readouterr().err
    assert 5 < len(_frames(out)) < 40
    assert "warning: " in err and "fast_truncated.mp4: the video ends at" in err and "cut short" in err
    broken = truncate(make_video(tmp_path / "long.avi", frames=40, size=(32, 32), codec="mpeg4"), 0.5)
    _render(broken, tmp_path / "broken.out.mp4", run_dir)
    err = capsys.readouterr().err
    assert "long_truncated.avi: " in err and "failed to decode; kept the" in err
    _render(whole, tmp_path / "whole.out.mp4", run_dir)
    assert "warning" not in capsys.readouterr().err


def test_output_size_model_and_side_by_side_with_rotation(tmp_path, run_dir):
    src = make_video(tmp_path / "rot.mp4", frames=6, size=(64, 48), rotation=90)
    out = tmp_path / "m.mp4"
    assert (_render(src, out, run_dir, output_size="model").width, _frames(out)[0].shape) == (SIZE, (SIZE, SIZE, 3))
    out = tmp_path / "sbs.mp4"
    summary = _render(src, out, run_dir, side_by_side=True)
    # upright 48x64 input on the left, its translation on the right, no rotation metadata
    assert (summary.width, summary.height) == (96, 64)
    frames = _frames(out)
    assert [read_code(np.rot90(f[:, :48], -1)) for f in frames] == list(range(6))  # stamped before rotation
    with av.open(str(out)) as c:
        assert not (next(c.decode(video=0)).rotation or 0)


def test_decode_order_timestamps_keep_lip_sync(tmp_path):
    # B-frames whose packets carry pts == dts: pictures decode in display order with
    # shuffled times. The output must pair each picture with its own time.
    clean = make_video(tmp_path / "clean.mp4", frames=20, size=(48, 32), bframes=2, audio="aac")
    src = restamp_pts_as_dts(clean, tmp_path / "in.mp4")
    out = tmp_path / "out.mp4"
    cfg = RenderConfig(input=str(src), output=str(out), batch_size=4, side_by_side=True)
    assert translate_video(cfg, lambda crops: list(crops), SIZE, quiet=True).frames == 20
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        decoded = [
            (float(f.pts * stream.time_base), read_code(f.to_ndarray(format="rgb24")[:, :48])) for f in c.decode(stream)
        ]
    times = [t for t, _ in decoded]
    assert times == sorted(times)
    assert times == pytest.approx(frame_times(20, 25), abs=1e-3)
    assert [code for _, code in decoded] == list(range(20))
    d = stream_durations(out)
    assert abs(d["audio1"] - d["video"]) <= 1 / 25


def test_interrupted_render_leaves_nothing(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=20, size=(48, 32), audio="aac")
    out = tmp_path / "out.mp4"
    calls = []

    def boom(crops):
        calls.append(len(crops))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return list(crops)

    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        translate_video(RenderConfig(input=str(src), output=str(out), batch_size=4), boom, SIZE, quiet=True)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert set(threading.enumerate()) <= before  # worker threads joined


def _identity(crops):
    return list(crops)


def test_full_disk_and_read_only_folder_give_one_line_and_leave_nothing(tmp_path, monkeypatch):
    import errno

    from retarget.video.writer import VideoWriter

    src = make_video(tmp_path / "in.mp4", frames=12, size=(48, 32), audio="aac")
    out = tmp_path / "out.mp4"
    cfg = RenderConfig(input=str(src), output=str(out), batch_size=4)
    real_write, calls = VideoWriter.write, []

    def full_disk(self, image, pts=None):
        calls.append(pts)
        if len(calls) == 5:  # PyAV's muxer reports a full disk as av.error.OSError
            raise av.error.OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, image, pts)

    monkeypatch.setattr(VideoWriter, "write", full_disk)
    with pytest.raises(RetargetError) as err:
        translate_video(cfg, _identity, SIZE, quiet=True)
    assert str(err.value) == f"{out}: cannot write: no space left on device; free some space or write elsewhere"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    monkeypatch.setattr(VideoWriter, "write", real_write)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("retarget.atomic.tempfile.mkstemp", read_only)
    with pytest.raises(RetargetError, match=r"out\.mp4: cannot write: read-only file system") as err:
        translate_video(cfg, _identity, SIZE, quiet=True)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_render_into_a_folder_without_write_permission(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(48, 32))
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(RetargetError, match="cannot write: permission denied"):
            translate_video(RenderConfig(input=str(src), output=str(folder / "o.mp4")), _identity, SIZE, quiet=True)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_render_removes_temp_files_of_killed_renders_only(tmp_path):
    import subprocess
    import sys

    from retarget.atomic import _HOST

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    src = make_video(tmp_path / "in.mp4", frames=4, size=(48, 32))
    stale = tmp_path / f".old.mp4.{proc.pid}-{_HOST}.abcd1234.tmp.mp4"  # a render killed with -9
    live = tmp_path / f".other.mp4.{os.getpid()}-{_HOST}.abcd1234.tmp.mp4"  # one still running
    foreign = tmp_path / ".old.mp4.abcd1234.tmp.mp4"
    for p in (stale, live, foreign):
        p.write_bytes(b"x")
    translate_video(RenderConfig(input=str(src), output=str(tmp_path / "o.mp4")), _identity, SIZE, quiet=True)
    assert not stale.exists() and live.exists() and foreign.exists()


def test_safety_refusals(tmp_path, run_dir):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(48, 32))
    with pytest.raises(RetargetError, match="is the input"):
        _render(src, tmp_path / "." / "in.mp4", run_dir, overwrite=True)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(RetargetError, match="already exists"):
        _render(src, out, run_dir)
    assert out.read_bytes() == b"keep me"
    _render(src, out, run_dir, overwrite=True)
    assert len(_frames(out)) == 4
    with pytest.raises(RetargetError, match="unsupported output"):
        _render(src, tmp_path / "x.gif", run_dir)


def test_clear_errors_for_bad_inputs_and_models(tmp_path, run_dir):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(48, 32))
    cases = [
        (tmp_path / "missing.mp4", run_dir, "no such file"),
        (write_text_file(tmp_path / "text.mp4"), run_dir, "not a video"),
        (make_audio_only(tmp_path / "sound.m4a"), run_dir, "no video stream"),
        (src, tmp_path / "nope", "model not found"),
        (src, write_text_file(tmp_path / "bad.safetensors"), "safetensors"),
    ]
    for i, (inp, model, message) in enumerate(cases):
        with pytest.raises(RetargetError, match=message) as err:
            _render(inp, tmp_path / f"o{i}.mp4", model)
        assert "\n" not in str(err.value)
        assert not (tmp_path / f"o{i}.mp4").exists()


def test_face_mode_changes_pixels_only_inside_the_mask(tmp_path):
    paste = pytest.importorskip("retarget.faces.paste")
    from retarget.faces.align import crop_matrix, template_points, warp_crop

    w, h = 96, 80
    src = make_video(tmp_path / "face.mp4", frames=6, size=(w, h), audio="aac")
    # a fixed "face": the template placed in the middle of the frame
    landmarks = (template_points(40, 0.0) + [28, 20]).astype(np.float32)
    matrix = crop_matrix(landmarks, SIZE, 0.4)

    class FakeFace:
        def __init__(self, image):
            self.matrix, self.raw_matrix, self.landmarks = matrix, matrix, landmarks
            self.crop = warp_crop(image, matrix, SIZE)

    class FakeAligner:
        resets = 0

        def __call__(self, image, time):
            return FakeFace(image) if time < 0.15 else None  # later frames: no face

        def reset(self):
            self.resets += 1

    out = tmp_path / "face.out.mp4"
    cfg = RenderConfig(input=str(src), output=str(out), batch_size=2, color_match="none", feather=0.05, crf=0)
    summary = translate_video(cfg, lambda crops: [255 - c for c in crops], SIZE, aligner=FakeAligner(), quiet=True)
    assert summary.faces == 4 and summary.frames == 6
    # reference: the same video through the same encoder with no face found anywhere
    ref = tmp_path / "ref.mp4"
    cfg = RenderConfig(input=str(src), output=str(ref), crf=0)
    translate_video(cfg, lambda crops: 1 / 0, SIZE, aligner=lambda image, time: None, quiet=True)
    a, b = _frames(ref), _frames(out)
    import cv2

    hull = np.zeros((h, w), np.uint8)  # the hull mask covers the face outline and forehead
    cv2.fillConvexPoly(hull, cv2.convexHull(paste.face_outline(landmarks).astype(np.int32)), 1)
    # + rounding of the hull, bilinear warp of the mask and 2x2 chroma subsampling
    near = cv2.dilate(hull, np.ones((9, 9), np.uint8)).astype(bool)
    diff = np.abs(a[1].astype(int) - b[1].astype(int)).max(axis=2)
    assert diff[hull.astype(bool)].mean() > 40
    assert diff[~near].max() <= 1
    # frames without a face pass through unchanged
    assert np.abs(a[5].astype(int) - b[5].astype(int)).max() <= 1


def test_translator_range_and_shape():
    net = build_generator(model_preset("tiny", size=SIZE)).eval()
    crops = [np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for i in range(3)]
    out = Translator(net)(crops)
    assert len(out) == 3 and out[0].shape == (SIZE, SIZE, 3) and out[0].dtype == np.uint8
    identity = Translator(torch.nn.Identity())(crops)
    assert all((x == y).all() for x, y in zip(identity, crops))


def test_center_crop_matrix_matches_crop_and_place_back_inverts_it():
    rng = np.random.default_rng(0)
    img = cv2_smooth(rng.integers(0, 256, (60, 100, 3), dtype=np.uint8))
    m = center_crop_matrix(100, 60, 30)
    crop = center_crop(img, 30)
    import cv2

    warped = cv2.warpAffine(img, m, (30, 30), flags=cv2.INTER_LINEAR)
    assert np.abs(warped.astype(int) - crop.astype(int))[2:-2, 2:-2].mean() < 6
    back = place_back(img, np.zeros_like(crop), m)
    # the crop covers source columns 20..79 and every row, exactly
    assert (back[:, :20] == img[:, :20]).all() and (back[:, 80:] == img[:, 80:]).all()
    assert back[:, 20:80].max() == 0
    ramp = np.tile(np.arange(30, dtype=np.uint8)[None, :, None] * 8, (30, 1, 3))
    up = place_back(img, ramp, m)[:, 20:80, 0].astype(int)
    assert (np.diff(up, axis=1) >= 0).all() and up[:, 0].max() == 0 and up[:, -1].min() == 29 * 8
    assert side_by_side(img, crop).shape == (30, 50 + 30, 3)


def cv2_smooth(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (9, 9), 3)


def test_pipeline_keeps_order_and_propagates_worker_errors():
    seen: list[int] = []
    run_stages(iter(range(50)), lambda x: x * 2, seen.append, depth=2)
    assert seen == [2 * i for i in range(50)]

    def bad_source():
        yield 1
        raise ValueError("decode failed")

    with pytest.raises(ValueError, match="decode failed"):
        run_stages(bad_source(), lambda x: x, lambda x: None)

    def bad_sink(x):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_stages(iter(range(100)), lambda x: x, bad_sink)


def test_alignment_defaults_to_the_runs_source_domain(tmp_path, run_dir, monkeypatch):
    import retarget.faces.aligner as aligner

    made = []

    class NoFace:
        def __init__(self, cfg, size, backend=None):
            made.append((cfg, size))

        def __call__(self, image, time):
            return None

        def reset(self):
            pass

    monkeypatch.setattr(aligner, "FaceAligner", NoFace)
    src = make_video(tmp_path / "in.mp4", frames=4, size=(48, 32))
    # B was extracted with --align face: b2a renders in face mode with B's FaceConfig
    # (no face in any frame: refused rather than a copy of the input, and nothing written)
    with pytest.raises(RetargetError, match="no face found in any frame"):
        _render(src, tmp_path / "b2a.mp4", run_dir, direction="b2a")
    assert made == [(FaceConfig(), SIZE)] and not (tmp_path / "b2a.mp4").exists()
    # A was extracted with --align none; --align overrides the run's choice
    assert _render(src, tmp_path / "a2b.mp4", run_dir).align == "none"
    with pytest.raises(RetargetError, match="no face found in any frame"):
        _render(src, tmp_path / "o.mp4", run_dir, align="face")
    assert len(made) == 2


@pytest.mark.slow
def test_face_mode_on_a_real_face_changes_only_the_face(tmp_path, run_dir, shared_video):
    import cv2

    from retarget.faces import paste
    from retarget.faces.aligner import FaceAligner

    src = shared_video("carphone_pristine.mp4")
    out = tmp_path / "face.mp4"
    summary = _render(src, out, run_dir, direction="b2a", crf=0)  # B is the face domain
    assert summary.align == "face" and summary.frames == 120 and summary.faces >= 110
    a, b = _frames(src), _frames(out)
    assert len(b) == 120
    for i in (10, 60, 110):
        face = FaceAligner(FaceConfig(smooth=0), SIZE)(a[i], 0.0)
        region = np.zeros(a[i].shape[:2], np.uint8)
        cv2.fillConvexPoly(region, cv2.convexHull(paste.face_outline(face.landmarks).astype(np.int32)), 1)
        # margin for the smoothed (not per-frame) alignment of the render and chroma bleed
        around = cv2.dilate(region, np.ones((17, 17), np.uint8)).astype(bool)
        changed = np.abs(a[i].astype(int) - b[i].astype(int)).max(axis=2) > 16
        assert changed[region.astype(bool)].mean() > 0.3
        assert changed[~around].mean() < 0.002


def test_cut_threshold_comes_from_the_training_manifest(tmp_path):
    import json

    from retarget.run import DataInfo

    def _cut_threshold(data):
        return DataInfo.from_dict(data).scene_threshold()

    (tmp_path / "manifest.json").write_text(json.dumps({"options": {"runs": [{"cut_threshold": 0.3}]}}))
    assert _cut_threshold({"path": str(tmp_path)}) == 0.3
    assert _cut_threshold({"path": str(tmp_path / "moved")}) == 0.5
    assert _cut_threshold({}) == 0.5
    assert _cut_threshold({"cut_threshold": 0.7, "path": str(tmp_path)}) == 0.7  # recorded in the run wins


def test_full_frame_uses_the_crop_the_training_data_were_cut_from(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(96, 64), fps=25)
    out = tmp_path / "out.mp4"
    crop = (50, 10, 40, 40)  # x, y, w, h: a square away from the centre
    cfg = RenderConfig(input=str(src), output=str(out), batch_size=2, crf=0)
    seen: list[np.ndarray] = []

    def white(crops):
        seen.extend(crops)
        return [np.full_like(c, 255) for c in crops]

    translate_video(cfg, white, SIZE, crop=crop, quiet=True)
    first = _frames(src)[0]
    assert np.abs(seen[0].astype(int) - center_crop(first, SIZE, crop).astype(int)).mean() < 1
    inside = _frames(out)[0][14:46, 54:86]
    outside = np.abs(_frames(out)[0][:, :44].astype(int) - first[:, :44].astype(int))
    assert inside.min() > 200  # the translation went back where the crop came from
    assert np.median(outside) < 8  # left of the crop: the input, untouched up to H.264


# -- --stabilize -------------------------------------------------------------------------


def _noisy_translator(sigma: float = 12.0):
    """A fake generator with per-frame noise (flicker): the crop shifted to mean 128, plus
    noise that depends only on the call order, so two renders get the same noise."""
    calls = iter(range(10**6))

    def translate(crops):
        out = []
        for c in crops:
            rng = np.random.default_rng(next(calls))
            res = c.astype(np.float32) + (128 - c.mean()) + rng.normal(0, sigma, c.shape)
            out.append(np.clip(res + 0.5, 0, 255).astype(np.uint8))
        return out

    return translate


def _cut_clip(path: Path, frames: int = 16, cut: int = 8) -> Path:
    """64x48 clip, a hard cut at ``cut``: a dark bluish shot, then a bright reddish one that
    keeps the same texture in the middle of the picture."""
    import cv2

    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (48, 64, 3)).astype(np.float32), (0, 0), 2)
    tex = (tex - tex.mean()) / tex.std() * 40 + 128
    a = np.clip(tex * [0.3, 0.4, 1.0], 0, 255).astype(np.uint8)
    b = np.clip(tex * [1.6, 1.2, 0.4], 0, 255).astype(np.uint8)
    b[16:32, 24:40] = a[16:32, 24:40]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv444p"
        s.options = {"qp": "0"}
        for i in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(a if i < cut else b, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def test_stabilize_steadies_and_resets_at_a_hard_cut(tmp_path):
    src = _cut_clip(tmp_path / "cut.mp4")
    outs = {}
    for name, kw in (("off", {"stabilize": 0.0}), ("default", {}), ("on", {"stabilize": 1.0})):
        out = tmp_path / f"{name}.mp4"
        cfg = RenderConfig(input=str(src), output=str(out), output_size="model", batch_size=3, crf=0, **kw)
        summary = translate_video(cfg, _noisy_translator(), SIZE, quiet=True)
        assert summary.frames == 16 and summary.stabilize == kw.get("stabilize", RenderConfig.stabilize)
        outs[name] = np.stack(_frames(out)).astype(np.float32)
    off, on = outs["off"], outs["on"]
    assert np.array_equal(outs["default"], on)  # the default is full strength (docs/benchmarks.md)
    # within the first shot the flicker drops, and the result stays the translation's look
    assert on[3:8].std(0).mean() < 0.5 * off[3:8].std(0).mean()
    assert abs(on[3:8].mean() - off[3:8].mean()) < 2
    # the first frame of each shot is the translation itself: nothing of the previous shot,
    # not even in the middle, where both shots show the same texture
    assert np.array_equal(on[0], off[0]) and np.array_equal(on[8], off[8])
    assert np.abs(on[9:] - off[9:]).mean() > 2  # and the second shot is steadied again


def test_stabilize_in_face_mode_changes_pixels_only_inside_the_mask(tmp_path):
    paste = pytest.importorskip("retarget.faces.paste")
    import cv2
    from retarget.faces.align import crop_matrix, template_points, warp_crop

    w, h = 96, 80
    src = make_video(tmp_path / "face.mp4", frames=8, size=(w, h))
    landmarks = (template_points(40, 0.0) + [28, 20]).astype(np.float32)
    matrix = crop_matrix(landmarks, SIZE, 0.4)

    class FakeFace:
        def __init__(self, image, track):
            self.matrix, self.landmarks, self.track = matrix, landmarks, track
            self.crop = warp_crop(image, matrix, SIZE)

    def aligner(image, time):
        return FakeFace(image, 0 if time < 0.15 else 1)  # a new face track from frame 4

    frames = {}
    for name, strength in (("ref", None), ("off", 0.0), ("on", 1.0)):
        out = tmp_path / f"{name}.mp4"
        cfg = RenderConfig(
            input=str(src), output=str(out), color_match="none", feather=0.05, crf=0, stabilize=strength or 0.0
        )
        if strength is None:  # the same video through the same encoder, no face anywhere
            translate_video(cfg, lambda crops: 1 / 0, SIZE, aligner=lambda image, time: None, quiet=True)
        else:
            translate_video(cfg, _noisy_translator(), SIZE, aligner=aligner, quiet=True)
        frames[name] = np.stack(_frames(out)).astype(int)
    hull = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(paste.face_outline(landmarks).astype(np.int32)), 1)
    near = cv2.dilate(hull, np.ones((9, 9), np.uint8)).astype(bool)
    ref, off, on = frames["ref"], frames["off"], frames["on"]
    for t in range(1, 8):
        assert np.abs(on[t] - ref[t]).max(axis=2)[~near].max() <= 1
    # inside, the stabilizer did act (where the source's motion could be followed)
    inside = hull.astype(bool)
    assert np.abs(on - off).max(axis=3)[1:, inside].mean() > 2
    # the first frame, and the first of the new face track, pass unchanged
    assert np.array_equal(on[0], off[0]) and np.array_equal(on[4], off[4])
    assert not np.array_equal(on[5], off[5])


def test_step_picks_a_kept_checkpoint(tmp_path):
    from retarget.run.checkpoint import write_checkpoint

    cfg = model_preset("tiny", size=SIZE)
    run = tmp_path / "run"
    for step in (10, 20):
        torch.manual_seed(step)
        nets = {"G_AB": build_generator(cfg), "G_BA": build_generator(cfg)}
        write_checkpoint(run, step, nets, cfg, {"step": step}, {"A": {"align": "none", "size": SIZE}})
    src = make_video(tmp_path / "in.mp4", frames=4, size=(48, 48))
    newest = _render(src, tmp_path / "new.mp4", run)
    older = _render(src, tmp_path / "old.mp4", run, step=10)
    assert "step_0000020" in newest.model and "step_0000010" in older.model
    assert np.abs(_frames(tmp_path / "new.mp4")[1].astype(int) - _frames(tmp_path / "old.mp4")[1]).mean() > 1
    with pytest.raises(RetargetError, match=r"no checkpoint of step 15 \(checkpoints kept: 10, 20\)"):
        _render(src, tmp_path / "x.mp4", run, step=15)
    assert not (tmp_path / "x.mp4").exists()
