"""Questions, complaints, hedges and small talk in chat — answered, never turned into an order.

:func:`bots.dialogue.understanding.understand` decides what a message is for; this skill answers every reading
that is not ordering: a price question gets the price (and how to order that amount), a stock question what is
available against what was asked, a delivery question the promise (``delivery_promise`` in the notice texts) and
the state of an open order, a question about an order its state, a complaint the order's state and an alert to
the customer's salesperson, a discount request the usable coupons or a salesperson, a hedge a polite "no hurry".
Only the ordering stage creates or changes a draft.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bots.dialogue import order_status as order_status_skill
from bots.dialogue.order_status import describe, named_order, recent_orders
from bots.dialogue.reading import TurnReading, evidence_meta, read_turn
from bots.dialogue.router import Intent, Reply, Turn
from bots.notices.orders import alert_staff
from fulfillment.catalog.services import ProductInfo
from fulfillment.inventory import services as inventory
from fulfillment.orders import notices
from fulfillment.orders import queries as orders_queries
from fulfillment.orders.domain import STATUS_ZH
from fulfillment.orders.queries import OrderView
from scrm.campaigns.coupons.services import coupons_of_customer
from scrm.core import outbox
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime
from scrm.crm.staff.services import follows_of

OPEN_STATES = ("confirmed", "on_hold", "pending_approval", "partially_shipped", "shipped")


def _short(info: ProductInfo) -> str:
    return info.aliases[0] if info.aliases else info.name.split(" ")[0]


def _asked(reading: TurnReading) -> list[ProductInfo]:
    return [reading.snap.products[s] for s in reading.understanding.skus if s in reading.snap.products]


async def price_question(turn: Turn, reading: TurnReading) -> Reply:
    asked = _asked(reading)
    if not asked:
        return Reply("请问您想了解哪种商品的价格？例如“可乐多少钱一箱”。")
    lines = [f"· {p.name}：{format_fen(p.price_fen)}/{p.unit}" for p in asked]
    first = asked[0]
    qty = reading.understanding.quantity
    if len(asked) == 1 and qty is not None and qty[1] in (None, first.unit):
        n = qty[0]
        lines.append(f"{n}{first.unit}共 {format_fen(first.price_fen * n)}。")
        how = f"需要的话回复“要{n}{first.unit}{_short(first)}”即可下单。"
    else:
        how = f"需要的话回复“要N{first.unit}{_short(first)}”即可下单，例如“要2{first.unit}{_short(first)}”。"
    if len(asked) > 1:
        how = "请告诉我要哪一种、要几件；" + how
    return Reply("\n".join(lines) + "\n" + how)


async def stock_question(turn: Turn, reading: TurnReading) -> Reply:
    asked = _asked(reading)
    if not asked and reading.snap.parser.names_no_product(turn.text):
        return Reply("请问您想问哪个商品？例如“有没有矿泉水”“矿泉水还有货吗”。")
    if not asked:
        return Reply("抱歉，我们暂时没有这个商品。发送“帮助”看看我能做什么，或留言给销售顾问。")
    qty = reading.understanding.quantity
    wanted = qty[0] if qty is not None and len(asked) == 1 and qty[1] in (None, asked[0].unit) else None
    lines = []
    async with turn.rt.db.read() as conn:
        for p in asked:
            lvl = await inventory.level(conn, turn.rt.db.dialect, p.id)
            if lvl.available <= 0:
                state = "暂时缺货（可下单登记，到货即发）"
            elif wanted is not None and wanted > lvl.available:
                state = f"现货只有 {lvl.available}{p.unit}，不够 {wanted}{p.unit}（超出部分可登记缺货）"
            elif wanted is not None:
                state = f"有货，{wanted}{p.unit}没问题（现货 {lvl.available}{p.unit}）"
            else:
                state = f"现货 {lvl.available}{p.unit}"
            lines.append(f"· {p.name}：{state}，{format_fen(p.price_fen)}/{p.unit}")
    first = asked[0]
    n = wanted or 2
    return Reply("\n".join(lines) + f"\n需要的话回复“要{n}{first.unit}{_short(first)}”即可下单。")


async def _open_orders(turn: Turn) -> list[OrderView]:
    return [o for o in await orders_queries.orders_of_customer(turn.rt, turn.customer_id, limit=5) if o.status in OPEN_STATES]


async def delivery_question(turn: Turn, reading: TurnReading) -> Reply:
    text = notices.render("delivery_promise")
    open_orders = await _open_orders(turn)
    if open_orders:
        text += "\n\n您有未完成的订单：\n" + "\n".join(describe(o, detail=False) for o in open_orders[:3])
    elif reading.understanding.skus:
        text += "\n需要的话直接告诉我要什么，例如“要2袋大米”。"
    return Reply(text)


async def order_status(turn: Turn, reading: TurnReading) -> Reply:
    # 我的订单 / 物流 / an order number keep their own answers; other ways of asking get the latest order's state.
    answered = await order_status_skill.order_status(turn)
    return answered if answered is not None else await recent_orders(turn, shipping=True)


async def _salespeople(turn: Turn, order: OrderView | None) -> list[str]:
    """Who hears about this customer: their salespeople, else the order's, else operations."""
    async with turn.rt.db.read() as conn:
        userids = [f.userid for f in await follows_of(conn, turn.customer_id, include_ended=False)]
    if not userids and order is not None and order.salesperson_userid:
        userids = [order.salesperson_userid]
    return list(dict.fromkeys(userids)) or turn.rt.settings.ops_userid_list


