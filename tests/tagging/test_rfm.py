"""RFM: pure scoring, and the set-based SQL (full + incremental) against a reference computed here in plain Python
on the same orders — on SQLite and PostgreSQL, with plenty of ties."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
from typing import Any

import pytest
import sqlalchemy as sa

from fulfillment.orders.models import OrderStatus, orders
from scrm.core.clock import local
from scrm.core.runtime import Runtime
from tagging.rfm import domain as rfm_domain
from tagging.rfm import services as rfm
from tagging.rfm.domain import RfmConfig
from tagging.rfm.models import customer_order_stats, customer_rfm

DAY = dt.timedelta(days=1)


# ---- pure -------------------------------------------------------------------------------------------------
def brute_scores(values: list[float], higher_is_better: bool = True) -> list[int]:
    """1 + ⌊5·(number of strictly worse values) / n⌋, counted the slow, obvious way."""
    n = len(values)
    worse = [sum(1 for w in values if (w < v if higher_is_better else w > v)) for v in values]
    return [1 + 5 * k // n for k in worse]


def test_counted_statuses_are_fulfilments() -> None:
    assert set(rfm.COUNTED_STATUSES) == {
        OrderStatus.CONFIRMED,
        OrderStatus.PARTIALLY_SHIPPED,
        OrderStatus.SHIPPED,
        OrderStatus.COMPLETED,
    }
    for name in ("id", "customer_id", "status", "total_fen", "confirmed_at"):
        assert name in orders.c  # the lightweight table clause names real columns


def test_quintiles_distinct_values() -> None:
    assert rfm_domain.quintile_scores([10, 20, 30, 40, 50]) == [1, 2, 3, 4, 5]
    assert rfm_domain.quintile_scores(list(range(10))) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rfm_domain.quintile_scores([5]) == [1]
    assert rfm_domain.quintile_scores([]) == []
    # recency: fewer days is better
    assert rfm_domain.quintile_scores([1, 2, 3, 4, 5], higher_is_better=False) == [5, 4, 3, 2, 1]


def test_quintiles_ties_share_a_score() -> None:
    values = [1, 1, 1, 1, 1, 1, 2, 2, 3, 9]
    scores = rfm_domain.quintile_scores(values)
    assert scores == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert rfm_domain.quintile_scores([7, 7, 7]) == [1, 1, 1]
    assert rfm_domain.quintile_scores([3, 3, 0, 0], higher_is_better=False) == [1, 1, 3, 3]


def test_quintiles_match_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(200):
        values = [rng.choice([0, 1, 1, 2, 3, 5, 8, rng.randint(0, 100)]) for _ in range(rng.randint(1, 60))]
        for better in (True, False):
            assert rfm_domain.quintile_scores(values, higher_is_better=better) == brute_scores(values, better)


def test_quintile_cut_points_score_like_ranks() -> None:
    """Four order statistics per axis give every value its RANK()-based quintile score (ties, tiny n, recency on
    business days with orders at any hour and one in the future) — what lets the nightly score without ranking."""
    rng = random.Random(21)
    now = dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC)  # 01:30 on the 24th in Shanghai
    for _ in range(300):
        n = rng.choice([1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 25, rng.randint(1, 120)])
        counts = [rng.choice([1, 1, 2, 3, 5, 8, rng.randint(1, 40)]) for _ in range(n)]
        fen = [rng.choice([990, 5000, 5000, rng.randint(1, 10**7)]) for _ in range(n)]
        last = [now - dt.timedelta(hours=rng.choice([-3, 0, 1, 2, 20, 26, 49, 24 * rng.randint(0, 364)])) for _ in range(n)]
        days = [rfm.recency_days(now, at) for at in last]
        config = rfm_domain.quintiles_as_cuts(
            RfmConfig(), now, rfm_domain.quintile_cuts(last), rfm_domain.quintile_cuts(counts), rfm_domain.quintile_cuts(fen)
        )
        assert config.scoring == "cuts"
        assert [rfm.score_by_cuts(d, config.recency_cuts, higher_is_better=False) for d in days] == brute_scores(days, False)
        assert [rfm.score_by_cuts(c, config.frequency_cuts) for c in counts] == brute_scores(counts, True)
        assert [rfm.score_by_cuts(m, config.monetary_cuts_fen) for m in fen] == brute_scores(fen, True)
    assert rfm_domain.quintile_positions(5) == (1, 2, 3, 4) and rfm_domain.quintile_positions(1) == (1, 1, 1, 1)
    assert rfm_domain.quintile_positions(1_000_003) == (200_001, 400_002, 600_002, 800_003)


def test_cut_points() -> None:
    cuts = (7, 30, 90, 180)
    assert [rfm.score_by_cuts(d, cuts, higher_is_better=False) for d in (0, 7, 8, 30, 31, 90, 180, 181)] == [5, 5, 4, 4, 3, 3, 2, 1]
    assert [rfm.score_by_cuts(n, (1, 2, 4, 8)) for n in (1, 2, 3, 4, 5, 8, 9, 100)] == [1, 2, 3, 3, 4, 4, 5, 5]


def test_eight_segments() -> None:
    names = {rfm.segment_of(r, f, m) for r in (1, 5) for f in (2, 3) for m in (2, 4)}
    assert names == set(rfm.SEGMENT_NAMES) and len(names) == 8
    assert rfm.segment_of(5, 5, 5) == "重要价值客户"
    assert rfm.segment_of(3, 2, 3) == "重要发展客户"
    assert rfm.segment_of(2, 3, 3) == "重要保持客户"
    assert rfm.segment_of(1, 1, 5) == "重要挽留客户"
    assert rfm.segment_of(4, 4, 1) == "一般价值客户"
    assert rfm.segment_of(4, 1, 2) == "一般发展客户"
    assert rfm.segment_of(1, 4, 2) == "一般保持客户"
    assert rfm.segment_of(1, 1, 1) == "一般挽留客户"
    assert rfm.segment_of(3, 3, 3, high_score=4) == "一般挽留客户"


def test_recency_counts_business_days() -> None:
    now = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    shanghai = dt.timezone(dt.timedelta(hours=8))
    assert rfm.recency_days(now, now) == 0
    assert rfm.recency_days(now, dt.datetime(2026, 11, 23, 0, 0, 1, tzinfo=shanghai)) == 0
    assert rfm.recency_days(now, dt.datetime(2026, 11, 22, 23, 59, 59, tzinfo=shanghai)) == 1
    assert rfm.recency_days(now, now - 30 * DAY) == 30
    assert rfm.recency_days(now, now + DAY) == 0  # clock skew never gives a negative recency


def test_config_validation() -> None:
    assert rfm.parse_rfm_config({}) == RfmConfig()
    cfg = rfm.parse_rfm_config({"rfm": {"scoring": "cuts", "monetary_cuts_yuan": [1, 2.5, 3, 4]}})
    assert cfg.monetary_cuts_fen == (100, 250, 300, 400)
    for bad, key in (
        ({"window_days": 0}, "window_days"),
        ({"scoring": "deciles"}, "scoring"),
        ({"high_score": 1}, "high_score"),
        ({"recency_cuts": [30, 7, 90, 180]}, "recency_cuts"),
        ({"frequency_cuts": [1, 2, 3]}, "frequency_cuts"),
        ({"windw_days": 3}, "windw_days"),
    ):
        with pytest.raises(ValueError, match=key):
            rfm.parse_rfm_config({"rfm": bad})
    rfm.parse_rfm_config(rfm.load_segments_toml())  # the shipped file is valid


# ---- database ---------------------------------------------------------------------------------------------
_seq = [0]


async def add_orders(rt: Runtime, rows: list[tuple[int, str, int, dt.datetime | None]]) -> list[int]:
    """Insert orders (customer_id, status, total_fen, confirmed_at) straight into fulfilment's table."""
    now = rt.clock.now()
    values = []
    for customer_id, status, total, confirmed_at in rows:
        _seq[0] += 1
        values.append(
            {
                "number": f"T{_seq[0]:08d}",
                "customer_id": customer_id,
                "status": status,
                "source": "api",
                "subtotal_fen": total,
                "total_fen": total,
                "created_at": confirmed_at or now,
                "updated_at": now,
                "confirmed_at": confirmed_at,
            }
        )
    async with rt.db.write() as conn:
        result = await conn.execute(orders.insert().returning(orders.c.id), values)
        return [int(r.id) for r in result]


