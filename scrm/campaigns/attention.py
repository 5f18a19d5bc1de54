"""Campaign work that stopped and needs a person (营销待办): a broadcast that failed, a coupon distribution that
could not run. Written as an outbox row in the transaction that records the failure on the item, so the alert
cannot be lost or sent for a failure that was rolled back; the channel package (bots.notices) turns it into an
app message to operations. ``key`` names the failure, so one failure alerts once however often it is seen."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import outbox

ATTENTION_TOPIC = "campaigns.attention"  # {"message": Chinese text for staff, "key": one failure's name}


async def raise_attention(conn: AsyncConnection, *, message: str, key: str, now: dt.datetime) -> None:
    """Queue an alert to operations in the caller's transaction."""
    await outbox.add(conn, ATTENTION_TOPIC, {"message": message, "key": key}, now)
