"""The CLI answers --version and --help fast and turns library errors into one line."""

import subprocess
import sys

from typer.testing import CliRunner

from retarget import __version__
from retarget.cli import _run, app
from retarget.errors import RetargetError

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"retarget {__version__}"


def test_all_commands_registered():
    import typer.main

    # the commands the docs describe
    names = ("extract", "train", "train-enhancer", "train-refiner", "render", "export", "eval", "demo", "runs", "ui")
    assert sorted(typer.main.get_command(app).commands) == sorted(names)
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    # each one listed in the help's command list (a line that starts with its name)
    starts = [line.lstrip("│ ").split(" ", 1)[0] for line in result.output.splitlines()]
    assert [n for n in names if n not in starts] == []
    for name in names:
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0 and f"retarget {name}" in " ".join(sub.output.split()), name


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "retarget", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"retarget {__version__}"


def test_library_error_becomes_one_line_and_nonzero_exit():
    @app.command("fail-for-test", hidden=True)
    def _fail() -> None:
        _run(lambda: (_ for _ in ()).throw(RetargetError("clip.mp4: not a video")))

    try:
        result = runner.invoke(app, ["fail-for-test"])
    finally:
        app.registered_commands.pop()
    assert result.exit_code == 1
    assert "error: clip.mp4: not a video" in result.output
    assert "Traceback" not in result.output


def test_bad_crop_is_a_usage_error():
    result = runner.invoke(app, ["extract", "x.mp4", "--crop", "1,2,3"])
    assert result.exit_code == 2
    assert "x,y,w,h" in result.output


def test_stabilize_is_bounded_to_0_1(tmp_path):
    for bad in ("-0.5", "1.5"):
        result = runner.invoke(app, ["render", "x.mp4", str(tmp_path / "y.mp4"), "--stabilize", bad])
        assert result.exit_code == 2 and "--stabilize" in result.output
