"""RFM (recency, frequency, monetary) use cases: scores 1–5 and the 8 classic segments per customer, kept current.

The rules on plain values are in :mod:`tagging.rfm.domain`, their SQL in :mod:`tagging.rfm.sql`; both are
re-exported here (``tagging.rfm.services`` is the import path the rest of the code uses). Everything is set-based SQL on
SQLite and PostgreSQL:

* ``customer_order_stats`` holds per-customer aggregates of *counted* orders (confirmed and later) confirmed within
  the window. :func:`refresh_order_stats` re-aggregates given customers from ``orders`` (the order events call it:
  recomputing from the source makes a handler run twice, out of order, or after a cancel harmless — no per-order
  guard is needed); :func:`age_out_order_stats` subtracts the orders that left the window from the customers who
  had them (only those orders are read); :func:`rebuild_order_stats` re-aggregates everybody (backfill). Every
  writer keeps a row only for a customer with at least one counted order.
* :func:`recompute_rfm` scores everybody and writes only what changed: a row whose figures differ from the stored
  one by nothing but the days gone by is left alone (``computed_on`` is when a row was last written; readers
  project recency to today), so a nightly run rewrites the customers who ordered, aged out or crossed a cut point,
  not all of them. Quintiles are scored without ranking: the four cut points per axis are order statistics of the
  aggregates (:func:`quintile_cut_config`, one scan), and a value's quintile score is the number of cut points it
  is above — the same score ``RANK()`` gives, ties included (:func:`tagging.rfm.domain.quintile_cuts`). So both
  methods score with CASEs over each row. Each scoring keeps its cut points (``rfm_cut_points``); on PostgreSQL the
  next one re-checks only the candidates — aggregates changed since, or with a figure between an old and a new cut
  point (:class:`CutPoints`; a stored row of anybody else is still right: neither its figures nor the cuts around
  them moved) — in ONE SELECT (score them, join their stored rows, keep the differences) into a temporary table,
  then the few deletes, updates and inserts. ``everybody`` (after a rebuild, or when the method, window or high
  score changed) compares every row. SQLite: INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE changed, everybody.
  bench/rfm.py measures it.
* :func:`rescore_customer` scores one customer against everybody's current aggregates (after an order event)
  with index range counts (:func:`tagging.rfm.sql.rank_counts_select`), not a scan of every aggregate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.clock import local
from scrm.core.db import upsert
from scrm.core.runtime import ResourceKey, Runtime
from tagging.rfm.domain import (
    SEGMENT_NAMES,
    RfmConfig,
    day_of,
    load_segments_toml,
    method_for,
    parse_rfm_config,
    quintile_of,
    quintile_positions,
    quintiles_as_cuts,
    recency_days,
    resolved,
    score_by_cuts,
    segment_of,
    window_start,
)
from tagging.rfm.models import customer_order_stats, customer_rfm, rfm_cut_points
from tagging.rfm.sql import (
    COUNTED_STATUSES,
    RFM_COLUMNS,
    STATS_COLUMNS,
    CreateTempTableAs,
    RankSides,
    aggregate_select,
    candidates_where,
    changed_condition,
    insert_for,
    orders,
    quintile_cuts_selects,
    rank_counts_select,
    rfm_select,
    upsert_from_select,
    worse_counts,
)

RFM_CONFIG: ResourceKey[RfmConfig] = ResourceKey("rfm_config")


def rfm_config(rt: Runtime) -> RfmConfig:
    """This process's RFM settings: read once, then kept on the runtime (tests may put their own)."""
    if not rt.has(RFM_CONFIG):
        rt.put(RFM_CONFIG, parse_rfm_config(load_segments_toml()))
    return rt.get(RFM_CONFIG)


# ---- order aggregates -------------------------------------------------------------------------------------
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
    fresh = aggregate_select(now, cutoff, o.customer_id.in_(ids))
    await conn.execute(upsert_from_select(customer_order_stats, dialect, STATS_COLUMNS, fresh))
    counted = sa.select(sa.literal(1)).where(o.customer_id == s.customer_id, o.status.in_(COUNTED_STATUSES), o.confirmed_at >= cutoff)
    await conn.execute(sa.delete(customer_order_stats).where(s.customer_id.in_(ids), ~sa.exists(counted)))