def reference(rows: list[tuple[int, str, int, dt.datetime | None]], now: dt.datetime, config: RfmConfig) -> dict[int, dict[str, Any]]:
    """What the database should hold, computed independently: aggregate, then count strictly worse customers."""
    cutoff = now - dt.timedelta(days=config.window_days)
    agg: dict[int, list[Any]] = {}
    for cid, status, total, at in rows:
        if status in rfm.COUNTED_STATUSES and at is not None and at >= cutoff:
            a = agg.setdefault(cid, [0, 0, at])
            a[0] += 1
            a[1] += total
            a[2] = max(a[2], at)
    people = {cid: (max(0, (local(now).date() - local(a[2]).date()).days), a[0], a[1]) for cid, a in agg.items()}
    n = len(people)
    config = rfm_domain.resolved(config, n)  # auto: cut points for a small shop, quintiles from small_shop_customers on
    out = {}
    for cid, (days, freq, money) in people.items():
        if config.scoring == "quintiles":
            r = 1 + 5 * sum(1 for d, _, _ in people.values() if d > days) // n
            f = 1 + 5 * sum(1 for _, q, _ in people.values() if q < freq) // n
            m = 1 + 5 * sum(1 for _, _, v in people.values() if v < money) // n
        else:
            r = 1 + sum(1 for c in config.recency_cuts if days <= c)
            f = 1 + sum(1 for c in config.frequency_cuts if freq > c)
            m = 1 + sum(1 for c in config.monetary_cuts_fen if money > c)
        high = config.high_score
        names = {
            (1, 1, 1): "重要价值客户", (1, 0, 1): "重要发展客户", (0, 1, 1): "重要保持客户", (0, 0, 1): "重要挽留客户",
            (1, 1, 0): "一般价值客户", (1, 0, 0): "一般发展客户", (0, 1, 0): "一般保持客户", (0, 0, 0): "一般挽留客户",
        }  # fmt: skip
        segment = names[(int(r >= high), int(f >= high), int(m >= high))]
        out[cid] = {"recency_days": days, "frequency": freq, "monetary_fen": money, "r": r, "f": f, "m": m, "segment": segment}
    return out


