"""Ordering in chat: free text → a draft order quoted back → 确认 places it.

The parser (bots.dialogue.parser) reads one message; this stage applies it to the customer's pending draft
and keeps what the bot is waiting for in the dialogue state (which of two products, how many). Every change to an
order carries the chat message's id as its ref, so a re-run of the same message changes nothing twice.
"""

from __future__ import annotations

from typing import Any

from bots.dialogue.catalog_cache import ParserSnapshot, parser_cache
from bots.dialogue.coupons import discount_line
from bots.dialogue.intents import AddSameAsLast, Cancel, Clarify, Confirm, Correction, Line, OrderLines, ParseResult, RemoveItem
from bots.dialogue.numerals import parse_quantity
from bots.dialogue.order_status import ORDER_NO
from bots.dialogue.reading import TurnReading, evidence_meta, read_turn
from bots.dialogue.router import Intent, Reply, Turn
from bots.dialogue.understanding import Understanding
from fulfillment.inventory import services as inventory
from fulfillment.orders import notices
from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders.domain import DraftExpired, InvalidTransition, OrderNotFound
from fulfillment.orders.queries import OrderView
from scrm.core.money import format_fen

NO_DRAFT = "您当前没有待确认的订单。直接告诉我要什么就可以下单，例如“要3箱矿泉水”。"


def _items(draft: OrderView | None) -> dict[str, int]:
    return {ln.sku: ln.qty for ln in draft.lines} if draft else {}


async def _availability(turn: Turn, snap: ParserSnapshot, items: dict[str, int]) -> list[str]:
    warnings = []
    async with turn.rt.db.read() as conn:
        for sku, qty in items.items():
            info = snap.products[sku]
            lvl = await inventory.level(conn, turn.rt.db.dialect, info.id)
            if qty > lvl.available:
                if lvl.available <= 0:
                    warnings.append(f"⚠️ {info.name} 目前缺货，确认后将为您登记缺货，到货后优先发出。")
                else:
                    warnings.append(
                        f"⚠️ {info.name} 目前只有 {lvl.available}{info.unit} 现货，超出部分将登记缺货；"
                        f"只要现货请回复“改成{lvl.available}{info.unit}”。"
                    )
    return warnings


async def _save_draft(turn: Turn, snap: ParserSnapshot, draft: OrderView | None, items: dict[str, int]) -> Reply:
    ref = f"inbound:{turn.inbound_id}"
    if not items:
        if draft is not None:
            await orders.cancel_order(turn.rt, draft.id, actor="customer", reason="客户清空了订单")
        return Reply("好的，已清空这张待确认的订单。需要什么随时告诉我。")
    pairs = list(items.items())
    if draft is None:
        draft = await orders.create_order(
            turn.rt, customer_id=turn.customer_id, items=pairs, source="chat", channel=turn.channel, actor="customer", ref=ref
        )
    else:
        draft = await orders.set_draft_lines(turn.rt, draft.id, pairs, expected_version=draft.version, actor="customer", ref=ref)
    lines = notices.format_lines(draft.lines) + await discount_line(turn.rt, draft)
    text = notices.render("order_quote", lines=lines, total=format_fen(draft.total_fen))
    warnings = await _availability(turn, snap, items)
    if warnings:
        text += "\n" + "\n".join(warnings)
    return Reply(text, meta={"order": draft.number})


