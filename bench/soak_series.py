"""The soak run's time series and what they conclude — pure functions, no I/O: one :class:`Sample` every interval,
least-squares trends, the memory / queue / latency verdicts, and the SVG chart (written by hand: no plotting
library is a dependency).

The bars (the issue's "flat memory and no growing queue"), each stated where it is judged:

* **memory flat** — total RSS of the server and worker processes at the end (mean of the last 3 samples) ≤ its
  value just after warm-up (mean of the first 3 samples after it) × ``RSS_GROWTH`` + ``RSS_SLACK_MIB``, and the
  least-squares slope of total RSS over the second half of the run ≤ ``RSS_SLOPE_MIB_PER_MIN``;
* **queue not growing** — over the last ``TAIL_SECONDS`` (or the last third of a shorter run) the mean arq queue
  depth and the mean outbox backlog are each ≤ ``BACKLOG_BOUND``, and the least-squares line through each over the
  second half rises by ≤ ``BACKLOG_BOUND`` across it (a queue that keeps growing fails however slowly);
* **p99** of every callback answered after warm-up ≤ ``P99_BOUND`` at the soak's fixed rate.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.common import percentile
from bench.verdict import Verdict, at_most

MIB_PER_KIB = 1 / 1024
RSS_GROWTH = 1.10  # end ≤ after warm-up × 1.10 + slack
RSS_SLACK_MIB = 8.0
RSS_SLOPE_MIB_PER_MIN = 1.0  # over the second half, all server + worker processes together
BACKLOG_BOUND = 20.0  # jobs queued / outbox rows not yet dispatched
TAIL_SECONDS = 300.0  # "the last 5 minutes"
P99_BOUND = 0.100  # s: callbacks at the soak's moderate rate (the idle-path target of bench.ingest is 20 ms)


@dataclass
class Sample:
    """One sampling instant, ``t`` seconds after the load started."""

    t: float
    rss_kib: dict[str, int]  # process role (supervisor, server-1, worker-a …) → RSS
    pss_kib: dict[str, int]
    callbacks: int  # callbacks answered during the interval that ends here
    p99: float  # s, of those (NaN when none)
    queued: int  # arq jobs waiting (the queue's sorted set)
    backlog: int  # outbox rows neither done nor failed
    counts: dict[str, int] = field(default_factory=dict)  # cumulative load so far (chats, orders …), for the log

    @property
    def rss_total_mib(self) -> float:
        return sum(self.rss_kib.values()) * MIB_PER_KIB

    @property
    def pss_total_mib(self) -> float:
        return sum(self.pss_kib.values()) * MIB_PER_KIB


def interval_p99(finished: Sequence[tuple[float, float]], start: float, end: float) -> tuple[int, float]:
    """(count, p99) of the latencies of requests that finished in ``[start, end)``; ``finished`` holds
    (finish time, latency) pairs."""
    window = sorted(lat for at, lat in finished if start <= at < end)
    return len(window), percentile(window, 99)


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``; NaN with fewer than two distinct ``xs``."""
    n = len(xs)
    if n < 2 or n != len(ys):
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def after(samples: Sequence[Sample], t: float) -> list[Sample]:
    return [s for s in samples if s.t >= t]


def second_half(samples: Sequence[Sample]) -> list[Sample]:
    if not samples:
        return []
    return after(samples, samples[-1].t / 2)


def tail(samples: Sequence[Sample], seconds: float = TAIL_SECONDS) -> list[Sample]:
    """The last ``seconds`` of the run, or its last third when the run is shorter than three times that."""
    if not samples:
        return []
    span = min(seconds, samples[-1].t / 3)
    return after(samples, samples[-1].t - span)


@dataclass(frozen=True)
class MemoryTrend:
    warm_mib: float  # total RSS just after warm-up (mean of the first 3 samples after it)
    end_mib: float  # total RSS at the end (mean of the last 3 samples)
    slope_mib_per_min: float  # least squares over the second half
    limit_mib: float  # what end_mib must not exceed


def memory_trend(samples: Sequence[Sample], warmup: float) -> MemoryTrend:
    warm = after(samples, warmup)[:3]
    end = list(samples[-3:])
    warm_mib = mean([s.rss_total_mib for s in warm])
    half = second_half(samples)
    per_s = slope([s.t for s in half], [s.rss_total_mib for s in half])
    return MemoryTrend(warm_mib, mean([s.rss_total_mib for s in end]), per_s * 60, warm_mib * RSS_GROWTH + RSS_SLACK_MIB)


@dataclass(frozen=True)
class QueueTrend:
    name: str
    tail_mean: float
    half_rise: float  # how much the least-squares line over the second half rises across it
    peak: int


def queue_trend(samples: Sequence[Sample], name: str) -> QueueTrend:
    def value(s: Sample) -> int:
        return s.queued if name == "queued" else s.backlog

    half = second_half(samples)
    rise = slope([s.t for s in half], [float(value(s)) for s in half])
    span = half[-1].t - half[0].t if half else 0.0
    return QueueTrend(name, mean([float(value(s)) for s in tail(samples)]), rise * span, max((value(s) for s in samples), default=0))