async def stored(rt: Runtime) -> dict[int, dict[str, Any]]:
    """customer_rfm as of the clock's day (recency projected from each row's computed_on, as rfm_of does)."""
    today = local(rt.clock.now()).date()
    async with rt.db.read() as conn:
        ids = [int(i) for (i,) in await conn.execute(sa.select(customer_rfm.c.customer_id))]
        views = [await rfm.rfm_of(conn, i, today) for i in ids]
    keys = ("recency_days", "frequency", "monetary_fen", "r", "f", "m", "segment")
    return {v.customer_id: {k: getattr(v, k) for k in keys} for v in views if v is not None}


def random_orders(rng: random.Random, now: dt.datetime, customers: int, count: int) -> list[tuple[int, str, int, dt.datetime | None]]:
    statuses = [*rfm.COUNTED_STATUSES, *rfm.COUNTED_STATUSES, OrderStatus.CANCELLED, OrderStatus.PENDING, OrderStatus.ON_HOLD]
    rows = []
    for _ in range(count):
        status = rng.choice(statuses)
        at = None if status == OrderStatus.PENDING else now - rng.choice([0, 1, 1, 3, 3, 10, 40, 200, 364, 366, 500]) * DAY
        at = at - dt.timedelta(hours=rng.choice([0, 5])) if at else None
        rows.append((rng.randint(1, customers), status, rng.choice([1000, 1000, 5000, 12_345, 100_000]), at))
    return rows


async def full(rt: Runtime, config: RfmConfig, *, rebuild: bool = True) -> rfm.RfmRun:
    now = rt.clock.now()
    async with rt.db.write() as conn:
        if rebuild:
            await rfm.rebuild_order_stats(conn, rt.db.dialect, now, config)
        else:
            await rfm.age_out_order_stats(conn, rt.db.dialect, now, config)
        return await rfm.recompute_rfm(conn, rt.db.dialect, now, config)


@pytest.mark.parametrize("scoring", ["quintiles", "cuts", "auto"])
async def test_full_recompute_matches_reference(rt: Runtime, scoring: str) -> None:
    config = dataclasses.replace(RfmConfig(), scoring=scoring, frequency_cuts=(1, 2, 3, 5), monetary_cuts_fen=(1000, 5000, 20_000, 50_000))
    now = rt.clock.now()
    rows = random_orders(random.Random(42), now, customers=150, count=600)
    await add_orders(rt, rows)
    run = await full(rt, config)
    scored = run.scored
    expected = reference(rows, now, config)
    assert scored == run.inserted == len(expected) > 50
    assert await stored(rt) == expected
    async with rt.db.read() as conn:
        dates = {r for (r,) in await conn.execute(sa.select(customer_rfm.c.computed_on).distinct())}
        counts = await rfm.segment_counts(conn)
        grid = await rfm.rf_grid(conn)
    assert dates == {local(now).date()}
    assert sum(counts.values()) == scored and list(counts) == list(rfm.SEGMENT_NAMES)
    assert sum(grid.values()) == scored and len(grid) == 25


