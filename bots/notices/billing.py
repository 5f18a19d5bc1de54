"""Billing notices: dunning reminders to the customer (on the channel that can reach them) and to the order's
salesperson, credit-hold alerts, and finance to-dos. Texts are config/notices.toml sections.

Handlers may run twice: every send carries an idempotency key (invoice + level, order number …), so a repeat sends
nothing new."""

from __future__ import annotations

from typing import Any

from bots.notices.orders import alert_staff, notify_customer
from fulfillment.billing import receivables
from fulfillment.orders import notices
from fulfillment.orders.queries import get_order
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime

CHANNEL_ZH = {"kf": "微信客服", "mp_template": "公众号模板消息", "msg_template": "待您在企业微信确认发送", "none": "未能触达客户"}


def _staff(rt: Runtime, salesperson_userid: str) -> list[str]:
    """The order's salesperson; without one, operations staff (someone must hear about money)."""
    return [salesperson_userid] if salesperson_userid else rt.settings.ops_userid_list


async def on_dunning(rt: Runtime, payload: dict[str, Any]) -> None:
    """Send one dunning level of one invoice: to the customer, then tell the salesperson how it went."""
    invoice_id, level = int(payload["invoice_id"]), str(payload["level"])
    notice = await receivables.dunning_notice(rt, invoice_id, level)
    if notice is None:  # paid or voided since the cron queued it
        await receivables.record_dunning_channel(rt, invoice_id, level, "cancelled")
        return
    values = {
        "invoice": notice.invoice_number,
        "order": notice.order_number,
        "total": format_fen(notice.total_fen),
        "balance": format_fen(notice.balance_fen),
        "due_on": notice.due_on.isoformat(),
        "days_left": max(-notice.days_past_due, 0),
        "days_overdue": max(notice.days_past_due, 0),
    }
    key = f"dunning:{notice.invoice_number}:{level}"
    channel = await notify_customer(
        rt,
        customer_id=notice.customer_id,
        text=notices.render(notice.template, **values),
        key=key,
        salesperson_userid=notice.salesperson_userid,
        purpose="dunning",
    )
    await receivables.record_dunning_channel(rt, invoice_id, level, channel)
    staff_text = notices.render(
        "dunning_staff_alert", customer=f"客户#{notice.customer_id}", level=level, channel=CHANNEL_ZH.get(channel, channel), **values
    )
    await alert_staff(rt, userids=_staff(rt, notice.salesperson_userid), text=staff_text, key=f"{key}:staff")


async def on_credit_hold(rt: Runtime, payload: dict[str, Any]) -> None:
    """An order went on credit hold: the salesperson hears why (finance releases it in the console)."""
    order = await get_order(rt, int(payload["order_id"]))
    text = notices.render(
        "credit_hold_alert",
        customer=f"客户#{order.customer_id}",
        number=order.number,
        total=format_fen(int(payload["total_fen"])),
        receivables=format_fen(int(payload["receivables_fen"])),
        open_orders=format_fen(int(payload["open_orders_fen"])),
        credit=format_fen(int(payload["credit_fen"])),
        limit=format_fen(int(payload["limit_fen"] or 0)),
    )
    await alert_staff(rt, userids=_staff(rt, order.salesperson_userid), text=text, key=f"credit-hold:{order.number}")


async def on_attention(rt: Runtime, payload: dict[str, Any]) -> None:
    """Something finance must look at (e.g. a cancelled shipment whose invoice already has money on it)."""
    text = notices.render("billing_attention", message=str(payload["message"]))
    await alert_staff(rt, userids=rt.settings.ops_userid_list, text=text, key=f"billing-attention:{payload['key']}")


async def on_campaign_attention(rt: Runtime, payload: dict[str, Any]) -> None:
    """Campaign work that stopped (a failed broadcast, a coupon distribution that could not run): tell operations."""
    text = notices.render("campaign_attention", message=str(payload["message"]))
    await alert_staff(rt, userids=rt.settings.ops_userid_list, text=text, key=f"campaign-attention:{payload['key']}")
