"""RFM (recency, frequency, monetary): scores 1–5 and the 8 classic segments, per customer, with the date.

Pure part (plain values): :func:`quintile_scores`, :func:`score_by_cuts`, :func:`recency_days`,
:func:`segment_of`, :func:`parse_rfm_config`.

Database part, all set-based SQL on SQLite and PostgreSQL:

* ``customer_order_stats`` holds per-customer aggregates of *counted* orders (confirmed and later) confirmed within
  the window. :func:`refresh_order_stats` re-aggregates given customers from ``orders`` (the order events call it:
  recomputing from the source makes a handler run twice, out of order, or after a cancel harmless — no per-order
  guard is needed); :func:`age_out_order_stats` re-aggregates only customers whose oldest counted order left the
  window; :func:`rebuild_order_stats` re-aggregates everybody (backfill).
* :func:`recompute_rfm` scores everybody in one set-based statement (window functions; SQLite ≥ 3.25 has them
  too) and writes only what changed: a row whose figures differ from the stored one by nothing but the days gone
  by is left alone (``computed_on`` is when a row was last written; readers project recency to today), so a
  nightly run rewrites the customers who ordered or aged out, not all of them. PostgreSQL: ONE SELECT (score,
  full join with the stored rows, keep the differences) into a temporary table (CREATE … AS, so parallel
  workers may help), then the few deletes, updates and inserts; SQLite: INSERT … SELECT … ON CONFLICT DO
  UPDATE … WHERE changed. Measured in bench/rfm.py: rewriting every row every night (a plain upsert) cost
  2.5–6× the bare scoring statement; this costs ≈ 1.2–1.4×.
* :func:`rescore_customer` scores one customer against everybody's current aggregates (after an order event).

Quintiles are rank based: ``score = 1 + ⌊5·(rank − 1) / n⌋`` with ``RANK()`` (equal values share the lowest rank),
so equal customers always get the same score. ``NTILE(5)`` would split a run of equal values across two scores
at an arbitrary row — unstable from run to run and across backends. Recency counts business days (Asia/Shanghai
dates: ordered yesterday = 1).

Orders belong to fulfilment; this module reads four of their columns (a lightweight table clause, not an import,
so tagging stays independent of fulfilment's code) and never writes them.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from scrm.core.clock import local
from scrm.core.db import UTCDateTime, upsert
from scrm.core.runtime import ResourceKey, Runtime
from tagging.models import customer_order_stats, customer_rfm

CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "segments.toml"
DAY_SECONDS = 86_400
LOCAL_OFFSET_SECONDS = 8 * 3600  # Asia/Shanghai is UTC+8 all year (no daylight saving since 1991)

# The 8 classic segments by (R high, F high, M high).
SEGMENTS: dict[tuple[bool, bool, bool], str] = {
    (True, True, True): "重要价值客户",
    (True, False, True): "重要发展客户",
    (False, True, True): "重要保持客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (True, False, False): "一般发展客户",
    (False, True, False): "一般保持客户",
    (False, False, False): "一般挽留客户",
}
SEGMENT_NAMES: tuple[str, ...] = tuple(SEGMENTS.values())

# fulfillment.models.OrderStatus values whose orders count (tests check they match fulfilment's constants).
COUNTED_STATUSES = ("confirmed", "partially_shipped", "shipped", "completed")
orders = sa.table(
    "orders",
    sa.column("id", sa.BigInteger()),
    sa.column("customer_id", sa.BigInteger()),
    sa.column("status", sa.String()),
    sa.column("total_fen", sa.BigInteger()),
    sa.column("confirmed_at", UTCDateTime()),
)


# ---- configuration ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RfmConfig:
    window_days: int = 365
    scoring: str = "quintiles"  # quintiles | cuts
    high_score: int = 3
    recency_cuts: tuple[int, ...] = (7, 30, 90, 180)
    frequency_cuts: tuple[int, ...] = (1, 2, 4, 8)
    monetary_cuts_fen: tuple[int, ...] = (10_000, 50_000, 200_000, 1_000_000)


def _cuts(section: dict[str, Any], key: str, default: tuple[int, ...], scale: int = 1) -> tuple[int, ...]:
    raw = section.get(key)
    if raw is None:
        return default
    ok = isinstance(raw, list) and len(raw) == 4 and all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in raw)
    values = tuple(round(v * scale) for v in raw) if ok else ()
    if not ok or list(values) != sorted(set(values)):
        raise ValueError(f"[rfm] {key} must be four ascending non-negative numbers")
    return values


def parse_rfm_config(data: dict[str, Any]) -> RfmConfig:
    """Validate the ``[rfm]`` table of config/segments.toml; a ValueError names the key that is wrong."""
    section = data.get("rfm", {})
    if not isinstance(section, dict):
        raise ValueError("[rfm] must be a table")
    unknown = set(section) - {"window_days", "scoring", "high_score", "recency_cuts", "frequency_cuts", "monetary_cuts_yuan"}
    if unknown:
        raise ValueError(f"[rfm] unknown keys: {', '.join(sorted(unknown))}")
    window = section.get("window_days", 365)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 3650:
        raise ValueError("[rfm] window_days must be a whole number of days from 1 to 3650")
    scoring = section.get("scoring", "quintiles")
    if scoring not in ("quintiles", "cuts"):
        raise ValueError('[rfm] scoring must be "quintiles" or "cuts"')
    high = section.get("high_score", 3)
    if not isinstance(high, int) or isinstance(high, bool) or not 2 <= high <= 5:
        raise ValueError("[rfm] high_score must be 2, 3, 4 or 5")
    return RfmConfig(
        window_days=window,
        scoring=scoring,
        high_score=high,
        recency_cuts=_cuts(section, "recency_cuts", RfmConfig.recency_cuts),
        frequency_cuts=_cuts(section, "frequency_cuts", RfmConfig.frequency_cuts),
        monetary_cuts_fen=_cuts(section, "monetary_cuts_yuan", RfmConfig.monetary_cuts_fen, scale=100),
    )


def load_segments_toml(path: Path = CONFIG_FILE) -> dict[str, Any]:
    """config/segments.toml as a dict ({} when the file is absent)."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None


