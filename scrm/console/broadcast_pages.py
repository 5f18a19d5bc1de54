"""Page bodies of the 群发 console (:mod:`scrm.console.broadcasts`): the create form with its count box, the progress
section (counts per status and channel, reasons, SVG bar) and the per-recipient table. Pure: values in, escaped
markup out (every value through :func:`scrm.console.render.t`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.broadcasts.domain import Channel, RecipientStatus, SkipReason
from scrm.campaigns.broadcasts.models import BroadcastStatus
from scrm.campaigns.coupons import services as coupons
from scrm.console.charts import bar_chart
from scrm.console.render import PageContext, Safe, join, post_form, t, table, url, when

PAGE = "/console/broadcasts"
PAGE_SIZE = 50
STATUS_ZH = {
    BroadcastStatus.DRAFT: "草稿",
    BroadcastStatus.SCHEDULED: "已排期",
    BroadcastStatus.RUNNING: "发送中",
    BroadcastStatus.PAUSED: "已暂停",
    BroadcastStatus.DONE: "已完成",
    BroadcastStatus.CANCELLED: "已取消",
}
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
    ("start", "立即开始", "primary", (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED)),
    ("start", "继续发送", "primary", (BroadcastStatus.PAUSED,)),
    ("pause", "暂停", "", (BroadcastStatus.SCHEDULED, BroadcastStatus.RUNNING)),
    ("cancel", "取消群发", "danger", (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED, BroadcastStatus.RUNNING, BroadcastStatus.PAUSED)),
)
DONE_ZH = {"start": "已开始发送", "pause": "已暂停", "cancel": "已取消"}


def reason_zh(reason: str) -> str:
    if ":" in reason and reason not in REASON_ZH:  # an API refusal: "errcode:message"
        return f"接口错误 {reason}"
    return REASON_ZH.get(reason, reason or "—")


# ---- the create form ----------------------------------------------------------------------------------------
def _preview_box(outcome: dict[str, Any] | None) -> Safe:
    """The count for the typed segment (no-JavaScript path; segments.js replaces the box's content live)."""
    if outcome is None:
        return Safe('<div id="segment-preview" class="hint" role="status" aria-live="polite">输入客群表达式后会实时显示人数。</div>')
    if "error" in outcome:
        return t('<div id="segment-preview" role="status" aria-live="polite"><p class="flash flash-err">{m}</p></div>', m=outcome["error"])
    return t(
        '<div id="segment-preview" role="status" aria-live="polite"><p class="kpi"><strong>{n}</strong> 位客户</p></div>',
        n=outcome["count"],
    )


def create_form(ctx: PageContext, templates: list[coupons.CouponTemplate], form: dict[str, str], outcome: dict[str, Any] | None) -> Safe:
    chosen = form.get("coupon_template_id", "")
    options = join(
        [
            Safe('<option value="">不附带优惠券</option>'),
            *(
                t(
                    '<option value="{id}"{sel}>{name}（{label}）</option>',
                    id=x.id,
                    name=x.name,
                    label=x.rule.label,
                    sel=Safe(" selected") if str(x.id) == chosen else "",
                )
                for x in templates
                if x.active
            ),
        ]
    )
    inner = t(
        '<label>群发名称<input name="name" required maxlength="64" value="{name}" placeholder="如：双12 老客回馈"></label>'
        '<label>客群表达式<textarea name="segment" id="segment-expression" rows="2" maxlength="1000" spellcheck="false" '
        'data-preview="/console/segments/preview" required>{segment}</textarea></label>{preview}'
        '<p class="hint">与<a href="/console/segments">客群</a>页相同的写法，'
        "如 <code>rfm:重要价值客户 and last_active &lt; 30d</code>。</p>"
        '<button type="submit" name="action" value="preview">预览人数</button>'
        '<label>消息内容<textarea name="text" rows="4" maxlength="{max}" required>{text}</textarea></label>'
        '<label>附带优惠券（发送前放入客户账户）<select name="coupon_template_id">{options}</select></label>'
        '<label>定时发送（北京时间，留空则不排期）<input name="scheduled_at" type="datetime-local" value="{at}"></label>'
        '<label class="check"><input type="checkbox" name="send_now" value="1"{now}> 创建后立即发送</label>'
        '<p class="hint">渠道按客户自动选择：48 小时内的微信客服会话 → 公众号模板消息 → 销售确认的企业微信群发；'
        "每个渠道都给订单通知留 1 条额度。不勾选也不排期则保存为草稿。</p>"
        '<button type="submit" name="action" value="create" class="primary">创建群发</button>',
        name=form.get("name", ""),
        segment=form.get("segment", ""),
        preview=_preview_box(outcome),
        max=broadcasts.TEXT_MAX,
        text=form.get("text", ""),
        options=options,
        at=form.get("scheduled_at", ""),
        now=Safe(" checked") if form.get("send_now") == "1" else "",
    )
    return post_form(ctx, PAGE, inner, cls="stack")


def summary_counts(view: broadcasts.BroadcastView) -> str:
    totals = view.totals or {}
    reached = sum(v for k, v in (totals.get("channels") or {}).items() if k != Channel.NONE)
    return f"{totals.get('recipients', 0)} 人 / 可触达 {reached}" if totals else "—"


def progress_section(prog: dict[str, Any], reasons: dict[str, dict[str, int]], view: broadcasts.BroadcastView) -> Safe:
    by_status: dict[str, int] = prog["by_status"]
    order = list(RECIPIENT_ZH)
    chart = bar_chart([(RECIPIENT_ZH[s], by_status.get(s, 0)) for s in order], title=f"{view.name} 发送进度", width=700, height=220)
    kpi = '<div class="card"><p class="hint">{label}</p><p class="kpi" data-status="{s}"><strong>{n}</strong></p></div>'
    kpis = join(t(kpi, label=zh, s=s, n=by_status.get(s, 0)) for s, zh in RECIPIENT_ZH.items())
    channel_rows = [
        (CHANNEL_ZH.get(ch, ch), *(counts.get(s, 0) for s in order), sum(counts.values()))
        for ch, counts in sorted(prog["by_channel"].items(), key=lambda kv: list(CHANNEL_ZH).index(kv[0]) if kv[0] in CHANNEL_ZH else 99)
    ]
    reason_rows = [
        (RECIPIENT_ZH.get(status, status), reason_zh(reason), n)
        for status, found in sorted(reasons.items())
        for reason, n in sorted(found.items(), key=lambda kv: -kv[1])
    ]
    return t(
        '<p>共 <strong>{total}</strong> 位收件人已规划{segment_hint}</p><div class="grid kpis">{kpis}</div>'
        '<section class="card chart">{chart}</section>'
        "<h2>各渠道</h2>{channels}<h2>未送达原因</h2>{reasons}",
        total=prog["recipients"],
        segment_hint="（仍在逐批规划）" if view.status in (BroadcastStatus.RUNNING, BroadcastStatus.PAUSED) else "",
        kpis=kpis,
        chart=chart,
        channels=table(["渠道", *(RECIPIENT_ZH[s] for s in order), "合计"], channel_rows, empty="尚未开始规划收件人"),
        reasons=table(["结果", "原因", "人数"], reason_rows, empty="没有跳过或失败的收件人"),
    )


def recipients_section(view_id: int, items: list[dict[str, Any]], names: dict[int, str], *, status: str, after: int) -> Safe:
    base = f"{PAGE}/{view_id}"
    link = '<a href="{href}" class="{cls}">{label}</a>'
    filters = join(
        t(link, href=url(base, status=s) + "#recipients", label=label, cls="active" if s == status else "")
        for s, label in (("", "全部"), *RECIPIENT_ZH.items())
    )
    rows = [
        (
            t("#{id} {n}", id=r["customer_id"], n=names.get(r["customer_id"], "")),
            CHANNEL_ZH.get(r["channel"], r["channel"]),
            RECIPIENT_ZH.get(r["status"], r["status"]),
            reason_zh(r["reason"]) if r["reason"] else "",
            r["salesperson_userid"],
            when(dt.datetime.fromisoformat(r["sent_at"])) if r["sent_at"] else "—",
        )
        for r in items
    ]
    pager = join(
        [
            t('<a href="{href}">第一页</a>', href=url(base, status=status) + "#recipients") if after else "",
            t('<a href="{href}">下一页</a>', href=url(base, status=status, after=items[-1]["customer_id"]) + "#recipients")
            if len(items) == PAGE_SIZE
            else "",
        ]
    )
    return t(
        '<h2 id="recipients">收件人明细</h2><nav class="pager filters">{filters}</nav>{table}<nav class="pager">{pager}</nav>',
        filters=filters,
        table=table(["客户", "渠道", "结果", "原因", "发送成员", "发送时间"], rows, empty="没有符合条件的收件人"),
        pager=pager,
    )
