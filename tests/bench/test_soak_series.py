"""The soak's series arithmetic, bars and chart (bench/soak_series.py): a flat run passes, a leak, a step in memory
or a queue that keeps growing fails its own target, and the chart is a well-formed SVG with a line per series."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

from bench.soak_series import (
    BACKLOG_BOUND,
    Panel,
    Sample,
    Series,
    interval_p99,
    memory_trend,
    nice_ticks,
    queue_trend,
    slope,
    soak_panels,
    svg_chart,
    tail,
    verdicts,
)

MIB = 1024  # KiB


def run(minutes: int = 30, *, leak_mib_per_min: float = 0.0, step_mib: float = 0.0, queue_per_min: float = 0.0) -> list[Sample]:
    """A sample every 10 s: five processes of ~200 MiB with a little noise; optionally a leak, a step half-way, a
    queue that grows."""
    samples = []
    for k in range(1, minutes * 6 + 1):
        t = k * 10.0
        noise = (k * 7919) % 5 - 2  # deterministic ±2 MiB
        grow = leak_mib_per_min * t / 60 + (step_mib if t > minutes * 30 else 0.0)
        rss = {role: int((200 + noise + grow / 5) * MIB) for role in ("supervisor", "server-1", "server-2", "worker-a", "worker-b")}
        queued = int(queue_per_min * t / 60) + k % 3
        samples.append(Sample(t, rss, {r: v // 2 for r, v in rss.items()}, 50, 0.02, queued, k % 4))
    return samples


def failed(vs: list) -> list[str]:  # type: ignore[type-arg]
    return [v.name for v in vs if not v.ok]


def test_slope_and_interval_p99() -> None:
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == 2
    assert math.isnan(slope([5], [1])) and math.isnan(slope([2, 2], [1, 3]))
    finished = [(0.5, 0.010), (1.5, 0.020), (1.9, 0.030), (2.0, 0.500)]
    assert interval_p99(finished, 1.0, 2.0) == (2, 0.030)  # the end of the interval is the next one's
    count, p99 = interval_p99(finished, 3.0, 4.0)
    assert count == 0 and math.isnan(p99)


def test_a_flat_run_meets_every_bar() -> None:
    samples = run()
    mem = memory_trend(samples, warmup=300)
    assert abs(mem.warm_mib - mem.end_mib) < 10 and abs(mem.slope_mib_per_min) < 0.2
    assert failed(verdicts(samples, 300, [0.01] * 1000)) == []


def test_a_leak_fails_the_slope_and_a_step_fails_the_end() -> None:
    leaking = verdicts(run(leak_mib_per_min=3.0), 300, [0.01] * 100)
    assert failed(leaking) == ["memory flat: RSS slope over the second half"]
    stepped = verdicts(run(step_mib=400), 300, [0.01] * 100)
    assert "memory flat: total RSS at the end ≤ after warm-up × 1.1 + 8 MiB" in failed(stepped)


def test_a_growing_queue_fails_however_slowly_and_slow_callbacks_fail_p99() -> None:
    growing = run(queue_per_min=2.0)  # 60 jobs behind after 30 min: tail mean ~55, rise over the 2nd half ~30
    trend = queue_trend(growing, "queued")
    assert trend.half_rise > BACKLOG_BOUND and trend.peak >= 60
    assert failed(verdicts(growing, 300, [0.01] * 100)) == [
        "arq queue depth not growing: mean over the last 5 min",
        "arq queue depth not growing: rise of its trend over the second half",
    ]
    slow = [0.01] * 95 + [0.5] * 5
    assert failed(verdicts(run(), 300, slow)) == ["callback p99 after warm-up"]
    assert failed(verdicts(run(), 300, [])) == ["callback p99 after warm-up"]  # nothing measured is no pass


def test_tail_is_the_last_five_minutes_or_the_last_third_of_a_short_run() -> None:
    assert next(s.t for s in tail(run(30))) == 1500
    short = run(2)
    assert [s.t for s in tail(short)] == [80, 90, 100, 110, 120]


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    ticks = nice_ticks(0, 30)
    assert ticks[0] == 0 and ticks[-1] >= 30 and len({round(b - a, 9) for a, b in itertools.pairwise(ticks)}) == 1
    assert nice_ticks(993.4, 1004.2)[0] <= 993.4 and nice_ticks(993.4, 1004.2)[-1] >= 1004.2
    flat = nice_ticks(5, 5)  # an empty range still gets an axis
    assert flat[0] <= 5 < flat[-1]


def test_the_chart_is_svg_with_a_line_per_series_and_gaps_at_nan() -> None:
    svg = svg_chart(soak_panels(run(5)), title="Soak <5 min>", shade_until=50 / 60)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "Soak <5 min>" in texts  # escaped in the file, intact once parsed
    for name in ("supervisor", "server-1", "worker-b", "p99", "arq queue depth", "outbox backlog"):
        assert name in texts
    assert len(list(root.iter(f"{ns}polyline"))) == 5 + 1 + 2

    gap = Panel("p99", "ms", [Series("p99", [(0, 1.0), (1, 2.0), (2, float("nan")), (3, 4.0), (4, 5.0)])])
    root = ET.fromstring(svg_chart([gap], title="gap"))
    assert len(list(root.iter(f"{ns}polyline"))) == 2
