"""Small server-side SVG charts for the console: bar, line, donut. No JavaScript, no CDN, no inline style
(the console's CSP forbids both): colours are SVG presentation attributes, tooltips are ``<title>`` elements.

This module computes the geometry (:func:`bar_geometry`, :func:`line_geometry`, :func:`donut_geometry` return typed
chart values with every coordinate already formatted); ``templates/charts.html`` draws them (``{{ c.chart(x) }}``),
autoescaped, so a customer or product name cannot inject markup. The values shown are formatted by the caller's
``fmt`` (money stays integer fen until then).

:func:`bar_chart`, :func:`line_chart` and :func:`donut_chart` draw the same SVG as strings for the pages not yet on
templates (the marketer pages); they go when those do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from scrm.console.render import Safe, join, t

GREEN = "#07c160"
BLUE = "#2563eb"
GREY = "#e5e7eb"
MUTED = "#6b7280"
TEXT = "#1f2328"
PALETTE = ("#07c160", "#2563eb", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#64748b")
PAD = (8, 18, 8, 22)  # left, top, right, bottom

Fmt = Callable[[int], str]


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _label_every(count: int, max_labels: int = 8) -> int:
    return max(1, -(-count // max_labels))


@dataclass(frozen=True)
class Frame:
    """Baseline, a dashed top gridline and the top value's text."""

    left: int
    right: int
    base: int
    top: int
    text_y: int
    top_value: str


@dataclass(frozen=True)
class AxisLabel:
    x: str
    y: str
    text: str


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    label: str
    value: str


@dataclass(frozen=True)
class Dot:
    x: str
    y: str
    label: str
    value: str


@dataclass(frozen=True)
class Slice:
    """A donut slice (a dashed circle stroke) and its legend entry."""

    color: str
    dash: str
    gap: str
    offset: str
    label: str
    value: str
    legend_y: int


@dataclass(frozen=True)
class BarChart:
    title: str
    width: int
    height: int
    color: str
    frame: Frame
    bars: tuple[Bar, ...]
    labels: tuple[AxisLabel, ...]
    kind: str = "bar"


@dataclass(frozen=True)
class LineChart:
    title: str
    width: int
    height: int
    color: str
    frame: Frame
    points: str  # the polyline's points ("" when there are none)
    dots: tuple[Dot, ...]
    labels: tuple[AxisLabel, ...]
    kind: str = "line"


@dataclass(frozen=True)
class DonutChart:
    title: str
    width: int
    height: int
    cx: str
    cy: str
    r: str
    stroke: str
    slices: tuple[Slice, ...]
    middle: str
    middle_y: str
    legend_x: int
    kind: str = "donut"


Chart = BarChart | LineChart | DonutChart  # plus HBarChart, HeatmapChart (below)


def _frame(width: int, height: int, top_value: str) -> Frame:
    left, top, right, bottom = PAD
    return Frame(left, width - right, height - bottom, top, top - 4, top_value)


def bar_geometry(
    points: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, width: int = 1000, height: int = 220, color: str = GREEN
) -> BarChart:
    """Vertical bars, one per ``(label, value)``; negative values are drawn as 0. Hover shows label and value."""
    left, top, right, bottom = PAD
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for _, v in points] + [0])
    slot = plot_w / max(len(points), 1)
    every = _label_every(len(points))
    bars, labels = [], []
    for k, (label, value) in enumerate(points):
        bar_h = plot_h * max(value, 0) / peak if peak > 0 else 0.0
        x = left + k * slot + slot * 0.15
        bars.append(Bar(_n(x), _n(top + plot_h - bar_h), _n(slot * 0.7), _n(bar_h), label, fmt(value)))
        if (len(points) - 1 - k) % every == 0:  # counted from the end: the latest point is always labelled
            labels.append(AxisLabel(_n(left + k * slot + slot / 2), _n(height - 6), label))
    return BarChart(title, width, height, color, _frame(width, height, fmt(peak)), tuple(bars), tuple(labels))


def line_geometry(
    points: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, width: int = 1000, height: int = 220, color: str = BLUE
) -> LineChart:
    """A polyline through ``(label, value)`` points with a dot per point (hover shows label and value)."""
    left, top, right, bottom = PAD
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for _, v in points] + [0])
    step = plot_w / max(len(points) - 1, 1)
    every = _label_every(len(points))
    coords = [
        (left + k * step if len(points) > 1 else left + plot_w / 2, top + plot_h - (plot_h * max(v, 0) / peak if peak > 0 else 0.0))
        for k, (_, v) in enumerate(points)
    ]
    dots, labels = [], []
    for k, ((label, value), (x, y)) in enumerate(zip(points, coords, strict=True)):
        dots.append(Dot(_n(x), _n(y), label, fmt(value)))
        if (len(points) - 1 - k) % every == 0:  # counted from the end: the latest point is always labelled
            labels.append(AxisLabel(_n(x), _n(height - 6), label))
    polyline = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
    return LineChart(title, width, height, color, _frame(width, height, fmt(peak)), polyline, tuple(dots), tuple(labels))


