"""render --start/--end (only a part translated, the rest copied), and render's other new refusals
(--face-ref outside face mode or without a usable image, --mask-erode with --mask-dilate)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import audio_codecs, make_video, read_code, read_video_pts, stream_durations
from test_render import SIZE, _frames, _render, run_dir  # noqa: F401 - run_dir is a fixture
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import RenderConfig
from retarget.errors import RetargetError
from retarget.faces.align import crop_matrix, template_points, warp_crop
from retarget.render import translate_video
from retarget.video.reader import probe


def _invert(crops):
    return [255 - c for c in crops]


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.parametrize("stabilize", [0.0, 1.0])
def test_only_the_span_is_translated_the_rest_copied_with_audio_and_timing(tmp_path, stabilize):
    src = make_video(tmp_path / "in.mp4", frames=40, size=(64, 48), audio="aac")
    out = tmp_path / "out.mp4"
    cfg = RenderConfig(str(src), str(out), start=0.58, end=1.18, crf=0, batch_size=4, stabilize=stabilize)
    summary = translate_video(cfg, _invert, SIZE, quiet=True)
    assert summary.frames == 40 and summary.translated == 15 and summary.window == "0.58-1.18 s"
    assert read_video_pts(out)[0] == pytest.approx(read_video_pts(src)[0], abs=1e-4)
    d = stream_durations(out)
    assert audio_codecs(out) == ["aac"] and abs(d["audio1"] - d["video"]) <= 1 / 25
    a, b = _frames(src), _frames(out)
    for i in range(40):
        inside = 15 <= i < 30  # 0.6 s to 1.16 s
        assert (_diff(a[i][:, 8:56], b[i][:, 8:56]) > 40) == inside, i
        if not inside:  # copied: the same picture, its frame code included
            assert _diff(a[i], b[i]) < 2.5 and read_code(b[i]) == i
    assert not list(tmp_path.glob(".*tmp*"))


def test_open_ended_spans(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=20, size=(64, 48))
    tail = translate_video(RenderConfig(str(src), str(tmp_path / "t.mp4"), start=0.5), _invert, SIZE, quiet=True)
    head = translate_video(RenderConfig(str(src), str(tmp_path / "h.mp4"), end=0.2), _invert, SIZE, quiet=True)
    assert (tail.translated, tail.window) == (7, "0.50-end") and (head.translated, head.window) == (5, "0.00-0.20 s")
    full = translate_video(RenderConfig(str(src), str(tmp_path / "f.mp4")), _invert, SIZE, quiet=True)
    assert full.translated == 20 and full.window == ""


def test_face_mode_sees_only_the_frames_of_the_span(tmp_path):
    src = make_video(tmp_path / "face.mp4", frames=12, size=(96, 80))
    landmarks = (template_points(40, 0.0) + [28, 20]).astype(np.float32)
    matrix = crop_matrix(landmarks, SIZE, 0.4)
    seen = []

    class Face:
        def __init__(self, image):
            self.matrix, self.landmarks, self.crop = matrix, landmarks, warp_crop(image, matrix, SIZE)

    def aligner(image, time):
        seen.append(round(time, 2))
        return Face(image)

    aligner.reset = lambda: None
    cfg = RenderConfig(str(src), str(tmp_path / "o.mp4"), start=0.2, end=0.3, color_match="none")
    summary = translate_video(cfg, _invert, SIZE, aligner=aligner, quiet=True)
    assert seen == [0.2, 0.24, 0.28] and summary.faces == 3 and summary.frames == 12


@pytest.mark.parametrize(
    "args, message",
    [
        (["--start", "2", "--end", "1"], "--start 2 --end 1: the start must come before the end"),
        (["--start", "1", "--end", "1"], "--start 1 --end 1: the start must come before the end"),
        (["--start", "5"], "--start 5: beyond the end of"),
        (["--mask-erode", "2", "--mask-dilate", "3"], "--mask-erode 2 --mask-dilate 3: give one of them"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(tmp_path, args, message):
    src = make_video(tmp_path / "in.mp4", frames=10)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["render", str(src), str(out), *args])
    assert result.exit_code == 1 and result.output.startswith(f"error: {message}"), result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_span_after_a_video_of_unknown_length_is_one_line_and_writes_nothing(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=10)
    info = dataclasses.replace(probe(src), duration=0.0)  # a container that does not say
    cfg = RenderConfig(str(src), str(tmp_path / "out.mp4"), start=3.0)
    with pytest.raises(RetargetError, match=r"^--start 3: no frame of \S+ lies in that window$"):
        translate_video(cfg, _invert, SIZE, info=info, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    cfg = RenderConfig(str(src), str(tmp_path / "out.mp4"), end=0.0)  # the option named is the one given
    with pytest.raises(RetargetError, match=r"^--end 0: no frame of \S+ lies in that window$"):
        translate_video(cfg, _invert, SIZE, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_face_ref_outside_face_mode_or_missing_is_one_line(tmp_path, run_dir):  # noqa: F811
    src = make_video(tmp_path / "in.mp4", frames=4, size=(48, 32))
    with pytest.raises(
        RetargetError, match=r"^--face-ref me.png: has an effect with --align face only \(this is --align none\)$"
    ):
        _render(src, tmp_path / "a.mp4", run_dir, face_ref="me.png")  # A: --align none
    pytest.importorskip("dlib")
    with pytest.raises(RetargetError, match=r"^--face-ref \S+me.png: not found"):
        _render(src, tmp_path / "b.mp4", run_dir, direction="b2a", face_ref=str(tmp_path / "me.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
