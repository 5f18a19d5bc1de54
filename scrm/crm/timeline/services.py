"""The customer timeline: every package writes its entries here; the customer 360 reads them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.db import insert_ignore
from scrm.crm.timeline.models import timeline


class Kind:
    MESSAGE = "message"
    EVENT = "event"
    ORDER = "order"
    PAYMENT = "payment"
    TAG = "tag"
    COUPON = "coupon"
    NOTE = "note"
    GROUP = "group"


@dataclass(frozen=True)
class Entry:
    id: int
    at: dt.datetime
    kind: str
    title: str
    body: str
    ref: str
    data: dict[str, Any]


async def add_entry(
    conn: AsyncConnection,
    dialect: str,
    *,
    customer_id: int,
    at: dt.datetime,
    kind: str,
    title: str,
    ref: str,
    body: str = "",
    data: dict[str, Any] | None = None,
) -> bool:
    """Add an entry in the caller's transaction. ``ref`` names what it is about and is unique per customer, so
    the same fact recorded twice (a re-run job, a duplicate callback) appears once. Returns True if added."""
    result = await conn.execute(
        insert_ignore(timeline, dialect)
        .values(customer_id=customer_id, at=at, kind=kind, title=title[:200], body=body, ref=ref[:96], data=data or {})
        .returning(timeline.c.id)
    )
    return result.scalar() is not None


async def entries(
    conn: AsyncConnection, customer_id: int, *, limit: int = 50, before: dt.datetime | None = None, kinds: list[str] | None = None
) -> list[Entry]:
    """Newest first."""
    q = sa.select(timeline).where(timeline.c.customer_id == customer_id)
    if before is not None:
        q = q.where(timeline.c.at < before)
    if kinds:
        q = q.where(timeline.c.kind.in_(kinds))
    rows = await conn.execute(q.order_by(timeline.c.at.desc(), timeline.c.id.desc()).limit(limit))
    return [Entry(int(r.id), r.at, r.kind, r.title, r.body, r.ref, dict(r.data)) for r in rows]
