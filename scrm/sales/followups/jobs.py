"""Follow-ups' scheduled work: hourly in business hours (09:00–18:00 Asia/Shanghai), queue reminders of what is due;
and a customer handed over (交接) takes their open next-contacts to the new salesperson."""

from __future__ import annotations

import logging
from typing import Any

from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.sales.followups.services import move_customer_follow_ups, pool_idle_customers, queue_due_reminders
from scrm.sales.handover.services import TRANSFERRED

log = logging.getLogger(__name__)

BUSINESS_HOURS_UTC = set(range(1, 11))  # 09:00–18:00 in Asia/Shanghai (UTC+8, no daylight saving)


async def follow_up_reminders_cron(ctx: JobContext) -> None:
    queued = await queue_due_reminders(ctx.rt)
    if queued:
        log.info("follow-up reminders queued", extra={"follow_ups": queued})


async def on_customer_transferred(rt: Runtime, payload: dict[str, Any]) -> None:
    async with rt.db.write() as conn:
        await move_customer_follow_ups(
            conn, customer_id=int(payload["customer_id"]), frm=str(payload["from_userid"]), to=str(payload["to_userid"])
        )


async def customer_pool_cron(ctx: JobContext) -> None:
    """Nightly at 02:31 (Asia/Shanghai): customers nobody followed up for the pool's customer period go to the pool."""
    pooled = await pool_idle_customers(ctx.rt)
    if pooled:
        log.info("customers returned to the pool", extra={"customers": pooled})


CRONS = [
    CronSpec("follow_ups.customer_pool", customer_pool_cron, hour=18, minute=31, second=0),
    CronSpec("follow_ups.remind", follow_up_reminders_cron, hour=BUSINESS_HOURS_UTC, minute=3, second=0),
]
HANDLERS = [Handles(TRANSFERRED, on_customer_transferred)]
