"""One customer message read once per turn: the catalog's parser, the open draft, and what the message is for.

The skills that answer questions (:mod:`bots.dialogue.inquiries`) and the ordering stage
(:mod:`bots.dialogue.ordering`) both act on the same :class:`~bots.dialogue.understanding.Understanding`; it is
computed on the first call in a turn and kept on the turn (never saved with the dialogue state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bots.dialogue.catalog_cache import ParserSnapshot, parser_cache
from bots.dialogue.router import Turn
from bots.dialogue.understanding import Understanding, understand
from fulfillment.orders import queries as orders_queries
from fulfillment.orders.queries import OrderView

# What the bot is waiting for (turn.state["awaiting"]["kind"]) → the question it asked, as understand() names it.
PENDING_OF_AWAITING = {"choose_product": "product", "quantity": "quantity", "unit": "unit"}
INTENT_ZH = {
    "order": "下单",
    "add": "加购",
    "change": "改数量",
    "remove": "去掉商品",
    "cancel": "取消",
    "confirm": "确认",
    "clarify": "需要追问",
    "price_question": "问价格",
    "stock_question": "问库存",
    "delivery_question": "问配送",
    "order_status": "查订单",
    "complaint": "投诉",
    "discount_request": "要优惠",
    "hedge": "暂不下单",
    "chitchat": "寒暄",
    "unknown": "未识别",
}


@dataclass(frozen=True)
class TurnReading:
    snap: ParserSnapshot
    draft: OrderView | None
    understanding: Understanding


def pending_question(state: dict[str, Any]) -> str | None:
    awaiting = state.get("awaiting") or {}
    return PENDING_OF_AWAITING.get(str(awaiting.get("kind", "")))


async def read_turn(turn: Turn) -> TurnReading:
    """The turn's reading, computed once (the draft is looked up before any skill changes it)."""
    cached = turn.scratch.get("reading")
    if isinstance(cached, TurnReading):
        return cached
    snap = await parser_cache(turn.rt).get(turn.rt)
    draft = await orders_queries.open_draft(turn.rt, turn.customer_id)
    understood = understand(snap.parser, turn.text, has_draft=draft is not None, pending=pending_question(turn.state))
    reading = TurnReading(snap, draft, understood)
    turn.scratch["reading"] = reading
    return reading


def evidence_meta(understood: Understanding) -> dict[str, Any]:
    """What the reply log keeps of a reading: the intent and its evidence, for the customer's timeline."""
    return {"understood": understood.intent, "evidence": understood.explain()}
