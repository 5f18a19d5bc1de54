"""Fulfilment's scheduled work (thin: the logic is in the services)."""

from __future__ import annotations

import logging
from typing import Any

from fulfillment.orders.models import orders
from fulfillment.orders.services import expire_drafts
from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)


async def expire_drafts_cron(ctx: JobContext) -> None:
    expired = await expire_drafts(ctx.rt)
    if expired:
        log.info("expired unconfirmed drafts", extra={"count": expired})


async def move_orders_of_merged_customer(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two customer records turned out to be one person: their orders follow the surviving record."""

    async with rt.db.write() as conn:
        await conn.execute(orders.update().where(orders.c.customer_id == int(payload["from"])).values(customer_id=int(payload["into"])))


CRONS = [
    CronSpec("expire_drafts", expire_drafts_cron, second=15),
]

HANDLERS = [
    Handles("customer.merged", move_orders_of_merged_customer),
]