def _resolve_awaiting(turn: Turn, snap: ParserSnapshot, understood: Understanding) -> ParseResult | None:
    """Read the answer to the bot's last question (which product? how many? is 3瓶 meant as 3箱?) as an order
    line; a reply that answers nothing (好的 after 要几箱？) gets the question again."""

    awaiting: dict[str, Any] = turn.state.pop("awaiting", None) or {}
    text = turn.normalized
    if awaiting and understood.reask:
        turn.state["awaiting"] = awaiting
        if awaiting.get("kind") == "unit" and awaiting.get("sku") in snap.products:  # 不是 → how many, then?
            info = snap.products[awaiting["sku"]]
            turn.state["awaiting"] = {"kind": "quantity", "sku": info.sku, "question": f"好的，请问{info.name}要几{info.unit}？"}
        question = turn.state["awaiting"].get("question") or "请问具体要哪一种、要多少？"
        return Clarify("missing_quantity", question)
    if awaiting.get("kind") == "unit":
        sku, qty = awaiting.get("sku"), awaiting.get("qty")
        if isinstance(understood.result, Confirm) and sku in snap.products and qty:
            return OrderLines([Line(sku, int(qty), snap.products[sku].unit, text)], "new")
        return None
    if awaiting.get("kind") in ("choose_product", "choose_removal"):
        candidates: list[str] = [s for s in awaiting.get("candidates", []) if s in snap.products]
        chosen = None
        if text.isdecimal() and 1 <= int(text) <= len(candidates):
            chosen = candidates[int(text) - 1]
        else:
            hits = [
                s
                for s in candidates
                if any(
                    a and a.lower() in text
                    for a in (snap.products[s].name, *snap.products[s].aliases)
                    if a not in awaiting.get("shared", [])
                )
            ]
            chosen = hits[0] if len(hits) == 1 else None
        if chosen is None:
            return None
        if awaiting["kind"] == "choose_removal":  # 沙子不要了 → 哪一种？ → 1: that one leaves the draft
            return RemoveItem(chosen)
        qty = awaiting.get("qty") or parse_quantity(text)
        if not qty:
            turn.state["awaiting"] = {"kind": "quantity", "sku": chosen}
            info = snap.products[chosen]
            return Clarify("missing_quantity", f"请问{info.name}要几{info.unit}？", [chosen])
        return OrderLines([Line(chosen, int(qty), snap.products[chosen].unit, text)], "new")
    if awaiting.get("kind") == "quantity":
        qty = parse_quantity(text)
        sku = awaiting.get("sku")
        if qty and sku in snap.products:  # …with the line it replaces taken out (不是茉莉花茶是白茶 → 要几饼？ → 2)
            return OrderLines([Line(sku, qty, snap.products[sku].unit, text)], "new", tuple(awaiting.get("replaces", ())))
    return None


async def _swap(turn: Turn, snap: ParserSnapshot, draft: OrderView, items: dict[str, int], result: Correction) -> Reply:
    """蛋糕改成10寸的 / 不是茉莉花茶是白茶 换一下: one line of the draft becomes another product. Its amount is kept
    when both are sold in the same unit (never converted); otherwise the new amount is asked, and the answer swaps."""
    assert result.sku is not None
    new = snap.products[result.sku]
    held = [s for s in result.replaces if s in items and s != result.sku]
    if not held:
        return Reply(f"当前订单里没有要换掉的商品。需要{new.name}的话，请告诉我要几{new.unit}。")
    if len(held) > 1:
        names = "、".join(snap.products[s].name for s in held)
        return Reply(f"订单里有{names}，请问要把哪一种换成{new.name}？")
    old = snap.products[held[0]]
    qty = result.qty or (items[old.sku] if old.unit == new.unit else 0)
    if not qty:
        question = f"好的，{old.name}换成{new.name}。{new.name}是按{new.unit}卖的，请问要几{new.unit}？"
        turn.state["awaiting"] = {"kind": "quantity", "sku": new.sku, "replaces": [old.sku], "question": question}
        return Reply(question, meta={"clarify": "missing_quantity"})
    items.pop(old.sku)
    items[new.sku] = qty
    turn.state["last_sku"] = new.sku
    return await _save_draft(turn, snap, draft, items)


def _remember_question(turn: Turn, result: Clarify, snap: ParserSnapshot) -> None:
    asked = {"question": result.question}
    if result.reason == "ambiguous_product":
        shared = [result.product_text] if result.product_text else []
        turn.state["awaiting"] = {"kind": "choose_product", "candidates": result.candidates, "qty": result.qty, "shared": shared} | asked
    elif result.reason == "missing_quantity" and len(result.candidates) == 1:
        turn.state["awaiting"] = {"kind": "quantity", "sku": result.candidates[0]} | asked
    elif result.reason == "unit_mismatch" and len(result.candidates) == 1:  # 您说的3瓶是指3箱吗？ — 是的 orders 3箱
        turn.state["awaiting"] = {"kind": "unit", "sku": result.candidates[0], "qty": result.qty} | asked
        if result.qty is None:
            turn.state["awaiting"]["kind"] = "quantity"


# The readings the ordering stage acts on; questions, hedges and small talk are answered by bots.dialogue.inquiries.
ORDERING_INTENTS = frozenset({"order", "add", "change", "remove", "cancel", "confirm", "clarify"})


