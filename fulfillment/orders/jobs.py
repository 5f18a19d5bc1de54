"""Fulfilment's scheduled work (thin: the logic is in the services)."""

from __future__ import annotations

import logging
from typing import Any

from fulfillment.orders.services import expire_drafts
from scrm.core import outbox
from scrm.core.jobs import JobContext, cron
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)


@cron("expire_drafts", second=15)
async def expire_drafts_cron(ctx: JobContext) -> None:
    expired = await expire_drafts(ctx.rt)
    if expired:
        log.info("expired unconfirmed drafts", extra={"count": expired})


@outbox.handles("customer.merged")
async def move_orders_of_merged_customer(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two customer records turned out to be one person: their orders follow the surviving record."""
    from fulfillment.orders.models import orders

    async with rt.db.write() as conn:
        await conn.execute(orders.update().where(orders.c.customer_id == int(payload["from"])).values(customer_id=int(payload["into"])))
