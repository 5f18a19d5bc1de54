"""Activity segments (活跃度): new, active, silent, churn risk, lost — one per customer, thresholds in
config/segments.toml ``[activity]``.

* :func:`tagging.activity.domain.classify` — the rule, on plain values (see the config file for the wording).
* :func:`recompute_activity` — every customer at once: ONE set-based statement whose CASE is the same rule, over
  set-based aggregates of the sources (nightly, ``run.py rfm``), writing only the rows that change.
* :func:`touch_customer` — one customer after an event (a message, an order, a follow ended), using
  :func:`classify`; a message's time only ever moves ``last_message_at`` forward, so replays change nothing.

Sources, read only: messages *from* the customer — 微信客服 ``kf.customer.*`` and Official Account ``message.*``
inbound events (joined to the customer by external_userid / openid) and chat-archive records sent by an external
id; ``customer_order_stats.last_order_at`` (orders counted for RFM); follows ended by the customer (deleted
signal); 1:1 archive messages sent by staff (an outreach the customer has not answered is the other signal).
The stored ``last_message_at`` takes part too, so pruning old raw messages does not make anybody look silent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.db import UTCDateTime, upsert
from scrm.core.runtime import ResourceKey, Runtime
from scrm.crm.archive.models import archive_messages
from scrm.crm.customers.models import FollowStatus, customer_identities, customers, follows
from scrm.crm.groups.domain import EXTERNAL_PREFIXES
from scrm.crm.staff.services import EndedBy
from tagging.activity.domain import (
    SEGMENT_ZH,
    SEGMENTS,
    ActivityConfig,
    ActivityInputs,
    ActivitySegment,
    Cutoffs,
    classify,
    parse_activity_config,
)
from tagging.activity.models import customer_activity
from tagging.rfm.domain import load_segments_toml
from tagging.rfm.models import customer_order_stats
from tagging.rfm.sql import upsert_from_select

# bots' inbound events, read only (tagging does not import bots): the columns that say who wrote and when.
inbound_events = sa.table(
    "inbound_events",
    sa.column("id", sa.BigInteger()),
    sa.column("channel", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("from_user", sa.String()),
    sa.column("external_userid", sa.String()),
    sa.column("occurred_at", UTCDateTime()),
)
CUSTOMER_MESSAGE_KINDS = (("kf", "kf.customer.", "external_userid"), ("mp", "message.", "openid"))


ACTIVITY_CONFIG: ResourceKey[ActivityConfig] = ResourceKey("activity_config")


def activity_config(rt: Runtime) -> ActivityConfig:
    """This process's activity thresholds: read once, then kept on the runtime (tests may put their own)."""
    if not rt.has(ACTIVITY_CONFIG):
        rt.put(ACTIVITY_CONFIG, parse_activity_config(load_segments_toml()))
    return rt.get(ACTIVITY_CONFIG)


def _classify_sql(first_seen: Any, message: Any, order: Any, deleted: Any, outreach: Any, cut: Cutoffs) -> Any:
    """:func:`classify` as a SQL CASE (NULL comparisons are false, exactly like the missing values above)."""
    A = ActivitySegment
    quiet_since_lost = sa.and_(
        sa.or_(message.is_(None), message < cut.lost), sa.or_(order.is_(None), order < cut.lost), first_seen < cut.lost
    )
    unanswered = sa.and_(outreach <= cut.unanswered, sa.or_(message.is_(None), message < outreach))
    return sa.case(
        (first_seen >= cut.new, A.NEW),
        (sa.or_(message >= cut.silent, order >= cut.silent), A.ACTIVE),
        (quiet_since_lost, A.LOST),
        (sa.or_(deleted.is_not(None), unanswered), A.CHURN_RISK),
        else_=A.SILENT,
    )


# ---- sources ----------------------------------------------------------------------------------------------
def _external(column: Any) -> Any:
    """An external_userid (a customer), by its prefix — as scrm.crm.groups.domain.guess_member_type tells."""
    return sa.or_(*(column.startswith(p, autoescape=True) for p in EXTERNAL_PREFIXES))


def _archive_owner() -> Any:
    """The surviving customer of an archive row (rows keep the id they were stored with; merges move people)."""
    return sa.func.coalesce(customers.c.merged_into, archive_messages.c.customer_id)


