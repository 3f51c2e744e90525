"""report.html of retarget.views.report: well-formed, every reference exists inside the run folder."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
from helpers import make_video
from test_train_data import write_frames

from retarget.config import TrainConfig, model_preset
from retarget.train import train
from retarget.views.report import json_table, write_report
from retarget.views.run_views import clear_views
from retarget.views.svgchart import line_chart, thin

VOID = {"meta", "img", "br", "hr", "input", "link", "source", "col", "wbr"}


class Page(HTMLParser):
    """Collects src/href values and checks that every opened tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.refs: list[str] = []
        self.tags: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def parse(path: Path) -> Page:
    page = Page()
    text = path.read_text(encoding="utf-8")
    page.feed(text)
    page.close()
    assert not page.errors and not page.stack, (page.errors, page.stack)
    assert "http://" not in text and "https://" not in text
    return page


def check_refs(run_dir: Path, page: Page) -> None:
    root = run_dir.resolve()
    for ref in page.refs:
        assert "://" not in ref and not ref.startswith("/"), ref
        target = (run_dir / unquote(ref)).resolve()
        assert target.is_relative_to(root), f"{ref} leaves the run folder"
        assert target.is_file(), f"{ref} does not exist"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    a, b = write_frames(tmp / "faces", 8, size=36), write_frames(tmp / "cats", 7, size=36, start=9)
    cfg = TrainConfig(
        str(a),
        str(b),
        out=str(tmp / "run"),
        model=model_preset("tiny", size=32),
        preset="tiny",
        steps=4,
        pool=0,
        checkpoint_every=100,
        preview_every=2,
        log_every=1,
        device="cpu",
    )
    train(cfg)
    return tmp / "run"


def test_training_writes_a_self_contained_report(run):
    page = parse(run / "report.html")
    check_refs(run, page)
    grids = [r for r in page.refs if r.endswith(".png")]
    assert grids == ["previews/step_0000004.png"] * 2 + ["previews/step_0000002.png"] * 2  # newest first, link + img
    assert page.tags.count("svg") >= 3  # total, generator and discriminator losses at least
    # the temporal preview hook wrote its clips: the page shows them beside the source clip
    videos = [r for r in page.refs if r.endswith(".mp4")]
    assert "previews/source.mp4" in videos and "previews/step_0000004.mp4" in videos
    # ... and its warping error: a chart of it, and its last value in the summary line
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    warp = [r["temporal/warp_error"] for r in records if "temporal/warp_error" in r]
    assert len(warp) == 2  # steps 2 and 4
    text = (run / "report.html").read_text()
    assert "warping error (temporal preview)" in text
    assert f"warping error {warp[-1]:.4f}" in text


def test_clips_eval_and_warping_error_are_shown_when_present(run, tmp_path):
    make_video(run / "previews" / "source.mp4", frames=6, size=(32, 32))
    make_video(run / "previews" / "step_0000004.mp4", frames=6, size=(32, 32))
    (run / "eval.json").write_text(json.dumps({"warping_error": {"output": 0.0123, "source": 0.01}, "frames": 6}))
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "temporal/warp_error": 0.02, "temporal/warp_error_source": 0.01}) + "\n")
    text_page = write_report(run)
    page = parse(text_page)
    check_refs(run, page)
    videos = [r for r in page.refs if r.endswith(".mp4")]
    assert "previews/source.mp4" in videos and "previews/step_0000004.mp4" in videos
    text = text_page.read_text()
    assert "warping error" in text and "0.0123" in text and "Evaluation" in text


def _fake_previews(run_dir: Path, steps) -> None:
    (run_dir / "previews").mkdir(parents=True, exist_ok=True)
    for s in steps:
        cv2.imwrite(str(run_dir / "previews" / f"step_{s:07d}.png"), np.full((4, 6, 3), s % 255, np.uint8))


def test_many_previews_are_paginated_and_stale_pages_removed(tmp_path):
    run = tmp_path / "big run"  # a space: references must be URL-quoted
    _fake_previews(run, range(10, 710, 10))  # 70 previews
    write_report(run, first_page=20, per_page=40)
    pages = sorted(p.name for p in run.glob("report*.html"))
    assert pages == ["report.html", "report_2.html", "report_3.html"]
    for name in pages:
        check_refs(run, parse(run / name))
    first = [r for r in parse(run / "report.html").refs if r.endswith(".png")]
    assert first[0].endswith("step_0000700.png") and len(set(first)) == 20
    shown = {r for name in pages for r in parse(run / name).refs if r.endswith(".png")}
    assert len(shown) == 70
    for p in list((run / "previews").iterdir())[:40]:
        p.unlink()
    write_report(run, first_page=20, per_page=40)
    assert sorted(p.name for p in run.glob("report*.html")) == ["report.html", "report_2.html"]


def test_overwrite_clears_report_pages_and_tensorboard_logs(tmp_path):
    _fake_previews(tmp_path, range(1, 80))
    write_report(tmp_path, first_page=20, per_page=40)
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "events.out.tfevents.1").write_bytes(b"x")
    clear_views(tmp_path)
    assert not list(tmp_path.glob("report*.html")) and not (tmp_path / "tb").exists()
    assert len(list((tmp_path / "previews").iterdir())) == 79  # previews are the trainer's to clear


def test_empty_folder_still_gets_a_page(tmp_path):
    page = parse(write_report(tmp_path))
    assert page.refs == []


def test_json_table_shapes():
    nested = json_table({"recycle": {"warp": 0.1, "fid": {"a": 2}}, "cyclegan": {"warp": 0.2}})
    assert nested.count("<tr>") == 3 and "fid.a" in nested
    flat = json_table({"frames": 6, "name": "<x>"})
    assert "&lt;x&gt;" in flat and "<x>" not in flat


def test_chart_thins_long_series_and_skips_empty_ones():
    pts = [(i, float(i % 7)) for i in range(10000)]
    short = thin(pts, 100)
    assert len(short) == 100 and short[-1][0] == 9999
    assert sum(y for _, y in short) / 100 == pytest.approx(3.0, abs=0.05)  # bin means keep the level
    svg = line_chart({"a": pts, "b": [(0, float("nan"))]}, "t")
    assert svg.startswith("<svg") and svg.count("<polyline") == 1
    assert line_chart({"a": []}, "t") == ""