def pandas_reference(
    rows: list[tuple[int, str, int, dt.datetime | None]], now: dt.datetime, config: RfmConfig
) -> dict[int, dict[str, Any]]:
    """The same figures by a different road: a pandas group-by, ``rank(method="min")`` and vectorised cut points."""
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(rows, columns=["customer_id", "status", "total_fen", "at"])
    df = df[df["status"].isin(list(rfm.COUNTED_STATUSES)) & df["at"].notna()]
    df = df[pd.to_datetime(df["at"], utc=True) >= pd.Timestamp(now - dt.timedelta(days=config.window_days))]
    agg = df.groupby("customer_id").agg(frequency=("total_fen", "size"), monetary_fen=("total_fen", "sum"), last=("at", "max"))
    shanghai = dt.timezone(dt.timedelta(hours=8))
    today = pd.Timestamp(now.astimezone(shanghai).date())
    last_day = pd.to_datetime(agg["last"], utc=True).dt.tz_convert(shanghai).dt.tz_localize(None).dt.normalize()
    agg["recency_days"] = np.maximum(0, (today - last_day).dt.days)
    n = len(agg)
    if config.scoring == "quintiles":
        agg["r"] = 1 + 5 * (agg["recency_days"].rank(method="min", ascending=False).astype(int) - 1) // n
        agg["f"] = 1 + 5 * (agg["frequency"].rank(method="min").astype(int) - 1) // n
        agg["m"] = 1 + 5 * (agg["monetary_fen"].rank(method="min").astype(int) - 1) // n
    else:
        agg["r"] = 5 - np.searchsorted(np.array(config.recency_cuts), agg["recency_days"].to_numpy(), side="left")
        agg["f"] = 1 + np.searchsorted(np.array(config.frequency_cuts), agg["frequency"].to_numpy(), side="left")
        agg["m"] = 1 + np.searchsorted(np.array(config.monetary_cuts_fen), agg["monetary_fen"].to_numpy(), side="left")
    high = agg[["r", "f", "m"]] >= config.high_score
    agg["segment"] = [rfm_domain.SEGMENTS[(bool(r), bool(f), bool(m))] for r, f, m in high.itertuples(index=False)]
    keys = ["recency_days", "frequency", "monetary_fen", "r", "f", "m", "segment"]
    return {
        int(cid): {k: (v if k == "segment" else int(v)) for k, v in zip(keys, values, strict=True)}
        for cid, *values in agg[keys].itertuples()
    }


@pytest.mark.parametrize("scoring", ["quintiles", "cuts"])
async def test_full_recompute_matches_pandas(rt: Runtime, scoring: str, clock: Any) -> None:
    """Against pandas on the same orders, at an hour where the UTC and the Shanghai dates differ, and again days
    later through the nightly path (age-out + only-changed writes)."""
    config = dataclasses.replace(RfmConfig(window_days=200), scoring=scoring, high_score=4)
    clock.set(dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC))  # 01:30 on the 24th in Shanghai
    now = rt.clock.now()
    rows = random_orders(random.Random(2026), now, customers=400, count=1500)
    await add_orders(rt, rows)
    await full(rt, config)
    want = pandas_reference(rows, now, config)
    assert len(want) > 200 and len({v["segment"] for v in want.values()}) >= 4
    assert await stored(rt) == want
    clock.advance(days=9, hours=13)
    await full(rt, config, rebuild=False)
    assert await stored(rt) == pandas_reference(rows, rt.clock.now(), config)