async def ordering(turn: Turn) -> Reply | None:
    reading = await read_turn(turn)
    reply = await _act(turn, reading)
    if reply is not None:
        reply.meta.update(evidence_meta(reading.understanding))
    return reply


async def _act(turn: Turn, reading: TurnReading) -> Reply | None:
    snap, draft, understood = reading.snap, reading.draft, reading.understanding
    resolved = _resolve_awaiting(turn, snap, understood)
    if resolved is None and understood.intent not in ORDERING_INTENTS and not isinstance(understood.result, Cancel | RemoveItem):
        return None
    result = resolved or understood.result
    items = _items(draft)

    if isinstance(result, OrderLines):
        for sku in result.excluded:  # 大米2袋，油先不要: the same message took the oil out
            items.pop(sku, None)
        for line in result.lines:
            items[line.sku] = items.get(line.sku, 0) + line.qty if result.mode == "add" else line.qty
        turn.state["last_sku"] = result.lines[-1].sku
        return await _save_draft(turn, snap, draft, items)
    if isinstance(result, AddSameAsLast):
        sku = (
            turn.state.get("last_sku") if turn.state.get("last_sku") in items else (draft.lines[-1].sku if draft and draft.lines else None)
        )
        if sku is None:
            return Reply("请问您还要哪种商品、要几件？例如“再来一箱矿泉水”。")
        items[sku] = items.get(sku, 0) + result.qty
        return await _save_draft(turn, snap, draft, items)
    if isinstance(result, Correction) and result.replaces and result.sku in snap.products:
        if draft is None:
            return Reply(NO_DRAFT)
        return await _swap(turn, snap, draft, items, result)
    if isinstance(result, Correction):
        if draft is None:
            return Reply(NO_DRAFT)
        in_draft = [s for s in result.candidates if s in items]  # 月饼改到10盒: the draft holds one of the 月饼
        if result.sku is not None:
            sku = result.sku  # named with its quantity: set that line (added if the draft lacks it)
        elif result.candidates:
            sku = in_draft[0] if len(in_draft) == 1 else None
        else:
            sku = draft.lines[0].sku if len(draft.lines) == 1 else turn.state.get("last_sku")
        if sku is None or (result.sku is None and sku not in items):
            names = "、".join(ln.name for ln in draft.lines)
            return Reply(f"请问要修改哪一种商品的数量？当前订单有：{names}。例如“矿泉水改成4箱”。")
        items[sku] = result.qty
        turn.state["last_sku"] = sku
        return await _save_draft(turn, snap, draft, items)
    if isinstance(result, RemoveItem):
        if draft is None:
            return Reply(NO_DRAFT)
        missing = [s for s in result.skus if s not in items]
        if len(missing) == len(result.skus):
            return Reply("当前订单里没有这个商品。回复“确认”下单，或告诉我要修改什么。")
        for s in result.skus:
            items.pop(s, None)
        return await _save_draft(turn, snap, draft, items)
    if isinstance(result, Confirm):
        if draft is None:
            return None
        return await _confirm(turn, draft)
    if isinstance(result, Cancel):
        return await _cancel(turn, draft)
    if isinstance(result, Clarify) and understood.intent == "remove" and result.reason == "ambiguous_product" and resolved is None:
        return await _remove_ambiguous(turn, snap, draft, items, result)
    if isinstance(result, Clarify):
        _remember_question(turn, result, snap)
        return Reply(result.question, meta={"clarify": result.reason})
    return None


async def _remove_ambiguous(turn: Turn, snap: ParserSnapshot, draft: OrderView | None, items: dict[str, int], result: Clarify) -> Reply:
    """沙子不要了 with two kinds of 沙子 in the catalog: the draft settles it when it holds one of them; when it holds
    several, ask which of those — and the answer removes that one (never orders it)."""
    if draft is None:
        return Reply(NO_DRAFT)
    held = [s for s in result.candidates if s in items]
    if not held:
        return Reply("当前订单里没有这个商品。回复“确认”下单，或告诉我要修改什么。")
    if len(held) == 1:
        items.pop(held[0])
        return await _save_draft(turn, snap, draft, items)
    options = " ".join(f"{i}. {snap.products[s].name}" for i, s in enumerate(held, 1))
    question = f"订单里有{len(held)}种{result.product_text or '这类商品'}，请问要去掉哪一种：{options}？"
    shared = [result.product_text] if result.product_text else []
    turn.state["awaiting"] = {"kind": "choose_removal", "candidates": held, "shared": shared, "question": question}
    return Reply(question, meta={"clarify": "ambiguous_product"})


