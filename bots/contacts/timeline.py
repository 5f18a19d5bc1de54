"""Feeds the customer timeline from events other packages publish: chat messages and order steps.

Fulfilment may not import scrm, so its news reaches the timeline here, through the outbox topics it already
writes. Every entry's ref names the fact, so a handler run twice adds nothing twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bots.gateway.models import inbound_events
from fulfillment.billing.models import payments
from fulfillment.orders.queries import get_order
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import find_customer, resolve_customer
from scrm.crm.timeline.services import Kind, add_entry

# Which inbound kinds are a customer's conversation, and who spoke.
CONVERSATION = {
    ("kf", "kf.customer.text"): ("external_userid", "客户"),
    ("kf", "kf.servicer.text"): ("external_userid", "客服"),
    ("mp", "message.text"): ("openid", "客户"),
}


async def message_to_timeline(rt: Runtime, payload: dict[str, Any]) -> None:
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(inbound_events).where(inbound_events.c.id == int(payload["inbound_id"])))).first()
    if row is None or (row.channel, row.kind) not in CONVERSATION:
        return
    kind, speaker = CONVERSATION[(row.channel, row.kind)]
    identity = row.external_userid if kind == "external_userid" else row.from_user
    async with rt.db.write() as conn:
        customer_id = await find_customer(conn, kind, identity) if identity else None
        if customer_id is None:
            return
        channel = "微信客服" if row.channel == "kf" else "公众号"
        await add_entry(
            conn,
            rt.db.dialect,
            customer_id=await resolve_customer(conn, customer_id),
            at=row.occurred_at,
            kind=Kind.MESSAGE,
            title=f"{speaker}（{channel}）",
            body=row.content[:2000],
            ref=f"inbound:{row.id}",
            data={"channel": row.channel, "speaker": speaker},
        )


async def _order_entry(rt: Runtime, order_id: int, title: str, ref_suffix: str, body: str = "") -> None:
    order = await get_order(rt, order_id)
    async with rt.db.write() as conn:
        await add_entry(
            conn,
            rt.db.dialect,
            customer_id=await resolve_customer(conn, order.customer_id),
            at=rt.clock.now(),
            kind=Kind.ORDER,
            title=title.format(number=order.number, total=format_fen(order.total_fen)),
            body=body,
            ref=f"order:{order.number}:{ref_suffix}",
            data={"number": order.number, "status": order.status},
        )


async def order_confirmed(rt: Runtime, payload: dict[str, Any]) -> None:
    await _order_entry(rt, int(payload["order_id"]), "下单 {number}，{total}", "confirmed")


async def order_shipped(rt: Runtime, payload: dict[str, Any]) -> None:
    await _order_entry(rt, int(payload["order_id"]), "订单 {number} 发货", f"shipped:{payload['shipment']}", str(payload["shipment"]))


async def order_delivered(rt: Runtime, payload: dict[str, Any]) -> None:
    await _order_entry(rt, int(payload["order_id"]), "订单 {number} 签收", f"delivered:{payload['shipment']}")


async def order_cancelled(rt: Runtime, payload: dict[str, Any]) -> None:
    await _order_entry(rt, int(payload["order_id"]), "订单 {number} 取消", "cancelled", str(payload.get("reason") or ""))


async def payment_recorded(rt: Runtime, payload: dict[str, Any]) -> None:

    async with rt.db.write() as conn:
        p = (await conn.execute(sa.select(payments).where(payments.c.id == int(payload["payment_id"])))).first()
        if p is None:
            return
        await add_entry(
            conn,
            rt.db.dialect,
            customer_id=await resolve_customer(conn, int(p.customer_id)),
            at=p.received_at,
            kind=Kind.PAYMENT,
            title=f"收款 {format_fen(int(p.amount_fen))}",
            body=p.note,
            ref=f"payment:{p.reference}"[:96],
            data={"reference": p.reference, "method": p.method, "amount_fen": int(p.amount_fen)},
        )