async def test_cut_point_scoring_equals_the_ranking_statement(rt: Runtime) -> None:
    """The nightly scores quintiles through cut points; the reference ranking SELECT (window functions, the
    benchmark's bare baseline) gives every customer the same row."""
    config = RfmConfig(scoring="quintiles", window_days=200)
    now = rt.clock.now()
    await add_orders(rt, random_orders(random.Random(8), now, customers=300, count=1200))
    await full(rt, config)
    async with rt.db.read() as conn:
        ranked = {int(r.customer_id): tuple(r[1:8]) for r in await conn.execute(rfm.rfm_select(rt.db.dialect, now, config))}
        cuts = await rfm.quintile_cut_config(conn, rt.db.dialect, now, config)
    keys = ("recency_days", "frequency", "monetary_fen", "r", "f", "m", "segment")
    assert ranked == {cid: tuple(v[k] for k in keys) for cid, v in (await stored(rt)).items()} and len(ranked) > 150
    assert cuts.scoring == "cuts" and len({row[3:6] for row in ranked.values()}) > 20


async def test_nights_recheck_only_what_can_move_and_equal_a_full_rescoring(rt: Runtime, clock: Any) -> None:
    """Night after night — orders arriving between nights (the order events' refresh + rescore), orders ageing out,
    the cut points moving — the nightly that re-checks only the candidates (PostgreSQL: changed since the last
    scoring, or between an old and a new cut point) stores what scoring everybody from scratch stores: a full
    re-scoring right after writes nothing, and the rows equal the independent reference."""
    config = RfmConfig(scoring="quintiles", window_days=45)  # the 40-day-old orders age out on the way
    rng = random.Random(99)
    now = rt.clock.now()
    rows = random_orders(rng, now, customers=400, count=2400)
    await add_orders(rt, rows)
    await full(rt, config)
    for days in (1, 2, 1, 5, 1):
        clock.advance(days=days, hours=rng.choice([0, 3]))
        later = rt.clock.now()
        fresh = [
            (rng.randint(1, 300), OrderStatus.CONFIRMED, rng.choice([990, 5000, 80_000]), later - dt.timedelta(hours=h)) for h in (1, 5, 30)
        ]
        await add_orders(rt, fresh)
        rows += fresh
        async with rt.db.write() as conn:
            ids = sorted({cid for cid, *_ in fresh})
            await rfm.refresh_order_stats(conn, rt.db.dialect, ids, later, config)
            for cid in ids:
                await rfm.rescore_customer(conn, rt.db.dialect, cid, later, config)
        run = await full(rt, config, rebuild=False)
        assert run.scored == len(reference(rows, later, config))
        nightly = await stored(rt)
        async with rt.db.write() as conn:
            again = await rfm.recompute_rfm(conn, rt.db.dialect, later, config, everybody=True)
        assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
        assert nightly == await stored(rt) == reference(rows, later, config)
    async with rt.db.read() as conn:
        last = await rfm.last_cut_points(conn)
    assert last is not None and last.scored_at == rt.clock.now() and last.method == "quintiles" and len(last.monetary_fen) == 4


async def test_all_equal_customers_share_scores(rt: Runtime) -> None:
    now = rt.clock.now()
    await add_orders(rt, [(cid, OrderStatus.CONFIRMED, 5000, now - 2 * DAY) for cid in range(1, 8)])
    await full(rt, RfmConfig(scoring="quintiles"))
    assert {(v["r"], v["f"], v["m"]) for v in (await stored(rt)).values()} == {(1, 1, 1)}


async def test_customers_leaving_the_window_are_dropped(rt: Runtime, clock: Any) -> None:
    config = RfmConfig(window_days=30)
    now = rt.clock.now()
    rows = [
        (1, OrderStatus.CONFIRMED, 1000, now - 29 * DAY),
        (1, OrderStatus.SHIPPED, 2000, now - 1 * DAY),
        (2, OrderStatus.COMPLETED, 3000, now - 20 * DAY),
        (3, OrderStatus.CONFIRMED, 9000, now - 2 * DAY),
    ]
    await add_orders(rt, rows)
    await full(rt, config)
    assert set(await stored(rt)) == {1, 2, 3}
    clock.advance(days=15)  # customer 1's older order and all of customer 2's leave the window
    await full(rt, config, rebuild=False)
    got = await stored(rt)
    assert set(got) == {1, 3}
    assert got == reference(rows, rt.clock.now(), config)
    async with rt.db.read() as conn:
        stats = {int(r.customer_id): (r.orders, r.monetary_fen) for r in await conn.execute(sa.select(customer_order_stats))}
    assert stats == {1: (1, 2000), 3: (1, 9000)}


