"""Stored codes as staff read them: one mapping of code → Chinese label per kind, and the two template filters
that use it (``{{ order.source|label("order_source") }}``, ``{{ row.actor|actor_label }}``).

Every console template shows a code through these filters, never the raw value: a code that has no label yet is
shown as it is (so nothing disappears), and a test lists the codes the services write to catch a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping

from fulfillment.billing.domain import PAYMENT_METHODS
from fulfillment.orders.domain import STATUS_ZH

# 订单来源 where an order was placed (fulfillment.orders.models.Order.source)
ORDER_SOURCE_ZH = {"chat": "客户聊天下单", "sidebar": "销售侧边栏", "api": "API", "console": "控制台", "import": "导入", "quote": "报价单"}
# 订单记录 what happened to an order (fulfillment.orders order history ``event``)
ORDER_EVENT_ZH = {
    "credit_hold": "超出信用额度，待审核",
    "approval_requested": "提交审批，待审批通过",
    "created": "创建",
    "lines_changed": "修改商品",
    "confirmed": "确认",
    "cancelled": "取消",
    "expired": "过期",
    "shipped": "发货",
    "completed": "完成",
    "shipment_cancelled": "取消发货",
    "backorder_allocated": "缺货补足",
}
SHIPMENT_STATUS_ZH = {"shipped": "已发出", "delivered": "已签收", "cancelled": "已取消"}
# 收款来源 how a payment reached us (fulfillment.billing.models.Payment.source)
PAYMENT_SOURCE_ZH = {"console": "控制台录入", "api": "API", "import": "对账单导入"}
# 核销来源 what settled part of an invoice
ALLOCATION_SOURCE_ZH = {"payment": "收款", "credit": "预收抵扣", "void": "作废冲回"}

LABELS: Mapping[str, Mapping[str, str]] = {
    "order_source": ORDER_SOURCE_ZH,
    "order_status": STATUS_ZH,
    "order_event": ORDER_EVENT_ZH,
    "shipment_status": SHIPMENT_STATUS_ZH,
    "payment_source": PAYMENT_SOURCE_ZH,
    "payment_method": PAYMENT_METHODS,
    "allocation_source": ALLOCATION_SOURCE_ZH,
}

# 操作人 who did something, as the services record it: a fixed word, or "kind:who"
ACTOR_ZH = {
    "customer": "客户本人",
    "system": "系统",
    "api": "API",
    "cli": "命令行",
    "referral": "裂变活动",
    "handover": "客户交接",
    "": "—",
}
ACTOR_PREFIX_ZH = {"console": "控制台", "segment": "客群规则", "referral": "裂变活动", "sidebar": "销售侧边栏", "import": "导入"}


def label(value: object, kind: str) -> str:
    """``value``'s Chinese label among ``kind``'s codes; an unknown code as it is, None as —."""
    if value is None:
        return "—"
    text = str(value)
    return LABELS[kind].get(text, text)


def actor_label(value: str | None) -> str:
    """操作人 in Chinese: ``customer`` → 客户本人, ``console:li`` → 控制台 li, a bare WeCom userid → 销售 userid."""
    text = value or ""
    if text in ACTOR_ZH:
        return ACTOR_ZH[text]
    kind, sep, who = text.partition(":")
    if sep and kind in ACTOR_PREFIX_ZH:
        return f"{ACTOR_PREFIX_ZH[kind]} {who}".strip()
    return f"销售 {text}"  # the sidebar records the salesperson's WeCom userid
