"""Customer questions about their orders: 我的订单 / 物流 / an order number."""

from __future__ import annotations

import datetime as dt
import re

from bots.dialogue.router import Intent, Reply, Turn
from fulfillment.orders import queries as orders_queries
from fulfillment.orders.domain import STATUS_ZH, OrderNotFound
from fulfillment.orders.queries import OrderView
from scrm.core.clock import local
from scrm.core.money import format_fen

ORDER_NO = re.compile(r"\bso\s*-?\s*(\d{6,})\b", re.IGNORECASE)
ASKS_ORDERS = ("我的订单", "订单", "查订单", "订单状态", "我买的")
ASKS_SHIPPING = ("物流", "快递", "到哪", "发货了吗", "发货没", "运单", "什么时候到", "几时到", "还没到")


_NOT_SHIPPED = ("confirmed", "on_hold", "pending_approval", "pending")


def expected_ship_day(confirmed_at: dt.datetime, cutoff_hour: int) -> dt.date:
    """The day an in-stock order leaves the warehouse: confirmed before the cutoff (Beijing time) → that day, else the next."""
    when = local(confirmed_at)
    return when.date() if when.hour < cutoff_hour else when.date() + dt.timedelta(days=1)


def _day_words(day: dt.date, today: dt.date) -> str:
    ahead = (day - today).days
    if ahead <= 0:
        return "今天"
    if ahead == 1:
        return "明天"
    return f"{day.month}月{day.day}日"


def shipping_answer(order: OrderView, *, now: dt.datetime, cutoff_hour: int) -> str:
    """物流 before anything has shipped: say so, and when it is expected to ship — not the order list again."""
    head = f"您的订单 {order.number} 还没有发货（{STATUS_ZH.get(order.status, order.status)}）。"
    if order.status == "pending":
        return head + "请先回复“确认”下单，确认后我们会尽快备货发出。"
    if order.status in ("on_hold", "pending_approval"):
        return head + "订单正在审核，审核通过后安排发货，届时会通知您运单号。"
    waiting = [ln for ln in order.lines if ln.backordered_qty]
    if waiting:
        names = "、".join(ln.name for ln in waiting)
        return head + f"{names} 暂时缺货，到货后立即发出，发货时会把运单号发给您。"
    day = expected_ship_day(order.confirmed_at or order.created_at, cutoff_hour)
    return head + f"预计{_day_words(day, local(now).date())}发出，发货后会把运单号发给您。"


def describe(order: OrderView, *, detail: bool) -> str:
    when = local(order.created_at).strftime("%m-%d %H:%M")
    head = f"{order.number}（{when}）{STATUS_ZH.get(order.status, order.status)}，{format_fen(order.total_fen)}"
    if not detail:
        tracking = [f"{s.carrier} {s.tracking_no}" for s in order.shipments if s.status != "cancelled"]
        return head + (f"；运单：{'、'.join(tracking)}" if tracking else "")
    lines = [head]
    for ln in order.lines:
        extra = ""
        if ln.shipped_qty:
            extra = f"（已发 {ln.shipped_qty}）"
        elif ln.backordered_qty and order.status not in ("pending", "cancelled", "expired", "on_hold", "pending_approval"):
            extra = f"（缺货 {ln.backordered_qty}，到货即发）"
        lines.append(f"· {ln.name} × {ln.qty}{ln.unit}{extra}")
    for s in order.shipments:
        if s.status != "cancelled":
            state = "已签收" if s.status == "delivered" else "运输中"
            lines.append(f"🚚 {s.carrier} 运单号 {s.tracking_no}（{state}）")
    return "\n".join(lines)


def _in_transit(order: OrderView) -> bool:
    return any(s.status not in ("cancelled", "delivered") for s in order.shipments)


async def named_order(turn: Turn) -> OrderView | Reply | None:
    """The order whose number the message carries — only the customer's own: another customer's number gets the
    same answer as one that does not exist (never confirm that it exists). None when the message names no order."""
    match = ORDER_NO.search(turn.normalized)
    if not match:
        return None
    number = f"SO{match.group(1)}"
    try:
        order = await orders_queries.get_order_by_number(turn.rt, number)
    except OrderNotFound:
        order = None
    if order is None or order.customer_id != turn.customer_id:
        return Reply(f"没有找到您的订单 {number}，请核对订单号；发送“我的订单”可查看您最近的订单。")
    return order


async def order_status(turn: Turn) -> Reply | None:
    text = turn.normalized
    named = await named_order(turn)
    if isinstance(named, Reply):
        return named
    if named is not None:
        return Reply(describe(named, detail=True))
    if not any(k in text for k in ASKS_ORDERS + ASKS_SHIPPING):
        return None
    return await recent_orders(turn, shipping=any(k in text for k in ASKS_SHIPPING))


async def recent_orders(turn: Turn, *, shipping: bool) -> Reply:
    """The customer's recent orders; the latest in detail (with its shipments) when ``shipping`` or when it is
    the only one."""
    recent = await orders_queries.orders_of_customer(turn.rt, turn.customer_id, limit=5)
    if not recent:
        return Reply("您还没有已确认的订单。直接告诉我要什么就可以下单，例如“要3箱矿泉水”。")
    if shipping and recent[0].status in _NOT_SHIPPED:
        cutoff = turn.rt.settings.ship_cutoff_hour
        answer = shipping_answer(recent[0], now=turn.rt.clock.now(), cutoff_hour=cutoff)
        items = describe(recent[0], detail=True).split("\n")[1:]  # what is in it, under the answer
        answer = "\n".join([answer, *items])
        # 物流 right after a new order: a parcel already on its way belongs to an earlier order — show it too
        moving = [o for o in recent[1:] if _in_transit(o)][:1]
        return Reply("\n\n".join([answer, *(describe(o, detail=True) for o in moving)]))
    if len(recent) == 1 or shipping:
        shown = [recent[0]]
        if shipping and not _in_transit(recent[0]):
            shown += [o for o in recent[1:] if _in_transit(o)][:1]
        more = "\n\n更早的订单请发送“我的订单”。" if len(recent) > len(shown) else ""
        return Reply("\n\n".join(describe(o, detail=True) for o in shown) + more)
    body = "\n".join(describe(o, detail=False) for o in recent)
    return Reply(f"您最近的订单：\n{body}\n\n发送订单号可查看详情。")


# What this skill understands (the composition root installs every skill's list on the runtime).
INTENTS = [
    Intent("order_status", None, order_status, help_line="发送“我的订单”或“物流”查看订单和运单号；也可以直接发订单号", priority=40),
]