async def test_age_out_equals_a_rebuild_from_the_orders(rt: Runtime, clock: Any) -> None:
    """Night after night (one day, three, forty), the aggregates the age-out keeps by subtracting the orders that
    left the window equal the ones re-read from every order — counts, spend, first and last order — including
    customers refreshed by an order event in between, and customers whose last order left."""
    config = RfmConfig(window_days=60)
    now = rt.clock.now()
    rows = random_orders(random.Random(17), now, customers=120, count=700)
    rows += [(cid, OrderStatus.SHIPPED, 777, now - dt.timedelta(days=59, hours=h)) for cid, h in ((500, 1), (501, 30), (501, 2))]
    await add_orders(rt, rows)
    async with rt.db.write() as conn:
        await rfm.rebuild_order_stats(conn, rt.db.dialect, now, config)

    async def aggregates() -> dict[int, tuple[Any, ...]]:
        s = customer_order_stats.c
        async with rt.db.read() as conn:
            got = await conn.execute(sa.select(s.customer_id, s.orders, s.monetary_fen, s.first_order_at, s.last_order_at))
            return {int(r.customer_id): tuple(r[1:]) for r in got}

    touched = []
    for step in (dt.timedelta(days=1), dt.timedelta(days=3, hours=5), dt.timedelta(days=40)):
        clock.advance(seconds=step.total_seconds())
        later = rt.clock.now()
        extra = [(7, OrderStatus.CONFIRMED, 4321, later - 2 * DAY)]  # an order event between two nights
        await add_orders(rt, extra)
        rows += extra
        async with rt.db.write() as conn:
            await rfm.refresh_order_stats(conn, rt.db.dialect, [7], later - DAY, config)
            touched.append(await rfm.age_out_order_stats(conn, rt.db.dialect, later, config))
        aged = await aggregates()
        async with rt.db.write() as conn:
            await rfm.rebuild_order_stats(conn, rt.db.dialect, later, config)
        assert aged == await aggregates()
    assert touched[0] >= 2 and touched[2] > 10 and 500 not in aged and 501 not in aged


async def test_order_events_are_incremental_and_idempotent(catalog: Runtime) -> None:
    from fulfillment.orders.services import cancel_order, create_order
    from tagging.segments.jobs import update_after_order
    from tests.conftest import make_customer

    rt = catalog
    a, b, c = [await make_customer(rt, f"wmRfm{k}") for k in "abc"]
    first = await create_order(rt, customer_id=a, items=[("WATER-550", 2)], source="api", confirm=True)
    await create_order(rt, customer_id=b, items=[("WATER-550", 1)], source="api", confirm=True)
    await create_order(rt, customer_id=c, items=[("WATER-550", 5)], source="api", confirm=True)
    draft = await create_order(rt, customer_id=a, items=[("WATER-550", 9)], source="chat")  # pending: never counted
    for o in (first, draft):
        await update_after_order(rt, {"order_id": o.id})
        await update_after_order(rt, {"order_id": o.id})  # a replay changes nothing
    got = await stored(rt)
    assert set(got) == {a}
    assert got[a]["frequency"] == 1 and got[a]["monetary_fen"] == first.total_fen
    # the others' events arrive; each customer is scored against everybody's aggregates so far
    for cid in (b, c):
        async with rt.db.read() as conn:
            ids = [r.id for r in await conn.execute(sa.select(orders.c.id).where(orders.c.customer_id == cid))]
        await update_after_order(rt, {"order_id": ids[0]})
    # what the incremental path gave the last customer equals a full recompute for them
    last = (await stored(rt))[c]
    await full(rt, rfm.rfm_config(rt))
    assert (await stored(rt))[c] == last
    await cancel_order(rt, first.id, reason="test")
    await update_after_order(rt, {"order_id": first.id})
    await update_after_order(rt, {"order_id": first.id})
    assert a not in await stored(rt)
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(customer_order_stats).where(customer_order_stats.c.customer_id == a))).first() is None
        assert await rfm.rfm_of(conn, c) is not None


async def test_rescore_matches_full_recompute(rt: Runtime) -> None:
    config = RfmConfig(scoring="quintiles")
    now = rt.clock.now()
    rows = random_orders(random.Random(3), now, customers=60, count=250)
    await add_orders(rt, rows)
    await full(rt, config)
    expected = await stored(rt)
    async with rt.db.write() as conn:
        await conn.execute(sa.delete(customer_rfm))
        for cid in expected:
            await rfm.rescore_customer(conn, rt.db.dialect, cid, now, config)
    assert await stored(rt) == expected


