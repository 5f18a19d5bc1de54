"""The audit trail's scheduled work: retention (rows older than ``audit_retention_days`` leave, and only those)."""

from __future__ import annotations

import datetime as dt
import logging

from scrm.core import audit
from scrm.core.jobs import CronSpec, JobContext

log = logging.getLogger(__name__)


async def audit_retention_cron(ctx: JobContext) -> None:
    """Daily at 03:17: delete audit rows older than the retention the settings give (0 = keep for ever)."""
    days = ctx.rt.settings.audit_retention_days
    if days <= 0:
        return
    async with ctx.rt.db.write() as conn:
        removed = await audit.purge_before(conn, ctx.rt.clock.now() - dt.timedelta(days=days))
    if removed:
        log.info("audit rows past retention removed", extra={"removed": removed, "retention_days": days})


CRONS = [CronSpec("audit_retention", audit_retention_cron, hour=3, minute=17, second=0)]
