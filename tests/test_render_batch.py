"""``render IN... -o DIR``: many clips into a folder; a failed clip does not stop the others; a rerun resumes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_video, tiny_pair_run, write_text_file

from retarget import atomic
from retarget.config import RenderConfig
from retarget.errors import RetargetError
from retarget.render import stream as stream_mod
from retarget.render.batch import collect_inputs, output_for, record_path, render_many
from retarget.video.reader import probe

SIZE = 16
FRAMES = {"a.mp4": 5, "b.mov": 4, "c.avi": 3}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny untrained pair that translates whole frames (centre squares)."""
    return tiny_pair_run(tmp_path_factory.mktemp("models") / "run", SIZE)


@pytest.fixture
def clips(tmp_path) -> Path:
    """Three tiny clips in three containers, and one that is not a video."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name, n in FRAMES.items():
        make_video(folder / name, frames=n, size=(24, 16))
    write_text_file(folder / "d_broken.mp4")
    return folder


def _cfg(run_dir: Path, out: Path, **kw) -> RenderConfig:
    return RenderConfig("", "", model=str(run_dir), device="cpu", stabilize=0, out_dir=str(out), **kw)


def _status(summary) -> dict[str, str]:
    return {Path(c.input).name: c.status for c in summary.clips}


def test_a_folder_renders_every_clip_and_reports_the_broken_one(tmp_path, clips, run_dir):
    out = tmp_path / "out"
    summary = render_many(_cfg(run_dir, out), [str(clips)])
    assert _status(summary) == {"a.mp4": "done", "b.mov": "done", "c.avi": "done", "d_broken.mp4": "failed"}
    (broken,) = summary.failed
    assert "d_broken.mp4" in broken.error and "\n" not in broken.error
    for name, n in FRAMES.items():
        written = output_for(clips / name, out)
        assert probe(written).frame_count == n
        assert record_path(written).is_file()
    assert (out / "c.mp4").is_file()  # H.264 cannot go in .avi: the name keeps its stem
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.mp4", "b.mov", "c.mp4"]


def test_a_rerun_skips_what_is_done_and_finishes_an_interrupted_batch(tmp_path, clips, run_dir, monkeypatch):
    out = tmp_path / "out"
    cfg = _cfg(run_dir, out)
    inputs = [str(clips / n) for n in FRAMES]
    real, calls = stream_mod.stream, []

    def killed_at_third(plan, quiet=False):
        calls.append(plan.src.name)
        if len(calls) == 3:  # the third clip: killed while its temporary file exists
            raise KeyboardInterrupt
        return real(plan, quiet=quiet)

    monkeypatch.setattr(stream_mod, "stream", killed_at_third)
    with pytest.raises(KeyboardInterrupt):
        render_many(cfg, inputs)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.mp4", "b.mov"]
    # what a kill -9 leaves: a temporary file of a process that is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".c.mp4.{int(dead.stdout)}-{atomic._HOST}.abcdefgh.tmp.mp4"
    stale.write_bytes(b"half a video")

    calls.clear()
    summary = render_many(cfg, inputs)
    assert calls == ["c.avi"]  # only the clip that was not finished renders again
    assert _status(summary) == {"a.mp4": "skipped", "b.mov": "skipped", "c.avi": "done"}
    assert [c.frames for c in summary.clips] == list(FRAMES.values())
    assert not stale.exists()


def test_an_output_without_its_record_is_not_replaced_without_overwrite(tmp_path, clips, run_dir):
    out = tmp_path / "out"
    src = clips / "a.mp4"
    cfg = _cfg(run_dir, out)
    assert _status(render_many(cfg, [str(src)])) == {"a.mp4": "done"}
    record_path(out / "a.mp4").unlink()
    (clip,) = render_many(cfg, [str(src)]).clips
    assert clip.status == "failed" and "already exists (pass --overwrite" in clip.error
    assert _status(render_many(dataclasses.replace(cfg, overwrite=True), [str(src)])) == {"a.mp4": "done"}


def test_other_options_or_a_changed_input_render_again(tmp_path, clips, run_dir):
    out = tmp_path / "out"
    src = clips / "a.mp4"
    render_many(_cfg(run_dir, out), [str(src)])
    # other options: the old output is not skipped (and needs --overwrite to be replaced)
    (clip,) = render_many(_cfg(run_dir, out, crf=30), [str(src)]).clips
    assert clip.status == "failed" and "with other options; pass --overwrite to render it again" in clip.error
    # the same options but a newer input
    make_video(src, frames=6, size=(24, 16))
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    summary = render_many(_cfg(run_dir, out, overwrite=True), [str(src)])
    assert _status(summary) == {"a.mp4": "done"} and summary.clips[0].frames == 6


def test_inputs_files_folders_and_globs(tmp_path, clips):
    got = collect_inputs([str(clips / "a.mp4"), str(clips / "*.mov"), str(clips), str(clips / "a.mp4")])
    assert [p.name for p in got] == ["a.mp4", "b.mov", "c.avi", "d_broken.mp4"]
    with pytest.raises(RetargetError, match="no such file or folder"):
        collect_inputs([str(tmp_path / "missing.mp4")])
    with pytest.raises(RetargetError, match="no file matches"):
        collect_inputs([str(tmp_path / "*.mkv")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RetargetError, match="no video to render"):
        collect_inputs([str(empty)])


def test_the_output_folder_must_not_be_an_inputs_folder_or_collide(tmp_path, clips, run_dir):
    with pytest.raises(RetargetError, match="holds the input"):
        render_many(_cfg(run_dir, clips), [str(clips / "a.mp4")])
    other = tmp_path / "other"
    other.mkdir()
    make_video(other / "a.mp4", frames=2, size=(24, 16))
    with pytest.raises(RetargetError, match="would be written to"):
        render_many(_cfg(run_dir, tmp_path / "out"), [str(clips / "a.mp4"), str(other / "a.mp4")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(RetargetError, match="is a file"):
        render_many(_cfg(run_dir, tmp_path / "file"), [str(clips / "a.mp4")])
    before = sorted(p.name for p in run_dir.rglob("*"))
    for into in (run_dir, run_dir / "renders"):  # the run it renders with: its own folder or one inside
        with pytest.raises(RetargetError, match="is the input|lies inside the input"):
            render_many(_cfg(run_dir, into), [str(clips / "a.mp4")])
    assert sorted(p.name for p in run_dir.rglob("*")) == before


def test_jobs_render_in_parallel_processes(tmp_path, clips, run_dir):
    out = tmp_path / "out"
    summary = render_many(_cfg(run_dir, out, jobs=2), [str(clips / "a.mp4"), str(clips / "b.mov")])
    assert _status(summary) == {"a.mp4": "done", "b.mov": "done"}
    assert probe(out / "b.mov").frame_count == FRAMES["b.mov"]


def test_cli_batch_exit_status_and_single_form(tmp_path, clips, run_dir):
    from typer.testing import CliRunner

    from retarget.cli import app

    runner = CliRunner()
    out = tmp_path / "out"
    args = ["render", str(clips), "-o", str(out), "-m", str(run_dir), "--device", "cpu", "--stabilize", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "1 of the clips failed" in result.output
    single = tmp_path / "one.mp4"
    ok = runner.invoke(app, ["render", str(clips / "a.mp4"), str(single), "-m", str(run_dir), "--stabilize", "0"])
    assert ok.exit_code == 0, ok.output
    assert probe(single).frame_count == FRAMES["a.mp4"]
    three = runner.invoke(app, ["render", str(clips / "a.mp4"), str(clips / "b.mov"), str(single)])
    assert three.exit_code == 2 and "-o DIR" in three.output
    jobs = runner.invoke(app, ["render", str(clips / "a.mp4"), str(tmp_path / "x.mp4"), "-m", str(run_dir),
                               "--jobs", "2"])  # fmt: skip
    assert jobs.exit_code == 1 and "--jobs 2: applies with -o DIR only" in jobs.output