async def age_out_order_stats(conn: AsyncConnection, dialect: str, now: dt.datetime, config: RfmConfig) -> int:
    """Nightly: the orders that left the window are subtracted from their customers' aggregates — only customers
    whose first counted order is before the cutoff (found by ``first_order_at``'s index), and only those orders
    read (a (customer_id, confirmed_at) range from ``first_order_at`` to the cutoff), plus one probe for the new
    first order; customers with no order left in the window lose their row. Returns how many were touched.

    Why subtracting is exact: a row counts every counted order of its customer from ``first_order_at`` on (every
    writer re-reads the orders of a window, and any change of an order re-reads its customer), so the orders it
    loses are exactly the counted ones in [first_order_at, cutoff). Re-reading every order of those customers
    instead (the way before) read ~40× more rows at 1 M customers / 10 M orders. ONE UPDATE on both backends."""
    cutoff = window_start(now, config)
    s, o = customer_order_stats.c, orders.c
    counted = o.status.in_(COUNTED_STATUSES)
    leaving = (o.customer_id == s.customer_id, o.confirmed_at >= s.first_order_at, o.confirmed_at < cutoff, counted)
    gone = sa.select(sa.func.count()).where(*leaving).scalar_subquery()
    gone_fen = sa.select(sa.func.coalesce(sa.func.sum(o.total_fen), 0)).where(*leaving).scalar_subquery()
    first_left = sa.select(sa.func.min(o.confirmed_at)).where(o.customer_id == s.customer_id, o.confirmed_at >= cutoff, counted)
    if dialect == "postgresql":
        await conn.execute(sa.text("SET LOCAL jit = off"))  # compiling costs more than it saves here
    emptied = sa.select(s.customer_id).where(s.last_order_at < cutoff)  # after the UPDATE: nothing left in the window
    aged = await conn.execute(
        sa.update(customer_order_stats)
        .where(s.first_order_at < cutoff)
        .values(orders=s.orders - gone, monetary_fen=s.monetary_fen - gone_fen, first_order_at=first_left.scalar_subquery(), updated_at=now)
    )
    await conn.execute(sa.delete(customer_rfm).where(customer_rfm.c.customer_id.in_(emptied)))  # no aggregates, no scores
    await conn.execute(sa.delete(customer_order_stats).where(s.last_order_at < cutoff))
    return int(aged.rowcount)


async def rebuild_order_stats(conn: AsyncConnection, dialect: str, now: dt.datetime, config: RfmConfig) -> int:
    """Backfill / repair: every customer's aggregates re-read from all orders in the window. Returns the rows."""
    await conn.execute(sa.delete(customer_order_stats))
    everybody = aggregate_select(now, window_start(now, config), sa.true())
    await conn.execute(customer_order_stats.insert().from_select(STATS_COLUMNS, everybody))
    return int((await conn.execute(sa.select(sa.func.count()).select_from(customer_order_stats))).scalar_one())


# ---- scoring everybody, scoring one ----------------------------------------------------------------------
@dataclass(frozen=True)
class RfmRun:
    scored: int  # customers with counted orders in the window
    inserted: int  # rows written: new customers …
    updated: int  # … and customers whose figures changed
    deleted: int  # customers gone from the window


DIFF_TABLE = "rfm_diff"  # PostgreSQL: this transaction's rows to write (temporary, dropped at commit)
CANDIDATES_TABLE = "rfm_candidates"  # PostgreSQL: the customers this night re-checks (temporary)
# Rows changed this long before the last scoring's clock are re-checked too: an order event whose transaction
# began before that scoring's snapshot and committed after it wrote figures the scoring did not see.
RECHECK_MARGIN = dt.timedelta(hours=1)