STAFF_ALERT = "dialogue.staff_alert"  # outbox topic: a customer message a salesperson must see (complaint, discount)


async def _alert_salespeople(turn: Turn, order: OrderView | None, key: str, text: str) -> None:
    """Queue the alert in the outbox: the reply never waits for (or fails with) WeCom; sent once per ``key``."""
    payload = {"userids": await _salespeople(turn, order), "text": text, "key": f"{key}:{turn.inbound_id}"}
    async with turn.rt.db.write() as conn:
        await outbox.add(conn, STAFF_ALERT, payload, turn.rt.clock.now())


async def staff_alert_requested(rt: Runtime, payload: dict[str, Any]) -> None:
    """Outbox handler of :data:`STAFF_ALERT`: the app message to the salespeople (idempotent by its key)."""
    await alert_staff(rt, userids=list(payload["userids"]), text=str(payload["text"]), key=str(payload["key"]))


async def complaint(turn: Turn, reading: TurnReading) -> Reply:
    named = await named_order(turn)
    if isinstance(named, Reply):
        return named
    order = named
    if order is None:
        recent = await orders_queries.orders_of_customer(turn.rt, turn.customer_id, limit=1)
        order = recent[0] if recent else None
    about = f"\n相关订单：{order.number}（{STATUS_ZH.get(order.status, order.status)}）" if order else "\n（未找到该客户的订单）"
    text = f"【客户反馈问题】客户#{turn.customer_id}：“{turn.text.strip()[:200]}”{about}\n请尽快联系客户处理。"
    await _alert_salespeople(turn, order, "complaint", text)
    text = "非常抱歉给您带来不便！已通知您的销售顾问，会尽快联系您处理。"
    if order is not None:
        text += "\n\n您最近的订单：\n" + describe(order, detail=True)
    return Reply(text, meta={"alerted": True, "order": order.number if order else ""})


async def discount_request(turn: Turn, reading: TurnReading) -> Reply:
    wallet = await coupons_of_customer(turn.rt, turn.customer_id, usable_only=True)
    if wallet:
        lines = "\n".join(f"· {c.name + '：' if c.name and c.name != c.label else ''}{c.label}" for c in wallet)
        return Reply(f"您有 {len(wallet)} 张可用优惠券：\n{lines}\n下单时会自动为您使用最优惠的券。")
    asked = f"【客户询问优惠】客户#{turn.customer_id}：“{turn.text.strip()[:200]}”\n请销售顾问回复客户。"
    await _alert_salespeople(turn, None, "discount", asked)
    return Reply("您目前没有可用的优惠券。已请您的销售顾问看看能否给您优惠，稍后回复您。", meta={"alerted": True})


async def hedge(turn: Turn, reading: TurnReading) -> Reply:
    return Reply("好的，不着急！这次先不下单，您考虑好了随时告诉我，例如“要3箱矿泉水”。")


async def chitchat(turn: Turn, reading: TurnReading) -> Reply:
    text = turn.normalized
    if any(w in text for w in ("谢", "辛苦")):
        return Reply("不客气，有需要随时找我！")
    if any(w in text for w in ("再见", "拜拜", "晚安")):
        return Reply("再见，祝您生活愉快！")
    return Reply("您好，我在的！需要什么直接告诉我，例如“要3箱矿泉水”；发送“帮助”查看我能做什么，其他问题留言后销售顾问会尽快回复您。")


Answer = Callable[[Turn, TurnReading], Awaitable[Reply]]
ANSWERS: dict[str, Answer] = {
    "price_question": price_question,
    "stock_question": stock_question,
    "delivery_question": delivery_question,
    "order_status": order_status,
    "complaint": complaint,
    "discount_request": discount_request,
    "hedge": hedge,
    "chitchat": chitchat,
}


async def inquiries(turn: Turn) -> Reply | None:
    reading = await read_turn(turn)
    answer = ANSWERS.get(reading.understanding.intent)
    if answer is None:
        return None  # ordering, or nothing understood: the next skills try
    reply = await answer(turn, reading)
    reply.meta.update(evidence_meta(reading.understanding))
    return reply


# What this skill understands (the composition root installs every skill's list on the runtime).
INTENTS = [
    Intent(
        "inquiries",
        None,
        inquiries,
        help_line="问价格、送货、优惠：例如“可乐多少钱一箱”“明天能送到吗”；收货有问题也可以直接说",
        priority=18,
    ),
]
