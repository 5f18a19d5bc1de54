"""What the chat-archive capability runs in the background (registered explicitly; the composition root reads
these)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.crm.archive.models import archive_messages
from scrm.crm.customers.services import MERGED_TOPIC


async def on_customer_merged(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two customer records turned out to be one person: archived messages follow the surviving record."""
    async with rt.db.write() as conn:
        await conn.execute(
            sa.update(archive_messages)
            .where(archive_messages.c.customer_id == int(payload["from"]))
            .values(customer_id=int(payload["into"]))
        )


HANDLERS = [Handles(MERGED_TOPIC, on_customer_merged)]
