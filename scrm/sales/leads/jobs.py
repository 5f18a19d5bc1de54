"""Leads' scheduled work and event handlers: the pool takes back leads nobody followed up (hourly), and a customer
handed over (交接) takes their open leads to the new salesperson."""

from __future__ import annotations

import logging
from typing import Any

from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.crm.archive.queries import one_to_one
from scrm.crm.archive.services import TOPIC as ARCHIVE_TOPIC
from scrm.sales.handover.services import TRANSFERRED
from scrm.sales.leads.domain import LeadSource
from scrm.sales.leads.ownership import move_customer_leads, return_stale_leads
from scrm.sales.leads.services import NewLead, newcomer_lead

log = logging.getLogger(__name__)


async def return_to_pool_cron(ctx: JobContext) -> None:
    """Hourly at :07 — open leads past their return period go back to the pool."""
    returned = await return_stale_leads(ctx.rt)
    if returned:
        log.info("leads returned to the pool", extra={"returned": returned})


async def on_customer_transferred(rt: Runtime, payload: dict[str, Any]) -> None:
    async with rt.db.write() as conn:
        await move_customer_leads(
            conn,
            customer_id=int(payload["customer_id"]),
            frm=str(payload["from_userid"]),
            to=str(payload["to_userid"]),
            now=rt.clock.now(),
            why=f"客户交接（{'离职继承' if payload.get('kind') == 'resigned' else '在职转接'}）",
        )


CRONS = [CronSpec("leads.return_to_pool", return_to_pool_cron, minute=7, second=0)]


async def on_archive_message(rt: Runtime, payload: dict[str, Any]) -> None:
    """A customer who just reached us writes to a member (a 1:1 record in the chat archive): their lead, the member's."""
    async with rt.db.write() as conn:
        talk = await one_to_one(conn, str(payload["msgid"]))
        if talk is None or talk.direction != "in":  # the customer speaking to us, not our outreach
            return
        first = NewLead(
            source=LeadSource.ARCHIVE,
            customer_id=talk.customer_id,
            owner=talk.member,
            remark=talk.text.strip()[:200],
            source_ref="会话存档",
        )
        await newcomer_lead(conn, first, rt.clock.now(), owner_checked=True)


HANDLERS = [Handles(TRANSFERRED, on_customer_transferred), Handles(ARCHIVE_TOPIC, on_archive_message)]
