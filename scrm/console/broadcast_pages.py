"""View values of the 群发 console (:mod:`scrm.console.broadcasts`) for ``templates/broadcasts/``: the create form
with its count box, the progress section (counts per status and channel, reasons, the bar chart's geometry) and the
per-recipient table. Pure: values in, typed values out (the templates escape them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.broadcasts.domain import (
    CANCELLABLE,
    COUPON_NOT_ISSUED_PREFIX,
    COUPON_NOT_ISSUED_ZH,
    PAUSABLE,
    PLANNING,
    RESUMABLE,
    STARTABLE,
    STATUS_ZH,
    Channel,
    RecipientStatus,
    SkipReason,
)
from scrm.campaigns.coupons import services as coupons
from scrm.console.charts import BarChart, bar_geometry
from scrm.console.pages import url, when
from scrm.console.segments import SegmentPreview

PAGE = "/console/broadcasts"
PAGE_SIZE = 50
RECIPIENT_ZH = {
    RecipientStatus.PLANNED: "待发送",
    RecipientStatus.SENT: "已发送",
    RecipientStatus.AWAITING_CONFIRMATION: "待销售确认",
    RecipientStatus.SKIPPED: "已跳过",
    RecipientStatus.FAILED: "发送失败",
}
CHANNEL_ZH = {
    Channel.KF: "微信客服",
    Channel.MP_TEMPLATE: "公众号模板消息",
    Channel.MSG_TEMPLATE: "销售确认群发",
    Channel.NONE: "无可用渠道",
}
REASON_ZH = {
    SkipReason.KF_WINDOW_CLOSED: "客服会话已超过 48 小时",
    SkipReason.KF_BUDGET_RESERVED: "客服消息额度仅剩订单通知的 1 条",
    SkipReason.MONTHLY_CAP: "本月群发次数已达上限（留 1 次给订单通知）",
    SkipReason.NO_CHANNEL: "没有可触达的渠道",
    SkipReason.MERGED: "客户已合并到另一客户",
    SkipReason.CANCELLED: "群发已取消",
    "refused_by_wecom": "企业微信拒绝（客户不可接收）",
}
# (action, button label, css class, the statuses that show it) — the engine's TRANSITIONS decide what is allowed.
ACTIONS = (
    ("start", "立即开始", "primary", STARTABLE),
    ("start", "继续发送", "primary", RESUMABLE),
    ("pause", "暂停", "", PAUSABLE),
    ("cancel", "取消群发", "danger", CANCELLABLE),
)
DONE_ZH = {"start": "已开始发送", "pause": "已暂停", "cancel": "已取消"}


def reason_zh(reason: str) -> str:
    if reason.startswith(COUPON_NOT_ISSUED_PREFIX):  # reached, but the coupon was refused
        refusal = reason.removeprefix(COUPON_NOT_ISSUED_PREFIX)
        return f"未发券：{COUPON_NOT_ISSUED_ZH.get(refusal, refusal)}"
    if ":" in reason and reason not in REASON_ZH:  # an API refusal: "errcode:message"
        return f"接口错误 {reason}"
    return REASON_ZH.get(reason, reason or "—")


# ---- view values ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BroadcastRow:
    """One broadcast in the list."""

    id: int
    name: str
    status: str
    segment: str
    counts: str
    scheduled_at: dt.datetime | None
    created_at: dt.datetime | None


@dataclass(frozen=True)
class CreateFormView:
    """The create form as typed (kept when it comes back with a count or a refusal) and its coupon choices."""

    name: str
    segment: str
    text: str
    text_max: int
    coupon_template_id: str
    coupons: tuple[tuple[str, str], ...]  # (template id, "name（label）"), active templates only
    scheduled_at: str
    send_now: bool
    preview: SegmentPreview | None
    referral_campaign_id: str = ""  # 附带邀请海报: the chosen referral campaign ("" = none)
    referral_campaigns: tuple[tuple[str, str], ...] = ()  # (campaign id, name), running campaigns only


@dataclass(frozen=True)
class ProgressView:
    """Counts per recipient status (as KPIs and a bar chart), per channel, and why some were not reached."""

    total: int
    planning: bool  # still planning batches (running or paused)
    kpis: tuple[tuple[str, str, int], ...]  # (status, label, count)
    chart: BarChart
    channel_headers: tuple[str, ...]
    channels: list[tuple[object, ...]]
    reasons: list[tuple[object, ...]]
    coupon_missed: int  # reached recipients whose coupon could not be issued
    coupon_misses: list[tuple[object, ...]]  # (why in Chinese, count)


@dataclass(frozen=True)
class RecipientsView:
    """The per-recipient table, 50 a page: the status filters ``(href, label, active)``, the rows, the pager links."""

    filters: tuple[tuple[str, str, bool], ...]
    rows: list[tuple[object, ...]]
    first: str
    next: str


def summary_counts(view: broadcasts.BroadcastView) -> str:
    totals = view.totals or {}
    reached = sum(v for k, v in (totals.get("channels") or {}).items() if k != Channel.NONE)
    return f"{totals.get('recipients', 0)} 人 / 可触达 {reached}" if totals else "—"


def broadcast_row(b: broadcasts.BroadcastView) -> BroadcastRow:
    return BroadcastRow(b.id, b.name, STATUS_ZH.get(b.status, b.status), b.segment, summary_counts(b), b.scheduled_at, b.created_at)


def create_form(
    templates: list[coupons.CouponTemplate],
    form: dict[str, str],
    preview: SegmentPreview | None,
    referral_campaigns: list[tuple[int, str]] | None = None,
) -> CreateFormView:
    return CreateFormView(
        name=form.get("name", ""),
        segment=form.get("segment", ""),
        text=form.get("text", ""),
        text_max=broadcasts.TEXT_MAX,
        coupon_template_id=form.get("coupon_template_id", ""),
        coupons=tuple((str(x.id), f"{x.name}（{x.rule.label}）") for x in templates if x.active),
        scheduled_at=form.get("scheduled_at", ""),
        send_now=form.get("send_now") == "1",
        preview=preview,
        referral_campaign_id=form.get("referral_campaign_id", ""),
        referral_campaigns=tuple((str(i), name) for i, name in referral_campaigns or ()),
    )


def progress_view(prog: dict[str, Any], reasons: dict[str, dict[str, int]], view: broadcasts.BroadcastView) -> ProgressView:
    by_status: dict[str, int] = prog["by_status"]
    order = list(RECIPIENT_ZH)
    channel_rows: list[tuple[object, ...]] = [
        (CHANNEL_ZH.get(ch, ch), *(counts.get(s, 0) for s in order), sum(counts.values()))
        for ch, counts in sorted(prog["by_channel"].items(), key=lambda kv: list(CHANNEL_ZH).index(kv[0]) if kv[0] in CHANNEL_ZH else 99)
    ]
    reason_rows: list[tuple[object, ...]] = [
        (RECIPIENT_ZH.get(status, status), reason_zh(reason), n)
        for status, found in sorted(reasons.items())
        for reason, n in sorted(found.items(), key=lambda kv: -kv[1])
    ]
    return ProgressView(
        total=prog["recipients"],
        planning=view.status in PLANNING,
        kpis=tuple((s, zh, by_status.get(s, 0)) for s, zh in RECIPIENT_ZH.items()),
        chart=bar_geometry([(RECIPIENT_ZH[s], by_status.get(s, 0)) for s in order], title=f"{view.name} 发送进度", width=700, height=220),
        channel_headers=("渠道", *(RECIPIENT_ZH[s] for s in order), "合计"),
        channels=channel_rows,
        reasons=reason_rows,
        coupon_missed=sum(prog.get("coupon_not_issued", {}).values()),
        coupon_misses=[
            (COUPON_NOT_ISSUED_ZH.get(k, k), n) for k, n in sorted(prog.get("coupon_not_issued", {}).items(), key=lambda kv: -kv[1])
        ],
    )


def recipients_view(
    view_id: int, items: list[dict[str, Any]], names: Mapping[int, str | None], *, status: str, after: int
) -> RecipientsView:
    base = f"{PAGE}/{view_id}"
    rows: list[tuple[object, ...]] = [
        (
            f"#{r['customer_id']} {names.get(r['customer_id']) or ''}",
            CHANNEL_ZH.get(r["channel"], r["channel"]),
            RECIPIENT_ZH.get(r["status"], r["status"]),
            reason_zh(r["reason"]) if r["reason"] else "",
            r["salesperson_userid"],
            when(dt.datetime.fromisoformat(r["sent_at"])) if r["sent_at"] else "—",
        )
        for r in items
    ]
    return RecipientsView(
        filters=tuple((url(base, status=s) + "#recipients", label, s == status) for s, label in (("", "全部"), *RECIPIENT_ZH.items())),
        rows=rows,
        first=url(base, status=status) + "#recipients" if after else "",
        next=url(base, status=status, after=items[-1]["customer_id"]) + "#recipients" if len(items) == PAGE_SIZE else "",
    )
