"""Small server-side SVG charts for the console: bar, line, donut. No JavaScript, no CDN, no inline style
(the console's CSP forbids both): colours are SVG presentation attributes, tooltips are ``<title>`` elements.

Every label goes through :func:`scrm.console.render.t`, so a customer or product name cannot inject markup.
Geometry uses floats (pixels); the values shown are formatted by the caller (money stays integer fen).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scrm.console.render import Safe, join, t

GREEN = "#07c160"
BLUE = "#2563eb"
GREY = "#e5e7eb"
MUTED = "#6b7280"
PALETTE = ("#07c160", "#2563eb", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#64748b")

Fmt = Callable[[int], str]


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, title: str, inner: object) -> Safe:
    return t(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{title}" '
        'font-family="sans-serif"><title>{title}</title>{inner}</svg>',
        w=width,
        h=height,
        title=title,
        inner=inner,
    )


def _label_every(count: int, max_labels: int = 8) -> int:
    return max(1, -(-count // max_labels))


def _frame(width: int, height: int, pad: tuple[int, int, int, int], top_value: str) -> Safe:
    """Baseline, a top gridline and the top value's text."""
    left, top, right, bottom = pad
    base = height - bottom
    return t(
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="{grey}" stroke-width="1"/>'
        '<line x1="{l}" y1="{t}" x2="{r}" y2="{t}" stroke="{grey}" stroke-width="1" stroke-dasharray="3 3"/>'
        '<text x="{l}" y="{ty}" font-size="10" fill="{muted}">{top_value}</text>',
        l=left,
        r=width - right,
        b=base,
        t=top,
        ty=top - 4,
        grey=GREY,
        muted=MUTED,
        top_value=top_value,
    )


def bar_chart(
    points: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, width: int = 1000, height: int = 220, color: str = GREEN
) -> Safe:
    """Vertical bars, one per ``(label, value)``; negative values are drawn as 0. Hover shows label and value."""
    pad = (8, 18, 8, 22)
    left, top, right, bottom = pad
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for _, v in points] + [0])
    slot = plot_w / max(len(points), 1)
    every = _label_every(len(points))
    parts = [_frame(width, height, pad, fmt(peak))]
    for k, (label, value) in enumerate(points):
        bar_h = plot_h * max(value, 0) / peak if peak > 0 else 0.0
        x = left + k * slot + slot * 0.15
        parts.append(
            t(
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{c}" rx="1"><title>{label}：{v}</title></rect>',
                x=_n(x),
                y=_n(top + plot_h - bar_h),
                w=_n(slot * 0.7),
                h=_n(bar_h),
                c=color,
                label=label,
                v=fmt(value),
            )
        )
        if (len(points) - 1 - k) % every == 0:  # counted from the end: the latest point is always labelled
            parts.append(_axis_label(left + k * slot + slot / 2, height - 6, label))
    return _svg(width, height, title, join(parts))


def line_chart(
    points: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, width: int = 1000, height: int = 220, color: str = BLUE
) -> Safe:
    """A polyline through ``(label, value)`` points with a dot per point (hover shows label and value)."""
    pad = (8, 18, 8, 22)
    left, top, right, bottom = pad
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for _, v in points] + [0])
    step = plot_w / max(len(points) - 1, 1)
    every = _label_every(len(points))
    coords = [
        (left + k * step if len(points) > 1 else left + plot_w / 2, top + plot_h - (plot_h * max(v, 0) / peak if peak > 0 else 0.0))
        for k, (_, v) in enumerate(points)
    ]
    parts = [_frame(width, height, pad, fmt(peak))]
    if coords:
        parts.append(
            t(
                '<polyline points="{p}" fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round"/>',
                p=" ".join(f"{_n(x)},{_n(y)}" for x, y in coords),
                c=color,
            )
        )
    for k, ((label, value), (x, y)) in enumerate(zip(points, coords, strict=True)):
        parts.append(
            t(
                '<circle cx="{x}" cy="{y}" r="3" fill="{c}"><title>{label}：{v}</title></circle>',
                x=_n(x),
                y=_n(y),
                c=color,
                label=label,
                v=fmt(value),
            )
        )
        if (len(points) - 1 - k) % every == 0:  # counted from the end: the latest point is always labelled
            parts.append(_axis_label(x, height - 6, label))
    return _svg(width, height, title, join(parts))


def _axis_label(x: float, y: float, label: str) -> Safe:
    return t(
        '<text x="{x}" y="{y}" font-size="10" text-anchor="middle" fill="{muted}">{label}</text>',
        x=_n(x),
        y=_n(y),
        muted=MUTED,
        label=label,
    )


def donut_chart(slices: Sequence[tuple[str, int]], *, title: str, fmt: Fmt = str, size: int = 200, center: str = "") -> Safe:
    """A ring of ``(label, value)`` slices (non-positive values left out) with a legend to its right and an
    optional text in the middle. An all-zero chart is a grey ring reading 暂无数据."""
    r, stroke = size * 0.34, size * 0.14
    cx = cy = size / 2
    circumference = 2 * 3.141592653589793 * r
    shown = [(label, v, PALETTE[k % len(PALETTE)]) for k, (label, v) in enumerate(slices) if v > 0]
    total = sum(v for _, v, _ in shown)
    ring = t(
        '<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{grey}" stroke-width="{sw}"/>',
        cx=_n(cx),
        cy=_n(cy),
        r=_n(r),
        grey=GREY,
        sw=_n(stroke),
    )
    parts = [ring]
    offset = 0.0
    for label, value, color in shown:
        length = circumference * value / total
        parts.append(
            t(
                '<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{c}" stroke-width="{sw}" stroke-dasharray="{a} {b}" '
                'stroke-dashoffset="{o}" transform="rotate(-90 {cx} {cy})"><title>{label}：{v}</title></circle>',
                cx=_n(cx),
                cy=_n(cy),
                r=_n(r),
                c=color,
                sw=_n(stroke),
                a=_n(length),
                b=_n(circumference - length),
                o=_n(-offset),
                label=label,
                v=fmt(value),
            )
        )
        offset += length
    middle = center if total else "暂无数据"
    parts.append(t('<text x="{x}" y="{y}" font-size="14" text-anchor="middle" fill="#1f2328">{m}</text>', x=_n(cx), y=_n(cy + 5), m=middle))
    legend_x = size + 8
    for k, (label, value, color) in enumerate(shown):
        y = 24 + k * 22
        parts.append(
            t(
                '<rect x="{x}" y="{y}" width="12" height="12" fill="{c}"/>'
                '<text x="{tx}" y="{ty}" font-size="12" fill="#1f2328">{label} {v}</text>',
                x=legend_x,
                y=y,
                c=color,
                tx=legend_x + 18,
                ty=y + 11,
                label=label,
                v=fmt(value),
            )
        )
    return _svg(size + 220, size, title, join(parts))
