"""Customer and staff notices: outbox events of fulfilment → text → the channel that can reach the person.

Channel choice for a customer (docs/wecom.md, "What this means for notifications"): 微信客服 while its 48 h / 5-message
window is open → the Official Account (template message) → a confirm-to-send task for the salesperson
(``add_msg_template``) plus an app-message alert to them. When nothing can reach the customer the notice is
recorded as skipped with the reason: it never vanishes silently.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from bots.outbound import services as sender
from bots.outbound.client import MP_API, WECOM_API
from bots.outbound.models import OutboundStatus, outbound_messages
from fulfillment.catalog.models import products
from fulfillment.orders import notices
from fulfillment.orders.models import order_lines, shipment_lines, shipments
from fulfillment.orders.queries import OrderView, get_order
from scrm.core.db import insert_ignore
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import identities_of

log = logging.getLogger(__name__)


async def _kf_window_open(rt: Runtime, external_userid: str) -> bool:
    open_kfid = rt.settings.kf_open_kfid
    if not open_kfid or not rt.has(WECOM_API):
        return False
    return await sender.kf_window_reason(rt, open_kfid=open_kfid, external_userid=external_userid) is None


async def record_unreachable(rt: Runtime, *, key: str, customer_id: int | None, text: str, reason: str) -> None:
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(
            insert_ignore(outbound_messages, rt.db.dialect).values(
                idempotency_key=key,
                channel="none",
                purpose="notice",
                recipient=str(customer_id or ""),
                customer_id=customer_id,
                payload={"text": text},
                status=OutboundStatus.SKIPPED,
                error_message=reason,
                created_at=now,
                updated_at=now,
            )
        )
    log.warning("notice could not reach the customer", extra={"key": key, "reason": reason})


async def notify_customer(
    rt: Runtime,
    *,
    customer_id: int,
    text: str,
    key: str,
    salesperson_userid: str = "",
    purpose: str = "notice",
    alert_key: str = "",
) -> str:
    """Deliver ``text`` to the customer on the best channel; returns the channel used (or "none"). ``alert_key``
    keys the salesperson's alert about a confirm-to-send task (default: one per notice); notices of one batch with
    the same text share one, so a salesperson with many such customers is alerted once, not once per customer."""
    async with rt.db.read() as conn:
        ids = await identities_of(conn, customer_id)
    for ext in ids.get("external_userid", []):
        if await _kf_window_open(rt, ext):
            result = await sender.send_kf_text(
                rt,
                open_kfid=rt.settings.kf_open_kfid,
                external_userid=ext,
                text=text,
                key=f"{key}:kf",
                purpose=purpose,
                customer_id=customer_id,
            )
            if result.status == OutboundStatus.SENT:
                return "kf"
    if rt.has(MP_API):
        for openid in ids.get("openid", []):
            result = await sender.send_mp_template(
                rt,
                openid=openid,
                template_id=rt.settings.mp_notice_template_id,
                data={"content": {"value": text}},
                key=f"{key}:mp",
                purpose=purpose,
            )
            if result.status == OutboundStatus.SENT:
                return "mp_template"
    externals = ids.get("external_userid", [])
    if salesperson_userid and externals and rt.has(WECOM_API):
        await sender.create_msg_template_task(
            rt, sender_userid=salesperson_userid, external_userids=externals[:1], text=text, key=f"{key}:task", purpose=purpose
        )
        await sender.send_app_message(
            rt,
            touser=[salesperson_userid],
            key=alert_key or f"{key}:alert",
            purpose="alert",
            text=f"请在企业微信中确认发送给客户的通知：\n{text}",
        )
        return "msg_template"
    await record_unreachable(
        rt,
        key=f"{key}:none",
        customer_id=customer_id,
        text=text,
        reason="no channel reaches this customer (kf window closed, no Official Account, no salesperson)",
    )
    return "none"


async def alert_staff(rt: Runtime, *, userids: list[str], text: str, key: str) -> None:
    if not userids or not rt.has(WECOM_API):
        log.warning("staff alert not sent: no recipients or WeCom not configured", extra={"key": key})
        return
    await sender.send_app_message(rt, touser=userids, text=text, key=key, purpose="alert")


def _lines_text(order: OrderView) -> str:
    return notices.format_lines(order.lines)


async def on_order_confirmed(rt: Runtime, payload: dict[str, Any]) -> None:
    order = await get_order(rt, int(payload["order_id"]))
    text = notices.render("order_confirmed", number=order.number, lines=_lines_text(order), total=format_fen(order.total_fen))
    backordered = payload.get("backordered") or []
    if backordered:
        text += "\n\n" + notices.render("order_backordered", number=order.number, backordered=notices.format_lines(backordered))
    if not payload.get("told_in_chat"):
        await notify_customer(
            rt, customer_id=order.customer_id, text=text, key=f"order:{order.number}:confirmed", salesperson_userid=order.salesperson_userid
        )
    staff = rt.settings.ops_userid_list
    await alert_staff(
        rt,
        userids=staff,
        key=f"order:{order.number}:new",
        text=notices.render(
            "new_order_alert",
            customer=f"客户#{order.customer_id}",
            number=order.number,
            total=format_fen(order.total_fen),
            lines=_lines_text(order),
        ),
    )


async def on_order_shipped(rt: Runtime, payload: dict[str, Any]) -> None:

    order = await get_order(rt, int(payload["order_id"]))
    number = str(payload["shipment"])
    async with rt.db.read() as conn:
        ship = (await conn.execute(sa.select(shipments).where(shipments.c.number == number))).one()
        items = (
            await conn.execute(
                sa.select(order_lines.c.name, order_lines.c.unit, shipment_lines.c.qty)
                .join(order_lines, order_lines.c.id == shipment_lines.c.order_line_id)
                .where(shipment_lines.c.shipment_id == ship.id)
            )
        ).all()
    lines = notices.format_lines([{"name": i.name, "unit": i.unit, "qty": int(i.qty)} for i in items])
    text = notices.render("order_shipped", number=order.number, carrier=ship.carrier, tracking_no=ship.tracking_no, lines=lines)
    await notify_customer(
        rt,
        customer_id=order.customer_id,
        text=text,
        key=f"order:{order.number}:shipped:{number}",
        salesperson_userid=order.salesperson_userid,
    )


async def on_order_delivered(rt: Runtime, payload: dict[str, Any]) -> None:
    order = await get_order(rt, int(payload["order_id"]))
    text = notices.render("order_delivered", number=order.number, shipment=payload["shipment"])
    await notify_customer(
        rt,
        customer_id=order.customer_id,
        text=text,
        key=f"order:{order.number}:delivered:{payload['shipment']}",
        salesperson_userid=order.salesperson_userid,
    )


async def on_order_cancelled(rt: Runtime, payload: dict[str, Any]) -> None:
    order = await get_order(rt, int(payload["order_id"]))
    reason = str(payload.get("reason") or "")
    if payload.get("rejected"):  # not approved: the approver's words are for staff, the customer hears it politely
        text = notices.render("order_rejected", number=order.number)
    else:
        text = notices.render("order_cancelled", number=order.number, reason=f"原因：{reason}。" if reason else "")
    await notify_customer(
        rt, customer_id=order.customer_id, text=text, key=f"order:{order.number}:cancelled", salesperson_userid=order.salesperson_userid
    )


async def on_order_awaiting_approval(rt: Runtime, payload: dict[str, Any]) -> None:
    """An order waits for approval: the customer hears it is received and being checked (unless the chat reply
    already said so)."""
    if payload.get("told_in_chat"):
        return
    order = await get_order(rt, int(payload["order_id"]))
    text = notices.render("order_awaiting_approval", number=order.number, total=format_fen(order.total_fen))
    await notify_customer(
        rt,
        customer_id=order.customer_id,
        text=text,
        key=f"order:{order.number}:awaiting-approval",
        salesperson_userid=order.salesperson_userid,
    )


async def on_backorder_filled(rt: Runtime, payload: dict[str, Any]) -> None:
    order = await get_order(rt, int(payload["order_id"]))
    text = notices.render("backorder_filled", number=order.number, lines=notices.format_lines(payload["lines"]))
    await notify_customer(
        rt,
        customer_id=order.customer_id,
        text=text,
        key=f"order:{order.number}:filled:{payload['ref']}",
        salesperson_userid=order.salesperson_userid,
    )


async def on_stock_low(rt: Runtime, payload: dict[str, Any]) -> None:

    async with rt.db.read() as conn:
        p = (await conn.execute(sa.select(products).where(products.c.id == int(payload["product_id"])))).one()
    if payload.get("reorder_point") is None:  # out of stock or backordered with no reorder point set
        text = notices.render(
            "stock_out", name=p.name, sku=p.sku, unit=p.unit, available=payload["available"], backordered=payload.get("backordered", 0)
        )
    else:
        text = notices.render(
            "stock_low", name=p.name, sku=p.sku, unit=p.unit, available=payload["available"], reorder_point=payload["reorder_point"]
        )
    day = rt.clock.now().date().isoformat()
    await alert_staff(rt, userids=rt.settings.ops_userid_list, text=text, key=f"stock-low:{p.sku}:{day}")