RFM_CONFIG: ResourceKey[RfmConfig] = ResourceKey("rfm_config")


def rfm_config(rt: Runtime) -> RfmConfig:
    """This process's RFM settings: read once, then kept on the runtime (tests may put their own)."""
    if not rt.has(RFM_CONFIG):
        rt.put(RFM_CONFIG, parse_rfm_config(load_segments_toml()))
    return rt.get(RFM_CONFIG)


# ---- pure scoring -----------------------------------------------------------------------------------------
def _day_of(when: dt.datetime) -> int:
    return (math.floor(when.timestamp()) + LOCAL_OFFSET_SECONDS) // DAY_SECONDS


def recency_days(now: dt.datetime, last_order_at: dt.datetime) -> int:
    """Business days (Asia/Shanghai dates) from the last order to ``now``: ordered yesterday → 1; never negative."""
    return max(0, _day_of(now) - _day_of(last_order_at))


def quintile_scores(values: Sequence[float], *, higher_is_better: bool = True) -> list[int]:
    """Score each value 1–5 by its rank among ``values``: ``1 + ⌊5·(rank − 1) / n⌋`` where rank counts the values
    that are worse (equal values share a rank, hence a score). For recency pass ``higher_is_better=False``."""
    n = len(values)
    ordered = sorted(values) if higher_is_better else sorted(-v for v in values)
    scores = []
    for v in values:
        key = v if higher_is_better else -v
        rank = bisect.bisect_left(ordered, key) + 1
        scores.append(1 + (5 * (rank - 1)) // n)
    return scores


def score_by_cuts(value: float, cuts: Sequence[float], *, higher_is_better: bool = True) -> int:
    """Score by four ascending cut points. Higher is better (F, M): ≤ cuts[0] → 1 … > cuts[3] → 5.
    Lower is better (recency days): ≤ cuts[0] → 5 … > cuts[3] → 1."""
    below = sum(1 for c in cuts if value > c)  # how many cut points the value is above
    return 1 + below if higher_is_better else 5 - below


def segment_of(r: int, f: int, m: int, high_score: int = 3) -> str:
    """The classic segment of three scores: each is high (↑) at ``high_score`` or above."""
    return SEGMENTS[(r >= high_score, f >= high_score, m >= high_score)]


# ---- SQL building blocks ----------------------------------------------------------------------------------
def _day_number(dialect: str, column: Any) -> Any:
    """SQL: the business day (Asia/Shanghai, UTC+8 all year) of a timestamp, as days since 1970-01-01."""
    if dialect == "postgresql":
        seconds = sa.cast(sa.func.floor(sa.extract("epoch", column)), sa.BigInteger())
    else:
        seconds = sa.cast(sa.func.strftime("%s", column), sa.BigInteger())
    return (seconds + LOCAL_OFFSET_SECONDS) // DAY_SECONDS


def recency_days_sql(dialect: str, now: dt.datetime, last_order_at: Any) -> Any:
    """SQL for :func:`recency_days` (business days, clamped at 0)."""
    days = sa.literal(_day_of(now), sa.BigInteger()) - _day_number(dialect, last_order_at)
    return sa.case((days < 0, 0), else_=days)


def _insert(table: sa.Table, dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def upsert_from_select(table: sa.Table, dialect: str, names: list[str], select: Any, key: str = "customer_id") -> Any:
    """INSERT INTO table (names) SELECT … ON CONFLICT (key) DO UPDATE every other column, on both backends."""
    stmt = _insert(table, dialect).from_select(names, select)
    return stmt.on_conflict_do_update(index_elements=[key], set_={n: stmt.excluded[n] for n in names if n != key})


class CreateTempTableAs(Executable, ClauseElement):
    """PostgreSQL ``CREATE TEMPORARY TABLE name ON COMMIT DROP AS <select>`` (bound parameters kept). Unlike
    INSERT … SELECT, PostgreSQL may run this SELECT with parallel workers."""

    inherit_cache = False

    def __init__(self, name: str, select: Any) -> None:
        self.name, self.select = name, select


@compiles(CreateTempTableAs)
def _create_temp_table_as(element: CreateTempTableAs, compiler: Any, **kw: Any) -> str:
    return f"CREATE TEMPORARY TABLE {element.name} ON COMMIT DROP AS {compiler.process(element.select, **kw)}"


def window_start(now: dt.datetime, config: RfmConfig) -> dt.datetime:
    return now - dt.timedelta(days=config.window_days)


# ---- order aggregates -------------------------------------------------------------------------------------
def _aggregate(now: dt.datetime, cutoff: dt.datetime, who: Any) -> Any:
    """SELECT of per-customer aggregates of counted orders confirmed since ``cutoff``, for customers ``who``."""
    o = orders.c
    return (
        sa.select(
            o.customer_id,
            sa.func.count().label("orders"),
            sa.func.coalesce(sa.func.sum(o.total_fen), 0).label("monetary_fen"),
            sa.func.min(o.confirmed_at).label("first_order_at"),
            sa.func.max(o.confirmed_at).label("last_order_at"),
            sa.literal(now, UTCDateTime()).label("updated_at"),
        )
        .where(o.status.in_(COUNTED_STATUSES), o.confirmed_at >= cutoff, who)
        .group_by(o.customer_id)
    )


STATS_COLUMNS = ["customer_id", "orders", "monetary_fen", "first_order_at", "last_order_at", "updated_at"]


async def refresh_order_stats(
    conn: AsyncConnection, dialect: str, customer_ids: Sequence[int], now: dt.datetime, config: RfmConfig
) -> None:
    """Make these customers' aggregates equal to their counted orders in the window (row deleted when none).
    Idempotent and order-independent: it re-reads the orders, so replays and reordered events converge."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    cutoff = window_start(now, config)
    s, o = customer_order_stats.c, orders.c
    await conn.execute(upsert_from_select(customer_order_stats, dialect, STATS_COLUMNS, _aggregate(now, cutoff, o.customer_id.in_(ids))))
    counted = sa.select(sa.literal(1)).where(o.customer_id == s.customer_id, o.status.in_(COUNTED_STATUSES), o.confirmed_at >= cutoff)
    await conn.execute(sa.delete(customer_order_stats).where(s.customer_id.in_(ids), ~sa.exists(counted)))


async def age_out_order_stats(conn: AsyncConnection, dialect: str, now: dt.datetime, config: RfmConfig) -> int:
    """Nightly: customers whose oldest counted order left the window are re-aggregated (only those, through the
    orders' customer index); customers with no order left in it lose their row. Returns how many were touched."""
    cutoff = window_start(now, config)
    s, o = customer_order_stats.c, orders.c
    if dialect == "postgresql":
        await conn.execute(sa.text("SET LOCAL jit = off"))  # compiling costs more than it saves on this scan
    aged = sa.select(s.customer_id).where(s.first_order_at < cutoff)
    fresh = _aggregate(now, cutoff, o.customer_id.in_(aged))  # a hash join, or index probes when few aged
    if dialect == "postgresql":  # aggregate with parallel workers into a temp table, then upsert the few rows
        await conn.execute(sa.text("DROP TABLE IF EXISTS rfm_aged"))
        await conn.execute(CreateTempTableAs("rfm_aged", fresh))
        fresh = sa.select(*(sa.column(n) for n in STATS_COLUMNS)).select_from(sa.table("rfm_aged")).where(sa.true())
    updated = await conn.execute(upsert_from_select(customer_order_stats, dialect, STATS_COLUMNS, fresh))
    emptied = await conn.execute(sa.delete(customer_order_stats).where(s.last_order_at < cutoff))
    return int(updated.rowcount) + int(emptied.rowcount)


async def rebuild_order_stats(conn: AsyncConnection, dialect: str, now: dt.datetime, config: RfmConfig) -> int:
    """Backfill / repair: every customer's aggregates re-read from all orders in the window. Returns the rows."""
    await conn.execute(sa.delete(customer_order_stats))
    await conn.execute(customer_order_stats.insert().from_select(STATS_COLUMNS, _aggregate(now, window_start(now, config), sa.true())))
    return int((await conn.execute(sa.select(sa.func.count()).select_from(customer_order_stats))).scalar_one())


# ---- scoring in SQL ---------------------------------------------------------------------------------------
RFM_COLUMNS = ["customer_id", "recency_days", "frequency", "monetary_fen", "r", "f", "m", "segment", "computed_on"]


def _segment_sql(r: Any, f: Any, m: Any, high: int) -> Any:
    return sa.case(*[(sa.and_(r >= high if rh else r < high, f >= high if fh else f < high, m >= high if mh else m < high), name)
                     for (rh, fh, mh), name in SEGMENTS.items()])  # fmt: skip


def _cuts_sql(value: Any, cuts: Sequence[int], *, higher_is_better: bool) -> Any:
    whens = [(value <= c, (k + 1) if higher_is_better else 5 - k) for k, c in enumerate(cuts)]
    return sa.case(*whens, else_=5 if higher_is_better else 1)


def rfm_select(dialect: str, now: dt.datetime, config: RfmConfig, *, from_orders: bool = False) -> Any:
    """The SELECT that scores everybody in the window: customer_id, recency_days, frequency, monetary_fen, r, f, m,
    segment, computed_on. Set-based: three window functions over the aggregates (quintiles) or CASEs (cuts).
    ``from_orders``: aggregate the orders on the fly instead of reading ``customer_order_stats`` (the benchmark's
    one-statement baseline; the same figures, much more work)."""
    s = _aggregate(now, window_start(now, config), sa.true()).subquery("agg").c if from_orders else customer_order_stats.c
    in_window = sa.and_(s.orders > 0, s.last_order_at >= window_start(now, config))
    # n: a separate count over the aggregates is a cheap scan; COUNT(*) OVER () would buffer every row first.
    n = sa.func.count().over() if from_orders else sa.select(sa.func.count()).select_from(customer_order_stats).where(in_window)
    base = (
        sa.select(
            s.customer_id,
            recency_days_sql(dialect, now, s.last_order_at).label("recency_days"),
            s.orders.label("frequency"),
            s.monetary_fen,
            *([(n if from_orders else n.scalar_subquery()).label("n")] if config.scoring == "quintiles" else []),
        )
        .where(in_window)
        .subquery("base")
    )
    b = base.c
    if config.scoring == "quintiles":

        def quintile(order_by: Any) -> Any:
            return 1 + (5 * (sa.func.rank().over(order_by=order_by) - 1)) // b.n

        scores = [quintile(b.recency_days.desc()), quintile(b.frequency.asc()), quintile(b.monetary_fen.asc())]
    else:
        scores = [
            _cuts_sql(b.recency_days, config.recency_cuts, higher_is_better=False),
            _cuts_sql(b.frequency, config.frequency_cuts, higher_is_better=True),
            _cuts_sql(b.monetary_fen, config.monetary_cuts_fen, higher_is_better=True),
        ]
    ranked = sa.select(
        b.customer_id, b.recency_days, b.frequency, b.monetary_fen, scores[0].label("r"), scores[1].label("f"), scores[2].label("m")
    ).subquery("ranked")
    k = ranked.c
    return sa.select(
        k.customer_id,
        k.recency_days,
        k.frequency,
        k.monetary_fen,
        k.r,
        k.f,
        k.m,
        _segment_sql(k.r, k.f, k.m, config.high_score).label("segment"),
        sa.literal(local(now).date(), sa.Date()).label("computed_on"),
    ).where(sa.true())  # SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT


@dataclass(frozen=True)
class RfmRun:
    scored: int  # customers with counted orders in the window
    inserted: int  # rows written: new customers …
    updated: int  # … and customers whose figures changed
    deleted: int  # customers gone from the window


def _changed(dialect: str, old: Any, new: Any) -> Any:
    """The stored row (``old``, as of its computed_on) differs from today's (``new``) in more than the passing of
    days: recency moved on by exactly the days since, nothing else changed → the row is still right."""
    if dialect == "postgresql":
        elapsed = new.computed_on - old.computed_on
    else:
        elapsed = sa.cast(sa.func.julianday(new.computed_on) - sa.func.julianday(old.computed_on), sa.Integer())
    return sa.or_(
        old.recency_days + elapsed != new.recency_days, *(old[n] != new[n] for n in ("frequency", "monetary_fen", "r", "f", "m", "segment"))
    )


DIFF_TABLE = "rfm_diff"  # PostgreSQL: this transaction's rows to write (temporary, dropped at commit)


def _pg_diff(now: dt.datetime, config: RfmConfig) -> Any:
    """PostgreSQL: CREATE TEMP TABLE rfm_diff AS the scored rows that must be written, plus the stored ids to
    delete — the one heavy statement: scoring SELECT full-joined with ``customer_rfm``, kept where changed."""
    t = customer_rfm.c
    new = rfm_select("postgresql", now, config).subquery("scored")
    changed = (
        sa.select(*(new.c[n] for n in RFM_COLUMNS), t.customer_id.label("old_id"))
        .select_from(new.join(customer_rfm, t.customer_id == new.c.customer_id, full=True))
        .where(sa.or_(t.customer_id.is_(None), new.c.customer_id.is_(None), _changed("postgresql", t, new.c)))
    )
    return CreateTempTableAs(DIFF_TABLE, changed)


async def _pg_apply(conn: AsyncConnection, now: dt.datetime, config: RfmConfig) -> RfmRun:
    # The scoring sorts and the diff's hash stay in memory; JIT compiling (≈ 0.5 s) does not pay off here.
    await conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
    await conn.execute(sa.text("SET LOCAL jit = off"))
    await conn.execute(sa.text(f"DROP TABLE IF EXISTS {DIFF_TABLE}"))
    await conn.execute(_pg_diff(now, config))
    await conn.execute(sa.text(f"ANALYZE {DIFF_TABLE}"))  # true row counts: few rows → index look-ups below, not hash joins
    d = sa.table(DIFF_TABLE, *(sa.column(n) for n in [*RFM_COLUMNS, "old_id"])).c
    t = customer_rfm.c
    gone = await conn.execute(sa.delete(customer_rfm).where(t.customer_id == d.old_id, d.customer_id.is_(None)))
    updated = await conn.execute(
        sa.update(customer_rfm).where(t.customer_id == d.customer_id, d.old_id.is_not(None)).values({n: d[n] for n in RFM_COLUMNS[1:]})
    )
    rows = sa.select(*(d[n] for n in RFM_COLUMNS)).where(d.old_id.is_(None), d.customer_id.is_not(None))
    inserted = await conn.execute(customer_rfm.insert().from_select(RFM_COLUMNS, rows))
    await conn.execute(sa.text(f"DROP TABLE {DIFF_TABLE}"))
    total = int((await conn.execute(sa.select(sa.func.count()).select_from(customer_rfm))).scalar_one())
    return RfmRun(total, int(inserted.rowcount), int(updated.rowcount), int(gone.rowcount))


async def recompute_rfm(conn: AsyncConnection, dialect: str, now: dt.datetime, config: RfmConfig) -> RfmRun:
    """Score everybody with counted orders in the window and store it — rows are written only for customers who
    are new, whose figures changed beyond recency simply growing by the days since their row's ``computed_on``,
    or who left the window (deleted) — a night without orders rewrites next to nothing. PostgreSQL: ONE
    INSERT … SELECT (score, full join with the stored rows, keep what changed) into a temporary table, then the
    few deletes / updates / inserts from it. SQLite: INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE changed, then
    a DELETE. Run it inside one write transaction."""
    scored = rfm_select(dialect, now, config)
    t = customer_rfm.c
    if dialect == "postgresql":
        return await _pg_apply(conn, now, config)

    def total() -> Any:
        return sa.select(sa.func.count()).select_from(customer_rfm)

    before = int((await conn.execute(total())).scalar_one())
    stmt = _insert(customer_rfm, dialect).from_select(RFM_COLUMNS, scored)
    written = await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["customer_id"], set_={n: stmt.excluded[n] for n in RFM_COLUMNS[1:]}, where=_changed(dialect, t, stmt.excluded)
        )
    )
    s = customer_order_stats.c
    current = sa.select(sa.literal(1)).where(s.customer_id == t.customer_id, s.orders > 0, s.last_order_at >= window_start(now, config))
    inserted = int((await conn.execute(total())).scalar_one()) - before
    gone = await conn.execute(sa.delete(customer_rfm).where(~sa.exists(current)))
    scored_n = int((await conn.execute(total())).scalar_one())
    return RfmRun(scored_n, inserted, int(written.rowcount) - inserted, int(gone.rowcount))


async def rescore_customer(conn: AsyncConnection, dialect: str, customer_id: int, now: dt.datetime, config: RfmConfig) -> RfmView | None:
    """Score one customer (after an order event) against everybody's current aggregates — what a full recompute
    would give this customer now; other customers' scores move only at the next full recompute. With quintiles
    this is one scan of ``customer_order_stats`` (counting who ranks below); with cut points, no scan at all.
    A customer without counted orders in the window loses their row (returns None)."""
    s = customer_order_stats.c
    cutoff = window_start(now, config)
    row = (await conn.execute(sa.select(customer_order_stats).where(s.customer_id == customer_id))).first()
    if row is None or row.orders <= 0 or row.last_order_at < cutoff:
        await conn.execute(sa.delete(customer_rfm).where(customer_rfm.c.customer_id == customer_id))
        return None
    days, frequency, monetary = recency_days(now, row.last_order_at), int(row.orders), int(row.monetary_fen)
    if config.scoring == "quintiles":

        def below(condition: Any) -> Any:
            return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

        counts = (
            await conn.execute(
                sa.select(
                    sa.func.count(),
                    below(recency_days_sql(dialect, now, s.last_order_at) > days),
                    below(s.orders < frequency),
                    below(s.monetary_fen < monetary),
                ).where(s.orders > 0, s.last_order_at >= cutoff)
            )
        ).one()
        n = int(counts[0])
        r, f, m = (1 + (5 * int(worse)) // n for worse in counts[1:])
    else:
        r = score_by_cuts(days, config.recency_cuts, higher_is_better=False)
        f = score_by_cuts(frequency, config.frequency_cuts)
        m = score_by_cuts(monetary, config.monetary_cuts_fen)
    view = RfmView(customer_id, days, frequency, monetary, r, f, m, segment_of(r, f, m, config.high_score), local(now).date())
    await conn.execute(upsert(customer_rfm, dialect, ["customer_id"], {n: getattr(view, n) for n in RFM_COLUMNS}, RFM_COLUMNS[1:]))
    return view


# ---- reading ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RfmView:
    customer_id: int
    recency_days: int
    frequency: int
    monetary_fen: int
    r: int
    f: int
    m: int
    segment: str
    computed_on: dt.date

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "computed_on": self.computed_on.isoformat()}


async def rfm_of(conn: AsyncConnection, customer_id: int, today: dt.date | None = None) -> RfmView | None:
    """The customer's RFM row (None: no counted order in the window at the last scoring). ``recency_days`` is as of
    ``today`` when given (the stored value plus the days since ``computed_on``), else as stored."""
    row = (await conn.execute(sa.select(customer_rfm).where(customer_rfm.c.customer_id == customer_id))).first()
    if row is None:
        return None
    view = RfmView(*(row._mapping[c] for c in RFM_COLUMNS))
    if today is not None and today > view.computed_on:
        view = dataclasses.replace(view, recency_days=view.recency_days + (today - view.computed_on).days)
    return view


async def segment_counts(conn: AsyncConnection) -> dict[str, int]:
    """Customers per segment, every one of the 8 present (0 when empty), in the classic order."""
    c = customer_rfm.c
    found = {r.segment: int(r.n) for r in await conn.execute(sa.select(c.segment, sa.func.count().label("n")).group_by(c.segment))}
    return {name: found.get(name, 0) for name in SEGMENT_NAMES}


async def rf_grid(conn: AsyncConnection) -> dict[tuple[int, int], int]:
    """Customers per (R, F) score pair — the 5×5 heatmap; missing pairs are 0."""
    c = customer_rfm.c
    rows = await conn.execute(sa.select(c.r, c.f, sa.func.count().label("n")).group_by(c.r, c.f))
    grid = {(r, f): 0 for r in range(1, 6) for f in range(1, 6)}
    for row in rows:
        grid[(int(row.r), int(row.f))] = int(row.n)
    return grid
