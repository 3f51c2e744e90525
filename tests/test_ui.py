"""The app's functions without a browser: path confinement, actions, training jobs, progress."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import make_video
from retarget.errors import RetargetError
from retarget.ui import MISSING, actions, jobs
from retarget.ui.paths import Root
from retarget.ui.progress import follow
from retarget.ui.views import dataset_preview, dataset_summary, load_dataset


@pytest.fixture
def root(tmp_path: Path) -> Root:
    folder = tmp_path / "root"
    make_video(folder / "videos" / "a.mp4", frames=12, size=(64, 48))
    make_video(folder / "videos" / "b.mp4", frames=12, size=(64, 48))
    return Root(folder)


@pytest.mark.parametrize("given", ["../x", "a/../../x", "/etc/passwd", "videos/../../root2", "~/x", ""])
def test_paths_outside_the_root_are_refused(root: Root, given: str) -> None:
    with pytest.raises(RetargetError) as err:
        root.inside(given, "dataset")
    assert "\n" not in str(err.value) and "dataset" in str(err.value)


def test_paths_inside_the_root_are_absolute_and_clean(root: Root) -> None:
    assert root.inside("videos/../videos/a.mp4") == root.path / "videos" / "a.mp4"
    assert root.inside(str(root.path / "data" / "x")) == root.path / "data" / "x"
    with pytest.raises(RetargetError, match="app's own folder"):
        root.inside(".retarget-ui/jobs")


def test_a_link_out_of_the_root_is_refused_and_not_listed(root: Root, tmp_path: Path) -> None:
    outside = make_video(tmp_path / "elsewhere" / "c.mp4", frames=4)
    (root.path / "videos" / "c.mp4").symlink_to(outside)
    (root.path / "out").symlink_to(outside.parent, target_is_directory=True)
    for given in ("videos/c.mp4", "out/new", "out"):
        with pytest.raises(RetargetError, match="outside the app's folder"):
            root.inside(given)
    assert root.videos() == ["videos/a.mp4", "videos/b.mp4"]


def test_a_missing_root_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RetargetError, match="--root"):
        Root(tmp_path / "nope")


def test_extract_writes_a_dataset_and_reports_progress(root: Root) -> None:
    seen: list[tuple[float, str]] = []
    out = actions.extract_videos(root, ["videos/a.mp4"], "", size=32, report=lambda f, w: seen.append((f, w)))
    assert out == root.path / "data" / "a"
    assert root.datasets() == ["data/a"]
    assert root.videos() == ["videos/a.mp4", "videos/b.mp4"]
    ds = load_dataset(out)
    assert "12 frames" in dataset_summary(ds, "data/a")
    grid = dataset_preview(ds, frames=4, height=40)
    assert grid is not None and grid.shape[0] == 40 and grid.dtype == np.uint8
    assert all(0 <= f <= 1 for f, _ in seen)


def test_extract_refuses_an_output_outside_and_writes_nothing(root: Root) -> None:
    before = sorted(p.name for p in root.path.parent.iterdir())
    with pytest.raises(RetargetError, match="outside"):
        actions.extract_videos(root, ["videos/a.mp4"], "../stolen", size=32)
    with pytest.raises(RetargetError, match="outside"):
        actions.extract_videos(root, ["../root/videos/../../x.mp4"], "data/x", size=32)
    assert sorted(p.name for p in root.path.parent.iterdir()) == before
    with pytest.raises(RetargetError, match="pick at least one"):
        actions.extract_videos(root, [], "data/x")


def test_extract_errors_are_the_library_line(root: Root) -> None:
    actions.extract_videos(root, ["videos/a.mp4"], "data/a", size=32)
    with pytest.raises(RetargetError, match="already exists"):
        actions.extract_videos(root, ["videos/a.mp4"], "data/a", size=32)


def test_follow_returns_and_raises_what_the_call_does() -> None:
    assert follow(lambda: 7, lambda f, w: None) == 7

    def fail() -> None:
        raise RetargetError("x: bad")

    with pytest.raises(RetargetError, match="x: bad"):
        follow(fail, lambda f, w: None)


def test_training_form_is_checked_before_any_process(root: Root) -> None:
    actions.extract_videos(root, ["videos/a.mp4"], "data/a", size=32)
    actions.extract_videos(root, ["videos/b.mp4"], "data/b", size=32)
    form = actions.TrainForm(datasets=("data/a",), preset="tiny", size=32, steps=2)
    cases = [
        (form, "at least two"),
        (actions.TrainForm(datasets=("data/a", "../x")), "outside"),
        (actions.TrainForm(datasets=("data/a", "data/a")), "the same dataset"),
        (actions.TrainForm(datasets=("data/a", "data/b"), out="../run"), "outside"),
        (actions.TrainForm(datasets=("data/a", "data/b"), out="videos"), "did not make"),
        (actions.TrainForm(datasets=("data/a", "data/b"), time_limit=-3), "time limit"),
    ]
    for bad, line in cases:
        with pytest.raises(RetargetError, match=line):
            actions.start_training(root, bad)
    assert not (root.app_dir / jobs.JOBS).exists()
    assert actions.default_run(("data/a", "data/b")) == "models/a-to-b"


def test_the_auto_preset_leaves_preset_and_size_to_train(root: Root) -> None:
    actions.extract_videos(root, ["videos/a.mp4"], "data/a", size=32)
    actions.extract_videos(root, ["videos/b.mp4"], "data/b", size=32)
    _, auto = actions._train_args(root, actions.TrainForm(datasets=("data/a", "data/b"), time_limit=300), None)
    assert "--preset" not in auto and "--size" not in auto and auto[-2:] == ["--time-limit", "300"]
    form = actions.TrainForm(datasets=("data/a", "data/b"), preset="tiny", size=32)
    _, given = actions._train_args(root, form, None)
    assert given[given.index("--preset") + 1] == "tiny" and given[given.index("--size") + 1] == "32"


def test_a_job_runs_in_its_own_process_and_records_its_status(root: Root) -> None:
    run = root.path / "models" / "r"
    job = jobs.start(root.app_dir, run, ["--version"], root.path)
    assert job.pid != os.getpid()
    assert os.getsid(job.pid) != os.getsid(0)  # its own session: the app's end does not stop it
    deadline = time.time() + 60
    while jobs.running(jobs.find_job(root.app_dir, run)) and time.time() < deadline:
        time.sleep(0.1)
    while jobs.find_job(root.app_dir, run).rc is None and time.time() < deadline:
        time.sleep(0.1)
    assert jobs.find_job(root.app_dir, run).rc == 0
    assert "retarget" in Path(job.log).read_text()
    with pytest.raises(RetargetError, match="no training"):
        actions.stop_training(root, "models/r")
    with pytest.raises(RetargetError, match="cannot resume"):
        run.mkdir(parents=True)
        actions.resume_training(root, "models/r")


def test_a_failed_training_shows_its_error_line(root: Root) -> None:
    run = root.path / "models" / "r"
    job = jobs.start(root.app_dir, run, ["train", "--resume", str(run)], root.path)
    deadline = time.time() + 60
    while jobs.find_job(root.app_dir, run).rc is None and time.time() < deadline:
        time.sleep(0.2)
    job = jobs.find_job(root.app_dir, run)
    assert job.rc not in (None, 0)
    line = jobs.last_error(job)
    assert line is not None and line.startswith("error:")


def test_render_needs_a_run_or_faces_and_stays_inside(root: Root) -> None:
    with pytest.raises(RetargetError, match="one of them"):
        actions.render_video(root, "videos/a.mp4")
    with pytest.raises(RetargetError, match="outside"):
        actions.render_video(root, "videos/a.mp4", "../out.mp4", run="models/x")
    with pytest.raises(RetargetError, match="outside"):
        actions.render_video(root, "../a.mp4", run="models/x")
    assert not (root.path.parent / "out.mp4").exists()
    assert actions.side_name(Path("r/x.mp4")) == Path("r/x_side.mp4")


def test_upload_is_copied_into_videos(root: Root, tmp_path: Path) -> None:
    up = make_video(tmp_path / "up" / "new clip.mp4", frames=4)
    assert actions.save_upload(root, str(up)) == "videos/new clip.mp4"
    with pytest.raises(RetargetError, match="already exists"):
        actions.save_upload(root, str(up))
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(RetargetError, match="not a video"):
        actions.save_upload(root, str(text))


def test_runs_table_of_an_empty_root(root: Root) -> None:
    head, rows = actions.runs_table(root)
    assert head[0] == "run" and rows == []


def test_ui_without_gradio_says_how_to_get_it(monkeypatch, capsys) -> None:
    import importlib.util

    from retarget.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    with pytest.raises(SystemExit) as code:
        main(["ui", "--no-browser"])
    assert code.value.code == 1
    assert capsys.readouterr().err.strip() == f"error: {MISSING}"


def test_a_stop_reaches_a_training_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A shell's background job inherits SIGINT ignored; the app's Stop (SIGINT) must still stop it."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under `retarget ui &`\n"
        "import retarget.cli\n"
        "def slow(argv):\n"
        "    os.kill(os.getpid(), signal.SIGINT)  # Stop, before the trainer has a handler of its own\n"
        "    time.sleep(20)\n"
        "retarget.cli.main = slow\n"
        "from retarget.ui import trainjob\n"
        "sys.exit(trainjob.main([sys.argv[1], 'train']))\n"
    )
    started = time.time()
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "job.json")], timeout=60)
    assert done.returncode == 130 and time.time() - started < 15  # stopped, not slept through
