"""extract(): videos -> dataset folder; segments, face mode with a fake aligner, bad input, CLI."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import faststart, make_audio_only, make_video, read_code, truncate, write_text_file
from retarget.cli import app
from retarget.config import ExtractConfig, FaceConfig
from retarget.dataset.extract import extract
from retarget.geometry import crop_none, none_matrix
from retarget.dataset.manifest import read_dataset
from retarget.errors import RetargetError
from retarget.video.reader import VideoReader

SIZE = 32


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """30 frames 80x48 at 25 fps with scene cuts at 10 and 20, with audio."""
    return make_video(
        tmp_path_factory.mktemp("v") / "cuts.mp4", frames=30, size=(80, 48), scene_cuts=(10, 20), audio=True
    )


def _cfg(videos, out, **kw):
    return ExtractConfig(videos=tuple(str(v) for v in videos), output=str(out), size=SIZE, workers=2, **kw)


def _codes(ds):
    return [read_code(cv2.resize(ds.load(i), (80, 48))) for i in range(len(ds.frames))]


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_align_none_frames_manifest_and_cut_segments(tmp_path, cut_video):
    out = tmp_path / "ds"
    summary = extract(_cfg([cut_video], out, frame="square"))
    assert (summary.frames_read, summary.frames_written, summary.segments, summary.cuts) == (30, 30, 3, 2)
    ds = read_dataset(out)
    assert ds.align == "none" and ds.size == SIZE and ds.face is None and ds.frame == "square"
    assert ds.segments() == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
    assert [f.index for f in ds.frames] == list(range(30))
    assert [f.time for f in ds.frames] == pytest.approx([i / 25 for i in range(30)], abs=1e-3)
    assert ds.videos[0].width == 80 and len(ds.videos[0].sha256) == 64
    assert ds.options["runs"][0]["videos"] == [str(cut_video)]
    assert _leftovers(tmp_path) == []
    # The recorded matrix reproduces the written crop from the source frame.
    source = [f.image for f in VideoReader(cut_video)]
    for i in (0, 17):
        warped = cv2.warpAffine(source[i], ds.frames[i].matrix, (SIZE, SIZE), flags=cv2.INTER_AREA)
        assert ds.load(i).shape == (SIZE, SIZE, 3)
        assert np.abs(warped.astype(int) - ds.load(i).astype(int)).mean() < 6


def test_frame_full_keeps_the_aspect_and_records_the_mode(tmp_path, cut_video):
    out = tmp_path / "full"
    extract(_cfg([cut_video], out, max_frames=12))  # --frame full is the default
    ds = read_dataset(out)
    assert ds.frame == "full" and ds.size == SIZE
    assert json.loads((out / "manifest.json").read_text())["frame"] == "full"
    source = [f.image for f in VideoReader(cut_video)]
    for i in (0, 11):
        img = ds.load(i)
        # 80x48 -> short side 32, long side round(80 * 32 / 48) = 53: the whole frame, aspect kept
        assert img.shape == (SIZE, 53, 3)
        warped = cv2.warpAffine(source[i], ds.frames[i].matrix, (53, SIZE), flags=cv2.INTER_AREA)
        assert np.abs(warped.astype(int) - img.astype(int)).mean() < 6
        assert read_code(cv2.resize(img, (80, 48))) == i  # the bottom band of the whole frame is there
    # with --crop, the whole region (40x30 -> 43x32), not its centre square
    extract(_cfg([cut_video], tmp_path / "region", crop=(10, 4, 40, 30), max_frames=3))
    ds = read_dataset(tmp_path / "region")
    assert ds.load(0).shape == (SIZE, 43, 3)
    centre = ds.frames[0].matrix @ np.array([10 + 19.5, 4 + 14.5, 1.0])
    np.testing.assert_allclose(centre, [21.0, 15.5], atol=0.3)
    # face crops are square whatever --frame says
    extract(_cfg([cut_video], tmp_path / "faces", align="face", max_frames=3), aligner=FakeAligner())
    assert read_dataset(tmp_path / "faces").frame == "square"


def test_append_refuses_another_frame_mode_and_old_datasets_load_as_square(tmp_path, cut_video):
    out = tmp_path / "ds"
    extract(_cfg([cut_video], out, frame="square", max_frames=4))
    with pytest.raises(RetargetError, match=r"--frame square; --append needs the same"):
        extract(_cfg([cut_video], out, append=True, max_frames=4))
    assert len(read_dataset(out).frames) == 4
    extract(_cfg([cut_video], out, frame="square", append=True, max_frames=4))
    assert len(read_dataset(out).frames) == 8
    # a manifest written before --frame existed has no "frame" key: square crops
    data = json.loads((out / "manifest.json").read_text())
    del data["frame"]
    (out / "manifest.json").write_text(json.dumps(data))
    old = read_dataset(out)
    assert old.frame == "square" and old.load(0).shape == (SIZE, SIZE, 3)
    with pytest.raises(RetargetError, match="--frame square"):
        extract(_cfg([cut_video], out, frame="full", append=True, max_frames=4))
    extract(_cfg([cut_video], out, frame="square", append=True, max_frames=4))
    assert read_dataset(out).frame == "square" and len(read_dataset(out).frames) == 12


def test_none_matrix_centre_square_and_crop():
    m, square = none_matrix(80, 48, 32)
    assert square == (16, 0, 48)
    # Centre of the source square lands on the centre of the output.
    centre = m @ np.array([16 + 23.5, 23.5, 1.0])
    np.testing.assert_allclose(centre, [15.5, 15.5])
    m, square = none_matrix(80, 48, 32, crop=(10, 4, 40, 30))
    assert square == (15, 4, 30)
    img = np.zeros((48, 80, 3), np.uint8)
    img[4:34, 15:45] = 255
    assert crop_none(img, square, 32).min() == 255
    with pytest.raises(ValueError, match="does not fit"):
        none_matrix(80, 48, 32, crop=(60, 0, 40, 40))


def test_crop_outside_the_frame_names_the_video(tmp_path, cut_video):
    with pytest.raises(RetargetError, match=r"cuts\.mp4.*does not fit"):
        extract(_cfg([cut_video], tmp_path / "ds", crop=(0, 0, 500, 500)))
    assert not (tmp_path / "ds").exists()


def test_range_rate_and_count_options(tmp_path, cut_video):
    s = extract(_cfg([cut_video], tmp_path / "a", every=2, max_frames=4))
    ds = read_dataset(tmp_path / "a")
    assert [f.index for f in ds.frames] == [0, 2, 4, 6] and s.frames_written == 4
    extract(_cfg([cut_video], tmp_path / "b", start=0.4, end=0.6))
    assert [f.index for f in read_dataset(tmp_path / "b").frames] == [10, 11, 12, 13, 14]
    s = extract(_cfg([cut_video], tmp_path / "c", fps=5))
    assert [f.index for f in read_dataset(tmp_path / "c").frames] == [0, 5, 10, 15, 20, 25]
    assert s.skipped["fps resampling"] == 24


def test_gap_in_timestamps_ends_the_segment(tmp_path):
    video = make_video(tmp_path / "gap.mkv", frames=20, size=(48, 48), drop=(8, 9, 10))
    extract(_cfg([video], tmp_path / "ds"))
    ds = read_dataset(tmp_path / "ds")
    assert [len(s) for s in ds.segments()] == [8, 9]
    aligner = FakeAligner()
    extract(_cfg([video], tmp_path / "faces", align="face"), aligner=aligner)
    assert aligner.resets == [0, 8]  # smoothing restarts after the hole


def test_rotated_video_is_recorded_upright(tmp_path):
    video = make_video(tmp_path / "phone.mp4", frames=4, size=(64, 48), rotation=90)
    extract(_cfg([video], tmp_path / "ds"))
    v = read_dataset(tmp_path / "ds").videos[0]
    assert (v.width, v.height, v.rotation) == (48, 64, 90)


def test_image_writer_reports_write_errors(tmp_path):
    from retarget.dataset.writer import ImageWriter

    img = np.zeros((8, 8, 3), np.uint8)
    with ImageWriter(workers=2) as writer:
        writer.write(img, tmp_path / "ok.png")
        writer.write(img, tmp_path / "ok2.png", transform=lambda a: a[:4])
    assert cv2.imread(str(tmp_path / "ok.png")).shape == (8, 8, 3)
    assert cv2.imread(str(tmp_path / "ok2.png")).shape == (4, 8, 3)
    writer = ImageWriter(workers=1)
    writer.write(img, tmp_path / "no" / "such" / "dir.png")
    with pytest.raises(RetargetError, match="dir.png: cannot write"):
        writer.close()


# --- face mode with a fake aligner ---------------------------------------------------


@dataclass
class FakeFace:
    matrix: np.ndarray
    raw_matrix: np.ndarray
    landmarks: np.ndarray
    crop: np.ndarray
    track: int = 0


class FakeAligner:
    """Returns a face for every frame except those whose stamped code is in ``lost``."""

    def __init__(self, lost=(), new_track_at=(), interrupt_at=None):
        self.lost, self.new_track_at, self.interrupt_at = set(lost), set(new_track_at), interrupt_at
        self.resets = []
        self.seen = 0
        self.track = 0

    def reset(self):
        self.resets.append(self.seen)

    def __call__(self, image, time):
        code = read_code(image)
        self.seen += 1
        if self.interrupt_at is not None and code == self.interrupt_at:
            raise KeyboardInterrupt
        if code in self.lost:
            return None
        if code in self.new_track_at:
            self.track += 1
        m = np.array([[0.5, 0.0, float(code)], [0.0, 0.5, 1.0]])
        lm = np.full((68, 2), float(code), np.float32)
        crop = cv2.resize(image, (SIZE, SIZE))
        return FakeFace(m, m, lm, crop, self.track)


def test_face_mode_segments_at_lost_faces_and_cuts(tmp_path, cut_video):
    aligner = FakeAligner(lost={5, 6, 14})
    s = extract(_cfg([cut_video], tmp_path / "ds", align="face"), aligner=aligner)
    assert s.faces_found == 27 and s.frames_written == 27 and s.skipped == {"no face": 3}
    ds = read_dataset(tmp_path / "ds")
    assert ds.align == "face" and ds.face == FaceConfig()
    groups = [[ds.frames[i].index for i in seg] for seg in ds.segments()]
    assert groups == [[0, 1, 2, 3, 4], [7, 8, 9], [10, 11, 12, 13], [15, 16, 17, 18, 19], list(range(20, 30))]
    rec = ds.frames[3]
    np.testing.assert_allclose(rec.landmarks, np.full((68, 2), 3.0))
    np.testing.assert_allclose(rec.matrix, [[0.5, 0, 3.0], [0, 0.5, 1.0]])
    # Reset before the video and at both cuts, so smoothing never spans a cut.
    assert aligner.resets == [0, 10, 20]


def test_a_new_face_track_ends_the_segment(tmp_path, cut_video):
    extract(_cfg([cut_video], tmp_path / "ds", align="face", max_frames=10), aligner=FakeAligner(new_track_at={4}))
    assert [len(s) for s in read_dataset(tmp_path / "ds").segments()] == [4, 6]


def test_no_face_anywhere_writes_nothing(tmp_path, cut_video):
    with pytest.raises(RetargetError, match=r"no frames to write \(no face: 30\)"):
        extract(_cfg([cut_video], tmp_path / "ds", align="face"), aligner=FakeAligner(lost=range(30)))
    assert not (tmp_path / "ds").exists() and _leftovers(tmp_path) == []


def test_interrupt_leaves_nothing_under_the_target(tmp_path, cut_video):
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        extract(_cfg([cut_video], out, align="face"), aligner=FakeAligner(interrupt_at=12))
    assert not out.exists() and _leftovers(tmp_path) == []


def test_crop_with_face_mode_is_refused(tmp_path, cut_video):
    with pytest.raises(RetargetError, match="--crop"):
        extract(_cfg([cut_video], tmp_path / "ds", align="face", crop=(0, 0, 10, 10)), aligner=FakeAligner())


# --- several videos, existing output, append ----------------------------------------


def test_two_videos_then_append(tmp_path, cut_video):
    other = make_video(tmp_path / "other.mkv", frames=8, size=(48, 64), codec="mpeg4")
    out = tmp_path / "ds"
    extract(_cfg([cut_video, other], out, max_frames=6))
    ds = read_dataset(out)
    assert [f.video for f in ds.frames] == [0] * 6 + [1] * 6
    assert len(ds.segments()) == 2 and len(ds.videos) == 2
    first_file = out / ds.frames[0].file
    before = first_file.read_bytes()

    with pytest.raises(RetargetError, match="already exists.*--overwrite.*--append"):
        extract(_cfg([other], out))

    third = make_video(tmp_path / "third.mp4", frames=5, size=(40, 40))
    s = extract(_cfg([third], out, append=True))
    ds2 = read_dataset(out)
    assert s.frames_written == 5 and s.total_frames == 17
    assert len(ds2.videos) == 3 and [f.video for f in ds2.frames[12:]] == [2] * 5
    assert min(f.segment for f in ds2.frames[12:]) > max(f.segment for f in ds.frames)
    assert (out / ds.frames[0].file).read_bytes() == before
    assert len(ds2.options["runs"]) == 2 and _leftovers(tmp_path) == []
    assert len(list((out / "frames").iterdir())) == 17

    with pytest.raises(RetargetError, match="--append needs the same settings"):
        extract(ExtractConfig(videos=(str(third),), output=str(out), size=64, append=True))

    s = extract(_cfg([third], out, overwrite=True))
    assert len(read_dataset(out).frames) == 5 and len(list((out / "frames").iterdir())) == 5


def test_default_output_is_data_slash_stem(tmp_path, cut_video, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = extract(ExtractConfig(videos=(str(cut_video),), size=SIZE, max_frames=3))
    assert s.output == str(Path("data") / "cuts")
    assert len(read_dataset(tmp_path / "data" / "cuts").frames) == 3


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: d / "missing.mp4", "missing.mp4: no such file"),
        (lambda d: write_text_file(d / "text.mp4"), "text.mp4: not a video"),
        (lambda d: make_audio_only(d / "audio.mp4"), "audio.mp4: no video stream"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, cut_video, make, message):
    bad = make(tmp_path)
    out = tmp_path / "ds"
    with pytest.raises(RetargetError, match=message):
        extract(_cfg([cut_video, bad], out))  # the good first video is not half-written
    assert not out.exists() and _leftovers(tmp_path) == []


def test_truncated_video_writes_what_decodes_and_warns(tmp_path, capsys):
    cut = truncate(make_video(tmp_path / "long.avi", frames=40, size=(48, 48), codec="mpeg4"), 0.5)
    s = extract(_cfg([cut], tmp_path / "ds"))
    assert s.bad_frames >= 1 and 5 < s.frames_written < 40
    assert read_dataset(tmp_path / "ds").videos[0].bad_frames == s.bad_frames
    err = capsys.readouterr().err
    assert "long_truncated.avi" in err and "failed to decode" in err


def test_a_video_cut_short_behind_its_index_is_extracted_with_a_warning(tmp_path, capsys):
    whole = faststart(make_video(tmp_path / "v.mp4", frames=40, size=(48, 48)), tmp_path / "fast.mp4")
    cut = truncate(whole, 0.5)
    s = extract(_cfg([cut], tmp_path / "ds"))
    assert 5 < s.frames_written < 40
    err = capsys.readouterr().err
    assert "fast_truncated.mp4: the video ends at" in err and "may be cut short" in err
    extract(_cfg([whole], tmp_path / "ds2"))
    assert "cut short" not in capsys.readouterr().err


def test_unwritable_output(tmp_path, cut_video):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(RetargetError, match="cannot write"):
        extract(_cfg([cut_video], blocker / "ds", max_frames=2))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_parent(tmp_path, cut_video):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(RetargetError, match="cannot write"):
            extract(_cfg([cut_video], parent / "ds", max_frames=2))
    finally:
        parent.chmod(0o700)


def test_full_disk_names_the_dataset_and_leaves_nothing(tmp_path, cut_video, monkeypatch):
    import errno

    calls = []

    def full_after_three(path, mode="r", *args, **kwargs):
        calls.append(path)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr("retarget.dataset.writer.open", full_after_three, raising=False)
    out = tmp_path / "out" / "ds"
    with pytest.raises(RetargetError) as err:
        extract(_cfg([cut_video], out))
    # The dataset's name, not that of the temporary image that failed.
    assert str(err.value) == f"{out}: cannot write: no space left on device; free some space or write elsewhere"
    assert list((tmp_path / "out").iterdir()) == []


def test_start_removes_temp_folders_of_killed_extracts_only(tmp_path, cut_video):
    import subprocess
    import sys

    from retarget.atomic import _HOST

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".ext_a.{proc.pid}-{_HOST}.q1w2e3r4.tmp"  # extract killed with -9
    live = tmp_path / f".ext_b.{os.getpid()}-{_HOST}.q1w2e3r4.tmp"  # another extract at work
    foreign = tmp_path / ".ext_c.q1w2e3r4.tmp"
    for folder in (stale, live, foreign):
        (folder / "frames").mkdir(parents=True)
    extract(_cfg([cut_video], tmp_path / "ds", max_frames=2))
    assert not stale.exists() and live.is_dir() and foreign.is_dir()


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path, cut_video):
    mine = tmp_path / "holiday"
    mine.mkdir()
    (mine / "photo.jpg").write_bytes(b"precious")
    with pytest.raises(RetargetError, match="not a retarget dataset"):
        extract(_cfg([cut_video], mine, overwrite=True))
    assert (mine / "photo.jpg").read_bytes() == b"precious"


def test_output_is_a_file(tmp_path, cut_video):
    (tmp_path / "ds").write_text("x")
    with pytest.raises(RetargetError, match="not a folder"):
        extract(_cfg([cut_video], tmp_path / "ds"))


# --- CLI -------------------------------------------------------------------------------


def test_cli_end_to_end(tmp_path, cut_video):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["extract", str(cut_video), "-o", str(out), "--size", "32", "--fps", "12.5"])
    assert result.exit_code == 0, result.output
    ds = read_dataset(out)
    assert len(ds.frames) == 15 and ds.size == 32 and len(ds.segments()) == 3
    assert "frames written" in result.output

    again = runner.invoke(app, ["extract", str(cut_video), "-o", str(out)])
    assert again.exit_code != 0
    assert "already exists" in again.output and "Traceback" not in again.output

    missing = runner.invoke(app, ["extract", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "nope.mp4: no such file" in missing.output
    assert "Traceback" not in missing.output


# --- real videos -----------------------------------------------------------------------


@pytest.mark.shared
def test_bigbuckbunny_all_frames(tmp_path, shared_video):
    s = extract(ExtractConfig(videos=(str(shared_video("bigbuckbunny.mp4")),), output=str(tmp_path / "bbb"), size=64))
    assert s.frames_written == 132 and s.bad_frames == 0


@pytest.mark.shared
def test_bikes_segments_at_its_cuts(tmp_path, shared_video):
    s = extract(_cfg([shared_video("bikes.mp4")], tmp_path / "bikes"))
    assert s.frames_written == 250 and s.cuts == 5 and s.segments == 6


@pytest.mark.shared
@pytest.mark.slow
def test_carphone_face_alignment_acceptance(tmp_path, shared_video):
    pytest.importorskip("dlib")
    cfg = ExtractConfig(videos=(str(shared_video("carphone_pristine.mp4")),), output=str(tmp_path / "cp"), align="face")
    s = extract(cfg)
    assert s.faces_found >= 115 and s.frames_written == s.faces_found
    ds = read_dataset(tmp_path / "cp")
    assert ds.align == "face" and ds.face == FaceConfig() and ds.size == 256
    rec = ds.frames[60]
    assert rec.landmarks.shape == (68, 2) and rec.matrix.shape == (2, 3)
    # The recorded matrix maps the recorded landmarks into the crop near the eye template.
    from retarget.faces.align import apply, eye_centres, template_points

    eyes = apply(rec.matrix, eye_centres(rec.landmarks))
    assert np.abs(eyes - eye_centres(template_points(256, ds.face.margin))).max() < 12
