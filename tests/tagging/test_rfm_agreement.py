"""The per-order RFM update and the nightly recompute give every customer the same scores for the same history —
a property test over generated order histories (hypothesis), on SQLite and PostgreSQL — and a small shop is scored
by cut points, so a customer who ordered today is never called 挽留客户."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulfillment.orders.models import OrderStatus
from scrm.app.runtime import build_runtime
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime
from tagging.rfm import services as rfm
from tagging.rfm.domain import RfmConfig
from tagging.rfm.models import customer_order_stats, customer_rfm
from tests.conftest import make_settings, reset_database
from tests.tagging.test_rfm import DAY, add_orders, reference, stored

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
COUNTED = [OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.COMPLETED]

# one order: (customer 1–9, status, total fen, days ago, hours earlier within the day — crosses Beijing midnights)
orders_strategy = st.lists(
    st.tuples(
        st.integers(1, 9),
        st.sampled_from([*COUNTED, OrderStatus.CANCELLED]),
        st.sampled_from([990, 5000, 10_000, 10_001, 60_000, 300_000]),
        st.sampled_from([0, 0, 1, 2, 7, 8, 30, 31, 100, 364, 366]),
        st.integers(0, 23),
    ),
    min_size=1,
    max_size=30,
)
configs = st.builds(
    RfmConfig,
    scoring=st.sampled_from(["auto", "quintiles", "cuts"]),
    small_shop_customers=st.integers(0, 10),  # the auto threshold on both sides of the generated shops' sizes
    high_score=st.integers(2, 5),
)
prior_scores = st.dictionaries(st.integers(1, 9), st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)))


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    target = tmp_path / "scrm.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), target)
    return f"sqlite+aiosqlite:///{target}"


async def _one_history(
    rt: Runtime, rows: list[tuple[int, str, int, int, int]], config: RfmConfig, prior: dict[int, tuple[int, int, int]]
) -> None:
    async with rt.db.write() as conn:
        for table in (customer_rfm, customer_order_stats, rfm.orders):
            await conn.execute(sa.delete(table))
    history = [(cid, status, total, NOW - days * DAY - dt.timedelta(hours=hours)) for cid, status, total, days, hours in rows]
    await add_orders(rt, history)
    dialect = rt.db.dialect
    # the incremental path: each customer's order event refreshes their aggregates and rescores them, with whatever
    # row they had before (its scores choose which side of the ranks is counted)
    async with rt.db.write() as conn:
        customers = sorted({cid for cid, *_ in rows})
        await rfm.refresh_order_stats(conn, dialect, customers, NOW, config)
        for cid, (r, f, m) in prior.items():
            if cid not in customers:
                continue
            row = {"customer_id": cid, "recency_days": 0, "frequency": 1, "monetary_fen": 1, "r": r, "f": f, "m": m}
            await conn.execute(customer_rfm.insert().values(**row, segment="一般挽留客户", computed_on=NOW.date()))
        for cid in customers:
            await rfm.rescore_customer(conn, dialect, cid, NOW, config)
    incremental = await stored(rt)
    # the nightly path over the same history
    async with rt.db.write() as conn:
        await conn.execute(sa.delete(customer_rfm))
        await rfm.rebuild_order_stats(conn, dialect, NOW, config)
        await rfm.recompute_rfm(conn, dialect, NOW, config)
    nightly = await stored(rt)
    assert incremental == nightly == reference(history, NOW, config)


def test_incremental_and_nightly_scores_agree(backend_url: str) -> None:
    with asyncio.Runner() as runner:
        if backend_url.startswith("postgresql"):
            runner.run(reset_database(backend_url))
        rt = runner.run(build_runtime(make_settings(database_url=backend_url), FrozenClock(NOW)))
        try:

            @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
            @given(orders_strategy, configs, prior_scores)
            def check(rows: list[tuple[int, str, int, int, int]], config: RfmConfig, prior: dict[int, tuple[int, int, int]]) -> None:
                runner.run(_one_history(rt, rows, config, prior))

            check()
        finally:
            runner.run(rt.close())


# ---- small shops ------------------------------------------------------------------------------------------------
async def test_a_small_shop_uses_cut_points_and_todays_buyer_is_not_at_risk(rt: Runtime) -> None:
    now = rt.clock.now()
    # three customers who all ordered today, one order each: quintile ranks tie them all at R=1 (一般挽留客户)
    await add_orders(rt, [(cid, OrderStatus.CONFIRMED, 20_000, now) for cid in (1, 2, 3)])
    config = RfmConfig()  # auto, small_shop_customers = 200
    async with rt.db.write() as conn:
        await rfm.rebuild_order_stats(conn, rt.db.dialect, now, config)
        await rfm.recompute_rfm(conn, rt.db.dialect, now, config)
        method = await rfm.scoring_method(conn, now, config)
    assert (method.method, method.configured, method.customers) == ("cuts", "auto", 3)
    got = await stored(rt)
    assert {cid: (v["r"], v["f"]) for cid, v in got.items()} == {1: (5, 1), 2: (5, 1), 3: (5, 1)}
    assert all("挽留" not in v["segment"] for v in got.values())
    async with rt.db.write() as conn:  # the per-order update agrees
        assert (await rfm.rescore_customer(conn, rt.db.dialect, 2, now, config)).r == 5  # type: ignore[union-attr]
    quintiles = dataclasses.replace(config, small_shop_customers=3)  # at the threshold: ranks again
    async with rt.db.read() as conn:
        assert (await rfm.scoring_method(conn, now, quintiles)).method == "quintiles"


def test_auto_config_is_validated() -> None:
    assert rfm.parse_rfm_config({}).scoring == "auto" and rfm.parse_rfm_config({}).small_shop_customers == 200
    assert rfm.parse_rfm_config({"rfm": {"small_shop_customers": 50}}).small_shop_customers == 50
    for bad, key in (
        ({"small_shop_customers": -1}, "small_shop_customers"),
        ({"small_shop_customers": "many"}, "small_shop_customers"),
        ({"scoring": "ranks"}, "scoring"),
    ):
        with pytest.raises(ValueError, match=key):
            rfm.parse_rfm_config({"rfm": bad})
    assert rfm.method_for(RfmConfig(), 199) == "cuts" and rfm.method_for(RfmConfig(), 200) == "quintiles"
    assert rfm.method_for(RfmConfig(scoring="quintiles"), 3) == "quintiles"
