"""Small server-side SVG charts for the console: bar, line, donut. No JavaScript, no CDN, no inline style
(the console's CSP forbids both): colours are SVG presentation attributes, tooltips are ``<title>`` elements.

This module computes the geometry (:func:`bar_geometry`, :func:`line_geometry`, :func:`donut_geometry` return typed
chart values with every coordinate already formatted); ``templates/charts.html`` draws them (``{{ c.chart(x) }}``),
autoescaped, so a customer or product name cannot inject markup. The values shown are formatted by the caller's
``fmt`` (money stays integer fen until then).

"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
    anchor: str = "middle"  # "start" / "end" at the chart's edges, so the first and last dates are not cut off


AXIS_CHAR_WIDTH = 6.0  # px per character at font-size 10 (digits and "-"; a CJK character is ~10): a safe over-estimate


def _axis_label(x: float, y: float, text: str, width: int) -> AxisLabel:
    """A label centred under ``x`` unless half of it would fall outside ``0..width``: then it hangs inward."""
    half = len(text) * AXIS_CHAR_WIDTH / 2
    if x + half > width:
        return AxisLabel(_n(width - 1), _n(y), text, "end")
    if x - half < 0:
        return AxisLabel(_n(1), _n(y), text, "start")
    return AxisLabel(_n(x), _n(y), text)


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
    empty: bool = False  # nothing above zero: the chart reads 暂无数据 instead of an empty plot topped by "0"


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
    empty: bool = False  # nothing above zero: the chart reads 暂无数据 instead of a flat line topped by "0"


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
            labels.append(_axis_label(left + k * slot + slot / 2, height - 6, label, width))
    frame = _frame(width, height, fmt(peak) if peak > 0 else "")
    return BarChart(title, width, height, color, frame, tuple(bars), tuple(labels), empty=peak <= 0)


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
            labels.append(_axis_label(x, height - 6, label, width))
    polyline = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
    frame = _frame(width, height, fmt(peak) if peak > 0 else "")
    return LineChart(title, width, height, color, frame, polyline, tuple(dots), tuple(labels), empty=peak <= 0)


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