def donut_geometry(slices: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, size: int = 200, center: str = "") -> DonutChart:
    """A ring of ``(label, value)`` slices (non-positive values left out) with a legend to its right and an
    optional text in the middle. An all-zero chart is a grey ring reading 暂无数据."""
    r, stroke = size * 0.34, size * 0.14
    cx = cy = size / 2
    circumference = 2 * 3.141592653589793 * r
    shown = [(label, v, PALETTE[k % len(PALETTE)]) for k, (label, v) in enumerate(slices) if v > 0]
    total = sum(v for _, v, _ in shown)
    drawn, offset = [], 0.0
    for k, (label, value, color) in enumerate(shown):
        length = circumference * value / total
        drawn.append(Slice(color, _n(length), _n(circumference - length), _n(-offset), label, fmt(value), 24 + k * 22))
        offset += length
    return DonutChart(
        title=title,
        width=size + 220,
        height=size,
        cx=_n(cx),
        cy=_n(cy),
        r=_n(r),
        stroke=_n(stroke),
        slices=tuple(drawn),
        middle=center if total else "暂无数据",
        middle_y=_n(cy + 5),
        legend_x=size + 8,
    )


@dataclass(frozen=True)
class HBar:
    """One horizontal bar with its name to the left and its count to the right."""

    label_x: str
    text_y: str
    label: str
    x: str
    y: str
    width: str
    color: str
    value: str
    share: str
    value_x: str


@dataclass(frozen=True)
class HBarChart:
    """Horizontal bars: long names stay readable in a narrow card (the RFM segments)."""

    title: str
    width: int
    height: int
    bars: tuple[HBar, ...]
    kind: str = "hbar"


@dataclass(frozen=True)
class HeatCell:
    x: str
    y: str
    size: str
    opacity: str
    row: int
    column: int
    value: str
    text_x: str
    text_y: str
    ink: str


@dataclass(frozen=True)
class HeatRow:
    label: AxisLabel
    cells: tuple[HeatCell, ...]


@dataclass(frozen=True)
class HeatmapChart:
    """A grid of cells shaded by count (darker = more), row labels on the left, column labels below."""

    title: str
    width: int
    height: int
    color: str
    rows: tuple[HeatRow, ...]
    columns: tuple[AxisLabel, ...]
    kind: str = "heatmap"


def hbar_geometry(
    counts: Sequence[tuple[str, int]], *, title: str, highlight: Callable[[str], bool], color: str = GREEN, other: str = "#94a3b8"
) -> HBarChart:
    """One bar per ``(label, count)``, ``color`` where ``highlight(label)`` else ``other``; hover shows count and share."""
    row, label_w, bar_w = 28, 96, 230
    total, peak = sum(n for _, n in counts), max([*(n for _, n in counts), 0])
    bars = []
    for k, (name, n) in enumerate(counts):
        y = 6 + k * row
        length = bar_w * n / peak if peak else 0
        share = f"{100 * n / total:.1f}%" if total else "0%"
        bars.append(
            HBar(
                str(label_w - 6), str(y + 13), name, str(label_w), str(y), f"{length:.1f}", color if highlight(name) else other,
                str(n), share, str(label_w + length + 6),
            )
        )  # fmt: skip
    return HBarChart(title, label_w + bar_w + 60, 12 + row * len(counts), tuple(bars))


def heatmap_geometry(grid: Mapping[tuple[int, int], int], *, title: str, size: int = 5, color: str = GREEN) -> HeatmapChart:
    """``size``×``size`` cells keyed ``(row, column)`` from 1: row ``size`` at the top, column 1 on the left."""
    cell, left, top = 48, 32, 8
    peak = max([*grid.values(), 0])
    rows = []
    for r in range(size, 0, -1):
        y = top + (size - r) * cell
        cells = []
        for f in range(1, size + 1):
            n = grid.get((r, f), 0)
            x = left + (f - 1) * cell
            shade = 0.06 + 0.94 * n / peak if peak else 0.06
            ink = "#fff" if shade > 0.55 else TEXT
            cells.append(HeatCell(str(x), str(y), str(cell), f"{shade:.2f}", r, f, str(n), str(x + cell / 2), str(y + cell / 2 + 4), ink))
        rows.append(HeatRow(AxisLabel(str(left - 8), str(y + cell / 2 + 4), f"R{r}"), tuple(cells)))
    columns = tuple(AxisLabel(str(left + (f - 0.5) * cell), str(top + size * cell + 16), f"F{f}") for f in range(1, size + 1))
    return HeatmapChart(title, left + size * cell + 8, top + size * cell + 24, color, tuple(rows), columns)


