"""Coupons in chat: “我的优惠券” lists the wallet; “用券” applies the best coupon to the pending draft.

Drafts take the best applicable coupon by themselves (fulfillment.orders.discounts), so “用券” mostly re-prices a draft
made before a coupon arrived and shows what is used; the quote's discount line comes from :func:`discount_line`.
"""

from __future__ import annotations

from bots.dialogue.router import Intent, Reply, Turn, exact
from fulfillment.orders import discounts, notices
from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders.queries import OrderView
from scrm.campaigns.coupons.queries import CouponView
from scrm.campaigns.coupons.services import coupons_of_customer
from scrm.core.clock import local
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime

NO_COUPONS = "您目前没有可用的优惠券。"


async def discount_line(rt: Runtime, order: OrderView) -> str:
    """'\\n优惠：-¥10.00（满100减10）' for an order with a discount, else ''. Appended to the quoted lines."""
    if not order.discount_fen:
        return ""
    applied = await discounts.discount_of(rt, order.id)
    label = f"（{applied.label}）" if applied.label else ""
    return f"\n优惠：{format_fen(-order.discount_fen)}{label}"


def _wallet_line(c: CouponView) -> str:
    until = f"，{local(c.expires_at):%m月%d日}前有效" if c.expires_at else ""
    name = f"{c.name}：" if c.name and c.name != c.label else ""
    return f"· {name}{c.label}{until}"


async def my_coupons(turn: Turn) -> Reply:
    wallet = await coupons_of_customer(turn.rt, turn.customer_id, usable_only=True)
    if not wallet:
        return Reply(NO_COUPONS + "关注活动或邀请好友即可获得。")
    lines = "\n".join(_wallet_line(c) for c in wallet)
    return Reply(f"您有 {len(wallet)} 张可用优惠券：\n{lines}\n下单时会自动为您使用最优惠的券。")


async def use_coupon(turn: Turn) -> Reply:
    draft = await orders_queries.open_draft(turn.rt, turn.customer_id)
    if draft is None:
        wallet = await coupons_of_customer(turn.rt, turn.customer_id, usable_only=True)
        if not wallet:
            return Reply(NO_COUPONS)
        lines = "\n".join(_wallet_line(c) for c in wallet)
        return Reply(f"您有可用优惠券：\n{lines}\n先告诉我要买什么，下单时自动为您使用最优惠的券。")
    # Re-price the draft: it takes the best coupon usable now (one received after the draft was made, too).
    pairs = [(ln.sku, ln.qty) for ln in draft.lines]
    draft = await orders.set_draft_lines(
        turn.rt, draft.id, pairs, expected_version=draft.version, actor="customer", ref=f"inbound:{turn.inbound_id}"
    )
    lines = notices.format_lines(draft.lines) + await discount_line(turn.rt, draft)
    text = notices.render("order_quote", lines=lines, total=format_fen(draft.total_fen))
    if not draft.discount_fen:
        wallet = await coupons_of_customer(turn.rt, turn.customer_id, usable_only=True)
        reason = "您的优惠券暂不适用于这张订单（未满使用门槛或不含指定商品）。" if wallet else NO_COUPONS
        text = reason + "\n\n" + text
    else:
        text = "已为您使用最优惠的券。\n\n" + text
    return Reply(text, meta={"order": draft.number})


# What this skill understands (the composition root installs every skill's list on the runtime).
INTENTS = [
    Intent(
        "my_coupons",
        exact("我的优惠券", "我的券", "优惠券", "有什么券", "有没有优惠券", "查券"),
        my_coupons,
        help_line="我的优惠券：查看可用的券",
        priority=15,
    ),
    Intent(
        "use_coupon",
        exact("用券", "使用优惠券", "用优惠券", "使用券", "我要用券"),
        use_coupon,
        help_line="用券：下单后说“用券”使用优惠券",
        priority=15,
    ),
]
