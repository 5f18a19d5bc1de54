"""The dialogue on real databases: help, ordering from draft to confirmation, corrections, clarifications,
order and stock queries. Replies are read as the customer would read them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bots.dialogue import router
from bots.dialogue.order_status import expected_ship_day
from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders.models import OrderStatus
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime
from tests.conftest import make_customer


class Chat:
    """One customer talking to the dialogue; state carried between turns as the processor does."""

    def __init__(self, rt: Runtime, customer_id: int) -> None:
        self.rt = rt
        self.customer_id = customer_id
        self.state: dict[str, Any] = {}
        self.seq = 1000

    async def say(self, text: str) -> str:
        self.seq += 1
        turn = router.Turn(self.rt, "kf", self.customer_id, text, self.seq, external_userid="wmX", state=self.state)
        reply = await router.respond(turn)
        self.state = turn.state
        return reply.text


@pytest.fixture
async def chat(catalog: Runtime) -> Chat:
    return Chat(catalog, await make_customer(catalog, "wmChat"))


async def test_help_lists_what_the_bot_can_do(chat: Chat) -> None:
    text = await chat.say("帮助")
    assert "要3箱矿泉水" in text and "我的订单" in text and "有没有矿泉水" in text


async def test_order_from_quote_to_confirmation(chat: Chat) -> None:
    quote = await chat.say("老板你好，要3箱矿泉水和2提纸巾")
    assert "矿泉水 550ml×24 × 3箱 = ¥108.00" in quote
    assert "抽纸 3层×10包 × 2提 = ¥51.80" in quote
    assert "合计：¥159.80" in quote and "确认" in quote
    draft = await orders_queries.open_draft(chat.rt, chat.customer_id)
    assert draft is not None and draft.status == OrderStatus.PENDING

    corrected = await chat.say("矿泉水改成4箱")
    assert "× 4箱" in corrected and "合计：¥195.80" in corrected
    more = await chat.say("再来一箱矿泉水")
    assert "× 5箱" in more
    removed = await chat.say("纸巾不要了")
    assert "抽纸" not in removed and "合计：¥180.00" in removed

    done = await chat.say("确认")
    assert "已确认" in done and draft.number in done and "¥180.00" in done
    order = await orders.get_order(chat.rt, draft.id)
    assert order.status == OrderStatus.CONFIRMED and order.lines[0].allocated_qty == 5
    # After confirmation 好的 is small talk, not a second confirmation.
    assert "已确认" not in await chat.say("好的")


async def test_ambiguous_product_is_asked_never_guessed(chat: Chat) -> None:
    question = await chat.say("要2瓶酱油")
    assert "生抽" in question and "老抽" in question
    assert await orders_queries.open_draft(chat.rt, chat.customer_id) is None
    quote = await chat.say("2")
    assert "1. 老抽 500ml 2. 生抽 500ml" in question
    assert "生抽 500ml × 2瓶" in quote


async def test_missing_quantity_then_answer(chat: Chat) -> None:
    question = await chat.say("要大米")
    assert "几袋" in question
    quote = await chat.say("3袋")
    assert "东北大米 5kg × 3袋" in quote


async def test_over_stock_says_how_many_are_available(chat: Chat) -> None:
    quote = await chat.say("要15桶花生油")
    assert "只有 10桶 现货" in quote
    done = await chat.say("确认")
    assert "库存不足" in done and "× 5桶" in done


async def test_unknown_product_and_cancel(chat: Chat) -> None:
    assert "没有" in await chat.say("要3箱雪碧")
    await chat.say("要1箱可乐")
    assert "已取消" in await chat.say("取消")
    assert await orders_queries.open_draft(chat.rt, chat.customer_id) is None


async def test_order_and_stock_queries(chat: Chat, clock: FrozenClock) -> None:
    assert "还没有已确认的订单" in await chat.say("我的订单")
    await chat.say("要2箱可乐")
    await chat.say("确认")
    status = await chat.say("我的订单到哪了")
    assert "SO1" in status and "已确认" in status
    stock = await chat.say("有没有矿泉水")
    assert "现货 120箱" in stock and "¥36.00/箱" in stock
    other = await make_customer(chat.rt, "wmOther")
    stranger = Chat(chat.rt, other)
    number = (await orders_queries.orders_of_customer(chat.rt, chat.customer_id))[0].number
    assert "没有找到您的订单" in await stranger.say(number)  # someone else's order number reveals nothing


async def test_shipping_question_before_shipping_says_not_shipped_and_when(chat: Chat, clock: FrozenClock) -> None:
    # 10:00 Beijing, before the 16:00 cutoff: ships today; asked again after a 17:00 confirmation: tomorrow.
    await chat.say("要2箱可乐")
    await chat.say("确认")
    first = await chat.say("物流")
    assert "还没有发货" in first and "预计今天发出" in first and "您最近的订单" not in first
    clock.set(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC))  # 17:00 Beijing
    await chat.say("要1箱可乐")
    await chat.say("确认")
    later = await chat.say("物流")
    assert "还没有发货" in later and "预计明天发出" in later


def test_expected_ship_day_follows_the_cutoff_in_business_time() -> None:
    before = dt.datetime(2026, 11, 23, 7, 59, tzinfo=dt.UTC)  # 15:59 Beijing
    after = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)  # 16:00 Beijing
    assert expected_ship_day(before, 16) == dt.date(2026, 11, 23)
    assert expected_ship_day(after, 16) == dt.date(2026, 11, 24)


async def test_unknown_text_gets_a_helpful_answer(chat: Chat) -> None:
    text = await chat.say("今天天气怎么样")
    assert "帮助" in text and "销售顾问" in text
