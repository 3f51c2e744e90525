"""The one output rule (retarget.outputs): no command replaces or writes into its input, another
command's product, a folder of the user's own files, or an unwritable place; --overwrite never costs data."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

import pytest
from helpers import make_video, write_frames
from test_enhancer import face_dataset
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import DemoConfig, EnhancerConfig, ExtractConfig, RenderConfig, TrainConfig, model_preset
from retarget.errors import RetargetError
from retarget.outputs import DEMO_MARKER, check_distinct, check_output, product_kind
from retarget.run import layout

# --- a world of inputs and products ------------------------------------------------------------


def _fake_run(folder: Path) -> Path:
    """A run folder with one complete checkpoint (product_kind reads names, never the files' contents)."""
    step = layout.checkpoint_dir(folder, 2)
    step.mkdir(parents=True)
    for name in (layout.WEIGHTS, layout.STATE):
        (step / name).write_bytes(b"weights of a long training")
    (folder / layout.CONFIG).write_text('{"a_dir": "x", "b_dir": "y"}\n')
    return folder


def _enhancer(folder: Path) -> Path:
    from retarget.config import FaceConfig
    from retarget.nn.enhancer import FaceEnhancer
    from retarget.run.enhancer import save_enhancer
    from retarget.run.info import DataInfo

    data = DataInfo(align="face", size=64, face=FaceConfig())
    return save_enhancer(folder, FaceEnhancer(4, 8, 1), EnhancerConfig("d", width=8, blocks=1), data, 1, {})


def _demo(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / DEMO_MARKER).write_text("")
    (folder / "summary.json").write_text("{}")
    return folder


def _mine(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "photo.jpg").write_bytes(b"precious")
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """``in/``: a video, two image datasets, a face dataset; ``products/``: one output of every kind."""
    root = tmp_path_factory.mktemp("world")
    make_video(root / "in" / "videos" / "clip.mp4", frames=4, size=(48, 32))
    write_frames(root / "in" / "A", 4, size=36)
    write_frames(root / "in" / "B", 4, size=36, start=5)
    face_dataset(root / "in" / "faces", n=2)
    face_dataset(root / "products" / "dataset", n=2)
    _fake_run(root / "products" / "run")
    _enhancer(root / "products" / "enhancer")
    _demo(root / "products" / "demo")
    _mine(root / "products" / "mine")
    (root / "products" / "a.txt").write_text("notes")
    return root


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


# --- every command, through its library function --------------------------------------------------


def _extract(w: Path, out: str | Path, overwrite: bool = True) -> None:
    from retarget.dataset.extract import extract

    video = w / "in" / "videos" / "clip.mp4"
    extract(ExtractConfig(videos=(str(video),), output=str(out), size=16, max_frames=2, overwrite=overwrite))


def _train(w: Path, out: str | Path, overwrite: bool = True) -> None:
    from retarget.train.launch import train

    a, b = str(w / "in" / "A"), str(w / "in" / "B")
    model = model_preset("tiny", size=32)
    train(TrainConfig(a, b, out=str(out), preset="tiny", model=model, steps=1, device="cpu", overwrite=overwrite))


def _enhance(w: Path, out: str | Path, overwrite: bool = True) -> None:
    from retarget.train.enhancer import train_enhancer

    faces = str(w / "in" / "faces")
    train_enhancer(
        EnhancerConfig(
            data=faces, out=str(out), scale=4, width=8, blocks=1, steps=1, patch=32, overwrite=overwrite, device="cpu"
        )
    )


def _run_demo(w: Path, out: str | Path, overwrite: bool = True) -> None:
    from retarget.demo.demo import demo

    demo(DemoConfig(out=str(out), steps=1, size=32, overwrite=overwrite))


COMMANDS: dict[str, tuple[Callable[..., None], str]] = {
    # command -> (library call, the kind it makes)
    "extract": (_extract, "dataset"),
    "train": (_train, "run"),
    "train-enhancer": (_enhance, "enhancer"),
    "demo": (_run_demo, "demo"),
}
#: command -> (its input's own folder, an input inside it, what the message says)
OWN_INPUT = {
    "extract": ("in/videos", "in/videos/clip.mp4/x"),
    "train": ("in/A", "in/A/run"),
    "train-enhancer": ("in/faces", "in/faces/enh"),
}


def _refused(w: Path, command: str, out: Path, match: str, overwrite: bool = True) -> None:
    """``command`` into ``out`` raises one RetargetError line naming ``out``; nothing under ``w`` changed."""
    before = _snapshot(w)
    call = COMMANDS[command][0]
    with pytest.raises(RetargetError, match=match) as err:
        call(w, out, overwrite=overwrite)
    assert "\n" not in str(err.value) and str(out) in str(err.value)
    assert _snapshot(w) == before  # byte-identical inputs and products, nothing new


@pytest.mark.parametrize("command", ["extract", "train", "train-enhancer"])
def test_no_command_writes_into_replaces_or_holds_its_input(world, command):
    own, inside = OWN_INPUT[command]
    for overwrite in (True, False):
        _refused(world, command, world / "in", "holds the input", overwrite)  # the input inside the output
        _refused(world, command, world / own, "is the input|holds the input", overwrite)  # the input's own folder
        _refused(world, command, world / inside, "lies inside the input|is a file", overwrite)  # output in an input


@pytest.mark.parametrize("command", list(COMMANDS))
def test_overwrite_replaces_only_an_output_of_the_same_kind(world, command):
    kind = COMMANDS[command][1]
    others = [p for p in (world / "products").iterdir() if p.name != kind]
    assert len(others) == 5
    for other in others:
        expected = "not a folder" if other.is_file() else r"holds .*, not (a|an) "
        _refused(world, command, other, expected, overwrite=True)
        _refused(world, command, other, expected, overwrite=False)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_empty_or_unwritable_output_is_one_line_before_any_work(world, command, tmp_path):
    (tmp_path / "afile").write_text("x")
    for out, match in (
        ("", "empty"),
        (" ", "empty"),
        (tmp_path / "afile" / "sub", "cannot write: .*afile is a file"),
        ("/proc/retarget-test/out", "cannot write: its folder cannot hold files"),
    ):
        call = COMMANDS[command][0]
        with pytest.raises(RetargetError, match=match) as err:
            call(world, out, overwrite=True)
        assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_train_refuses_the_same_dataset_twice_even_through_a_link(world, tmp_path):
    from retarget.train.launch import train

    a = world / "in" / "A"
    (tmp_path / "link").symlink_to(a)
    model = model_preset("tiny", size=32)
    for b in (a, tmp_path / "link"):
        cfg = TrainConfig(str(a), str(b), out=str(tmp_path / "r"), preset="tiny", model=model, device="cpu")
        with pytest.raises(RetargetError, match="the same dataset as") as err:
            train(cfg)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


def test_the_cli_answers_each_refusal_in_one_line_with_exit_1(world):
    video, faces = world / "in" / "videos" / "clip.mp4", world / "in" / "faces"
    a = world / "in" / "A"
    before = _snapshot(world)
    cases = [
        (["extract", str(video), "-o", str(video.parent), "--overwrite"], "holds the input"),
        (["extract", str(video), "-o", ""], "empty"),
        (["train", str(a), str(a)], "the same dataset"),
        (["train", str(a), str(world / "in" / "B"), "-o", str(world / "products" / "dataset")], "not a training run"),
        (["train-enhancer", str(faces), "-o", str(faces), "--overwrite", "--patch", "32"], "is the input"),
        (
            ["train-enhancer", str(faces), "-o", str(world / "products" / "run"), "--overwrite", "--patch", "32"],
            "not an enhancer",
        ),
        (["demo", "-o", str(world / "products" / "enhancer")], "not a demo output"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1, (args, result.output)
        assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error:"), (args, result.output)
    assert _snapshot(world) == before


# --- the rule itself ------------------------------------------------------------------------------


def test_product_kind_tells_every_output_apart(world, tmp_path):
    from retarget.atomic import _HOST
    from test_atomic import _dead_pid

    started = tmp_path / "started"
    started.mkdir()
    (started / layout.CONFIG).write_text('{"a_dir": "a", "b_dir": "b"}')  # a run killed before its first checkpoint
    only_temps = tmp_path / "temps"
    (only_temps / f".x.{_dead_pid()}-{_HOST}.ab_cd123.tmp").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "clip.MKV").write_bytes(b"")
    table = {
        world / "products" / "dataset": "dataset",
        world / "products" / "run": "run",
        world / "products" / "enhancer": "enhancer",
        world / "products" / "demo": "demo",
        world / "in" / "videos" / "clip.mp4": "video",
        tmp_path / "clip.MKV": "video",
        started: "run",
        world / "products" / "mine": None,
        world / "in" / "A": None,  # a plain folder of images is the user's
        world / "products" / "a.txt": None,
        only_temps: None,
        tmp_path / "empty": None,
        tmp_path / "missing": None,
    }
    assert {p: product_kind(p) for p in table} == table


def test_check_output_table(world, tmp_path):
    video = world / "in" / "videos" / "clip.mp4"
    (tmp_path / "old.mp4").write_bytes(b"an earlier render")
    (tmp_path / "same.mp4").symlink_to(video)
    (tmp_path / "empty").mkdir()
    ok = [
        dict(out=tmp_path / "new" / "deeper", kind="dataset"),  # missing folders are made
        dict(out=tmp_path / "empty", kind="enhancer", overwrite=True),
        dict(out=tmp_path / "empty", kind="run", reuse=True),
        dict(out=world / "products" / "run", kind="run", reuse=True),  # a resume
        dict(out=world / "products" / "run", kind="run", overwrite=True),
        dict(out=world / "products" / "dataset", kind="dataset", overwrite=True, inputs=[video]),
        dict(out=tmp_path / "old.mp4", kind="video", overwrite=True, inputs=[video]),
        dict(out=tmp_path / "o.mp4", kind="video", inputs=[video, None]),
    ]
    for kw in ok:
        assert check_output(**kw) == Path(kw["out"]), kw
    refused = [
        (dict(out=tmp_path / "same.mp4", kind="video", overwrite=True, inputs=[video]), "is the input"),
        (dict(out=video, kind="video", overwrite=True, inputs=[video]), "is the input"),
        (dict(out=tmp_path / "old.mp4", kind="video"), r"already exists \(pass --overwrite"),
        (dict(out=tmp_path / "empty", kind="video", overwrite=True), "is a folder"),
        (dict(out=tmp_path / "empty", kind="enhancer"), "already exists"),
        (dict(out=world / "products" / "run", kind="enhancer", overwrite=True), "holds a training run"),
        (dict(out=world / "products" / "mine", kind="run", reuse=True), "holds files retarget did not make"),
        (dict(out=video, kind="dataset", overwrite=True), "is not a folder, it is a video file"),
        (dict(out=world / "in", kind="run", inputs=[world / "in" / "A"]), "holds the input"),
        (dict(out="\t", kind="demo", command="demo"), "demo --out '\\\\t': empty output path"),
    ]
    for kw, message in refused:
        with pytest.raises(RetargetError, match=message) as err:
            check_output(**kw)
        assert "\n" not in str(err.value), kw
    assert (tmp_path / "old.mp4").read_bytes() == b"an earlier render"
    with pytest.raises(ValueError, match="unknown output kind"):
        check_output(tmp_path / "x", kind="folder")


def test_a_read_only_place_is_one_line(tmp_path, monkeypatch):
    import retarget.atomic as atomic

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "probe"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(RetargetError, match="cannot write: read-only file system") as err:
        check_output(tmp_path / "out", kind="run")
    assert str(tmp_path / "out") in str(err.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_denied_folder_is_one_line(tmp_path):
    denied = tmp_path / "denied"
    denied.mkdir(mode=0o500)
    with pytest.raises(RetargetError, match="cannot write: permission denied"):
        check_output(denied / "out", kind="dataset")


def test_check_distinct_resolves_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    check_distinct([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(RetargetError, match="link: the same dataset as"):
        check_distinct([tmp_path / "a", tmp_path / "b", tmp_path / "link"])


def test_the_names_products_are_known_by_are_those_their_writers_use():
    """outputs.py sits below the modules that write datasets, runs and enhancers, so it names their files itself."""
    from retarget import outputs
    from retarget.dataset import manifest
    from retarget.run import layout

    assert outputs.MANIFEST == manifest.MANIFEST
    assert (outputs.RUN_CONFIG, outputs.RUN_METRICS, outputs.RUN_PREVIEWS) == (
        layout.CONFIG,
        layout.METRICS,
        layout.PREVIEWS,
    )
    assert (outputs.RUN_CHECKPOINTS, outputs.RUN_WEIGHTS) == (layout.CHECKPOINTS, layout.WEIGHTS)
    assert outputs.ENHANCER_WEIGHTS == layout.ENHANCER_WEIGHTS
    from retarget.run import refiner

    assert outputs.REFINER_WEIGHTS == refiner.WEIGHTS
    assert layout._STEP_PREFIX == "step_"  # outputs.py globs checkpoints/step_*/


def test_render_never_writes_over_into_or_around_its_inputs(world, tmp_path):
    """render × (the input inside the output, the output inside an input, another command's product): one line."""
    from retarget.render.stream import check_paths

    clip = world / "in" / "videos" / "clip.mp4"
    faces = world / "in" / "faces"
    before = _snapshot(world)
    cases = [
        (dict(output=str(clip)), "is the input"),  # over the input itself
        (dict(output=str(world / "in" / "videos")), "holds the input"),  # the input inside the output
        (dict(output=str(faces / "o.mp4"), target_faces=str(faces)), "lies inside the input"),  # into an input
        (dict(output=str(world / "products" / "run" / "o.mp4"), model=str(world / "products" / "run")), "lies inside"),
        (
            dict(output=str(world / "products" / "enhancer" / "o.mp4"), refiner=str(world / "products" / "enhancer")),
            "inside",
        ),
        (dict(output=str(world / "products" / "run")), "is a folder; give an output file name"),  # a run
        (dict(output=str(world / "products" / "dataset")), "is a folder"),  # a dataset
        (dict(output=""), "empty"),
        (dict(output=str(tmp_path / "afile" / "o.mp4")), "cannot write"),
    ]
    (tmp_path / "afile").write_text("x")
    for kw, match in cases:
        for overwrite in (True, False):
            cfg = RenderConfig(**{"input": str(clip), **kw, "overwrite": overwrite})
            with pytest.raises(RetargetError, match=match) as err:
                check_paths(cfg)
            assert "\n" not in str(err.value)
    assert _snapshot(world) == before


def test_a_new_folder_inside_a_dataset_run_or_enhancer_is_refused_but_not_inside_a_project(world, tmp_path):
    from retarget.outputs import check_output

    for product in ("dataset", "run", "enhancer"):
        with pytest.raises(RetargetError, match=r"lies inside .*\(made by retarget"):
            check_output(world / "products" / product / "new", kind="dataset")
    project = tmp_path / "project"  # another tool's folder: a config and checkpoints of its own
    (project / "checkpoints").mkdir(parents=True)
    (project / "config.json").write_text('{"lr": 0.1}')
    assert check_output(project / "data", kind="dataset") == project / "data"
    assert check_output(world / "products" / "run" / "clip.mp4", kind="video")  # a file beside a run's: fine


def test_another_tool_s_manifest_makes_no_dataset_and_overwrite_never_takes_it(world, tmp_path):
    """A web app's manifest.json (or a broken one) is not a dataset: extract --overwrite refuses the folder."""
    from retarget.outputs import check_output, product_kind

    for text in ('{"name": "My Web App", "icons": []}', "{", '{"format": "retarget-dataset"'):
        project = tmp_path / f"project{len(text)}"
        (project / "src").mkdir(parents=True)
        (project / "manifest.json").write_text(text)
        (project / "precious.txt").write_text("keep me")
        assert product_kind(project) is None
        before = _snapshot(project)
        with pytest.raises(RetargetError, match="holds files retarget did not make"):
            _extract(world, project, overwrite=True)
        assert _snapshot(project) == before
        assert check_output(project / "data", kind="dataset") == project / "data"  # not inside a dataset either


def test_overwrite_never_takes_the_user_s_files_put_inside_a_dataset_or_network_folder(world, tmp_path):
    """A real dataset (or enhancer) folder with a file of the user's beside its own: --overwrite refuses it."""
    import shutil

    from retarget.outputs import check_output

    for kind, product in (("dataset", "dataset"), ("enhancer", "enhancer")):
        folder = tmp_path / product
        shutil.copytree(world / "products" / product, folder)
        assert check_output(folder, kind=kind, overwrite=True) == folder  # its own files only: replaced
        (folder / "notes.txt").write_text("mine")
        before = _snapshot(folder)
        with pytest.raises(RetargetError, match=r"holds notes.txt, which retarget .* did not write"):
            check_output(folder, kind=kind, overwrite=True)
        if kind == "dataset":
            with pytest.raises(RetargetError, match="notes.txt"):
                _extract(world, folder, overwrite=True)
        assert _snapshot(folder) == before


def test_an_onnx_file_is_export_s_product(world, tmp_path):
    from retarget.outputs import check_output, product_kind

    (tmp_path / "look.onnx").write_bytes(b"onnx")
    assert product_kind(tmp_path / "look.onnx") == "onnx"
    with pytest.raises(RetargetError, match="already exists"):
        check_output(tmp_path / "look.onnx", kind="onnx")
    assert check_output(tmp_path / "look.onnx", kind="onnx", overwrite=True) == tmp_path / "look.onnx"
    with pytest.raises(RetargetError, match="is an ONNX file, not a video file"):
        check_output(tmp_path / "look.onnx", kind="video", overwrite=True)
