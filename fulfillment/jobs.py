"""Fulfilment's scheduled work (thin: the logic is in the services)."""

from __future__ import annotations

import logging

from fulfillment.orders import expire_drafts
from scrm.core.jobs import JobContext, cron

log = logging.getLogger(__name__)


@cron("expire_drafts", second=15)
async def expire_drafts_cron(ctx: JobContext) -> None:
    expired = await expire_drafts(ctx.rt)
    if expired:
        log.info("expired unconfirmed drafts", extra={"count": expired})