def _message_times() -> Any:
    """(customer_id, t): the last message from each customer, per source, plus what is stored already."""
    ie, ci, a = inbound_events.c, customer_identities.c, archive_messages.c
    parts = []
    for channel, prefix, kind in CUSTOMER_MESSAGE_KINDS:
        sender = ie.external_userid if kind == "external_userid" else ie.from_user
        parts.append(
            sa.select(ci.customer_id.label("customer_id"), sa.func.max(ie.occurred_at).label("t"))
            .select_from(inbound_events.join(customer_identities, sa.and_(ci.kind == kind, ci.value == sender)))
            .where(ie.channel == channel, ie.kind.like(prefix + "%"))
            .group_by(ci.customer_id)
        )
    # chat-archive records sent by one of the customer's own external ids (wherever they were said)
    parts.append(
        sa.select(ci.customer_id.label("customer_id"), sa.func.max(a.msgtime).label("t"))
        .select_from(archive_messages.join(customer_identities, sa.and_(ci.kind == "external_userid", ci.value == a.from_id)))
        .where(a.action == "send")
        .group_by(ci.customer_id)
    )
    ca = customer_activity.c
    parts.append(sa.select(ca.customer_id, ca.last_message_at.label("t")).where(ca.last_message_at.is_not(None)))
    every = sa.union_all(*parts).subquery("every_message")
    return sa.select(every.c.customer_id, sa.func.max(every.c.t).label("t")).group_by(every.c.customer_id).subquery("messages")


def _outreach_times() -> Any:
    a, owner = archive_messages.c, _archive_owner()
    return (
        sa.select(owner.label("customer_id"), sa.func.max(a.msgtime).label("t"))
        .select_from(archive_messages.join(customers, customers.c.id == a.customer_id))
        .where(a.action == "send", a.roomid == "", ~_external(a.from_id))
        .group_by(owner)
        .subquery("outreach")
    )


def _deleted_signals() -> Any:
    f = follows.c
    return (
        sa.select(f.customer_id)
        .where(f.status == FollowStatus.ENDED, f.ended_by == EndedBy.CUSTOMER)
        .group_by(f.customer_id)
        .subquery("deleted")
    )


ACTIVITY_COLUMNS = ["customer_id", "segment", "last_message_at", "last_order_at", "computed_at"]


@dataclass(frozen=True)
class ActivityRun:
    segments: dict[str, int]  # customers per segment after the run (all five present)
    written: int  # rows inserted or changed (segment or a tracked time moved)
    removed: int  # rows of customers merged away


def fresh_activity_select(now: dt.datetime, config: ActivityConfig) -> Any:
    """Every current customer's (customer_id, segment, last_message_at, last_order_at) now: the rule's CASE over
    set-based aggregates of the sources."""
    c = customers.c
    messages, outreach, deleted = _message_times(), _outreach_times(), _deleted_signals()
    stats = customer_order_stats.c
    segment = _classify_sql(
        c.first_seen_at, messages.c.t, stats.last_order_at, deleted.c.customer_id, outreach.c.t, Cutoffs.at(now, config)
    )
    return (
        sa.select(
            c.id.label("customer_id"),
            segment.label("segment"),
            messages.c.t.label("last_message_at"),
            stats.last_order_at.label("last_order_at"),
        )
        .select_from(
            customers.outerjoin(messages, messages.c.customer_id == c.id)
            .outerjoin(customer_order_stats, stats.customer_id == c.id)
            .outerjoin(outreach, outreach.c.customer_id == c.id)
            .outerjoin(deleted, deleted.c.customer_id == c.id)
        )
        .where(c.merged_into.is_(None))
    )


async def recompute_activity(conn: AsyncConnection, dialect: str, now: dt.datetime, config: ActivityConfig) -> ActivityRun:
    """Every current customer's segment, set-based: ONE INSERT … SELECT … ON CONFLICT of only the rows that are new
    or whose segment, last message or last order time differ from the stored ones (compared NULL-safely), so a
    night rewrites the customers who moved, not everybody; ``computed_at`` is when a row last changed. Rows of
    merged-away customers are removed. Run it inside one write transaction."""
    if dialect == "postgresql":  # the joins' hashes of every customer stay in memory; JIT compiling does not pay off
        await conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
        await conn.execute(sa.text("SET LOCAL jit = off"))
    fresh = fresh_activity_select(now, config).subquery("fresh")
    f, ca = fresh.c, customer_activity.c
    differs = sa.or_(
        ca.customer_id.is_(None),
        *(ca[n].is_distinct_from(f[n]) for n in ("segment", "last_message_at", "last_order_at")),
    )
    changed = (
        sa.select(f.customer_id, f.segment, f.last_message_at, f.last_order_at, sa.literal(now, UTCDateTime()).label("computed_at"))
        .select_from(fresh.outerjoin(customer_activity, ca.customer_id == f.customer_id))
        .where(differs)
    )
    written = await conn.execute(upsert_from_select(customer_activity, dialect, ACTIVITY_COLUMNS, changed))
    # Customers are never deleted (a record only ever merges into another), so the rows to drop are the merged
    # ones: a scan of customers for the few merged ids, not an anti-join of every activity row.
    merged = sa.select(customers.c.id).where(customers.c.merged_into.is_not(None))
    removed = await conn.execute(sa.delete(customer_activity).where(ca.customer_id.in_(merged)))
    return ActivityRun(await activity_counts(conn), int(written.rowcount), int(removed.rowcount))