@dataclass(frozen=True)
class CutPoints:
    """The cut points a full scoring used (``rfm_cut_points``): a score is 1 + how many of its axis's cut points
    the figure is above; recency's figure is the business day of the last order, at most ``day``."""

    scored_at: dt.datetime
    method: str  # quintiles | cuts
    window_days: int
    high_score: int
    last_order_day: tuple[int, ...]
    frequency: tuple[int, ...]
    monetary_fen: tuple[int, ...]

    @classmethod
    def of(cls, config: RfmConfig, now: dt.datetime, method: str) -> CutPoints:
        """Those of a ``cuts`` config (quintiles already turned into cuts) scoring at ``now``."""
        today = day_of(now)
        days = tuple(sorted(today - c - 1 for c in config.recency_cuts))
        return cls(now, method, config.window_days, config.high_score, days, config.frequency_cuts, config.monetary_cuts_fen)

    def values(self) -> dict[str, Any]:
        """The ``rfm_cut_points`` row."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"id": 1, **{k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}}

    def candidates_where(self, now: dt.datetime, config: RfmConfig) -> Any:
        """The aggregates to re-check when scoring with ``config`` (cuts) after these cut points: see
        :func:`tagging.rfm.sql.candidates_where`."""
        new = CutPoints.of(config, now, self.method)
        bands = {
            axis: [(min(a, b), max(a, b)) for a, b in zip(getattr(self, axis), getattr(new, axis), strict=True) if a != b]
            for axis in ("last_order_day", "frequency", "monetary_fen")
        }
        return candidates_where(now, config, self.scored_at - RECHECK_MARGIN, day_of(self.scored_at), bands)


async def last_cut_points(conn: AsyncConnection) -> CutPoints | None:
    """The cut points of the last full scoring (None before the first)."""
    row = (await conn.execute(sa.select(rfm_cut_points).where(rfm_cut_points.c.id == 1))).first()
    if row is None:
        return None
    m = row._mapping
    return CutPoints(
        m["scored_at"], m["method"], int(m["window_days"]), int(m["high_score"]),
        *(tuple(int(v) for v in m[axis]) for axis in ("last_order_day", "frequency", "monetary_fen")),
    )  # fmt: skip


def _pg_diff(now: dt.datetime, config: RfmConfig, who: Any = None) -> Any:
    """PostgreSQL: CREATE TEMP TABLE rfm_diff AS the scored rows that must be written, plus the stored ids to
    delete — the one heavy statement: scoring SELECT full-joined with ``customer_rfm``, kept where changed.
    ``who``: only these customers (a one-column SELECT) on both sides."""
    stored = customer_rfm if who is None else sa.select(customer_rfm).where(customer_rfm.c.customer_id.in_(who)).subquery("stored")
    t = stored.c
    new = rfm_select("postgresql", now, config, who=who).subquery("scored")
    changed = (
        sa.select(*(new.c[n] for n in RFM_COLUMNS), t.customer_id.label("old_id"))
        .select_from(new.join(stored, t.customer_id == new.c.customer_id, full=True))
        .where(sa.or_(t.customer_id.is_(None), new.c.customer_id.is_(None), changed_condition("postgresql", t, new.c)))
    )
    return CreateTempTableAs(DIFF_TABLE, changed)


async def _pg_apply(conn: AsyncConnection, now: dt.datetime, config: RfmConfig, since: CutPoints | None) -> RfmRun:
    # The scoring sorts and the diff's hash stay in memory; JIT compiling (≈ 0.5 s) does not pay off here.
    await conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
    await conn.execute(sa.text("SET LOCAL jit = off"))
    await conn.execute(sa.text(f"DROP TABLE IF EXISTS {DIFF_TABLE}"))
    who = None
    if since is not None:  # only the customers the new cut points or their own changes can have moved
        # a few % of the rows, by primary key: index probes, which the default page cost (4, a spinning disk) prices
        # above scanning both 1 M-row tables (measured 1.1 s vs 1.9 s at 21 k candidates, loaded machine)
        await conn.execute(sa.text("SET LOCAL random_page_cost = 1.1"))
        await conn.execute(sa.text(f"DROP TABLE IF EXISTS {CANDIDATES_TABLE}"))
        picked = sa.select(customer_order_stats.c.customer_id).where(since.candidates_where(now, config))
        await conn.execute(CreateTempTableAs(CANDIDATES_TABLE, picked))
        await conn.execute(sa.text(f"ANALYZE {CANDIDATES_TABLE}"))
        who = sa.select(sa.table(CANDIDATES_TABLE, sa.column("customer_id")).c.customer_id)
    await conn.execute(_pg_diff(now, config, who))
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
    if who is not None:
        await conn.execute(sa.text(f"DROP TABLE {CANDIDATES_TABLE}"))
    total = int((await conn.execute(sa.select(sa.func.count()).select_from(customer_rfm))).scalar_one())
    return RfmRun(total, int(inserted.rowcount), int(updated.rowcount), int(gone.rowcount))


async def customers_scored(conn: AsyncConnection, now: dt.datetime, config: RfmConfig) -> int:
    """How many customers the scoring ranks: counted orders, last one within the window (what ``auto`` decides by)."""
    s = customer_order_stats.c
    where = (s.orders > 0, s.last_order_at >= window_start(now, config))
    return int((await conn.execute(sa.select(sa.func.count()).select_from(customer_order_stats).where(*where))).scalar_one())


async def quintile_cut_config(conn: AsyncConnection, dialect: str, now: dt.datetime, config: RfmConfig) -> RfmConfig:
    """The ``cuts`` config that gives every customer scored now their quintile score (``RANK()``-based, ties
    sharing a score): four order statistics per axis of the scored aggregates
    (:func:`tagging.rfm.sql.quintile_cuts_selects`, :func:`tagging.rfm.domain.quintiles_as_cuts`). Scoring with
    it is CASEs over each row — no window function sorting every row with its columns."""
    statements = quintile_cuts_selects(dialect, now, config)
    if dialect == "postgresql":
        n, *axes = (await conn.execute(statements[0])).one()
    else:
        axes, n = [], 0
        for statement in statements:
            rows = (await conn.execute(statement)).all()
            n = int(rows[0].n) if rows else 0
            at = {int(r.rn): r.v for r in rows}
            axes.append([at[j] for j in quintile_positions(n)] if n else [])
    if not n:  # nobody to score: any cut points do
        return dataclasses.replace(config, scoring="cuts")
    return quintiles_as_cuts(config, now, *axes)


@dataclass(frozen=True)
class ScoringMethod:
    method: str  # quintiles | cuts: what scores today
    configured: str  # auto | quintiles | cuts: what config/segments.toml says
    customers: int  # customers with counted orders in the window
    small_shop_customers: int  # auto's threshold


async def scoring_method(conn: AsyncConnection, now: dt.datetime, config: RfmConfig) -> ScoringMethod:
    """Which method scores today and why (the RFM page says it)."""
    n = await customers_scored(conn, now, config)
    return ScoringMethod(method_for(config, n), config.scoring, n, config.small_shop_customers)


async def _comparable(conn: AsyncConnection, cuts: CutPoints) -> CutPoints | None:
    """The last scoring's cut points when tonight may re-check only what they and the changes since can move: the
    same method, window and high score, an earlier clock."""
    last = await last_cut_points(conn)
    if last is None or (last.method, last.window_days, last.high_score) != (cuts.method, cuts.window_days, cuts.high_score):
        return None
    return last if last.scored_at <= cuts.scored_at else None


async def recompute_rfm(conn: AsyncConnection, dialect: str, now: dt.datetime, config: RfmConfig, *, everybody: bool = False) -> RfmRun:
    """Score everybody with counted orders in the window and store it — rows are written only for customers who
    are new, whose figures changed beyond recency simply growing by the days since their row's ``computed_on``,
    or who left the window (deleted) — a night without orders rewrites next to nothing. PostgreSQL: ONE
    SELECT (score, join with the stored rows, keep what changed) into a temporary table, then the few deletes /
    updates / inserts from it. SQLite: INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE changed, then
    a DELETE. Run it inside one write transaction. ``auto`` scoring resolves to one method for everybody first.
    PostgreSQL re-checks only the customers that can have moved since the last scoring (module docstring) unless
    ``everybody`` — pass it when the aggregates were rebuilt or customer_rfm was changed by other means."""
    if config.scoring == "auto":
        config = resolved(config, await customers_scored(conn, now, config))
    method = config.scoring
    if config.scoring == "quintiles":
        config = await quintile_cut_config(conn, dialect, now, config)
    cuts = CutPoints.of(config, now, method)
    last = None if everybody or dialect != "postgresql" else await _comparable(conn, cuts)
    await conn.execute(upsert(rfm_cut_points, dialect, ["id"], cuts.values(), list(cuts.values())[1:]))
    scored = rfm_select(dialect, now, config)
    t = customer_rfm.c
    if dialect == "postgresql":
        return await _pg_apply(conn, now, config, last)

    def total() -> Any:
        return sa.select(sa.func.count()).select_from(customer_rfm)

    before = int((await conn.execute(total())).scalar_one())
    stmt = insert_for(customer_rfm, dialect).from_select(RFM_COLUMNS, scored)
    written = await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={n: stmt.excluded[n] for n in RFM_COLUMNS[1:]},
            where=changed_condition(dialect, t, stmt.excluded),
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
    this is one statement of index range counts (who ranks below on each axis; no scan of every aggregate row);
    with cut points, no count at all. A customer without counted orders in the window loses their row (returns
    None)."""
    s = customer_order_stats.c
    row = (await conn.execute(sa.select(customer_order_stats).where(s.customer_id == customer_id))).first()
    if row is None or row.orders <= 0 or row.last_order_at is None or row.last_order_at < window_start(now, config):
        await conn.execute(sa.delete(customer_rfm).where(customer_rfm.c.customer_id == customer_id))
        return None
    days, frequency, monetary = recency_days(now, row.last_order_at), int(row.orders), int(row.monetary_fen)
    if config.scoring != "cuts":  # quintiles, or auto: the counts also give n, which auto decides by
        t = customer_rfm.c
        before = (await conn.execute(sa.select(t.r, t.f, t.m).where(t.customer_id == customer_id))).first()
        sides = RankSides.from_scores(*before) if before is not None else RankSides()
        counts = (await conn.execute(rank_counts_select(now, config, days, frequency, monetary, sides))).one()
        n, worse_r, worse_f, worse_m = worse_counts(counts, sides)
        config = resolved(config, n)
    if config.scoring == "quintiles":
        r, f, m = (quintile_of(worse, n) for worse in (worse_r, worse_f, worse_m))
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
