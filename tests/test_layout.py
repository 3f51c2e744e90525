"""retarget.run.layout: the run folder's names, its metrics log and config reader; nobody else spells a name."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from retarget.config import TrainConfig, model_preset
from retarget.errors import RetargetError
from retarget.run import layout

ROOT = Path(__file__).resolve().parents[1] / "retarget"


# --- names ---------------------------------------------------------------------------------


def test_step_names_have_seven_digits_and_one_parser_reads_them_back():
    assert layout.step_name(42) == "step_0000042" and layout.step_name(12345678, ".png") == "step_12345678.png"
    for step in (0, 7, 1234567, 12345678):
        for suffix in ("", layout.GRID, layout.CLIP):
            assert layout.parse_step(layout.step_name(step, suffix), suffix) == step
    # other suffixes, other names and the temporary folders of a save in progress are not steps
    assert layout.parse_step("step_0000042.png") is None and layout.parse_step("step_0000042", ".png") is None
    assert layout.parse_step("step_0000042.mp4", layout.GRID) is None
    for name in ("step_", "step_x", "step_12a", "xstep_1", ".step_0000042.123-abcdef.k3j4h5g6.tmp", "source.mp4"):
        assert layout.parse_step(name) is None and layout.parse_step(name, layout.CLIP) is None
    assert layout.checkpoint_dir("run", 3) == Path("run") / "checkpoints" / "step_0000003"
    assert layout.preview_file(5) == "previews/step_0000005.png"
    assert layout.preview_file(5, layout.CLIP) == "previews/step_0000005.mp4"


def test_report_pages_are_numbered_from_report_html(tmp_path):
    assert [layout.report_page(i) for i in (1, 2, 10)] == ["report.html", "report_2.html", "report_10.html"]
    for name in ("report.html", "report_2.html", "report_11.html", "report_x.html", "report_3.htm"):
        (tmp_path / name).write_text("")
    assert layout.report_pages(tmp_path) == {1: tmp_path / "report.html", 2: tmp_path / "report_2.html",
                                             11: tmp_path / "report_11.html"}  # fmt: skip


def test_the_frame_cache_of_any_domain_is_cleared_by_a_fresh_start(tmp_path):
    assert layout.cache_file("A") == "cache_A.npy" and layout.cache_file("faces") == "cache_faces.npy"
    for name in ("cache_A.npy", "cache_A.json", "cache_faces.npy", "cache_faces.json", "cache_C.npy", "mine.npy"):
        (tmp_path / name).write_text("")
    (tmp_path / "cache_dir.npy").mkdir()  # not a file: left alone
    files = {p.name for p in layout.run_files(tmp_path)}
    caches = {"cache_A.npy", "cache_A.json", "cache_faces.npy", "cache_faces.json", "cache_C.npy"}
    assert files == caches | set(layout.RUN_FILES)
    assert {"config.json", "metrics.jsonl", "weights.safetensors", "state.pt", "data.json"} <= files


# --- metrics.jsonl -------------------------------------------------------------------------


def test_metrics_log_round_trip_and_resume_cut(tmp_path):
    layout.write_metrics(tmp_path, [{"step": 1, "loss/loss_G": 2.0}])
    layout.append_metrics(tmp_path, {"step": 2, "loss/loss_G": 1.5})
    layout.append_metrics(tmp_path, {"step": 3, "loss/loss_G": 1.0})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('[1, 2]\n{"step": "x"}\n{"step": true}\n{"loss": 1}\n')  # not records
        f.write('{"step": 4, "loss')  # a line cut short by a crash
    assert [r["step"] for r in layout.read_metrics(tmp_path)] == [1, 2, 3]
    assert [r["step"] for r in layout.read_metrics(tmp_path, upto=2)] == [1, 2]  # later steps are redone by a resume
    assert layout.read_metrics(tmp_path, upto=0) == [] and layout.read_metrics(tmp_path / "none") == []
    first = (tmp_path / "metrics.jsonl").read_text().splitlines()[0]
    assert json.loads(first) == {"step": 1, "loss/loss_G": 2.0}


def test_metrics_tail_returns_each_complete_line_once(tmp_path):
    layout.append_metrics(tmp_path, {"step": 1, "a": 1.0})
    assert [r["step"] for r in layout.MetricsTail(tmp_path, skip_existing=True).new_records()] == []
    tail = layout.MetricsTail(tmp_path)
    assert [r["step"] for r in tail.new_records()] == [1] and tail.new_records() == []
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "a": 2.0}\n{"step": 3, "a"')  # the last line still being written
    assert [r["step"] for r in tail.new_records()] == [2]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(": 3.0}\n")
    assert [r["step"] for r in tail.new_records()] == [3]
    layout.write_metrics(tmp_path, [{"step": 1, "a": 0.5}])  # a resume cut the file shorter
    assert [(r["step"], r["a"]) for r in tail.new_records()] == [(1, 0.5)]
    assert layout.MetricsTail(tmp_path / "none").new_records() == []


# --- config.json ---------------------------------------------------------------------------


def test_config_round_trip_and_what_an_unreadable_one_gives(tmp_path):
    assert layout.read_train_config(tmp_path) is None and layout.read_config_dict(tmp_path) == {}
    cfg = TrainConfig("a", "b", model=model_preset("tiny", size=32), steps=9)
    layout.write_config(tmp_path, cfg)
    assert layout.read_train_config(tmp_path) == cfg
    assert layout.read_config_dict(tmp_path)["steps"] == 9 and layout.read_config_dict(tmp_path)["model"]["size"] == 32
    for text in ("{not json", "[1, 2]", '{"steps": 3}'):  # the last one lacks the datasets
        (tmp_path / "config.json").write_text(text)
        assert layout.read_config_dict(tmp_path) == ({"steps": 3} if "steps" in text else {})
        with pytest.raises(RetargetError, match=r"config.json: invalid run configuration") as err:
            layout.read_train_config(tmp_path)
        assert "\n" not in str(err.value)


# --- one owner -----------------------------------------------------------------------------

#: Every name of a run folder that layout.py owns, as a string constant anywhere else would spell it.
OWNED = re.compile(
    r"config\.json|metrics\.jsonl|loss_curve\.png|report\.html|eval\.json|weights\.safetensors|state\.pt"
    r"|data\.json|source\.mp4"  # file names, anywhere in a string
    r"|^(previews|checkpoints|tb)/?$|(^|/)(previews|checkpoints|tb)/"  # folder names, alone or in a path
    r"|(^|[^A-Za-z_.])(step|report|cache)_($|[{(*0-9]|[A-Z][.}]|[A-Z]$)"  # step_N, report_N, cache_<domain> patterns
)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings, with their line numbers."""
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def owned_names_outside_layout(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "layout.py" and path.parent.name == "run":
            continue
        if path.name == "outputs.py" and path.parent == root:  # below run/ in the layers, it names the files
            continue  # itself; tests/test_outputs.py holds its names equal to layout's
        for line, text in _strings(ast.parse(path.read_text())):
            if OWNED.search(text):
                found.append(f"{path.relative_to(root.parent)}:{line}: {text!r}")
    return found


def test_the_pattern_catches_each_way_of_spelling_a_name():
    caught = ["config.json", "previews", "tb", "checkpoints/", "/previews/x", "step_", "step_(\\d+)", "^step_([0-9]+)$",
              "report_*.html", "report_", "cache_", "cache_A.npy", "cache_{", "run/metrics.jsonl"]  # fmt: skip
    missed = ["step_state", "cache_key", "report_rows", "manifest.json", "summary.json", "tbody", "my_previews", "A"]
    assert [t for t in caught if not OWNED.search(t)] == []
    assert [t for t in missed if OWNED.search(t)] == []


def test_no_module_but_layout_spells_a_run_folder_name():
    found = owned_names_outside_layout(ROOT)
    assert not found, "run-folder names spelled outside retarget/run/layout.py:\n" + "\n".join(found)


def test_the_check_finds_a_name_spelled_elsewhere(tmp_path):
    pkg = tmp_path / "retarget"
    (pkg / "run").mkdir(parents=True)
    (pkg / "run" / "layout.py").write_text('CONFIG = "config.json"\n')
    (pkg / "report.py").write_text('"""Reads config.json (a docstring may say so)."""\nPAGE = f"report_{1}.html"\n')
    assert owned_names_outside_layout(pkg) == ["retarget/report.py:2: 'report_'"]
