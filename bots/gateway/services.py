"""Storing inbound traffic: the raw event, its normalised record and the outbox row, in one transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bots.gateway.domain import Inbound
from bots.gateway.models import inbound_events
from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)

TOPIC = "inbound.received"


@dataclass(frozen=True)
class Stored:
    inbound_id: int | None  # None when it was a duplicate
    outbox_id: int | None

    @property
    def duplicate(self) -> bool:
        return self.inbound_id is None


async def insert_inbound(conn: AsyncConnection, dialect: str, item: Inbound, rt: Runtime) -> Stored:
    """Insert in the caller's transaction; a duplicate (same channel + dedupe key) inserts nothing."""
    now = rt.clock.now()
    stmt = insert_ignore(inbound_events, dialect).values(**item.row(now)).returning(inbound_events.c.id)
    inserted = (await conn.execute(stmt)).scalar()
    if inserted is None:
        return Stored(None, None)
    if item.is_unknown:
        log.warning(
            "unknown inbound kind stored",
            extra={"channel": item.channel, "inbound_id": inserted, "msg_type": item.msg_type, "event": item.event},
        )
        return Stored(int(inserted), None)
    oid = await outbox.add(conn, TOPIC, {"inbound_id": int(inserted)}, now, kicked=True)
    return Stored(int(inserted), oid)


async def store_inbound(rt: Runtime, item: Inbound) -> Stored:
    """Store one inbound item durably and queue its processing. Idempotent on (channel, dedupe_key)."""
    async with rt.db.write() as conn:
        stored = await insert_inbound(conn, rt.db.dialect, item, rt)
    if stored.outbox_id is not None:
        await outbox.kick(rt, [stored.outbox_id])
    return stored


async def mark_processed(conn: AsyncConnection, inbound_id: int, rt: Runtime, status: str = "processed", note: str | None = None) -> None:
    await conn.execute(
        sa.update(inbound_events).where(inbound_events.c.id == inbound_id).values(status=status, processed_at=rt.clock.now(), note=note)
    )
