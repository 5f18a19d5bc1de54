"""RFM full recompute on PostgreSQL: ours vs the bare SQL statement vs pandas vs DuckDB.

``python -m bench.rfm [--customers 1000000 --orders 10000000]``

A scratch database ``scrm_bench_rfm`` (created, migrated, dropped) gets ``--customers`` customers and ``--orders``
orders from ``generate_series`` (skewed: low customer ids order more; 8 % cancelled; confirmed over the RFM window
plus 60 days; amounts log-spread from ¥1 to ¥2,000). Orders are bulk-loaded without the ``number`` / ``source_ref``
unique constraints and the status index (RFM uses none of them); ``ix_orders_customer_id`` is built after the load.
The order aggregates (``customer_order_stats``) are then built once by ``tagging.rfm.services.rebuild_order_stats`` (timed,
shown for information: it is the backfill path, not the nightly one). Timed, ``--runs`` times each, the clock one
day further each night (so a day's worth of customers ages out of the window every time):

* **ours** — the nightly RFM work as ``tagging.segments.jobs.recompute_all`` runs it, in one transaction: age-out
  (``age_out_order_stats``: the orders that left the window are subtracted from their customers' aggregates) +
  the RFM step (``recompute_rfm``: the quintile cut points of the aggregates, then one scoring SELECT of CASEs
  over the customers whose figures changed since the last night or lie between its cut points and tonight's,
  joined with their stored rows, and only the changed rows written). Measured after one untimed night, so
  ``customer_rfm`` and the last cut points are there, as every real night.
* **bare** — the reference ranking + classifying SELECT (``tagging.rfm.sql.rfm_select`` with quintiles: three
  ``RANK()`` windows) over the aggregates, results put into a temporary table (``CREATE TEMP TABLE … AS``, as ours
  does) and thrown away: what scoring everybody by ranking costs in SQL. Ours gives the same scores through cut
  points and re-checks only the customers that can have moved, so it may well beat it.
* **bare from orders** — one SELECT that aggregates the orders and scores them (no aggregates kept), into a temp
  table: what a recompute without ``customer_order_stats`` would cost (BASELINES' "one statement").
* **pandas** — the orders read out of the database (``COPY (SELECT … counted orders in the window) TO STDOUT`` into
  ``pandas.read_csv``: the fastest way out), then aggregates, ranks (``rank(method="min")``, the same rank rule)
  and segments computed in pandas. Not written back.
* **DuckDB from scratch** — the ceiling: an in-memory DuckDB reads the orders out of PostgreSQL itself (its
  ``postgres`` extension, from the pinned ``duckdb-ext-postgres`` package — DuckDB cannot download extensions
  here; without it the bench COPYs the orders out as CSV into DuckDB and says so), then aggregates, ranks (the
  same rule) and classifies in one statement. Also shown: the same statement over the orders already in DuckDB's
  memory (the compute alone).

Checked: pandas' scores and segments equal what ours stored, and DuckDB's equal pandas', customer by customer.
Also shown: scoring one customer after an order event (``rescore_customer``: index range counts over
``customer_order_stats``), next to the way it was done before migration 0008 (one scan of every aggregate summing
CASEs — same scores, checked), and the activity recompute over every customer (twice: every row new, then a day
later with only the changed rows written). Targets: the RFM step ≤ 1.5× bare; ours end to end ≤ 1.5× bare and
≤ 1.5× bare from orders, faster than pandas, and ≤ 2× DuckDB from scratch. Exit code 0 only when every check
held and every target was met; a missed target is a ✘ and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    ScratchDatabases,
    add_run_options,
    background_busy,
    background_line,
    command_line,
    generated_line,
    guarded,
    machine_lines,
    pg_version,
    publish,
    ratio,
)
from bench.verdict import Report, at_most, check

DB_NAME = "scrm_bench_rfm"
DAY = dt.timedelta(days=1)


@dataclass
class Figures:
    runs: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.runs.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name]) if self.runs.get(name) else float("nan")


async def load(db: Any, args: argparse.Namespace, now: dt.datetime, window_days: int, figures: Figures) -> None:
    import sqlalchemy as sa

    span = window_days + 60
    started = time.perf_counter()
    async with db.write() as conn:
        for ddl in (
            "ALTER TABLE orders DROP CONSTRAINT uq_orders_number",
            "ALTER TABLE orders DROP CONSTRAINT uq_orders_source_ref",
            "DROP INDEX ix_orders_status",
            "DROP INDEX ix_orders_customer_id",
            "DROP INDEX ix_orders_customer_confirmed",
        ):
            await conn.execute(sa.text(ddl))
        await conn.execute(sa.text("SELECT setseed(:seed)"), {"seed": args.seed})
        await conn.execute(
            sa.text(
                "INSERT INTO customers (name, first_seen_at, last_seen_at, created_at, updated_at, custom_fields) "
                "SELECT '客户' || g, ts, ts, ts, ts, '{}' "
                "FROM (SELECT g, CAST(:now AS timestamptz) - random() * 400 * interval '1 day' AS ts FROM generate_series(1, :n) g) x"
            ),
            {"now": now, "n": args.customers},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO orders (number, customer_id, status, source, subtotal_fen, total_fen, created_at, updated_at, confirmed_at) "
                "SELECT 'B' || g, 1 + floor(power(random(), 1.6) * :c)::bigint, "
                "CASE WHEN random() < 0.08 THEN 'cancelled' WHEN random() < 0.5 THEN 'completed' ELSE 'shipped' END, "
                "'api', t, t, ts, ts, ts FROM (SELECT g, (100 + floor(exp(random() * 7.6) * 100))::bigint AS t, "
                "CAST(:now AS timestamptz) - random() * :span * interval '1 day' AS ts FROM generate_series(1, :n) g) x"
            ),
            {"now": now, "n": args.orders, "c": args.customers, "span": span},
        )
        await conn.execute(sa.text("CREATE INDEX ix_orders_customer_id ON orders (customer_id)"))
        await conn.execute(sa.text("CREATE INDEX ix_orders_customer_confirmed ON orders (customer_id, confirmed_at)"))
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("VACUUM ANALYZE orders"))
        await conn.execute(sa.text("VACUUM ANALYZE customers"))
    figures.notes["load"] = f"{time.perf_counter() - started:.1f} s"


async def timed(figures: Figures, name: str, db: Any, work: Any) -> Any:
    started = time.perf_counter()
    async with db.write() as conn:
        result = await work(conn)
    figures.add(name, time.perf_counter() - started)
    return result


async def run_pandas(url: str, now: dt.datetime, window_days: int, high: int) -> Any:
    import asyncpg
    import numpy as np
    import pandas as pd

    from tagging.rfm import domain as rfm_module_domain
    from tagging.rfm.domain import SEGMENTS
    from tagging.rfm.sql import COUNTED_STATUSES

    dsn = url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        buf = io.BytesIO()
        statuses = ", ".join(f"'{s}'" for s in COUNTED_STATUSES)
        cutoff = (now - window_days * DAY).isoformat()
        await conn.copy_from_query(
            "SELECT customer_id, total_fen, floor(extract(epoch FROM confirmed_at))::bigint AS at FROM orders "
            f"WHERE status IN ({statuses}) AND confirmed_at >= '{cutoff}'",
            output=buf,
            format="csv",
        )
    finally:
        await conn.close()
    buf.seek(0)
    df = pd.read_csv(buf, names=["customer_id", "total_fen", "at"], dtype={"customer_id": "int64", "total_fen": "int64", "at": "int64"})
    agg = df.groupby("customer_id").agg(frequency=("total_fen", "size"), monetary_fen=("total_fen", "sum"), last=("at", "max"))
    n = len(agg)
    offset = rfm_module_domain.LOCAL_OFFSET_SECONDS  # business days (Asia/Shanghai dates), as tagging.rfm.services counts them
    agg["recency_days"] = np.maximum(0, (int(now.timestamp()) + offset) // 86400 - (agg["last"] + offset) // 86400)
    agg["r"] = 1 + (5 * (agg["recency_days"].rank(method="min", ascending=False).astype("int64") - 1)) // n
    agg["f"] = 1 + (5 * (agg["frequency"].rank(method="min").astype("int64") - 1)) // n
    agg["m"] = 1 + (5 * (agg["monetary_fen"].rank(method="min").astype("int64") - 1)) // n
    names = np.array([SEGMENTS[(bool(k & 4), bool(k & 2), bool(k & 1))] for k in range(8)], dtype=object)
    code = (agg["r"] >= high).astype(int) * 4 + (agg["f"] >= high).astype(int) * 2 + (agg["m"] >= high).astype(int)
    agg["segment"] = names[code.to_numpy()]
    return agg


def duckdb_connection(url: str) -> tuple[Any, str]:
    """An in-memory DuckDB with PostgreSQL attached read-only (the ``postgres`` extension, from the pinned
    ``duckdb-ext-postgres`` package: DuckDB cannot download extensions here) and how the orders get in:
    ``"postgres"`` (DuckDB reads the table itself, binary COPY) or ``"copy"`` (the extension is missing: the bench
    COPYs the orders out as CSV and DuckDB reads that)."""
    import importlib.util

    import duckdb

    con = duckdb.connect()
    spec = importlib.util.find_spec("duckdb_ext")
    locations = list(spec.submodule_search_locations or []) if spec else []
    try:
        if locations:
            con.execute(f"SET extension_directory = '{locations[0]}/extensions'")
        con.execute("LOAD postgres")
    except duckdb.Error:
        return con, "copy"
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    con.execute(f"ATTACH '{dsn}' AS pg (TYPE postgres, READ_ONLY)")
    return con, "postgres"


def duckdb_scoring_sql(source: str, now: dt.datetime, window_days: int, high: int) -> str:
    """One DuckDB statement: aggregate the counted orders of the window, rank (the same rule: ``RANK()``, business
    days), classify — from ``source`` (columns customer_id, status, total_fen, confirmed_at)."""
    from tagging.rfm.domain import LOCAL_OFFSET_SECONDS, SEGMENTS, day_of
    from tagging.rfm.sql import COUNTED_STATUSES

    statuses = ", ".join(f"'{s}'" for s in COUNTED_STATUSES)
    cutoff = (now - window_days * DAY).isoformat()
    segment = " ".join(
        f"WHEN {'' if rh else 'NOT '}r >= {high} AND {'' if fh else 'NOT '}f >= {high} AND {'' if mh else 'NOT '}m >= {high} THEN '{name}'"
        for (rh, fh, mh), name in SEGMENTS.items()
    )
    return f"""
        WITH agg AS (
            SELECT customer_id, count(*) AS frequency, sum(total_fen)::BIGINT AS monetary_fen,
                   greatest(0, {day_of(now)} - (floor(epoch(max(confirmed_at)))::BIGINT + {LOCAL_OFFSET_SECONDS}) // 86400) AS recency_days
            FROM {source} WHERE status IN ({statuses}) AND confirmed_at >= TIMESTAMPTZ '{cutoff}' GROUP BY customer_id),
        ranked AS (
            SELECT customer_id, recency_days, frequency, monetary_fen,
                   1 + (5 * (rank() OVER (ORDER BY recency_days DESC) - 1)) // count(*) OVER () AS r,
                   1 + (5 * (rank() OVER (ORDER BY frequency) - 1)) // count(*) OVER () AS f,
                   1 + (5 * (rank() OVER (ORDER BY monetary_fen) - 1)) // count(*) OVER () AS m
            FROM agg)
        SELECT *, CASE {segment} END AS segment FROM ranked"""


async def run_duckdb(url: str, now: dt.datetime, window_days: int, high: int, figures: Figures) -> Any:
    """DuckDB from scratch on the same orders (timed as ``duckdb``: read them out of PostgreSQL, aggregate, rank,
    classify into a DuckDB table), then again over the orders already in DuckDB's memory (``duckdb-memory``: the
    compute alone; the copy in is ``duckdb-load``). Returns the scores as a DataFrame (for the check)."""
    con, how = duckdb_connection(url)
    figures.notes["duckdb"] = how
    try:
        started = time.perf_counter()
        if how == "postgres":
            source = "pg.public.orders"
        else:
            import asyncpg

            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                buf = io.BytesIO()
                await conn.copy_from_query("SELECT customer_id, status, total_fen, confirmed_at FROM orders", output=buf, format="csv")
            finally:
                await conn.close()
            buf.seek(0)
            columns = "{'customer_id': 'BIGINT', 'status': 'VARCHAR', 'total_fen': 'BIGINT', 'confirmed_at': 'TIMESTAMPTZ'}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE copied AS SELECT * FROM read_csv(?, header = false, columns = {columns})", [buf])
            source = "copied"
        con.execute("CREATE OR REPLACE TEMP TABLE scored AS " + duckdb_scoring_sql(source, now, window_days, high))
        figures.add("duckdb", time.perf_counter() - started)
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TEMP TABLE loaded AS SELECT customer_id, status, total_fen, confirmed_at FROM {source}")
        figures.add("duckdb-load", time.perf_counter() - started)
        started = time.perf_counter()
        con.execute("CREATE OR REPLACE TEMP TABLE scored_again AS " + duckdb_scoring_sql("loaded", now, window_days, high))
        figures.add("duckdb-memory", time.perf_counter() - started)
        return con.execute("SELECT * FROM scored ORDER BY customer_id").df().set_index("customer_id")
    finally:
        con.close()


def check_duckdb(duck: Any, agg: Any) -> str:
    """DuckDB's scores and segments = pandas', customer by customer (so the ceiling computes the same thing)."""
    keys = ["recency_days", "frequency", "monetary_fen", "r", "f", "m", "segment"]
    theirs = agg[keys].sort_index()
    if duck is None or len(duck) != len(theirs) or not (duck.index == theirs.index).all():
        return f"✘ customers differ: DuckDB {0 if duck is None else len(duck)}, pandas {len(theirs)}"
    mine = duck[keys].astype({k: "int64" for k in keys[:-1]})
    diff = int((mine.astype(str) != theirs.astype(str)).any(axis=1).sum())
    return "✔ identical for every customer" if diff == 0 else f"✘ {diff} customers differ"


async def check_against_pandas(db: Any, agg: Any, today: dt.date) -> str:
    import pandas as pd
    import sqlalchemy as sa

    from tagging.rfm.models import customer_rfm

    c = customer_rfm.c
    async with db.read() as conn:
        # stored recency is as of each row's computed_on (rows are rewritten only when something changed)
        recency = c.recency_days + (sa.literal(today, sa.Date()) - c.computed_on)
        rows = (await conn.execute(sa.select(c.customer_id, recency, c.frequency, c.monetary_fen, c.r, c.f, c.m, c.segment))).all()
    ours = pd.DataFrame(rows, columns=["customer_id", "recency_days", "frequency", "monetary_fen", "r", "f", "m", "segment"])
    ours = ours.set_index("customer_id").sort_index()
    theirs = agg[["recency_days", "frequency", "monetary_fen", "r", "f", "m", "segment"]].sort_index()
    if len(ours) != len(theirs) or not (ours.index == theirs.index).all():
        return f"✘ customers differ: ours {len(ours)}, pandas {len(theirs)}"
    diff = int((ours.astype(str) != theirs.astype(str)).any(axis=1).sum())
    return "✔ identical for every customer" if diff == 0 else f"✘ {diff} customers differ"


async def rescore_by_scan(conn: Any, customer_id: int, now: dt.datetime, config: Any) -> tuple[int, int, int]:
    """Before migration 0008: one customer's quintile scores from ONE scan of every aggregate, summing a CASE per
    axis (kept here to show what the index range counts of ``tagging.rfm.services.rescore_customer`` replaced)."""
    import sqlalchemy as sa

    from tagging.rfm import services as rfm
    from tagging.rfm import sql as rfm_sql
    from tagging.rfm.models import customer_order_stats

    s = customer_order_stats.c
    row = (await conn.execute(sa.select(customer_order_stats).where(s.customer_id == customer_id))).one()
    days = rfm.recency_days(now, row.last_order_at)

    def below(condition: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    counts = (
        await conn.execute(
            sa.select(
                sa.func.count(),
                below(rfm_sql.recency_days_sql("postgresql", now, s.last_order_at) > days),
                below(s.orders < row.orders),
                below(s.monetary_fen < row.monetary_fen),
            ).where(s.orders > 0, s.last_order_at >= rfm.window_start(now, config))
        )
    ).one()
    r, f, m = (rfm.quintile_of(int(worse), int(counts[0])) for worse in counts[1:])
    return r, f, m


async def bench(url: str, args: argparse.Namespace) -> Figures:
    import sqlalchemy as sa

    from scrm.core.clock import local
    from scrm.core.db import Database
    from tagging.activity import services as activity
    from tagging.rfm import services as rfm
    from tagging.rfm.models import customer_order_stats, customer_rfm

    figures = Figures()
    config = rfm.parse_rfm_config({"rfm": {"scoring": "quintiles"}})  # what "auto" picks at this size, stated
    acfg = activity.parse_activity_config({})
    now0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    db = Database(url)
    try:
        print(f"generating {args.customers:,} customers and {args.orders:,} orders …", flush=True)
        await load(db, args, now0, config.window_days, figures)
        print(f"  loaded in {figures.notes['load']}; building the order aggregates …", flush=True)
        stats_rows = await timed(figures, "rebuild", db, lambda conn: rfm.rebuild_order_stats(conn, "postgresql", now0, config))
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE customer_order_stats"))
        figures.notes["customers with orders in the window"] = f"{stats_rows:,}"
        print(f"  {stats_rows:,} customers with counted orders; first (untimed) night …", flush=True)

        async def ours_at(now: dt.datetime, timing: bool = True) -> Any:
            async def work(conn: Any) -> Any:
                started = time.perf_counter()
                aged = await rfm.age_out_order_stats(conn, "postgresql", now, config)
                middle = time.perf_counter()
                run = await rfm.recompute_rfm(conn, "postgresql", now, config)
                if timing:
                    figures.add("age-out", middle - started)
                    figures.add("rfm", time.perf_counter() - middle)
                return aged, run

            return work

        async with db.write() as conn:
            await (await ours_at(now0 + DAY, timing=False))(conn)
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE customer_rfm"))
        pandas_agg = duck_scores = None
        for k in range(args.runs):
            night = now0 + (2 + k) * DAY
            aged, run = await timed(figures, "ours", db, await ours_at(night))

            def bare(from_orders: bool, night: dt.datetime = night) -> Any:
                async def statement(conn: Any) -> None:
                    await conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))  # the same settings as ours
                    await conn.execute(sa.text("SET LOCAL jit = off"))
                    select = rfm.rfm_select("postgresql", night, config, from_orders=from_orders)
                    await conn.execute(rfm.CreateTempTableAs("bare_rfm", select))  # the statement form ours uses

                return statement

            await timed(figures, "bare", db, bare(False))
            await timed(figures, "bare-orders", db, bare(True))
            started = time.perf_counter()
            pandas_agg = await run_pandas(url, night, config.window_days, config.high_score)
            figures.add("pandas", time.perf_counter() - started)
            duck_scores = await run_duckdb(url, night, config.window_days, config.high_score, figures)
            figures.notes["night"] = (
                f"{run.scored:,} customers scored; {aged:,} aggregates aged out; rows written: {run.inserted:,} new, "
                f"{run.updated:,} changed, {run.deleted:,} deleted"
            )
            print(
                f"  night {k + 1}: ours {figures.runs['ours'][-1]:.2f} s (age-out {figures.runs['age-out'][-1]:.2f} s, "
                f"RFM {figures.runs['rfm'][-1]:.2f} s), bare {figures.runs['bare'][-1]:.2f} s, "
                f"bare from orders {figures.runs['bare-orders'][-1]:.2f} s, pandas {figures.runs['pandas'][-1]:.2f} s, "
                f"DuckDB {figures.runs['duckdb'][-1]:.2f} s (in memory {figures.runs['duckdb-memory'][-1]:.2f} s)",
                flush=True,
            )
        last_night = now0 + (1 + args.runs) * DAY
        figures.checks["pandas = ours"] = await check_against_pandas(db, pandas_agg, local(last_night).date())
        figures.checks["DuckDB = pandas"] = check_duckdb(duck_scores, pandas_agg)
        async with db.read() as conn:
            step = max(1, args.customers // 7)  # customers spread over the id range (low ids order most)
            wanted = [1 + k * step for k in range(7)]
            some = [r for (r,) in await conn.execute(sa.select(customer_rfm.c.customer_id).where(customer_rfm.c.customer_id.in_(wanted)))]
            n_stats = (await conn.execute(sa.select(sa.func.count()).select_from(customer_order_stats))).scalar_one()
        night = now0 + (2 + args.runs) * DAY
        started = time.perf_counter()  # as the handler of recompute_all's segments.recomputed outbox row does
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM (ANALYZE) customer_order_stats"))
        figures.notes["vacuum"] = f"{time.perf_counter() - started:.2f} s"
        same = True
        for cid in some:
            view = await timed(figures, "rescore", db, lambda conn, cid=cid: rfm.rescore_customer(conn, "postgresql", cid, night, config))
            scan = await timed(figures, "rescore-scan", db, lambda conn, cid=cid: rescore_by_scan(conn, cid, night, config))
            same = same and view is not None and (view.r, view.f, view.m) == scan
        figures.checks["rescore = scan"] = "✔ same scores" if same else "✘ the two ways of rescoring differ"
        figures.notes["aggregates rows"] = f"{n_stats:,}"
        print("  activity segments over every customer …", flush=True)
        first = await timed(figures, "activity", db, lambda conn: activity.recompute_activity(conn, "postgresql", night, acfg))
        print("  … and a day later (only the changed rows written) …", flush=True)
        later = await timed(figures, "activity-next", db, lambda conn: activity.recompute_activity(conn, "postgresql", night + DAY, acfg))
        figures.notes["activity"] = ", ".join(f"{k} {v:,}" for k, v in later.segments.items())
        figures.notes["activity rows"] = f"first run {first.written:,} rows written; a day later {later.written:,} written"
    finally:
        await db.dispose()
    return figures


def render(fig: Figures, argv: list[str], args: argparse.Namespace, extra: dict[str, str], wall: float) -> str:
    def row(name: str, what: str) -> str:
        runs = sorted(fig.runs.get(name, []))
        if not runs:
            return f"| {what} | – | – | – | – |"
        mid = statistics.median(runs)

        def sec(v: float) -> str:
            return f"{v:.2f}" if v >= 1 else f"{v:.3f}"  # the one-customer rows are milliseconds

        return f"| {what} | {sec(runs[0])} | {sec(mid)} | {sec(runs[-1])} | {ratio(mid, fig.median('bare'))} |"

    duck_how = {"postgres": "its `postgres` extension", "copy": "no `postgres` extension: COPY … CSV into DuckDB"}.get(
        fig.notes.get("duckdb", ""), "?"
    )
    lines = [
        "## RFM",
        "",
        generated_line(argv),
        "",
        *machine_lines(extra),
        "",
        f"Workload: {args.customers:,} customers, {args.orders:,} orders (load {fig.notes.get('load', '?')}); "
        f"{fig.notes.get('customers with orders in the window', '?')} customers with counted orders in the 365-day window. "
        f"{args.runs} nights, the clock one day on each time; same session settings everywhere (work_mem 256 MB, jit off).",
        "",
        "| what | min s | median s | max s | × bare |",
        "|---|---:|---:|---:|---:|",
        row("ours", "**ours, end to end**: the nightly transaction = age-out + RFM step"),
        row("age-out", "… age-out: subtract the orders that left the window from their customers' aggregates"),
        row("rfm", "… **RFM step**: cut points, re-check the customers they or their changes can move, write what changed"),
        row("bare", "**bare**: the ranking SELECT over the aggregates (three `RANK()` windows), into a temp table"),
        row("bare-orders", "**bare from orders**: one SELECT aggregating the orders and scoring, into a temp table"),
        row("pandas", "**pandas**: COPY the orders out, aggregate + rank + classify (not written back)"),
        row(
            "duckdb", f"**DuckDB from scratch** (the ceiling): read the orders out of PostgreSQL ({duck_how}), aggregate + rank + classify"
        ),
        row("duckdb-memory", "… DuckDB over the orders already in its memory: aggregate + rank + classify alone"),
        row("duckdb-load", "… (copying the orders into DuckDB's memory, for that row)"),
        row("rebuild", "backfill: every customer's aggregates from all orders (once)"),
        row("rescore", "one customer re-scored after an order event (index range counts)"),
        row("rescore-scan", "… the same before 0008: one scan of every aggregate summing CASEs"),
        row("activity", "activity segments, every customer, first run (every row new)"),
        row("activity-next", "… a day later: the same statement writes only rows whose segment or times changed"),
        "",
        f"- last night: {fig.notes.get('night', '?')}",
        f"- activity: {fig.notes.get('activity', '?')} ({fig.notes.get('activity rows', '?')})",
        f"- before the one-customer rows: VACUUM (ANALYZE) customer_order_stats, as the nightly's outbox handler does after its commit "
        f"(sets the visibility map the index-only counts need): {fig.notes.get('vacuum', '?')}",
        '- Quintiles are rank based (`RANK()`, equal values share a score) in SQL and in pandas (`rank(method="min")`).',
        f"- Total wall time {wall:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rfm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers (1,000,000)")
    parser.add_argument("--orders", type=int, default=10_000_000, help="orders (10,000,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed nights (5)")
    parser.add_argument("--seed", type=float, default=0.42, help="PostgreSQL setseed value in [-1, 1] (0.42)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.customers <= 5_000_000 or not 1 <= args.orders <= 50_000_000 or not 1 <= args.runs <= 10:
        parser.error("--customers 1..5M, --orders 1..50M, --runs 1..10")
    if not -1 <= args.seed <= 1:
        parser.error("--seed must be within [-1, 1]")
    if not args.hard_timeout:
        args.hard_timeout = 120 + args.orders / 1_000_000 * (12 + 12 * args.runs)  # DuckDB reads the orders each night too
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shown = command_line("bench.rfm", argv)
    extra: dict[str, str] = {}
    began = time.monotonic()
    scratch = ScratchDatabases()

    def run() -> Any:
        from scrm.core.logs import setup_logging

        setup_logging("WARNING", "text")
        extra["machine busy before start"] = background_line(background_busy())
        print(f"creating and migrating PostgreSQL database {DB_NAME} …", flush=True)
        url = scratch.create(DB_NAME)
        extra["postgresql"] = asyncio.run(pg_version())
        return asyncio.run(bench(url, args))

    code, figures = guarded(run, hard_timeout=args.hard_timeout, cleanup=[scratch.drop_all])
    if code is not None:
        return code
    table = render(figures, shown, args, extra, time.monotonic() - began)
    return publish("rfm", table, report_of(figures, args), write=not args.no_write, results=args.results)


def share(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


def report_of(fig: Figures, args: argparse.Namespace) -> Report:
    """The checks (same scores as pandas, the two rescoring ways agree) and the targets, from medians of the nights."""
    names = ("ours", "rfm", "bare", "bare-orders", "pandas", "duckdb", "duckdb-memory")
    ours, step, bare, from_orders, pandas, duck, duck_memory = (fig.median(n) for n in names)
    report = Report("rfm")
    report.add(
        *[check(name, value.startswith("✔"), value.lstrip("✔✘ ")) for name, value in fig.checks.items()],
        at_most("RFM step / bare", share(step, bare), 1.5, "×"),
        at_most("ours end to end (age-out included) / bare", share(ours, bare), 1.5, "×"),
        at_most("ours end to end / bare from orders", share(ours, from_orders), 1.5, "×"),
        at_most("ours end to end / pandas", share(ours, pandas), 1.0, "×", strict=True),
        at_most("ours end to end / DuckDB from scratch", share(ours, duck), 2.0, "×"),
    )
    report.headline = (
        f"{args.customers:,} customers, {args.orders:,} orders: ours end to end {ours:.2f} s; RFM step {step:.2f} s vs bare "
        f"{bare:.2f} s; bare from orders {from_orders:.2f} s; pandas {pandas:.2f} s; DuckDB from scratch {duck:.2f} s "
        f"(in memory {duck_memory:.2f} s) (median)"
    )
    report.figures = {
        "ours_s": ours,
        "rfm_step_s": step,
        "bare_s": bare,
        "bare_from_orders_s": from_orders,
        "pandas_s": pandas,
        "duckdb_s": duck,
        "duckdb_in_memory_s": duck_memory,
    }
    return report


if __name__ == "__main__":
    raise SystemExit(main())
