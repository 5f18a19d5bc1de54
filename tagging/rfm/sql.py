"""RFM rules of :mod:`tagging.rfm.domain` as SQL expressions (SQLite ≥ 3.25 and PostgreSQL): business days,
per-customer order aggregates, the quintile cut points, the scoring SELECT and the counts that rank one customer.

Orders belong to fulfilment; these statements read four of their columns (a lightweight table clause, not an
import, so tagging stays independent of fulfilment's code) and never write them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from scrm.core.clock import local
from scrm.core.db import UTCDateTime
from tagging.rfm.domain import DAY_SECONDS, LOCAL_OFFSET_SECONDS, SEGMENTS, RfmConfig, day_of, day_start, window_start
from tagging.rfm.models import customer_order_stats

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

STATS_COLUMNS = ["customer_id", "orders", "monetary_fen", "first_order_at", "last_order_at", "updated_at"]
RFM_COLUMNS = ["customer_id", "recency_days", "frequency", "monetary_fen", "r", "f", "m", "segment", "computed_on"]


# ---- statement helpers ------------------------------------------------------------------------------------
def insert_for(table: sa.Table, dialect: str) -> Any:
    """The dialect's INSERT (with ON CONFLICT support)."""
    if dialect == "postgresql":
        return pg_insert(table)

    return sqlite_insert(table)


def upsert_from_select(table: sa.Table, dialect: str, names: list[str], select: Any, key: str = "customer_id") -> Any:
    """INSERT INTO table (names) SELECT … ON CONFLICT (key) DO UPDATE every other column, on both backends."""
    stmt = insert_for(table, dialect).from_select(names, select)
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


# ---- days -------------------------------------------------------------------------------------------------
def _day_number(dialect: str, column: Any) -> Any:
    """SQL: the business day (Asia/Shanghai, UTC+8 all year) of a timestamp, as days since 1970-01-01."""
    if dialect == "postgresql":  # date_part is float8; EXTRACT returns numeric, measured ≈ 3× slower over 1 M rows
        seconds = sa.cast(sa.func.floor(sa.func.date_part("epoch", column)), sa.BigInteger())
    else:
        seconds = sa.cast(sa.func.strftime("%s", column), sa.BigInteger())
    return (seconds + LOCAL_OFFSET_SECONDS) // DAY_SECONDS


def recency_days_sql(dialect: str, now: dt.datetime, last_order_at: Any) -> Any:
    """SQL for :func:`tagging.rfm.domain.recency_days` (business days, clamped at 0)."""
    days = sa.literal(day_of(now), sa.BigInteger()) - _day_number(dialect, last_order_at)
    return sa.case((days < 0, 0), else_=days)


# ---- order aggregates -------------------------------------------------------------------------------------
def aggregate_select(now: dt.datetime, cutoff: dt.datetime, who: Any) -> Any:
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


# ---- quintile cut points ----------------------------------------------------------------------------------
QUINTILE_AXES = ("last_order_at", "orders", "monetary_fen")  # ascending = better on each axis


def scored_where(now: dt.datetime, config: RfmConfig) -> tuple[Any, ...]:
    """The aggregates the scoring counts: counted orders, the last one within the window."""
    s = customer_order_stats.c
    return (s.orders > 0, s.last_order_at >= window_start(now, config))