async def inputs_of(conn: AsyncConnection, customer_id: int, *, message_at: dt.datetime | None = None) -> ActivityInputs | None:
    """What :func:`classify` needs for one customer (indexed look-ups only); None for an unknown or merged one.
    ``message_at``: a message just received, merged into the stored last message time."""
    cust = (await conn.execute(sa.select(customers.c.first_seen_at, customers.c.merged_into).where(customers.c.id == customer_id))).first()
    if cust is None or cust.merged_into is not None:
        return None
    stored = (
        await conn.execute(sa.select(customer_activity.c.last_message_at).where(customer_activity.c.customer_id == customer_id))
    ).scalar()
    last_order = (
        await conn.execute(sa.select(customer_order_stats.c.last_order_at).where(customer_order_stats.c.customer_id == customer_id))
    ).scalar()
    f, a = follows.c, archive_messages.c
    deleted = (
        await conn.execute(
            sa.select(sa.func.count())
            .select_from(follows)
            .where(f.customer_id == customer_id, f.status == FollowStatus.ENDED, f.ended_by == EndedBy.CUSTOMER)
        )
    ).scalar_one()
    outreach = (
        await conn.execute(
            sa.select(sa.func.max(a.msgtime)).where(a.customer_id == customer_id, a.action == "send", a.roomid == "", ~_external(a.from_id))
        )
    ).scalar()
    times = [t for t in (stored, message_at) if t is not None]
    return ActivityInputs(cust.first_seen_at, max(times) if times else None, last_order, bool(deleted), outreach)


async def touch_customer(
    conn: AsyncConnection,
    dialect: str,
    customer_id: int,
    now: dt.datetime,
    config: ActivityConfig,
    *,
    message_at: dt.datetime | None = None,
) -> str | None:
    """Reclassify one customer now (after a message, an order, a follow change). Idempotent; returns the segment
    (None for an unknown or merged-away customer, whose row is removed)."""
    inputs = await inputs_of(conn, customer_id, message_at=message_at)
    if inputs is None:
        await conn.execute(sa.delete(customer_activity).where(customer_activity.c.customer_id == customer_id))
        return None
    segment = classify(inputs, now, config)
    values = {
        "customer_id": customer_id,
        "segment": segment,
        "last_message_at": inputs.last_message_at,
        "last_order_at": inputs.last_order_at,
        "computed_at": now,
    }
    await conn.execute(upsert(customer_activity, dialect, ["customer_id"], values, ACTIVITY_COLUMNS[1:]))
    return segment


# ---- reading ----------------------------------------------------------------------------------------------
async def activity_counts(conn: AsyncConnection) -> dict[str, int]:
    """Customers per activity segment, all five present (0 when empty)."""
    c = customer_activity.c
    found = {r.segment: int(r.n) for r in await conn.execute(sa.select(c.segment, sa.func.count().label("n")).group_by(c.segment))}
    return {s: found.get(s, 0) for s in SEGMENTS}


async def activity_of(conn: AsyncConnection, customer_id: int) -> dict[str, Any] | None:
    """The stored activity row as JSON-ready values (None when never computed)."""
    row = (await conn.execute(sa.select(customer_activity).where(customer_activity.c.customer_id == customer_id))).first()
    if row is None:
        return None

    def iso(v: dt.datetime | None) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "segment": row.segment,
        "segment_zh": SEGMENT_ZH.get(row.segment, row.segment),
        "last_message_at": iso(row.last_message_at),
        "last_order_at": iso(row.last_order_at),
        "computed_at": iso(row.computed_at),
    }
