"""What the tags capability runs in the background (registered explicitly; the composition root reads these)."""

from __future__ import annotations

from typing import Any

from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import MERGED_TOPIC
from scrm.crm.tags.services import move_tags_of_merged_customer


async def on_customer_merged(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two customer records turned out to be one person: the tags follow the surviving record."""
    async with rt.db.write() as conn:
        await move_tags_of_merged_customer(conn, int(payload["from"]), int(payload["into"]))


HANDLERS = [Handles(MERGED_TOPIC, on_customer_merged)]
