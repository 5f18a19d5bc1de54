"""Billing's reactions to fulfilment events and its scheduled work (thin: the logic is in the services).

Every handler may run more than once; the services they call are idempotent (one invoice per shipment / order,
one void, each dunning level once)."""

from __future__ import annotations

import logging
from typing import Any

from fulfillment.billing.domain import NotOnHold
from fulfillment.billing.invoices import invoice_order, invoice_shipment, void_order_invoices, void_shipment_invoice
from fulfillment.billing.payments import refund_credit
from fulfillment.billing.receivables import release_hold, run_dunning
from fulfillment.billing.services import billing_config, merge_customer_billing
from scrm.core.clock import local
from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.governance.approvals.services import DECIDED as APPROVAL_DECIDED
from scrm.governance.approvals.services import get_approval

log = logging.getLogger(__name__)


async def invoice_on_shipment(rt: Runtime, payload: dict[str, Any]) -> None:
    """Goods left: invoice exactly what the shipment sent (setting invoice_on = "shipment")."""
    if billing_config(rt).invoice_on != "shipment":
        return
    invoice = await invoice_shipment(rt, int(payload["order_id"]), str(payload["shipment"]))
    if invoice is not None:
        log.info("invoice issued", extra={"invoice": invoice.number, "shipment": payload["shipment"]})


async def invoice_on_confirmation(rt: Runtime, payload: dict[str, Any]) -> None:
    """An order was confirmed: invoice the whole order (setting invoice_on = "confirmation")."""
    if billing_config(rt).invoice_on != "confirmation":
        return
    invoice = await invoice_order(rt, int(payload["order_id"]))
    if invoice is not None:
        log.info("invoice issued", extra={"invoice": invoice.number, "order_id": payload["order_id"]})


async def void_invoice_of_cancelled_shipment(rt: Runtime, payload: dict[str, Any]) -> None:
    """A shipment was cancelled: its unpaid invoice is voided; a paid one is flagged for finance."""
    outcome = await void_shipment_invoice(rt, str(payload["shipment"]), f"发货单 {payload['shipment']} 已取消")
    log.info("shipment cancelled: invoice checked", extra={"shipment": payload["shipment"], "outcome": outcome})


async def void_invoices_of_cancelled_order(rt: Runtime, payload: dict[str, Any]) -> None:
    """An order invoiced at confirmation was cancelled: its unpaid invoice is voided; a paid one is flagged.
    (A second handler of order.cancelled next to the customer notice; shipment invoices cannot exist here, since
    only orders nothing of which shipped can be cancelled.)"""
    outcomes = await void_order_invoices(rt, int(payload["order_id"]), "订单已取消")
    if outcomes:
        log.info("order cancelled: invoices checked", extra={"order_id": payload["order_id"], "outcomes": outcomes})


async def move_billing_of_merged_customer(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two customer records are one person: invoices, payments and credit follow the surviving record."""
    await merge_customer_billing(rt, int(payload["from"]), int(payload["into"]))


async def dunning_cron(ctx: JobContext) -> None:
    """Hourly; sends only within the configured local hours (nobody gets a payment reminder at 3 a.m.)."""
    start, end = billing_config(ctx.rt).dunning_hours
    if not start <= local(ctx.rt.clock.now()).hour < end:
        return
    run = await run_dunning(ctx.rt)
    if run.sent or run.skipped:
        log.info("dunning queued", extra={"sent": run.sent, "skipped": run.skipped})


async def release_on_approval(rt: Runtime, payload: dict[str, Any]) -> None:
    """A credit release was approved: the held order is confirmed now. (Rejected: it stays on hold; the requester
    hears why.) A repeat, or an order cancelled meanwhile, changes nothing."""
    if payload.get("doc_type") != "credit_release" or payload.get("status") != "approved":
        return
    try:
        await release_hold(rt, str(payload["doc_ref"]), actor=f"approval:{payload['approval_id']}")
    except NotOnHold:
        log.info("approved credit release for an order no longer on hold", extra={"order": payload["doc_ref"]})


async def refund_on_approval(rt: Runtime, payload: dict[str, Any]) -> None:
    """A refund was approved: the credit is paid out now (idempotent by its reference). Rejected: nothing is paid;
    the requester hears why."""
    if payload.get("doc_type") != "refund" or payload.get("status") != "approved":
        return
    approval = await get_approval(rt, int(payload["approval_id"]))
    facts = approval.facts
    await refund_credit(
        rt, int(facts["customer_id"]), int(facts["amount_fen"]), str(facts["reference"]), actor=f"approval:{payload['approval_id']}"
    )


HANDLERS = [
    Handles("billing.shipment_invoiceable", invoice_on_shipment),
    Handles("billing.order_confirmed", invoice_on_confirmation),
    Handles("billing.shipment_cancelled", void_invoice_of_cancelled_shipment),
    Handles("order.cancelled", void_invoices_of_cancelled_order),
    Handles("customer.merged", move_billing_of_merged_customer),
    Handles(APPROVAL_DECIDED, release_on_approval),
    Handles(APPROVAL_DECIDED, refund_on_approval),
]

CRONS = [
    CronSpec("billing_dunning", dunning_cron, minute=7, second=0),
]
