"""Keeping RFM and activity segments current: outbox handlers (incremental), the nightly cron (full), ``run.py rfm``.

Incremental, per event, one short transaction each (all idempotent — a replay or a reordering converges):

* ``order.confirmed`` / ``order.cancelled`` → the customer's order aggregates are re-read from their orders, the
  customer is re-scored against everybody (:func:`tagging.rfm.services.rescore_customer`) and reclassified.
* ``customer.merged`` → both records are recomputed (fulfilment has moved the orders by then: its handler is
  registered first) and the merged-away one loses its rows.
* ``inbound.received`` / ``archive.message`` → a message from a customer moves their ``last_message_at``; any event
  naming a customer (a follow added or ended …) reclassifies them.

Billing emits no payment topic today, so RFM counts confirmed orders (paid or not); when a ``payment.*`` topic
appears, subscribe :func:`update_after_order`'s customer path to it.

Full: :func:`recompute_all` in ONE write transaction — order aggregates aged out (or rebuilt), every customer
scored, every customer classified, only changed rows written — so readers see yesterday's or today's figures,
never a mix. The same transaction adds a ``segments.recomputed`` outbox row: the cron's "done today?" check reads
it, and its handler VACUUMs the order aggregates (PostgreSQL). The cron runs hourly and does the work once per
business day after 03:00 Asia/Shanghai; arq runs each tick on one worker only
(``unique``), and on PostgreSQL a transaction-level advisory lock makes a concurrent ``run.py rfm`` wait its
turn instead of computing the same thing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import outbox
from scrm.core.clock import local
from scrm.core.errors import NotFound
from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.crm.archive.models import archive_messages
from scrm.crm.customers.models import customers
from scrm.crm.customers.services import find_customer, resolve_customer
from scrm.crm.groups.domain import EXTERNAL_PREFIXES
from tagging.activity import services as activity
from tagging.activity.models import customer_activity
from tagging.rfm import services as rfm
from tagging.rfm.domain import METHOD_ZH
from tagging.rfm.models import customer_order_stats, customer_rfm

log = logging.getLogger(__name__)

NIGHTLY_LOCAL_HOUR = 3  # Asia/Shanghai: the full recompute runs on the first cron tick at or after 03:00
ADVISORY_LOCK_KEY = 0x52464D_0001  # "RFM" — one full recompute at a time per database (PostgreSQL)
STEPS = ("订单汇总", "RFM 评分", "活跃度分群")
RECOMPUTED_TOPIC = "segments.recomputed"  # outbox: a full recompute committed (payload: day, rows written)

Progress = Callable[[int, str, str], None]  # (steps done, step label, note)


# ---- incremental ------------------------------------------------------------------------------------------
async def _lock(conn: AsyncConnection, dialect: str, customer_id: int) -> None:
    """Serialise changes of one customer's aggregates (PostgreSQL; SQLite writers are serialised already), so a
    later statement's fresh snapshot sees every order committed before the competing handler."""
    if dialect == "postgresql":
        await conn.execute(sa.select(customers.c.id).where(customers.c.id == customer_id).with_for_update(key_share=True))


async def refresh_customer(rt: Runtime, customer_ids: list[int]) -> None:
    """Recompute these customers' order aggregates, RFM row and activity segment now (one transaction)."""
    now, dialect = rt.clock.now(), rt.db.dialect
    rcfg, acfg = rfm.rfm_config(rt), activity.activity_config(rt)
    async with rt.db.write() as conn:
        for cid in sorted(set(customer_ids)):
            await _lock(conn, dialect, cid)
        await rfm.refresh_order_stats(conn, dialect, customer_ids, now, rcfg)
        for cid in sorted(set(customer_ids)):
            await rfm.rescore_customer(conn, dialect, cid, now, rcfg)
            await activity.touch_customer(conn, dialect, cid, now, acfg)


async def update_after_order(rt: Runtime, payload: dict[str, Any]) -> None:
    """An order counted or stopped counting: its customer's aggregates, RFM and activity follow."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(rfm.orders.c.customer_id).where(rfm.orders.c.id == int(payload["order_id"])))).first()
    if row is not None:
        await refresh_customer(rt, [int(row.customer_id)])


async def update_after_merge(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two records are one person: the survivor is recomputed (its orders now include the merged one's) and the
    merged-away record keeps no aggregates, RFM or activity row."""
    merged = int(payload["from"])
    await refresh_customer(rt, [merged, int(payload["into"])])
    async with rt.db.write() as conn:
        for table in (customer_order_stats, customer_rfm, customer_activity):
            await conn.execute(sa.delete(table).where(table.c.customer_id == merged))