# ---- the same SVG as strings, for the pages not yet on templates -------------------------------------------------
def _svg(width: int, height: int, title: str, inner: object) -> Safe:
    return t(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{title}" '
        'font-family="sans-serif"><title>{title}</title>{inner}</svg>',
        w=width,
        h=height,
        title=title,
        inner=inner,
    )


def _frame_svg(f: Frame) -> Safe:
    return t(
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="{grey}" stroke-width="1"/>'
        '<line x1="{l}" y1="{t}" x2="{r}" y2="{t}" stroke="{grey}" stroke-width="1" stroke-dasharray="3 3"/>'
        '<text x="{l}" y="{ty}" font-size="10" fill="{muted}">{top_value}</text>',
        l=f.left,
        r=f.right,
        b=f.base,
        t=f.top,
        ty=f.text_y,
        grey=GREY,
        muted=MUTED,
        top_value=f.top_value,
    )


def _axis_svg(a: AxisLabel) -> Safe:
    return t(
        '<text x="{x}" y="{y}" font-size="10" text-anchor="middle" fill="{muted}">{label}</text>', x=a.x, y=a.y, muted=MUTED, label=a.text
    )


def bar_chart(
    points: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, width: int = 1000, height: int = 220, color: str = GREEN
) -> Safe:
    """:func:`bar_geometry` drawn as an SVG string."""
    c = bar_geometry(points, title=title, fmt=fmt, width=width, height=height, color=color)
    labels = iter(c.labels)
    parts = [_frame_svg(c.frame)]
    every = _label_every(len(c.bars))
    for k, b in enumerate(c.bars):
        parts.append(
            t(
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{c}" rx="1"><title>{label}：{v}</title></rect>',
                x=b.x,
                y=b.y,
                w=b.width,
                h=b.height,
                c=c.color,
                label=b.label,
                v=b.value,
            )
        )
        if (len(c.bars) - 1 - k) % every == 0:
            parts.append(_axis_svg(next(labels)))
    return _svg(c.width, c.height, c.title, join(parts))


def line_chart(
    points: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, width: int = 1000, height: int = 220, color: str = BLUE
) -> Safe:
    """:func:`line_geometry` drawn as an SVG string."""
    c = line_geometry(points, title=title, fmt=fmt, width=width, height=height, color=color)
    parts = [_frame_svg(c.frame)]
    if c.dots:
        parts.append(t('<polyline points="{p}" fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round"/>', p=c.points, c=c.color))
    labels = iter(c.labels)
    every = _label_every(len(c.dots))
    for k, d in enumerate(c.dots):
        parts.append(
            t(
                '<circle cx="{x}" cy="{y}" r="3" fill="{c}"><title>{label}：{v}</title></circle>',
                x=d.x,
                y=d.y,
                c=c.color,
                label=d.label,
                v=d.value,
            )
        )
        if (len(c.dots) - 1 - k) % every == 0:
            parts.append(_axis_svg(next(labels)))
    return _svg(c.width, c.height, c.title, join(parts))


def donut_chart(slices: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, size: int = 200, center: str = "") -> Safe:
    """:func:`donut_geometry` drawn as an SVG string."""
    c = donut_geometry(slices, title=title, fmt=fmt, size=size, center=center)
    parts = [
        t(
            '<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{grey}" stroke-width="{sw}"/>',
            cx=c.cx,
            cy=c.cy,
            r=c.r,
            grey=GREY,
            sw=c.stroke,
        )
    ]
    for s in c.slices:
        parts.append(
            t(
                '<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{c}" stroke-width="{sw}" stroke-dasharray="{a} {b}" '
                'stroke-dashoffset="{o}" transform="rotate(-90 {cx} {cy})"><title>{label}：{v}</title></circle>',
                cx=c.cx,
                cy=c.cy,
                r=c.r,
                c=s.color,
                sw=c.stroke,
                a=s.dash,
                b=s.gap,
                o=s.offset,
                label=s.label,
                v=s.value,
            )
        )
    parts.append(
        t('<text x="{x}" y="{y}" font-size="14" text-anchor="middle" fill="{tc}">{m}</text>', x=c.cx, y=c.middle_y, tc=TEXT, m=c.middle)
    )
    for s in c.slices:
        parts.append(
            t(
                '<rect x="{x}" y="{y}" width="12" height="12" fill="{c}"/>'
                '<text x="{tx}" y="{ty}" font-size="12" fill="{tc}">{label} {v}</text>',
                x=c.legend_x,
                y=s.legend_y,
                c=s.color,
                tx=c.legend_x + 18,
                ty=s.legend_y + 11,
                tc=TEXT,
                label=s.label,
                v=s.value,
            )
        )
    return _svg(c.width, c.height, c.title, join(parts))
