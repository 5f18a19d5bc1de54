"""Coupons in the chat dialogue: the quote shows the best coupon's discount, 确认 redeems it, “用券” re-prices a
draft made before the coupon arrived, “我的优惠券” lists the wallet."""

from __future__ import annotations

import pytest

from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders.models import OrderStatus
from scrm.campaigns.coupons import discounts as coupons_discounts
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms, Validity
from scrm.campaigns.coupons.models import CouponStatus
from scrm.core.runtime import Runtime
from tests.bots.test_dialog import Chat
from tests.conftest import make_customer


@pytest.fixture
async def chat(catalog: Runtime) -> Chat:
    coupons_discounts.install(catalog)
    return Chat(catalog, await make_customer(catalog, "wmCouponChat"))


async def give(chat: Chat, rule: CouponRule, name: str) -> coupons.CouponView:
    tpl = await coupons.create_template(chat.rt, TemplateTerms(name=name, rule=rule, validity=Validity(valid_days=30)))
    return await coupons.issue_coupon(chat.rt, tpl.id, chat.customer_id, source="sidebar")


async def test_quote_shows_the_coupon_and_confirm_redeems_it(chat: Chat) -> None:
    coupon = await give(chat, CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000), "满100减10")
    quote = await chat.say("要3箱矿泉水")
    assert "矿泉水 550ml×24 × 3箱 = ¥108.00" in quote
    assert "优惠：-¥10.00（满100减10）" in quote and "合计：¥98.00" in quote
    draft = await orders_queries.open_draft(chat.rt, chat.customer_id)
    assert draft is not None and draft.total_fen == 9800

    done = await chat.say("确认")
    assert "已确认" in done and "优惠：-¥10.00" in done and "¥98.00" in done
    order = await orders.get_order(chat.rt, draft.id)
    assert (order.status, order.discount_fen, order.total_fen) == (OrderStatus.CONFIRMED, 1000, 9800)
    (view,) = await coupons.coupons_of_customer(chat.rt, chat.customer_id)
    assert view.code == coupon.code and view.status == CouponStatus.REDEEMED and view.order_id == order.id
    assert [e for e, _, _ in await coupons.ledger_of(chat.rt, coupon.id)] == ["issue", "reserve", "redeem"]


async def test_below_the_threshold_no_discount_line_and_cancel_keeps_the_coupon(chat: Chat) -> None:
    await give(chat, CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000), "满100减10")
    quote = await chat.say("要2箱矿泉水")
    assert "优惠" not in quote and "合计：¥72.00" in quote
    more = await chat.say("再来一箱矿泉水")
    assert "优惠：-¥10.00（满100减10）" in more and "合计：¥98.00" in more
    await chat.say("取消")
    assert [c.status for c in await coupons.coupons_of_customer(chat.rt, chat.customer_id)] == [CouponStatus.ISSUED]


async def test_use_coupon_applies_a_coupon_received_after_the_quote(chat: Chat) -> None:
    quote = await chat.say("要3箱矿泉水")
    assert "优惠" not in quote and "合计：¥108.00" in quote
    assert "没有可用的优惠券" in await chat.say("我的优惠券")
    await give(chat, CouponRule("percent", percent_off=10, max_off_fen=2000), "饮料9折")
    listed = await chat.say("我的优惠券")
    assert "饮料9折：9折 最高减20" in listed and "有效" in listed
    used = await chat.say("用券")
    assert "优惠：-¥10.80（9折 最高减20）" in used and "合计：¥97.20" in used
    done = await chat.say("确认")
    assert "¥97.20" in done


async def test_use_coupon_without_a_draft_lists_the_wallet(chat: Chat) -> None:
    assert "没有可用的优惠券" in await chat.say("用券")
    await give(chat, CouponRule("fixed", amount_off_fen=500, threshold_fen=5000), "满50减5")
    reply = await chat.say("用券")
    assert "满50减5" in reply and "下单时自动" in reply
