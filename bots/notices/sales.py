"""Alerts to salespeople about their sales work, by WeCom app message: a lead given to them, a follow-up due today."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bots.outbound import services as sender
from bots.outbound.client import WECOM_API
from scrm.core.runtime import Runtime
from scrm.sales.followups.queries import todos_by_id
from scrm.sales.leads.services import get_lead


async def on_lead_assigned(rt: Runtime, payload: dict[str, Any]) -> None:
    """A lead was given to a salesperson (by the rules or a manager): tell them who and from where — not the phone
    number (an app message is read on a lock screen); the number is on the lead's page."""
    if not rt.has(WECOM_API):
        return
    async with rt.db.read() as conn:
        lead = await get_lead(conn, int(payload["lead_id"]))
    where = f"{lead.source_zh}" + (f"·{lead.source_ref}" if lead.source_ref else "")
    text = f"【新线索】{lead.label}" + (f"（{lead.corp_name}）" if lead.corp_name and lead.corp_name != lead.label else "")
    text += f"\n来源：{where}；{payload.get('why') or '已分配给您'}"
    if lead.remark:
        text += f"\n需求：{lead.remark[:80]}"
    text += "\n请尽快跟进（在工作台“线索”中查看）。"
    key = f"lead:{lead.id}:to:{payload['owner']}:{payload.get('at', '')}"
    await sender.send_app_message(rt, touser=[str(payload["owner"])], text=text, key=key[:128], purpose="alert")


async def on_follow_ups_due(rt: Runtime, payload: dict[str, Any]) -> None:
    """A salesperson's next-contacts due today (or overdue): one app message listing them, at most ten lines."""
    if not rt.has(WECOM_API):
        return
    async with rt.db.read() as conn:
        items = await todos_by_id(conn, [int(i) for i in payload["ids"]], dt.date.fromisoformat(payload["day"]))
    if not items:
        return
    lines = []
    for n, todo in enumerate(items[:10], 1):
        f = todo.follow_up
        when = "今天" if todo.overdue_days <= 0 else f"已逾期 {todo.overdue_days} 天"
        what = "线索" if f.lead_id is not None else "客户"
        lines.append(f"{n}. {todo.subject or what}（{what}，{when}）上次{f.kind_zh}：{f.body[:30]}")
    more = f"\n……还有 {len(items) - 10} 条" if len(items) > 10 else ""
    text = f"【今日跟进】您有 {len(items)} 位客户/线索今天需要联系：\n" + "\n".join(lines) + more + "\n（在侧边栏“我的一天”查看全部）"
    key = f"follow_ups:{payload['owner']}:{payload['day']}:{min(payload['ids'])}"
    await sender.send_app_message(rt, touser=[str(payload["owner"])], text=text, key=key[:128], purpose="alert")
