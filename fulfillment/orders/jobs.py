"""Fulfilment's scheduled work (thin: the logic is in the services)."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from fulfillment.orders.domain import InvalidTransition
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import orders
from fulfillment.orders.services import cancel_order, confirm_order, expire_drafts
from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.governance.approvals.services import DECIDED as APPROVAL_DECIDED

log = logging.getLogger(__name__)


async def expire_drafts_cron(ctx: JobContext) -> None:
    expired = await expire_drafts(ctx.rt)
    if expired:
        log.info("expired unconfirmed drafts", extra={"count": expired})


async def move_orders_of_merged_customer(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two customer records turned out to be one person: their orders follow the surviving record."""

    async with rt.db.write() as conn:
        await conn.execute(orders.update().where(orders.c.customer_id == int(payload["from"])).values(customer_id=int(payload["into"])))


async def move_order_on_approval(rt: Runtime, payload: dict[str, Any]) -> None:
    """An order's approval was decided: approved → confirmed (stock allocated now; the credit check still
    applies); rejected or withdrawn → cancelled, the customer told politely and the reason kept on the order.
    A repeat (the order no longer waits) changes nothing."""
    if payload.get("doc_type") != "order":
        return
    async with rt.db.read() as conn:
        found = (await conn.execute(sa.select(orders.c.id, orders.c.status).where(orders.c.number == str(payload["doc_ref"])))).first()
    if found is None or found.status != S.PENDING_APPROVAL:
        return
    actor = f"approval:{payload['approval_id']}"
    try:
        if payload["status"] == "approved":
            await confirm_order(rt, int(found.id), actor=actor, approved=True)
        else:
            comment = str(payload.get("comment") or "")
            reason = ("审批未通过" if payload["status"] == "rejected" else "审批已撤销") + (f"：{comment}" if comment else "")
            await cancel_order(rt, int(found.id), actor=actor, reason=reason, rejected=True)
    except InvalidTransition:  # cancelled or confirmed by someone else meanwhile: nothing left to move
        log.info("approval decided for an order that moved meanwhile", extra={"order": payload["doc_ref"]})


CRONS = [
    CronSpec("expire_drafts", expire_drafts_cron, second=15),
]

HANDLERS = [
    Handles("customer.merged", move_orders_of_merged_customer),
    Handles(APPROVAL_DECIDED, move_order_on_approval),
]
