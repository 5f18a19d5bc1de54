"""Repurchase alerts' background work (thin: the logic is in the services): the nightly recompute, an order's
incremental one, and the moves a handover or a merge of customer records calls for."""

from __future__ import annotations

import logging
from typing import Any

from fulfillment.orders.queries import PURCHASED, get_order
from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.sales.handover.services import TRANSFERRED
from scrm.sales.repurchase import services

log = logging.getLogger(__name__)


async def nightly_recompute(ctx: JobContext) -> None:
    """Hourly tick; the first one of each business day recomputes everything (several workers: one tick runs)."""
    report = await services.recompute_if_due(ctx.rt)
    if report is not None:
        log.info(
            "repurchase predictions recomputed",
            extra={"predictions": report.predictions, "opened": report.opened, "closed": report.closed, "superseded": report.superseded},
        )


async def on_order_confirmed(rt: Runtime, payload: dict[str, Any]) -> None:
    """A purchase: its SKUs' open alerts of this customer are done (the customer came back), and the customer's
    predictions move to the new cycle. A repeat closes nothing more and raises nothing new."""
    order = await get_order(rt, int(payload["order_id"]))
    if order.status not in PURCHASED or order.confirmed_at is None:
        return  # cancelled meanwhile
    await services.close_on_repurchase(
        rt, customer_id=order.customer_id, skus=[ln.sku for ln in order.lines], bought_at=order.confirmed_at, number=order.number
    )
    await services.recompute(rt, [order.customer_id])


async def on_customer_transferred(rt: Runtime, payload: dict[str, Any]) -> None:
    """A handover: the customer's open alerts follow them to the new salesperson."""
    moved = await services.move_to_owner(
        rt, customer_id=int(payload["customer_id"]), from_userid=str(payload["from_userid"]), to_userid=str(payload["to_userid"])
    )
    if moved:
        log.info("repurchase alerts moved on handover", extra={"customer_id": payload["customer_id"], "moved": moved})


async def on_customer_merged(rt: Runtime, payload: dict[str, Any]) -> None:
    await services.forget_merged(rt, from_id=int(payload["from"]))
    await services.recompute(rt, [int(payload["into"])])


CRONS = [CronSpec("repurchase_recompute", nightly_recompute, minute=23, second=0)]

HANDLERS = [
    Handles("order.confirmed", on_order_confirmed),
    Handles(TRANSFERRED, on_customer_transferred),
    Handles("customer.merged", on_customer_merged),
]
