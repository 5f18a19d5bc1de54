"""Customer question about money owed: 账单 / 欠款 / 还欠多少 / 对账 → their own open invoices, the oldest due
date and what is overdue. Only the asking customer's figures, never anyone else's."""

from __future__ import annotations

import re

from bots.dialogue.router import Intent, Reply, Turn
from fulfillment.billing.receivables import Balance, customer_balance
from fulfillment.billing.services import uninvoiced_orders
from scrm.core.money import format_fen

ASKS_BALANCE = re.compile(r"账单|欠款|欠费|对账|还欠|欠.{0,4}多少|未付|应付|结账单|要付多少|该付多少|付了多少")
SHOWN = 5


def _due_text(days_past_due: int) -> str:
    if days_past_due > 0:
        return f"已逾期 {days_past_due} 天"
    if days_past_due == 0:
        return "今天到期"
    return f"还有 {-days_past_due} 天到期"


def _unbilled_text(unbilled: list[tuple[str, int]]) -> str:
    if not unbilled:
        return ""
    numbers = "、".join(number for number, _ in unbilled[:SHOWN]) + ("等" if len(unbilled) > SHOWN else "")
    total = sum(fen for _, fen in unbilled)
    return f"\n另有 {len(unbilled)} 张订单（{numbers}）共 {format_fen(total)} 尚未开账单，发货后会开具。"


def balance_text(balance: Balance, unbilled: list[tuple[str, int]] | None = None) -> str:
    """The reply, in Chinese with ¥ amounts. ``unbilled``: confirmed orders whose bill is still to come."""
    credit = f"\n您另有预付余额 {format_fen(balance.credit_fen)}，会自动抵扣下一张账单。" if balance.credit_fen else ""
    credit = _unbilled_text(unbilled or []) + credit
    if not balance.invoices:
        return "您目前没有未结账单，感谢您的支持！" + credit
    oldest = balance.invoices[0]
    lines = [
        f"您目前有 {len(balance.invoices)} 张未结账单，合计 {format_fen(balance.open_fen)}。",
        f"最早一张 {oldest.number} 的到期日是 {oldest.due_on.isoformat()}（{_due_text(oldest.days_past_due)}）。",
    ]
    if balance.overdue_fen:
        lines.append(f"其中已逾期 {format_fen(balance.overdue_fen)}，请尽快安排付款。")
    lines.append("明细：")
    lines += [
        f"· {i.number}（订单 {i.order_number}）{format_fen(i.balance_fen)}，到期 {i.due_on.isoformat()}" for i in balance.invoices[:SHOWN]
    ]
    if len(balance.invoices) > SHOWN:
        lines.append(f"……另有 {len(balance.invoices) - SHOWN} 张")
    return "\n".join(lines) + credit + "\n如已付款请忽略；对账有疑问请联系您的销售顾问。"


async def balance(turn: Turn) -> Reply | None:
    if not ASKS_BALANCE.search(turn.normalized):
        return None
    found = await customer_balance(turn.rt, turn.customer_id)
    unbilled = await uninvoiced_orders(turn.rt, turn.customer_id)
    return Reply(balance_text(found, unbilled), meta={"open_fen": found.open_fen, "unbilled_fen": sum(f for _, f in unbilled)})


# What this skill understands (the composition root installs every skill's list on the runtime).
INTENTS = [
    Intent("balance", None, balance, help_line="发送“账单”或“还欠多少”查看未结账单和到期日", priority=15),
]