def quintile_cuts_selects(dialect: str, now: dt.datetime, config: RfmConfig) -> list[Any]:
    """The statements giving n and, per axis of :data:`QUINTILE_AXES`, the values at the quintile positions
    ``⌈k·n/5⌉`` (:func:`tagging.rfm.domain.quintile_positions`) among the scored aggregates — each statement sees
    one snapshot, so its positions and values agree.

    PostgreSQL: ONE scan, ``count(*)`` and three ``percentile_disc`` (a sort of one column each; no rows carried
    through window functions). ``percentile_disc(p)`` takes the row at ``⌈p·n⌉``; ``p = k/5 − 10⁻⁹`` makes that
    exactly ``⌈k·n/5⌉`` for any n below 10⁸ (``k/5`` itself may land one row late: 0.6·5 = 3.0000000000000004 in
    floating point). Rows: (n, [4 instants], [4 orders], [4 fen]).
    SQLite (small shops): one statement per axis, ``row_number()`` over the ordered values with ``count(*)``
    over all of them; rows: (position, value, n) for the positions wanted."""
    s = customer_order_stats.c
    where = scored_where(now, config)
    if dialect == "postgresql":
        fractions = sa.literal([k / 5 - 1e-9 for k in range(1, 5)], postgresql.ARRAY(sa.Float()))
        return [
            sa.select(
                sa.func.count(),
                *(
                    sa.type_coerce(sa.func.percentile_disc(fractions).within_group(s[axis]), postgresql.ARRAY(s[axis].type))
                    for axis in QUINTILE_AXES
                ),
            ).where(*where)
        ]
    out = []
    for axis in QUINTILE_AXES:
        ranked = (
            sa.select(s[axis].label("v"), sa.func.row_number().over(order_by=s[axis]).label("rn"), sa.func.count().over().label("n"))
            .where(*where)
            .subquery("ranked")
        )
        r = ranked.c
        out.append(sa.select(r.rn, r.v, r.n).where(r.rn.in_([(k * r.n + 4) // 5 for k in range(1, 5)])).order_by(r.rn))
    return out


def candidates_where(
    now: dt.datetime, config: RfmConfig, since: dt.datetime, scored_day: int, bands: dict[str, list[tuple[int, int]]]
) -> Any:
    """The aggregates whose stored RFM row may be wrong once the cut points moved: changed since ``since``; a
    figure in a band (lo, hi] between an old and a new cut point (``bands`` per axis; recency's on the business
    day of the last order); a last order after ``scored_day`` (its recency was clamped at 0 then); or no longer
    scored (no counted order, last one out of the window: their rows go). Each term is an index range."""
    s = customer_order_stats.c
    cutoff = window_start(now, config)
    terms = [s.updated_at >= since, s.orders <= 0, s.last_order_at < cutoff, s.last_order_at.is_(None)]
    terms += [sa.and_(s.last_order_at >= day_start(lo + 1), s.last_order_at < day_start(hi + 1)) for lo, hi in bands["last_order_day"]]
    terms += [s.last_order_at >= day_start(scored_day + 1)]
    terms += [sa.and_(s.orders > lo, s.orders <= hi) for lo, hi in bands["frequency"]]
    terms += [sa.and_(s.monetary_fen > lo, s.monetary_fen <= hi) for lo, hi in bands["monetary_fen"]]
    return sa.or_(*terms)


# ---- scoring everybody ------------------------------------------------------------------------------------
def _segment_sql(r: Any, f: Any, m: Any, high: int) -> Any:
    return sa.case(*[(sa.and_(r >= high if rh else r < high, f >= high if fh else f < high, m >= high if mh else m < high), name)
                     for (rh, fh, mh), name in SEGMENTS.items()])  # fmt: skip


def _cuts_sql(value: Any, cuts: Sequence[int], *, higher_is_better: bool) -> Any:
    whens = [(value <= c, (k + 1) if higher_is_better else 5 - k) for k, c in enumerate(cuts)]
    return sa.case(*whens, else_=5 if higher_is_better else 1)


def rfm_select(dialect: str, now: dt.datetime, config: RfmConfig, *, from_orders: bool = False, who: Any = None) -> Any:
    """The SELECT that scores everybody in the window: customer_id, recency_days, frequency, monetary_fen, r, f, m,
    segment, computed_on. Set-based: CASEs over each row (cuts — what :func:`tagging.rfm.services.recompute_rfm`
    runs, quintiles included, through their cut points) or three window functions (quintiles: the reference ranking
    statement, the benchmark's "bare" baseline; the tests check both give the same scores). ``from_orders``:
    aggregate the orders on the fly instead of reading ``customer_order_stats`` (the benchmark's one-statement
    baseline; the same figures, much more work). ``who``: only the customers of this one-column SELECT (cuts)."""
    if config.scoring not in ("quintiles", "cuts"):
        raise ValueError(f"rfm_select needs a resolved method, not {config.scoring!r} (see tagging.rfm.domain.resolved)")
    cutoff = window_start(now, config)
    quintiles = config.scoring == "quintiles"
    if from_orders:
        agg = aggregate_select(now, cutoff, sa.true()).subquery("agg")
        s, source, n = agg.c, agg, sa.func.count().over()
    else:
        # n: a separate count over the aggregates is a cheap scan (COUNT(*) OVER () would buffer every row first),
        # joined in as a one-row subquery — as a scalar subquery PostgreSQL ran it once per window using it.
        s = customer_order_stats.c
        total = sa.select(sa.func.count().label("n")).select_from(customer_order_stats).where(s.orders > 0, s.last_order_at >= cutoff)
        counted = total.subquery("total")
        source, n = (customer_order_stats.join(counted, sa.true()) if quintiles else customer_order_stats), counted.c.n
    base = (
        sa.select(
            s.customer_id,
            recency_days_sql(dialect, now, s.last_order_at).label("recency_days"),
            s.orders.label("frequency"),
            s.monetary_fen,
            *([n.label("n")] if quintiles else []),
        )
        .select_from(source)
        .where(s.orders > 0, s.last_order_at >= cutoff, *([] if who is None else [s.customer_id.in_(who)]))
        .offset(0)  # a fence: computed once per row (PostgreSQL would inline it into every CASE that uses it)
        .subquery("base")
    )
    b = base.c
    if config.scoring == "quintiles":

        def quintile(order_by: Any) -> Any:
            return 1 + (5 * (sa.func.rank().over(order_by=order_by) - 1)) // b.n

        # "+ 0": sort keys that are expressions, so the planner sorts the rows rather than walking the orders /
        # monetary_fen index (0008) through the heap row by row — measured 7.5 s for that walk alone vs a sort < 1 s.
        scores = [quintile(b.recency_days.desc()), quintile((b.frequency + 0).asc()), quintile((b.monetary_fen + 0).asc())]
    else:
        scores = [
            _cuts_sql(b.recency_days, config.recency_cuts, higher_is_better=False),
            _cuts_sql(b.frequency, config.frequency_cuts, higher_is_better=True),
            _cuts_sql(b.monetary_fen, config.monetary_cuts_fen, higher_is_better=True),
        ]
    ranked = (
        sa.select(
            b.customer_id, b.recency_days, b.frequency, b.monetary_fen, scores[0].label("r"), scores[1].label("f"), scores[2].label("m")
        )
        .offset(0)
        .subquery("ranked")
    )  # the same fence: the segment's CASE reads r, f, m instead of repeating theirs
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


def changed_condition(dialect: str, old: Any, new: Any) -> Any:
    """The stored row (``old``, as of its computed_on) differs from today's (``new``) in more than the passing of
    days: recency moved on by exactly the days since, nothing else changed → the row is still right."""
    if dialect == "postgresql":
        elapsed = new.computed_on - old.computed_on
    else:
        elapsed = sa.cast(sa.func.julianday(new.computed_on) - sa.func.julianday(old.computed_on), sa.Integer())
    return sa.or_(
        old.recency_days + elapsed != new.recency_days, *(old[n] != new[n] for n in ("frequency", "monetary_fen", "r", "f", "m", "segment"))
    )


# ---- ranking one customer ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankSides:
    """Which side of the customer each count covers: ``True`` counts the customers at least as good (then worse =
    n − that), ``False`` the worse ones. Either gives the same score; the smaller side is the shorter index range."""

    r: bool = True  # after an order the customer ordered today: the better side is "ordered today"
    f: bool = False  # and has few orders yet: the worse side is short
    m: bool = False

    @classmethod
    def from_scores(cls, r: int, f: int, m: int) -> RankSides:
        """The short sides for a customer who scored (r, f, m) last time (scores move little between events)."""
        return cls(r >= 3, f >= 3, m >= 3)


def rank_counts_select(now: dt.datetime, config: RfmConfig, days: int, frequency: int, monetary_fen: int, sides: RankSides) -> Any:
    """One SELECT of (n, R count, F count, M count): how many customers the scoring counts and, per axis, how many
    of them are worse than a customer with these figures (or at least as good, per ``sides``) — from which
    :func:`rfm_select`'s ``RANK()`` score follows (:func:`worse_counts`).

    Each count is a range over one single-column index of ``customer_order_stats`` (index-only scans, no CASE
    over every row): recency "worse" is a last order before the first instant of the business day ``days``
    before today; F and M are ``orders < f`` and ``monetary_fen < m``; n counts everybody (the smallest index).
    Rows the scoring ignores (no counted orders, last order outside the window — aged out only at night) are
    found through the ``last_order_at`` / ``orders`` indexes (normally a handful) and subtracted."""
    s = customer_order_stats.c
    cutoff = window_start(now, config)
    recent_cut = day_start(day_of(now) - days)  # a last order before this is more days ago (worse)
    ignored = sa.or_(s.orders <= 0, s.last_order_at < cutoff, s.last_order_at.is_(None))
    outside = sa.select(customer_order_stats).where(ignored).subquery("outside")

    def predicates(t: Any) -> list[Any]:
        return [
            t.last_order_at >= recent_cut if sides.r else sa.and_(t.last_order_at >= cutoff, t.last_order_at < recent_cut),
            t.orders >= frequency if sides.f else t.orders < frequency,
            t.monetary_fen >= monetary_fen if sides.m else t.monetary_fen < monetary_fen,
        ]

    def counted(*where: Any) -> Any:
        return sa.select(sa.func.count()).select_from(customer_order_stats).where(*where).scalar_subquery()

    def among_outside(condition: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    return sa.select(
        counted() - sa.func.count(),  # the second count() is of the outside rows (this SELECT's FROM)
        *(counted(p) - among_outside(q) for p, q in zip(predicates(s), predicates(outside.c), strict=True)),
    ).select_from(outside)


def worse_counts(row: Sequence[int], sides: RankSides) -> tuple[int, int, int, int]:
    """(n, worse on R, F, M) from :func:`rank_counts_select`'s row."""
    n = int(row[0])
    r, f, m = (n - int(c) if better else int(c) for c, better in zip(row[1:], (sides.r, sides.f, sides.m), strict=True))
    return n, r, f, m
