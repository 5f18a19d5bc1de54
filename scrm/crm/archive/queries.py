"""Reads of stored chat-archive records for other capabilities."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.archive.models import archive_messages
from scrm.crm.archive.services import is_external


@dataclass(frozen=True)
class OneToOne:
    """A stored 1:1 record between a member and a customer."""

    customer_id: int
    member: str  # the WeCom member in the conversation
    direction: str  # in: the customer wrote; out: the member did
    text: str


async def one_to_one(conn: AsyncConnection, msgid: str) -> OneToOne | None:
    """The record ``msgid`` if it is a 1:1 message between a member and a customer (else None: a group, a switch)."""
    row = (await conn.execute(sa.select(archive_messages).where(archive_messages.c.msgid == msgid))).first()
    if row is None or row.roomid or row.customer_id is None or row.action == "switch":
        return None
    members = [m for m in [row.from_id, *row.tolist] if m and not is_external(m)]
    if not members:
        return None
    direction = "in" if is_external(row.from_id) else "out"
    return OneToOne(int(row.customer_id), members[0], direction, row.content or "")