async def _touch(rt: Runtime, customer_id: int, message_at: dt.datetime | None) -> None:
    async with rt.db.write() as conn:
        await activity.touch_customer(conn, rt.db.dialect, customer_id, rt.clock.now(), activity.activity_config(rt), message_at=message_at)


async def update_after_inbound(rt: Runtime, payload: dict[str, Any]) -> None:
    """A stored callback or synced message: a customer's message moves their last message time; an event about a
    customer (added, deleted a salesperson …) reclassifies them. Member messages and unknown people are skipped."""
    events = activity.inbound_events
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(events).where(events.c.id == int(payload["inbound_id"])))).first()
        if row is None:
            return
        message = any(row.channel == ch and row.kind.startswith(prefix) for ch, prefix, _ in activity.CUSTOMER_MESSAGE_KINDS)
        if row.channel == "mp":
            customer_id = await find_customer(conn, "openid", row.from_user) if row.from_user else None
        elif row.channel in ("kf", "wecom") and row.external_userid:
            customer_id = await find_customer(conn, "external_userid", row.external_userid)
        else:
            customer_id = None
    if customer_id is not None:
        await _touch(rt, customer_id, row.occurred_at if message else None)


async def update_after_archive(rt: Runtime, payload: dict[str, Any]) -> None:
    """A chat-archive record: a customer speaking moves their last message time; staff writing 1:1 may later mark
    the customer unanswered (churn risk)."""
    a = archive_messages.c
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(a.customer_id, a.from_id, a.action, a.msgtime).where(a.msgid == str(payload["msgid"])))).first()
        if row is None:
            return
        from_customer = row.action == "send" and row.from_id.startswith(EXTERNAL_PREFIXES)
        if from_customer:
            customer_id = await find_customer(conn, "external_userid", row.from_id)
        elif row.customer_id is not None:
            try:
                customer_id = await resolve_customer(conn, int(row.customer_id))
            except NotFound:
                return
        else:
            return
    if customer_id is not None:
        await _touch(rt, customer_id, row.msgtime if from_customer else None)


# ---- full recompute ---------------------------------------------------------------------------------------
@dataclass
class RecomputeReport:
    stats_rows: int | None = None  # rebuild: customers with counted orders in the window
    aged_out: int = 0  # customers re-aggregated because an order left the window
    scored: int = 0
    rows_written: int = 0  # RFM rows inserted + changed + deleted (unchanged rows are not rewritten)
    rfm_segments: dict[str, int] = field(default_factory=dict)
    rfm_method: str = ""  # quintiles | cuts: how R, F and M were scored (auto decides by the number of customers)
    activity_written: int = 0  # activity rows inserted or changed (unchanged ones are not rewritten)
    activity_segments: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def recompute_all(rt: Runtime, *, rebuild_stats: bool = False, progress: Progress | None = None) -> RecomputeReport:
    """Nightly / ``run.py rfm``: order aggregates aged out (``rebuild_stats``: re-read from every order), every
    customer RFM-scored and activity-classified — one write transaction. Idempotent; at most one runs at a time."""
    started = time.perf_counter()
    now, dialect = rt.clock.now(), rt.db.dialect
    rcfg, acfg = rfm.rfm_config(rt), activity.activity_config(rt)
    report = RecomputeReport()
    say = progress or (lambda done, label, note: None)
    async with rt.db.write() as conn:
        if dialect == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        say(0, STEPS[0], "")
        if rebuild_stats:
            report.stats_rows = await rfm.rebuild_order_stats(conn, dialect, now, rcfg)
            say(1, STEPS[0], f"{report.stats_rows} 位客户有有效订单")
        else:
            report.aged_out = await rfm.age_out_order_stats(conn, dialect, now, rcfg)
            say(1, STEPS[0], f"{report.aged_out} 位客户的订单移出 {rcfg.window_days} 天窗口")
        run = await rfm.recompute_rfm(conn, dialect, now, rcfg, everybody=rebuild_stats)
        report.scored, report.rows_written = run.scored, run.inserted + run.updated + run.deleted
        report.rfm_segments = await rfm.segment_counts(conn)
        report.rfm_method = (await rfm.scoring_method(conn, now, rcfg)).method
        say(2, STEPS[1], f"{run.scored} 位客户；写入 {run.inserted} 新、{run.updated} 变化、{run.deleted} 移出")
        moved = await activity.recompute_activity(conn, dialect, now, acfg)
        report.activity_segments, report.activity_written = moved.segments, moved.written
        say(3, STEPS[2], f"{sum(report.activity_segments.values())} 位客户；{moved.written} 位分群或时间有变化")
        news = {"day": local(now).date().isoformat(), "scored": report.scored, "rfm_rows_written": report.rows_written}
        await outbox.add(conn, RECOMPUTED_TOPIC, {**news, "activity_rows_written": moved.written}, now)
    report.seconds = time.perf_counter() - started
    log.info("segments recomputed", extra={"scored": report.scored, "aged_out": report.aged_out, "seconds": round(report.seconds, 3)})
    return report


