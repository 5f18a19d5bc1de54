"""Repurchase reminders (复购提醒 / 流失预警) to the salesperson: the alerts one recompute opened for one salesperson
(``repurchase.alerts_opened``) → one WeCom app message listing them, with the coupon they may send when one is
configured. One message per batch, not per alert: a nightly run may open dozens for one person and WeCom drops app
messages past 30 a minute per member.

The handler may run twice: the send is keyed by the batch's first alert id (each alert is opened, and so batched,
once), so a repeat sends nothing new. Alerts closed before the handler ran (the customer already bought) are left
out; a batch with none left sends nothing."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from bots.notices.orders import alert_staff
from scrm.campaigns.coupons.services import get_template
from scrm.core.errors import NotFound
from scrm.core.runtime import Runtime
from scrm.sales.repurchase.domain import AlertKind, AlertStatus
from scrm.sales.repurchase.queries import AlertView, alerts_by_id
from scrm.sales.repurchase.services import read_settings

log = logging.getLogger(__name__)

SHOWN = 10  # alerts listed in one message; the rest are counted


def _day(day: dt.date) -> str:
    return f"{day.month}月{day.day}日"


def alert_line(a: AlertView) -> str:
    rhythm = f"通常每 {a.interval_days} 天买一次，上次 {_day(a.last_purchase_on)}"
    if a.kind == AlertKind.AT_RISK:
        return f"· 【流失预警】{a.customer}：{a.product}，{rhythm}，已超过 {2 * a.interval_days} 天未买，请联系召回"
    return f"· 【复购提醒】{a.customer}：{a.product}，{rhythm}，预计 {_day(a.due_on)} 再买"


async def _coupon_offer(rt: Runtime) -> str:
    async with rt.db.read() as conn:
        settings = await read_settings(conn)
    if settings.coupon_template_id is None:
        return ""
    try:
        template = await get_template(rt, settings.coupon_template_id)
    except NotFound:
        return ""
    return f"可为客户发放优惠券“{template.name}”：在控制台“复购预警”中点“发券”。" if template.active else ""


async def on_alerts_opened(rt: Runtime, payload: dict[str, Any]) -> None:
    owner = str(payload["owner_userid"])
    ids = [int(i) for i in payload["alert_ids"]]
    async with rt.db.read() as conn:
        alerts = [a for a in await alerts_by_id(conn, ids) if a.status == AlertStatus.OPEN and a.owner_userid == owner]
    if not alerts:
        log.info("repurchase reminder not sent: its alerts closed first", extra={"owner": owner, "alert_ids": ids[:20]})
        return
    risky = sum(1 for a in alerts if a.kind == AlertKind.AT_RISK)
    head = f"您有 {len(alerts)} 位客户该复购了" if not risky else f"您有 {len(alerts)} 条复购预警（其中 {risky} 位客户有流失风险）"
    lines = [head + "：", *(alert_line(a) for a in alerts[:SHOWN])]
    if len(alerts) > SHOWN:
        lines.append(f"…… 另有 {len(alerts) - SHOWN} 条")
    offer = await _coupon_offer(rt)
    if offer:
        lines.append(offer)
    lines.append("处理：控制台“复购预警”（标记完成 / 忽略）")
    await alert_staff(rt, userids=[owner], text="\n".join(lines), key=f"repurchase-alerts:{owner}:{min(ids)}")