async def test_rescore_counts_only_what_the_full_recompute_scores(rt: Runtime, clock: Any) -> None:
    """Between nights some aggregates are stale: customers whose last order has left the window (aged out only at
    night) and a defective row without orders. Rescoring ranks against exactly the rows a full recompute over the
    same aggregates scores — ties, business-day boundaries (orders at 5 h offsets) and all."""
    config = RfmConfig(window_days=60, scoring="quintiles")
    now = rt.clock.now()
    rows = random_orders(random.Random(5), now, customers=200, count=400)
    await add_orders(rt, rows)
    async with rt.db.write() as conn:
        await rfm.rebuild_order_stats(conn, rt.db.dialect, now, config)
        defective = {"customer_id": 999, "orders": 0, "monetary_fen": 0, "last_order_at": now, "updated_at": now}
        await conn.execute(customer_order_stats.insert().values(defective))
    clock.advance(days=25, hours=7)  # no age-out: customers last seen 40 days ago are now outside the window
    later = rt.clock.now()
    async with rt.db.read() as conn:
        s = customer_order_stats.c
        stale = (await conn.execute(sa.select(sa.func.count()).where(s.last_order_at < later - 60 * DAY))).scalar_one()
    assert stale > 3
    async with rt.db.write() as conn:
        run = await rfm.recompute_rfm(conn, rt.db.dialect, later, config)
    expected = await stored(rt)
    assert run.scored == len(expected) > 30 and 999 not in expected
    async with rt.db.write() as conn:  # with last scores present (their short sides are counted), then without
        for cid in [*expected, 999]:
            await rfm.rescore_customer(conn, rt.db.dialect, cid, later, config)
    assert await stored(rt) == expected
    async with rt.db.write() as conn:
        await conn.execute(sa.delete(customer_rfm))
        for cid in [*expected, 999]:
            await rfm.rescore_customer(conn, rt.db.dialect, cid, later, config)
    assert await stored(rt) == expected
    # counting either side of a customer gives the same number worse
    async with rt.db.read() as conn:
        for want in list(expected.values())[:8]:
            figures = (want["recency_days"], want["frequency"], want["monetary_fen"])
            results = set()
            for sides in itertools.product([False, True], repeat=3):
                row = (await conn.execute(rfm.rank_counts_select(later, config, *figures, rfm.RankSides(*sides)))).one()
                results.add(rfm.worse_counts(row, rfm.RankSides(*sides)))
            assert len(results) == 1 and next(iter(results))[0] == len(expected)


async def test_rows_are_rewritten_only_when_figures_change(rt: Runtime, clock: Any) -> None:
    """A night where nobody ordered rewrites nothing: each stored recency plus the days since its computed_on is
    still today's recency. The API projects it; a real change (a new order) rewrites the row."""
    config = RfmConfig(scoring="quintiles")
    now = rt.clock.now()
    rows = random_orders(random.Random(11), now, customers=80, count=300)
    rows = [r for r in rows if r[3] is None or r[3] > now - 300 * DAY]  # nothing leaves the window in 3 days
    await add_orders(rt, rows)
    await full(rt, config)
    clock.advance(days=3)
    run = await full(rt, config, rebuild=False)
    assert (run.inserted, run.updated, run.deleted) == (0, 0, 0)
    today = local(rt.clock.now()).date()
    expected = reference(rows, rt.clock.now(), config)
    async with rt.db.read() as conn:
        for cid, want in expected.items():
            view = await rfm.rfm_of(conn, cid, today)
            assert view is not None and view.recency_days == want["recency_days"] and view.segment == want["segment"]
            assert view.computed_on == today - dt.timedelta(days=3)
    extra = (1, OrderStatus.CONFIRMED, 100_000_000, rt.clock.now())
    await add_orders(rt, [extra])
    async with rt.db.write() as conn:
        await rfm.refresh_order_stats(conn, rt.db.dialect, [1], rt.clock.now(), config)
    run = await full(rt, config, rebuild=False)
    assert run.updated >= 1 and run.inserted == (0 if 1 in expected else 1)
    assert await stored(rt) == reference([*rows, extra], rt.clock.now(), config)