async def vacuum_order_stats(rt: Runtime, payload: dict[str, Any]) -> None:
    """After a full recompute committed (PostgreSQL): VACUUM ANALYZE the order aggregates. The age-out rewrites
    rows spread over nearly every page, which clears the visibility map, and autovacuum (20 % of rows changed)
    may not come for days; until a vacuum, the one-customer rescoring's index-only range counts would visit the
    heap for every row. Running it twice does no harm; a failure is retried by the outbox."""
    if rt.db.dialect != "postgresql":
        return
    async with rt.db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM cannot run inside a transaction
        await conn.execute(sa.text("VACUUM (ANALYZE) customer_order_stats"))


async def due_today(rt: Runtime) -> bool:
    """True after 03:00 (business time) when no full recompute has committed since today's business midnight —
    told by its ``segments.recomputed`` outbox row (rows are written only when they change, so no row's time
    says when the last full run was)."""
    now = rt.clock.now()
    if local(now).hour < NIGHTLY_LOCAL_HOUR:
        return False
    midnight = local(now).replace(hour=0, minute=0, second=0, microsecond=0)
    o = outbox.outbox.c
    # the newest such row, walking the primary key back from the end: at most about a day of outbox rows
    latest = sa.select(o.created_at).where(o.topic == RECOMPUTED_TOPIC).order_by(o.id.desc()).limit(1)
    async with rt.db.read() as conn:
        last = (await conn.execute(latest)).scalar()
    return last is None or last < midnight


async def segments_nightly(ctx: JobContext) -> None:
    if await due_today(ctx.rt):
        await recompute_all(ctx.rt)


# ---- run.py rfm -------------------------------------------------------------------------------------------
def progress_bar(out: IO[str], width: int = 30) -> Progress:
    def show(done: int, label: str, note: str) -> None:
        filled = width * done // len(STEPS)
        state = f"{label} ✓ {note}" if note else f"{label} …"
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{len(STEPS)} {state}".ljust(96), end="", file=out, flush=True)
        if note:
            print(file=out)

    return show


def print_report(report: RecomputeReport, out: IO[str]) -> None:
    print(f"完成 / done in {report.seconds:.1f} s: {report.scored} 位客户已评分 (RFM scored)", file=out)
    if report.rfm_method:
        print(f"  评分方法：{METHOD_ZH[report.rfm_method]}", file=out)
    for name, n in report.rfm_segments.items():
        print(f"  {name}\t{n}", file=out)
    for seg, n in report.activity_segments.items():
        print(f"  {activity.SEGMENT_ZH[seg]} ({seg})\t{n}", file=out)


HANDLERS = [
    Handles("order.confirmed", update_after_order),
    Handles("order.cancelled", update_after_order),
    Handles("customer.merged", update_after_merge),
    Handles("inbound.received", update_after_inbound),
    Handles("archive.message", update_after_archive),
    Handles(RECOMPUTED_TOPIC, vacuum_order_stats),
]

CRONS = [
    CronSpec("segments_nightly", segments_nightly, minute=41, second=0),
]