def verdicts(samples: Sequence[Sample], warmup: float, latencies_after_warmup: Sequence[float]) -> list[Verdict]:
    """The soak's targets, from its samples and the latency of every callback answered after warm-up."""
    mem = memory_trend(samples, warmup)
    out = [
        at_most(
            f"memory flat: total RSS at the end ≤ after warm-up × {RSS_GROWTH:g} + {RSS_SLACK_MIB:g} MiB",
            mem.end_mib,
            mem.limit_mib,
            " MiB",
        ),
        at_most("memory flat: RSS slope over the second half", mem.slope_mib_per_min, RSS_SLOPE_MIB_PER_MIN, " MiB/min"),
    ]
    for name, label in (("queued", "arq queue depth"), ("backlog", "outbox backlog")):
        trend = queue_trend(samples, name)
        out.append(at_most(f"{label} not growing: mean over the last {_span(samples)}", trend.tail_mean, BACKLOG_BOUND))
        out.append(at_most(f"{label} not growing: rise of its trend over the second half", trend.half_rise, BACKLOG_BOUND))
    ordered = sorted(latencies_after_warmup)
    out.append(at_most("callback p99 after warm-up", percentile(ordered, 99) * 1000, P99_BOUND * 1000, " ms"))
    return out


def _span(samples: Sequence[Sample]) -> str:
    if not samples:
        return "–"
    seconds = min(TAIL_SECONDS, samples[-1].t / 3)
    return f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:.0f} s"


# ---- the chart --------------------------------------------------------------------------------------------
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (x, y); NaN y values leave a gap


@dataclass
class Panel:
    title: str
    unit: str
    series: list[Series]
    floor_zero: bool = True  # y axis starts at 0 (queues, latency); memory panels zoom to their range


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (steps of 1, 2, 2.5 or 5 × a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 10_000 else f"{value:,.0f}"


def svg_chart(panels: Sequence[Panel], *, title: str, x_label: str = "minutes", shade_until: float = 0.0, width: int = 760) -> str:
    """Stacked line charts sharing one x axis, as a standalone SVG document; ``shade_until`` greys the warm-up."""
    panel_h, top, left, right, gap = 150, 34, 64, 150, 46
    height = top + len(panels) * (panel_h + gap) - gap + 52
    plot_w = width - left - right
    xs = [x for p in panels for s in p.series for x, _ in s.points]
    x_max = max(xs, default=1.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    x_ticks = nice_ticks(0.0, x_max)
    x_hi = max(x_ticks[-1], x_max)

    def sx(x: float) -> float:
        return left + plot_w * x / x_hi

    for i, panel in enumerate(panels):
        y0 = top + i * (panel_h + gap) + 14
        ys = [y for s in panel.series for _, y in s.points if math.isfinite(y)]
        lo = 0.0 if panel.floor_zero else min(ys, default=0.0)
        hi = max(ys, default=1.0)
        if not panel.floor_zero:
            pad = max((hi - lo) * 0.1, 1.0)
            lo, hi = lo - pad, hi + pad
        y_ticks = nice_ticks(lo, hi if hi > lo else lo + 1.0)
        y_lo, y_hi = y_ticks[0], y_ticks[-1]

        def sy(y: float, y0: float = y0, y_lo: float = y_lo, y_hi: float = y_hi) -> float:
            return y0 + panel_h - panel_h * (y - y_lo) / ((y_hi - y_lo) or 1.0)

        out.append(f'<text x="{left}" y="{y0 - 5}" font-weight="bold">{html.escape(panel.title)} ({html.escape(panel.unit)})</text>')
        if shade_until > 0:
            out.append(f'<rect x="{left}" y="{y0}" width="{sx(min(shade_until, x_hi)) - left:.1f}" height="{panel_h}" fill="#eeeeee"/>')
        for y in y_ticks:
            out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#dddddd"/>')
            out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
        for x in x_ticks:
            out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{y0 + panel_h}" y2="{y0 + panel_h + 4}" stroke="#444444"/>')
            out.append(f'<text x="{sx(x):.1f}" y="{y0 + panel_h + 16}" text-anchor="middle">{_fmt(x)}</text>')
        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#444444"/>')
        for k, series in enumerate(panel.series):
            color = COLORS[k % len(COLORS)]
            for run in _runs(series.points):
                path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in run)
                if len(run) == 1:
                    out.append(f'<circle cx="{sx(run[0][0]):.1f}" cy="{sy(run[0][1]):.1f}" r="2" fill="{color}"/>')
                else:
                    out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            ly = y0 + 12 + 14 * k
            out.append(
                f'<line x1="{left + plot_w + 10}" x2="{left + plot_w + 28}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>'
            )
            out.append(f'<text x="{left + plot_w + 32}" y="{ly}">{html.escape(series.name)}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">{html.escape(x_label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _runs(points: Sequence[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """The stretches of finite points (a NaN breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if math.isfinite(y):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def soak_panels(samples: Sequence[Sample]) -> list[Panel]:
    """RSS per process, callback p99 per interval, arq queue depth and outbox backlog — over minutes."""
    roles = list(dict.fromkeys(role for s in samples for role in s.rss_kib))  # as sampled: supervisor, servers, workers
    rss = [Series(role, [(s.t / 60, s.rss_kib.get(role, 0) * MIB_PER_KIB) for s in samples]) for role in roles]
    return [
        Panel("RSS per process", "MiB", rss, floor_zero=False),
        Panel("callback p99 per interval", "ms", [Series("p99", [(s.t / 60, s.p99 * 1000) for s in samples])]),
        Panel(
            "queues",
            "jobs / rows",
            [Series("arq queue depth", [(s.t / 60, float(s.queued)) for s in samples]),
             Series("outbox backlog", [(s.t / 60, float(s.backlog)) for s in samples])],
        ),
    ]  # fmt: skip