async def test_nightly_runs_once_a_day_after_three(rt: Runtime, clock: Any) -> None:
    from tagging.segments.jobs import due_today, recompute_all
    from tests.conftest import make_customer

    await make_customer(rt, "wmNightly")
    clock.set(dt.datetime(2026, 11, 23, 18, 30, tzinfo=dt.UTC))  # 02:30 in Shanghai
    assert not await due_today(rt)
    clock.set(dt.datetime(2026, 11, 23, 19, 41, tzinfo=dt.UTC))  # 03:41
    assert await due_today(rt)
    report = await recompute_all(rt)
    assert report.activity_segments["new"] == 1 and report.scored == 0 and report.activity_written == 1
    assert not await due_today(rt)
    clock.advance(days=1)
    assert await due_today(rt)
    report = await recompute_all(rt)  # nothing moved (still new): no row rewritten, and still done for today
    assert report.activity_written == 0 and report.rows_written == 0
    assert not await due_today(rt)
    clock.advance(hours=20)  # 23:41 — the same business day
    assert not await due_today(rt)
    clock.advance(hours=4)  # 03:41 the day after
    assert await due_today(rt)


async def test_after_the_nightly_the_aggregates_are_vacuumed(rt: Runtime) -> None:
    """The recompute's outbox row is handled by a VACUUM of the order aggregates (PostgreSQL), which sets the
    visibility map the one-customer index-only counts rely on."""
    from scrm.core import outbox
    from tagging.segments.jobs import RECOMPUTED_TOPIC, recompute_all

    now = rt.clock.now()
    await add_orders(rt, [(cid, OrderStatus.CONFIRMED, 1000 * cid, now - cid * DAY) for cid in range(1, 30)])
    report = await recompute_all(rt, rebuild_stats=True)
    assert report.scored == 29
    async with rt.db.read() as conn:
        o = outbox.outbox.c
        rows = (await conn.execute(sa.select(o.id, o.payload).where(o.topic == RECOMPUTED_TOPIC))).all()
    assert len(rows) == 1 and rows[0].payload["scored"] == 29 and rows[0].payload["day"] == local(now).date().isoformat()

    async def all_visible_pages() -> int:
        async with rt.db.read() as conn:
            q = sa.text("SELECT relallvisible FROM pg_class WHERE relname = 'customer_order_stats'")
            return int((await conn.execute(q)).scalar_one())

    if rt.db.dialect == "postgresql":
        assert await all_visible_pages() == 0
    await outbox.dispatch(rt, rows[0].id, final_try=True)
    async with rt.db.read() as conn:
        done = (await conn.execute(sa.select(outbox.outbox.c.done_at).where(outbox.outbox.c.id == rows[0].id))).scalar()
    assert done is not None
    if rt.db.dialect == "postgresql":
        assert await all_visible_pages() >= 1


def test_run_py_rfm_shows_progress(tmp_path: Any, capsys: pytest.CaptureFixture[str], sqlite_template: Any) -> None:
    import argparse
    import shutil

    from scrm.app.cli import rfm_command
    from tests.conftest import make_settings

    shutil.copy(sqlite_template, tmp_path / "cli.db")
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    assert rfm_command(argparse.Namespace(rebuild_stats=True), settings) == 0
    out = capsys.readouterr().out
    assert "[##############################] 3/3 活跃度分群 ✓" in out and "重要价值客户\t0" in out
    assert "评分方法：固定分界" in out  # no customers yet: a small shop, scored by cut points


async def test_merged_customers_orders_follow_the_survivor(rt: Runtime) -> None:
    from fulfillment.orders.jobs import move_orders_of_merged_customer
    from scrm.crm.customers.services import merge_customers
    from tagging.segments.jobs import update_after_merge, update_after_order
    from tests.conftest import make_customer

    a, b = await make_customer(rt, "wmMergeRfmA"), await make_customer(rt, "wmMergeRfmB")
    now = rt.clock.now()
    ids = await add_orders(rt, [(a, OrderStatus.CONFIRMED, 1000, now - DAY), (b, OrderStatus.SHIPPED, 2500, now)])
    for order_id in ids:
        await update_after_order(rt, {"order_id": order_id})
    async with rt.db.write() as conn:
        survivor = await merge_customers(conn, rt.db.dialect, a, b, now)
    gone = b if survivor == a else a
    payload = {"from": gone, "into": survivor}
    await move_orders_of_merged_customer(rt, payload)
    await update_after_merge(rt, payload)
    await update_after_merge(rt, payload)  # replay
    got = await stored(rt)
    assert set(got) == {survivor} and got[survivor]["frequency"] == 2 and got[survivor]["monetary_fen"] == 3500
