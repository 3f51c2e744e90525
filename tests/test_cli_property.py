"""A property of the whole command line, generated from the options' metadata (hypothesis, seeded).

For random values inside and outside each option's declared range and choices, of the
wrong type, and for random kinds of file where a path goes (empty, truncated, text, a
still image, audio only, another command's folder), every command either runs or exits
non-zero with one ``error:`` line: no traceback, nothing left behind, no input changed.
The options come from the config fields' metadata (:mod:`retarget.options`), so a new
option is covered without a new test. Work sizes are kept small inside the range so the
whole file takes well under a minute on one core.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import make_audio_only, make_video, truncate, write_text_file

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from retarget.config import EvalConfig, ExtractConfig, FaceConfig, RenderConfig, TrainConfig  # noqa: E402
from retarget.options import _RANGE, _choices, _hints, flag_of  # noqa: E402

pytestmark = pytest.mark.slow

#: Each command: its config classes (their fields are its options), a valid quick command line, its output.
COMMANDS = {
    "extract": ((ExtractConfig, FaceConfig), ["extract", "v.mp4", "-o", "out", "--size", "16", "--max-frames", "4"]),
    "train": (
        (TrainConfig,),
        ["train", "da", "db", "-o", "out", "--preset", "tiny", "--size", "16", "--steps", "1", "--preview-frames", "0"],
    ),
    "render": ((RenderConfig,), ["render", "v.mp4", "out.mp4", "-m", "run", "--stabilize", "0"]),
    "eval": ((EvalConfig,), ["eval", "v.mp4", "--source", "v.mp4", "--flow", "ultrafast"]),
}
#: Kinds of file given where a path goes.
FILES = ["missing.mp4", "empty.mp4", "text.mp4", "still.png", "sound.m4a", "cut.mp4", "da", "run", ""]
#: Options whose large values cost time or memory, not correctness: drawn near their low end when valid.
WORK = {
    "size",
    "steps",
    "max_frames",
    "batch_size",
    "ngf",
    "ndf",
    "workers",
    "detect_size",
    "preview_frames",
    "load_size",
}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Path:
    """A video, two tiny datasets, a one-step run and the wrong kinds of file."""
    from retarget.cli import main

    root = tmp_path_factory.mktemp("cli_property")
    make_video(root / "v.mp4", frames=8, size=(32, 24), audio="aac")
    with contextlib.chdir(root), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for args in (
            ["extract", "v.mp4", "-o", "da", "--size", "16"],
            ["extract", "v.mp4", "-o", "db", "--size", "16"],
        ):
            with pytest.raises(SystemExit) as done:
                main(args)
            assert done.value.code == 0
        with pytest.raises(SystemExit) as done:
            main(["train", "da", "db", "-o", "run", "--preset", "tiny", "--size", "16", "--steps", "1",
                  "--preview-frames", "0"])  # fmt: skip
        assert done.value.code == 0
    (root / "empty.mp4").write_bytes(b"")
    write_text_file(root / "text.mp4")
    import cv2

    cv2.imwrite(str(root / "still.png"), np.full((24, 32, 3), 90, np.uint8))
    make_audio_only(root / "sound.m4a")
    truncate(root / "v.mp4", 0.4, dest=root / "cut.mp4")
    return root


def _options(command: str) -> list[tuple[str, str, object]]:
    """``(flag, kind, hint)`` of every option of ``command`` with metadata a strategy can use."""
    import typer

    from retarget.cli import app

    opts = {o for p in typer.main.get_command(app).commands[command].params for o in getattr(p, "opts", [])}  # type: ignore[attr-defined]
    out = []
    for cls in COMMANDS[command][0]:
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            flag = flag_of(f)
            if flag not in opts or flag in ("--resume", "--overwrite"):
                continue
            rng, choices, hint = f.metadata.get(_RANGE), _choices(hints.get(f.name)), hints.get(f.name)
            kind = "range" if rng is not None else "choice" if choices else "path" if "str" in str(hint) else ""
            if kind:
                out.append((flag, kind, rng if kind == "range" else choices if kind == "choice" else f.name))
    return out


@st.composite
def case(draw, command: str) -> list[str]:
    """A command line: the valid base with one option set to a drawn value, or its input a drawn file."""
    base = list(COMMANDS[command][1])
    options = _options(command)
    if draw(st.integers(0, 5)) == 0:  # the input as a wrong kind of file
        base[1] = draw(st.sampled_from(FILES))
        return base
    flag, kind, meta = draw(st.sampled_from(options))
    if kind == "choice":
        value = draw(st.sampled_from([str(c) for c in meta if c is not None] + ["bogus", ""]))
    elif kind == "path":
        value = draw(st.sampled_from(FILES))
    else:
        value = _number(draw, meta, flag.strip("-").replace("-", "_") in WORK)
    if flag in base:
        i = base.index(flag)
        del base[i : i + 2]
    return base + [flag, value]


def _number(draw, rng, work: bool) -> str:
    """A value inside ``rng`` (near its low end for a work size), outside it, not finite, or not a number."""
    low = rng.low if rng.low is not None else -10.0
    high = rng.high if rng.high is not None else low + 100.0
    high = min(high, low + 8) if work else high
    inside = draw(st.floats(low, high, allow_nan=False)) if high > low else low
    choice = draw(st.sampled_from(["inside", "int", "below", "above", "nan", "inf", "text", "huge"]))
    value = {
        "inside": f"{inside:g}",
        "int": str(int(round(inside))),
        "below": f"{low - draw(st.floats(0.5, 1e6)):g}",
        "above": f"{(rng.high if rng.high is not None else 1e9) + draw(st.floats(0.5, 1e6)):g}",
        "nan": "nan",
        "inf": "-inf" if draw(st.booleans()) else "inf",
        "text": draw(st.sampled_from(["abc", "", "1,5", "0x10"])),
        "huge": "100000" if not work else "1e12",
    }[choice]
    return value


def _run(root: Path, argv: list[str]) -> tuple[int, str, set[str], bool]:
    """Run ``argv`` in a fresh copy of the fixtures: exit status, stderr, new paths, inputs intact."""
    from retarget.cli import main

    work = root.parent / f"{root.name}_case"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(root, work)
    before = {str(p.relative_to(work)): p.read_bytes() for p in work.rglob("*") if p.is_file()}
    err = io.StringIO()
    with contextlib.chdir(work), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    after = {str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()}
    intact = all((work / k).is_file() and (work / k).read_bytes() == v for k, v in before.items())
    shutil.rmtree(work, ignore_errors=True)
    return code, err.getvalue(), after - set(before), intact


def _check(root: Path, argv: list[str]) -> None:
    code, err, new, intact = _run(root, argv)
    assert intact, f"{argv}: an input changed or vanished"
    assert "Traceback" not in err, f"{argv}: {err}"
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{argv} -> {code}: {err!r}"
        assert code in (1, 2), f"{argv}: exit {code} (3 is a bug): {err}"
        assert not new, f"{argv}: left {sorted(new)}"


SETTINGS = settings(
    max_examples=14, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_runs_or_says_one_line(command, fixtures):
    @SETTINGS
    @given(case(command))
    def check(argv):
        _check(fixtures, argv)

    check()
