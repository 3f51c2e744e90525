"""``report.html``: a static page per run folder with its settings, curves, previews and evaluation.

The page opens from disk in any browser: CSS is inline, charts are inline SVG drawn from
``metrics.jsonl`` (:mod:`retarget.views.svgchart`), and every image or video is referenced
by a relative path inside the run folder; nothing is fetched from elsewhere. The newest
preview grids are on ``report.html``; older ones continue on ``report_2.html``,
``report_3.html``..., so a run with hundreds of previews stays quick to open.
"""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from retarget.atomic import atomic_file
from retarget.run import layout
from retarget.views.runs import describe_run
from retarget.views.svgchart import line_chart

FIRST_PAGE = 20  # preview grids on report.html
PER_PAGE = 40  # preview grids on each further page
CLIPS = 4  # temporal preview clips shown beside the source clip

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:16px 24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.sum{color:#555}.sum b{color:#222}.grid{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.chart{background:#fff;border:1px solid #e4e4e4}.ct{font-weight:600;font-size:13px}
.tk{font-size:10px;fill:#666}.lg{font-size:11px;fill:#333}
table{border-collapse:collapse;background:#fff;font-size:13px}
td,th{border:1px solid #e2e2e2;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:0 0 14px;background:#fff;border:1px solid #e4e4e4;padding:6px;display:inline-block}
figcaption{font-size:12px;color:#555;margin-bottom:4px}figure img{max-width:100%;image-rendering:pixelated}
video{background:#000;width:288px;image-rendering:pixelated}
nav{margin:10px 0}nav a,nav b{margin-right:8px}details{margin:6px 0}summary{cursor:pointer}
"""


def _href(path: str) -> str:
    return escape(quote(path), quote=True)


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return f"<td>{escape(str(v))}</td>"
    if isinstance(v, (int, float)):
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        return f'<td class="n">{escape(text)}</td>'
    if isinstance(v, (dict, list)):
        return f"<td>{escape(json.dumps(v))}</td>"
    return f"<td>{escape(str(v))}</td>"


def _kv_table(items: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{escape(str(k))}</th>{_cell(v)}</tr>" for k, v in items.items())
    return f"<table>{rows}</table>"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def json_table(data: Any) -> str:
    """An HTML table of a JSON value: rows of dicts get one column per key, a flat dict two columns."""
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        data = [{"": k, **_flatten(v)} for k, v in data.items()]
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        cols: list[str] = []
        for r in data:
            cols += [k for k in _flatten(r) if k not in cols]
        head = "".join(f"<th>{escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(_cell(_flatten(r).get(c, "")) for c in cols) + "</tr>" for r in data)
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(data, dict):
        return _kv_table(_flatten(data))
    return f"<pre>{escape(json.dumps(data, indent=2))}</pre>"


def _series(records: list[dict[str, Any]], keys: list[str], strip: str = "") -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for k in keys:
        pts = [
            (r["step"], r[k]) for r in records if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
        ]
        out[k[len(strip) :] if k.startswith(strip) else k] = pts
    return out


def charts(records: list[dict[str, Any]]) -> list[str]:
    """SVG charts of the metrics records: totals, generator terms, discriminator terms, warping error, speed."""
    keys = sorted({k for r in records for k in r})
    losses = [k for k in keys if k.startswith("loss/")]
    totals = [k for k in losses if k in ("loss/loss_G", "loss/loss_D")]
    d_terms = [k for k in losses if k not in totals and k[5:].startswith("D")]
    g_terms = [k for k in losses if k not in totals and k not in d_terms]
    warp = [k for k in ("temporal/warp_error", "temporal/warp_error_source") if k in keys]
    warp += [k for k in keys if k.startswith("temporal/warp_error/")]  # a multi-domain run's, per target
    speed = [k for k in keys if k == "it_s" or k.startswith("it_s/")]
    data = [k for k in keys if k == "data_s" or k.startswith("data_s/")]
    out = [
        line_chart(_series(records, totals, "loss/"), "total losses"),
        line_chart(_series(records, g_terms, "loss/"), "generator terms"),
        line_chart(_series(records, d_terms, "loss/"), "discriminator terms"),
        line_chart(
            _series(records, warp, "temporal/"), "warping error (temporal preview)", dashed=("warp_error_source",)
        ),
        line_chart(_series(records, speed), "speed (steps/s)", log=False),
        line_chart(_series(records, data), "data time (s per step)", log=False),
    ]
    return [c for c in out if c]


def preview_steps(run_dir: Path) -> tuple[list[int], set[int]]:
    """Steps with a preview grid (newest first) and steps with a preview clip, from ``previews/``."""
    grids, clips = set(), set()
    folder = run_dir / layout.PREVIEWS
    if folder.is_dir():
        for p in folder.iterdir():
            grid, clip = layout.parse_step(p.name, layout.GRID), layout.parse_step(p.name, layout.CLIP)
            if p.is_file() and grid is not None:
                grids.add(grid)
            elif p.is_file() and clip is not None:
                clips.add(clip)
    return sorted(grids, reverse=True), clips


def _video(src: str, caption: str) -> str:
    return (
        f"<figure><figcaption>{escape(caption)}</figcaption>"
        f'<video src="{_href(src)}" controls loop muted preload="metadata"></video></figure>'
    )


def _display_width(path: Path) -> str:
    """``width`` attribute that doubles small grids (tiny models) so their cells can be seen."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return ""
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return ""
    width = int.from_bytes(head[16:20], "big")
    return f' width="{width * 2}"' if 0 < width <= 600 else ""


def _figures(run_dir: Path, steps: list[int], clips: set[int]) -> str:
    out = []
    for s in steps:
        grid = layout.preview_file(s, layout.GRID)
        clip = _video(layout.preview_file(s, layout.CLIP), f"step {s}: temporal preview") if s in clips else ""
        size = _display_width(run_dir / grid)
        out.append(
            f"<figure><figcaption>step {s}</figcaption>"
            f'<a href="{_href(grid)}"><img src="{_href(grid)}"{size} loading="lazy" alt="preview grid, step {s}"></a>'
            f"</figure>{clip}"
        )
    return "<div class=grid>" + "".join(out) + "</div>"


def _nav(page: int, pages: int) -> str:
    if pages <= 1:
        return ""
    links = [f"<b>{i}</b>" if i == page else f'<a href="{layout.report_page(i)}">{i}</a>' for i in range(1, pages + 1)]
    return "<nav>previews page: " + " ".join(links) + " (1 is the newest)</nav>"


def _head(title: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
    )


def _summary(run_dir: Path, records: list[dict[str, Any]]) -> str:
    row = describe_run(run_dir, records=records)
    many = multi_domains(run_dir)
    bits = [
        f"<b>{escape(row.model)}</b>",
        f"{len(many)} domains: {escape(' · '.join(many))}" if many else escape(" → ".join(row.domains)),
        f"{row.size} px" if row.size else "",
        f"steps <b>{row.steps_done if row.steps_done is not None else '-'}</b> / {row.steps_planned or '?'}",
        escape(row.state + (", resumable" if row.resumable and row.state != "finished" else "")),
    ]
    if row.loss_g is not None:
        bits.append(f"G {row.loss_g:.3f}")
    if row.loss_d is not None:
        bits.append(f"D {row.loss_d:.3f}")
    if row.warp_error is not None:
        bits.append(f"warping error {row.warp_error:.4f}")
    bits.append(f"page written {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())}")
    return '<p class="sum">' + " · ".join(b for b in bits if b) + "</p>"


def multi_domains(run_dir: Path) -> tuple[str, ...]:
    """A multi-domain run's domain names in label order (its config.json's ``names``); () for a pair."""
    names = layout.read_config_dict(run_dir).get("names")
    return tuple(str(n) for n in names) if isinstance(names, list) and names else ()


def _clips_section(run_dir: Path, clips: set[int]) -> str:
    parts = []
    if (run_dir / layout.source_clip_file()).is_file():
        parts.append(_video(layout.source_clip_file(), "source clip"))
    parts += [_video(layout.preview_file(s, layout.CLIP), f"step {s}") for s in sorted(clips, reverse=True)[:CLIPS]]
    if not parts:
        return ""
    names = multi_domains(run_dir)
    note = ""
    if names:
        note = (
            f"<p>A clip of {escape(names[0])} translated to every other domain, side by side: "
            f"{escape(', '.join(names[1:]))}.</p>"
        )
    return "<h2>Temporal preview</h2>" + note + "<div class=grid>" + "".join(parts) + "</div>"


def _grid_note(run_dir: Path) -> str:
    names = multi_domains(run_dir)
    if not names:
        return ""
    return (
        f"<p>One row per domain ({escape(', '.join(names))}): a fixed frame, then its translation to every domain "
        "in that order; below, the current training batch.</p>"
    )


def _read_json(path: Path) -> Optional[Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _settings(run_dir: Path) -> str:
    out = ["<h2>Settings</h2>"]
    cfg = layout.read_config_dict(run_dir)
    if cfg:
        table = _kv_table(_flatten(cfg))
        out.append(f"<details open><summary>configuration ({layout.CONFIG})</summary>{table}</details>")
    data = _read_json(run_dir / layout.DATA)
    if data is not None:
        out.append(f"<details><summary>data ({layout.DATA})</summary>{json_table(data)}</details>")
    return "".join(out) if len(out) > 1 else ""


def write_report(run_dir: str | Path, first_page: int = FIRST_PAGE, per_page: int = PER_PAGE) -> Path:
    """Write ``report.html`` (and ``report_N.html`` for older previews) into ``run_dir``, atomically.

    Args:
        run_dir: a run folder (config.json, metrics.jsonl, previews/... as written by train;
            any of them may be missing).
        first_page: preview grids on report.html, newest first.
        per_page: preview grids on each further page.

    Returns:
        the path of ``report.html``.
    """
    run_dir = Path(run_dir)
    records = layout.read_metrics(run_dir)
    steps, clips = preview_steps(run_dir)
    rest = steps[first_page:]
    pages = 1 + (len(rest) + per_page - 1) // per_page
    title = f"{run_dir.resolve().name}: retarget run"
    body = [_head(title), f"<h1>{escape(run_dir.resolve().name)}</h1>", _summary(run_dir, records)]
    plots = charts(records)
    if plots:
        body.append("<h2>Losses and speed</h2><div class=grid>" + "".join(plots) + "</div>")
    body.append(_clips_section(run_dir, clips))
    evaluation = _read_json(run_dir / layout.EVAL)
    if evaluation is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime((run_dir / layout.EVAL).stat().st_mtime))
        body.append(f"<h2>Evaluation ({layout.EVAL}, {when})</h2>{json_table(evaluation)}")
    body.append("<h2>Preview grids</h2>" + _grid_note(run_dir) + _nav(1, pages))
    body.append(_figures(run_dir, steps[:first_page], clips) if steps else "<p>No preview yet.</p>")
    body += [_nav(1, pages), _settings(run_dir), "</body></html>\n"]
    _write(run_dir / layout.REPORT, body)
    for page in range(2, pages + 1):
        chunk = rest[(page - 2) * per_page : (page - 1) * per_page]
        _write(
            run_dir / layout.report_page(page),
            [
                _head(f"{title}, page {page}"),
                f'<h1><a href="{layout.REPORT}">{escape(run_dir.resolve().name)}</a> · older previews</h1>',
                _nav(page, pages),
                _figures(run_dir, chunk, clips),
                _nav(page, pages),
                "</body></html>\n",
            ],
        )
    for number, stale in layout.report_pages(run_dir).items():
        if number > pages:
            stale.unlink(missing_ok=True)
    return run_dir / layout.REPORT


def _write(path: Path, parts: list[str]) -> None:
    with atomic_file(path) as tmp:
        # surrogateescape: a file name's bytes that are not UTF-8 are written as they are
        tmp.write_text("\n".join(p for p in parts if p), encoding="utf-8", errors="surrogateescape")