async def _confirm(turn: Turn, draft: OrderView) -> Reply:
    try:
        order = await orders.confirm_order(turn.rt, draft.id, actor="customer", told_in_chat=True)
    except DraftExpired:
        return Reply("这张订单已超时未确认，已自动取消。请重新告诉我您要的商品。")
    if order.status == "on_hold":
        return Reply(
            f"订单 {order.number}（合计 {format_fen(order.total_fen)}）已提交，需财务审核后备货，审核通过后会通知您。",
            meta={"order": order.number, "on_hold": True},
        )
    if order.status == "pending_approval":
        text = notices.render("order_awaiting_approval", number=order.number, total=format_fen(order.total_fen))
        return Reply(text, meta={"order": order.number, "pending_approval": True})
    text = notices.render(
        "order_confirmed",
        number=order.number,
        lines=notices.format_lines(order.lines) + await discount_line(turn.rt, order),
        total=format_fen(order.total_fen),
    )
    short = [ln for ln in order.lines if ln.backordered_qty]
    if short:
        backordered = notices.format_lines([{"name": ln.name, "unit": ln.unit, "qty": ln.backordered_qty} for ln in short])
        text += "\n\n" + notices.render("order_backordered", number=order.number, backordered=backordered)
    turn.state.pop("last_sku", None)
    return Reply(text, meta={"order": order.number})


async def _cancel(turn: Turn, draft: OrderView | None) -> Reply:

    match = ORDER_NO.search(turn.normalized)
    if match:
        number = f"SO{match.group(1)}"
        try:
            order = await orders_queries.get_order_by_number(turn.rt, number)
            if order.customer_id != turn.customer_id:
                raise OrderNotFound("not yours")
            order = await orders.cancel_order(turn.rt, order.id, actor="customer", reason="客户在聊天中取消")
        except OrderNotFound:
            return Reply(f"没有找到您的订单 {number}，请核对订单号。")
        except InvalidTransition:
            return Reply(f"订单 {number} 已发货，无法取消；如需退货请联系您的销售顾问。")
        return Reply(f"好的，订单 {number} 已取消，预留的库存已释放。")
    if draft is None:
        return Reply("您当前没有待确认的订单。如需取消已确认的订单，请发送“取消订单 订单号”，例如“取消订单 SO100001”。")
    await orders.cancel_order(turn.rt, draft.id, actor="customer", reason="客户取消")
    turn.state.clear()
    return Reply("好的，已取消这张待确认的订单。需要什么随时告诉我。")


async def stock_query(turn: Turn) -> Reply | None:
    snap = await parser_cache(turn.rt).get(turn.rt)
    skus = snap.parser.stock_query_product(turn.text)
    if skus is None:
        return None
    if not skus and snap.parser.names_no_product(turn.text):
        return Reply("请问您想问哪个商品？例如“有没有矿泉水”“矿泉水还有货吗”。")
    if not skus:
        return Reply("抱歉，我们暂时没有这个商品。发送“帮助”看看我能做什么，或留言给销售顾问。")
    lines = []
    async with turn.rt.db.read() as conn:
        for sku in skus:
            info = snap.products[sku]
            lvl = await inventory.level(conn, turn.rt.db.dialect, info.id)
            state = f"现货 {lvl.available}{info.unit}" if lvl.available > 0 else "暂时缺货（可下单登记，到货即发）"
            lines.append(f"· {info.name}：{state}，{format_fen(info.price_fen)}/{info.unit}")
    first = snap.products[skus[0]]
    return Reply("\n".join(lines) + f"\n直接说“要2{first.unit}{first.name.split(' ')[0]}”即可下单。")


# What this skill understands (the composition root installs every skill's list on the runtime).
INTENTS = [
    Intent(
        "ordering",
        None,
        ordering,
        help_line="下单：直接说要什么，例如“要3箱矿泉水和2提纸巾”，确认后下单；可说“改成4箱”“再来一箱”“取消”",
        priority=20,
    ),
    Intent("stock_query", None, stock_query, help_line="问库存和价格：例如“有没有矿泉水”“矿泉水多少钱”", priority=30),
]
