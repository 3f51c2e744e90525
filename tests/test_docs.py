"""The docs cannot go stale: CLI pages match --help, and every relative link resolves."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


def _gen():
    return load_script("gen_cli_docs")


def test_cli_pages_match_current_help():
    gen = _gen()
    pages = gen.render_pages()
    # one page per command and one for `retarget` itself, and no page left from an old command
    expected = {
        "retarget",
        "extract",
        "train",
        "train-enhancer",
        "train-refiner",
        "render",
        "export",
        "eval",
        "runs",
        "demo",
        "ui",
    }
    assert {p.stem for p in pages} == expected
    assert {p.stem for p in (ROOT / "docs" / "cli").glob("*.md")} == expected
    for path, text in pages.items():
        assert path.exists(), f"{path.relative_to(ROOT)} missing; run python scripts/gen_cli_docs.py"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is stale; run python scripts/gen_cli_docs.py"
        )


def test_help_text_is_plain_and_fixed_width():
    text = _gen().help_text(["demo"])
    assert "\x1b[" not in text  # no ANSI colour codes
    assert "Usage: retarget demo" in text
    assert "--steps" in text and "--out" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_check_mode_reports_a_stale_page(tmp_path, monkeypatch):
    gen = _gen()
    monkeypatch.setattr(gen, "DOCS", tmp_path)
    assert gen.main(["--check"]) == 1  # nothing generated there yet
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    (tmp_path / "demo.md").write_text("old\n")
    assert gen.main(["--check"]) == 1


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _relative_links(md: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", md.read_text(encoding="utf-8"), flags=re.S)
    links = [m.group(1) for m in LINK.finditer(text)]
    return [link for link in links if not re.match(r"[a-z]+:", link) and not link.startswith("#")]


MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(md):
    missing = []
    for link in _relative_links(md):
        target = (md.parent / link.split("#", 1)[0]).resolve()
        if not target.exists():
            missing.append(link)
    assert not missing, f"{md.relative_to(ROOT)} links to missing files: {missing}"


def test_readme_keeps_the_two_command_quickstart():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_cmd = "pip install torch==2.13.0 -e '.[dev]' && ruff check . && ruff format --check . && python -m pytest"
    assert "pip install torch==2.13.0 -e '.[face]' && retarget demo" in text
    assert test_cmd in text and test_cmd in ci
    assert "docs/images/demo_preview.png" in text


EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_the_three_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"face_to_face.py", "style_transfer.py", "compare_cyclegan_recycle.py"} <= names


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_documented_and_parse_their_arguments(script, capsys):
    spec = importlib.util.spec_from_file_location(f"example_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    doc = module.__doc__ or ""
    assert "python examples/" + script.name in doc  # how to run it, at the top
    assert len(doc.splitlines()) > 8
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    assert "--steps" in capsys.readouterr().out
