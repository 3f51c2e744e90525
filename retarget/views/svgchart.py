"""Line charts as inline SVG text, for the run report (no plotting library, nothing fetched)."""

from __future__ import annotations

import math
from html import escape
from typing import Optional, Sequence

#: Line colours, distinguishable on white (Okabe-Ito, then greys).
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
    "#7F7F7F",
    "#8C564B",
    "#1F77B4",
    "#BCBD22",
)

Series = Sequence[tuple[float, float]]


def thin(points: Series, most: int = 400) -> list[tuple[float, float]]:
    """At most ``most`` points: consecutive points averaged in equal-count bins (keeps the first and last x)."""
    pts = [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if len(pts) <= most:
        return pts
    out = []
    for i in range(most):
        lo, hi = i * len(pts) // most, (i + 1) * len(pts) // most
        chunk = pts[lo:hi]
        out.append((chunk[-1][0], sum(y for _, y in chunk) / len(chunk)))
    return out


def _ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    if integer:
        step = max(step, 1)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:g}" if abs(v) >= 1 else f"{v:.3g}"


# Longer than 60 lines on purpose: one SVG drawn top to bottom (frame, ticks, lines, legend).
def line_chart(
    series: dict[str, Series],
    title: str,
    *,
    width: int = 400,
    height: int = 250,
    log: Optional[bool] = None,
    dashed: Sequence[str] = (),
) -> str:
    """An ``<svg>`` element plotting each named series of ``(x, y)`` points.

    Args:
        series: name -> points (x = step); non-finite points are dropped, long series thinned.
        title: drawn above the plot.
        log: logarithmic y axis; None picks it when every value is positive and they span
            more than a factor of 20.
        dashed: names drawn with a dashed line (reference series).

    Returns:
        SVG markup with a legend; an empty string when no series has a point.
    """
    data = {k: thin(v) for k, v in series.items()}
    data = {k: v for k, v in data.items() if v}
    if not data:
        return ""
    xs = [x for v in data.values() for x, _ in v]
    ys = [y for v in data.values() for _, y in v]
    if log is None:
        log = min(ys) > 0 and max(ys) / min(ys) > 20
    if log and min(ys) <= 0:
        log = False
    fy = math.log10 if log else (lambda v: v)
    x0, x1 = min(xs), max(xs)
    y0, y1 = fy(min(ys)), fy(max(ys))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    legend_rows = math.ceil(len(data) / 3)
    left, right, top, bottom = 58, 12, 26, 34 + 16 * legend_rows
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (fy(y) - y0) / (y1 - y0)) * ph

    out = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="chart" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" class="ct">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#bbb"/>',
    ]
    yticks = [10**t for t in range(math.ceil(y0), math.floor(y1) + 1)] if log else _ticks(y0, y1)
    if log and y1 - y0 < 2.5:  # few decades: label 2x and 5x as well
        yticks = sorted(
            m * 10**t
            for t in range(math.floor(y0), math.ceil(y1) + 1)
            for m in (1, 2, 5)
            if y0 <= math.log10(m * 10**t) <= y1
        )
    for t in yticks:
        y = py(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tk">{_fmt(t)}</text>')
    for t in _ticks(x0, x1, integer=True):
        x = px(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#f2f2f2"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle" class="tk">{_fmt(t)}</text>')
    out.append(f'<text x="{left + pw}" y="{top + ph + 28}" text-anchor="end" class="tk">step</text>')
    for i, (name, pts) in enumerate(data.items()):
        colour = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if name in dashed else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        if len(pts) == 1:
            out.append(f'<circle cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}" r="3" fill="{colour}"/>')
        else:
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.4"{dash}/>')
        lx, ly = left + (i % 3) * (pw // 3), top + ph + 44 + 16 * (i // 3)
        out.append(
            f'<line x1="{lx}" x2="{lx + 16}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{lx + 20}" y="{ly}" class="lg">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
