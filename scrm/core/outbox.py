"""Transactional outbox: a state change and the news of it are written in one transaction.

Writers call :func:`add` inside their write transaction. The row becomes a ``dispatch_outbox`` job (job id =
``outbox:<id>``) either at once, by :func:`kick` after commit, or by the relay (:func:`relay_once`), which sweeps
rows that are not done. Handlers are registered per topic and must be idempotent: a row may be handled more than
once (crash between handling and marking done), never zero times while the database keeps it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime
from scrm.core.jobs import JobContext, JobSpec, OutboxHandler

if TYPE_CHECKING:
    from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)


class OutboxMessage(Model, table=True):
    """A news item written with a state change (事务发件箱), dispatched to its topic's handlers."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    topic: str = Field(sa_type=sa.String(64))
    payload: dict[str, Any] = Field(sa_type=JSON)
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    # When the relay may (re)dispatch the row: first shortly after creation (the fast path usually wins),
    # then after a lease, so a job lost with a crashed process runs again.
    next_attempt_at: dt.datetime = Field(sa_type=UTCDateTime())
    attempts: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    done_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    failed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, sa_type=sa.Text())

    __table_args__ = (sa.Index("ix_outbox_pending", "done_at", "failed_at", "next_attempt_at"),)


outbox: sa.Table = OutboxMessage.__table__

FAST_PATH_GRACE = dt.timedelta(seconds=10)
RELAY_LEASE = dt.timedelta(seconds=60)
JOB_NAME = "dispatch_outbox"

Handler = OutboxHandler


@dataclass(frozen=True)
class Handles:
    """A capability's handler of one topic, listed in its ``jobs.py`` ``HANDLERS``. Several capabilities may handle
    one topic (an order shipped: the customer is told, billing invoices it); they run in the order the composition
    root lists the capabilities, and when one fails the row is retried as a whole, so each must be idempotent — the
    rule for every handler anyway."""

    topic: str
    func: Handler


async def add(conn: AsyncConnection, topic: str, payload: dict[str, Any], now: dt.datetime, *, kicked: bool = False) -> int:
    """Write an outbox row in the caller's transaction; returns its id.

    ``kicked=True``: the caller enqueues it right after commit (:func:`kick`), so the relay waits a grace period
    before sweeping it; otherwise the relay dispatches it on its next pass (about a second)."""
    due = now + FAST_PATH_GRACE if kicked else now
    result = await conn.execute(
        outbox.insert().values(topic=topic, payload=payload, created_at=now, next_attempt_at=due).returning(outbox.c.id)
    )
    return int(result.scalar_one())


async def add_many(conn: AsyncConnection, rows: list[tuple[str, dict[str, Any]]], now: dt.datetime) -> list[int]:
    """Several outbox rows ``[(topic, payload), …]`` in one multi-row insert (the caller's transaction); their ids
    in the given order. The same as calling :func:`add` for each, one statement instead of several."""
    if not rows:
        return []
    result = await conn.execute(
        outbox.insert().returning(outbox.c.id, sort_by_parameter_order=True),
        [{"topic": topic, "payload": payload, "created_at": now, "next_attempt_at": now} for topic, payload in rows],
    )
    return [int(i) for i in result.scalars().all()]


def _jobs(outbox_ids: list[int]) -> list[tuple[str, tuple[Any, ...]]]:
    return [(f"outbox:{oid}", (oid,)) for oid in outbox_ids]


async def kick(rt: Runtime, outbox_ids: list[int]) -> None:
    """After commit: enqueue the rows now, all in one call (one round trip on Redis). Failure is fine (Redis down):
    the relay picks them up after the grace period."""
    if not outbox_ids:
        return
    try:
        await rt.jobs.enqueue_many(JOB_NAME, _jobs(outbox_ids))
    except Exception as exc:
        log.warning("outbox fast path failed, relay will retry", extra={"outbox_ids": outbox_ids[:20], "error": str(exc)})


async def relay_once(rt: Runtime, limit: int = 500) -> int:
    """Dispatch due rows; returns how many were enqueued. Safe to run in several processes at once."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        query = (
            sa.select(outbox.c.id)
            .where(outbox.c.done_at.is_(None), outbox.c.failed_at.is_(None), outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if rt.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = [row.id for row in await conn.execute(query)]
        if ids:
            await conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(next_attempt_at=now + RELAY_LEASE))
    if not ids:
        return 0
    try:
        await rt.jobs.enqueue_many(JOB_NAME, _jobs(ids))
    except Exception as exc:
        # Some may be queued already; the job ids make the next pass's enqueue of those a no-op.
        log.warning("relay could not enqueue; will retry", extra={"outbox_ids": ids[:20], "error": str(exc)})
        async with rt.db.write() as conn:
            await conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(next_attempt_at=now))
        return 0
    return len(ids)


async def dispatch(rt: Runtime, outbox_id: int, *, final_try: bool) -> None:
    """Run the handler of one row and mark it done. On error: re-raise (the job layer retries); on the final try
    the row is marked failed with the error, so it is visible rather than retried forever."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(outbox).where(outbox.c.id == outbox_id))).first()
    if row is None or row.done_at is not None or row.failed_at is not None:
        return
    handlers = rt.registry.handlers_for(row.topic)
    try:
        if not handlers:
            raise LookupError(f"no handler for outbox topic {row.topic!r}")
        for handler in handlers:
            await handler(rt, dict(row.payload))
    except Exception as exc:
        values: dict[str, Any] = {"attempts": outbox.c.attempts + 1, "last_error": f"{type(exc).__name__}: {exc}"}
        if final_try or not handlers:
            values["failed_at"] = rt.clock.now()
        async with rt.db.write() as conn:
            await conn.execute(outbox.update().where(outbox.c.id == outbox_id).values(**values))
        log.error("outbox handler failed", extra={"outbox_id": outbox_id, "topic": row.topic, "error": str(exc)})
        if not handlers:
            return
        raise
    async with rt.db.write() as conn:
        await conn.execute(
            outbox.update().where(outbox.c.id == outbox_id).values(done_at=rt.clock.now(), attempts=outbox.c.attempts + 1, last_error=None)
        )


async def pending_count(rt: Runtime) -> int:
    async with rt.db.read() as conn:
        q = sa.select(sa.func.count()).where(outbox.c.done_at.is_(None), outbox.c.failed_at.is_(None))
        return int((await conn.execute(q)).scalar_one())


async def relay_forever(rt: Runtime) -> None:
    """The relay loop run by the serving process (in-process jobs) or by each arq worker."""
    while True:
        try:
            await relay_once(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox relay pass failed; retrying")
        await asyncio.sleep(rt.settings.outbox_poll_seconds)


async def dispatch_outbox(ctx: JobContext, outbox_id: int) -> None:
    await dispatch(ctx.rt, outbox_id, final_try=ctx.final_try)


JOBS = [JobSpec(JOB_NAME, dispatch_outbox, max_tries=12, timeout=600)]
