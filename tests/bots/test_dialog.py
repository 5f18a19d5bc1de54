"""The dialogue on real databases: help, ordering from draft to confirmation, corrections, clarifications,
order and stock queries. Replies are read as the customer would read them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from bots.dialogue import router
from bots.dialogue.order_status import expected_ship_day
from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders import shipments
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
    which = await chat.say("还有多少库存")  # names no product: asked which, not told 没有这个商品
    assert "哪个商品" in which and "没有这个商品" not in which
    assert "没有这个商品" in await chat.say("有没有雪碧")
    price = await chat.say("矿泉水多少钱")  # a price question is answered, not "没理解"
    assert "¥36.00/箱" in price and "没理解" not in price
    other = await make_customer(chat.rt, "wmOther")
    stranger = Chat(chat.rt, other)
    number = (await orders_queries.orders_of_customer(chat.rt, chat.customer_id))[0].number
    assert "没有找到您的订单" in await stranger.say(number)  # someone else's order number reveals nothing


async def test_logistics_question_shows_the_parcel_on_its_way_after_a_newer_order(chat: Chat) -> None:
    await chat.say("要2箱可乐")
    await chat.say("确认")
    first = (await orders_queries.orders_of_customer(chat.rt, chat.customer_id))[0]
    await shipments.create_shipment(chat.rt, first.id, carrier="顺丰", tracking_no="SF1234567890")
    await chat.say("要1箱矿泉水")
    await chat.say("确认")
    reply = await chat.say("物流")
    newest = (await orders_queries.orders_of_customer(chat.rt, chat.customer_id))[0]
    assert newest.number in reply and first.number in reply and "SF1234567890" in reply
    assert "更早的订单" not in reply


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


# -- intent before items (issue 14): questions are answered, only an order makes a draft -------------------------


async def no_draft(chat: Chat) -> bool:
    return await orders_queries.open_draft(chat.rt, chat.customer_id) is None


async def test_a_price_question_with_a_number_gets_the_price_not_a_draft(chat: Chat) -> None:
    reply = await chat.say("5箱可乐什么价")
    assert "¥52.80/箱" in reply and "5箱共 ¥264.00" in reply and "回复“要5箱可乐”即可下单" in reply
    assert await no_draft(chat)
    assert "可乐 330ml×24 × 5箱" in await chat.say("要5箱可乐")  # doing what the answer said orders it


async def test_a_stock_question_with_a_number_compares_with_what_is_available(chat: Chat) -> None:
    reply = await chat.say("花生油还有12桶没")
    assert "现货只有 10桶，不够 12桶" in reply
    assert "没问题" in await chat.say("可乐还有3箱吗")
    assert await no_draft(chat)


async def test_a_delivery_question_gets_the_promise_and_the_open_order(chat: Chat) -> None:
    reply = await chat.say("2袋大米明天能送到吗")
    assert reply.startswith("配送说明：") and "次日送达" in reply
    assert await no_draft(chat)
    await chat.say("要2袋大米")
    await chat.say("确认")
    number = (await orders_queries.orders_of_customer(chat.rt, chat.customer_id))[0].number
    assert number in await chat.say("今天几点能送过来")


async def test_a_complaint_shows_the_order_and_alerts_staff(chat: Chat) -> None:
    from scrm.core.outbox import outbox

    await chat.say("要2箱可乐")
    await chat.say("确认")
    number = (await orders_queries.orders_of_customer(chat.rt, chat.customer_id))[0].number
    reply = await chat.say("送来的2箱可乐坏了1箱")
    assert "非常抱歉" in reply and number in reply and "已确认" in reply
    assert await no_draft(chat)
    async with chat.rt.db.read() as conn:
        alerts = (await conn.execute(sa.select(outbox.c.payload).where(outbox.c.topic == "dialogue.staff_alert"))).all()
    assert len(alerts) == 1  # queued for the salespeople (ops here: the customer has none); sent by the outbox relay
    assert "坏了" in alerts[0].payload["text"] and number in alerts[0].payload["text"] and alerts[0].payload["userids"]


async def test_a_discount_request_without_coupons_goes_to_the_salesperson(chat: Chat) -> None:
    reply = await chat.say("买10箱能打折吗")
    assert "没有可用的优惠券" in reply and "销售顾问" in reply
    assert await no_draft(chat)


async def test_hedges_and_order_status_questions_make_no_draft(chat: Chat) -> None:
    assert "不着急" in await chat.say("可能要5箱矿泉水，我先问问家里")
    assert "还没有已确认的订单" in await chat.say("前天订的4箱水还没到")
    assert await no_draft(chat)


async def test_yes_after_a_unit_question_orders_the_offered_reading(chat: Chat) -> None:
    question = await chat.say("要3瓶矿泉水")
    assert "是指3箱吗" in question and await no_draft(chat)
    assert "矿泉水 550ml×24 × 3箱" in await chat.say("是的")


async def test_a_no_after_a_unit_question_asks_how_many(chat: Chat) -> None:
    await chat.say("要3瓶矿泉水")
    again = await chat.say("不是")
    assert "矿泉水 550ml×24要几箱" in again
    assert "× 2箱" in await chat.say("2箱")


async def test_ok_that_answers_nothing_gets_the_question_again(chat: Chat) -> None:
    question = await chat.say("要大米")
    assert await chat.say("好的") == question
    assert "东北大米 5kg × 3袋" in await chat.say("3袋")


async def test_a_dozen_of_cases_is_asked(chat: Chat) -> None:
    question = await chat.say("可乐要一打")
    assert "一打" in question and "12箱" in question and await no_draft(chat)


async def test_negation_and_self_correction_inside_one_message(chat: Chat) -> None:
    quote = await chat.say("要2袋大米…不对，改成4袋")
    assert "东北大米 5kg × 4袋" in quote and "× 2袋" not in quote
    await chat.say("再来1桶花生油")
    quote = await chat.say("大米3袋，油先不要")
    assert "东北大米 5kg × 3袋" in quote and "花生油" not in quote


async def test_nothing_is_ordered_when_part_of_a_message_is_not_understood(chat: Chat) -> None:
    reply = await chat.say("要2袋大米和冰红茶")
    assert "冰红茶" in reply and await no_draft(chat)
    both = await chat.say("要3箱礦泉水和兩袋大米")  # traditional characters: both items, never only the first
    assert "矿泉水 550ml×24 × 3箱" in both and "东北大米 5kg × 2袋" in both


@pytest.mark.parametrize("text", ["要3箱可乐" * 2000, "😀😀😀", "<script>alert(1)</script>要3箱可乐"])
async def test_bad_input_gets_a_polite_reply_and_no_draft(chat: Chat, text: str) -> None:
    reply = await chat.say(text)
    assert reply.startswith("抱歉，我暂时没理解您的消息。") and "销售顾问" in reply
    assert await no_draft(chat)
    assert "可以帮您" in await chat.say("？？？")  # punctuation alone is taken as asking for help


async def test_a_change_of_an_ambiguous_product_is_settled_by_the_draft(chat: Chat) -> None:
    await chat.say("要2瓶生抽")
    changed = await chat.say("酱油改成5瓶")  # 酱油 is 生抽 or 老抽: the draft holds only the 生抽
    assert "生抽 500ml × 5瓶" in changed and "老抽" not in changed
    fixed = await chat.say("生抽不是5瓶 改成3瓶")
    assert "生抽 500ml × 3瓶" in fixed


async def test_asking_after_an_order_in_other_words_shows_it(chat: Chat) -> None:
    await chat.say("要2箱可乐")
    await chat.say("确认")
    await chat.say("要1袋大米")
    await chat.say("确认")
    listed = await chat.say("我的订单")
    assert listed.startswith("您最近的订单：")  # 我的订单 still lists them
    latest = await chat.say("师傅出发了吗")
    assert "东北大米 5kg × 1袋" in latest and "可乐" not in latest.split("\n\n")[0]


async def test_removing_an_ambiguous_product_is_settled_by_the_draft(chat: Chat) -> None:
    """酱油不要了 with 生抽 and 老抽 in the catalog: the draft says which; with both in it the bot asks, and the answer
    takes that one out — it never orders it again."""
    await chat.say("要2瓶生抽和3提纸巾")
    removed = await chat.say("酱油不要了")  # the draft holds only the 生抽
    assert "生抽" not in removed and "抽纸 3层×10包 × 2提" not in removed and "× 3提" in removed
    await chat.say("再来2瓶生抽 1瓶老抽")
    question = await chat.say("酱油不要了")
    assert "要去掉哪一种" in question and "1. 老抽 500ml 2. 生抽 500ml" in question
    quote = await chat.say("2")
    assert "生抽" not in quote and "老抽 500ml × 1瓶" in quote and "× 3提" in quote
    draft = await orders_queries.open_draft(chat.rt, chat.customer_id)
    assert draft is not None and sorted((ln.name, ln.qty) for ln in draft.lines) == [("抽纸 3层×10包", 3), ("老抽 500ml", 1)]
    assert "没有这个商品" in await chat.say("生抽不要了")


async def test_a_line_swapped_for_another_product_in_the_chat(chat: Chat) -> None:
    await chat.say("要3瓶生抽")
    swapped = await chat.say("不是生抽是老抽")  # same unit: the amount is kept
    assert "老抽 500ml × 3瓶" in swapped and "生抽" not in swapped
    asked = await chat.say("老抽换成花生油")  # 瓶 → 桶: never converted, the new amount is asked
    assert "要几桶" in asked
    draft = await orders_queries.open_draft(chat.rt, chat.customer_id)
    assert draft is not None and [(ln.sku, ln.qty) for ln in draft.lines] == [("SOY-DARK", 3)]  # nothing swapped yet
    done = await chat.say("2")
    assert "花生油 5L × 2桶" in done and "老抽" not in done


async def test_an_order_typed_in_pinyin_letters_is_quoted_and_confirmed(chat: Chat) -> None:
    quote = await chat.say("zhijin 2ti")  # the input method's letters, never turned into characters
    assert "抽纸 3层×10包 × 2提" in quote and "确认" in quote
    done = await chat.say("queren")
    assert "已确认" in done
    draft = await orders_queries.open_draft(chat.rt, chat.customer_id)
    assert draft is None  # confirmed: no draft left open


async def test_a_slip_at_the_end_of_a_chatty_order_sets_the_amount(chat: Chat) -> None:
    quote = await chat.say("老板 周末家里来客人 生抽要3瓶 下午送过来就行，不对，5瓶")
    assert "生抽 500ml × 5瓶" in quote and "× 3瓶" not in quote
