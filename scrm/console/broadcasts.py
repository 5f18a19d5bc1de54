"""/console/broadcasts — 群发: the marketer's segment broadcasts. A list with the create form (name, segment
expression with a live count, text, optional coupon, send now / at a time / save as draft), and a page per
broadcast with its progress (planned / sent / awaiting salesperson confirmation / skipped and failed with the
reasons, per channel, an SVG bar), the start / resume / pause / cancel buttons its status allows, and the
per-recipient results, 50 a page (keyset on the customer id).

The live count reuses the segments page's script and endpoint (``static/segments.js`` →
``GET /console/segments/preview``, marketer and admin like this page); without JavaScript the 预览人数 button posts
the form back and the page shows the count with everything typed kept. A refused form is shown again, filled
in, with the reason (HTTP 400) — nothing typed is lost. Every change goes through :mod:`scrm.campaigns.broadcasts`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from scrm.campaigns import broadcasts, coupons
from scrm.campaigns.broadcast_domain import Channel, RecipientStatus, SkipReason
from scrm.campaigns.models import BroadcastStatus
from scrm.console import auth
from scrm.console.charts import bar_chart
from scrm.console.render import (
    SECURITY_HEADERS,
    PageContext,
    Safe,
    button_form,
    html_response,
    join,
    layout,
    post_form,
    t,
    table,
    url,
    when,
)
from scrm.console.web import _act, _actor, _ctx, _form, forbidden
from scrm.core.clock import SHANGHAI
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.customers.models import customers
from scrm.web.keys import RUNTIME

PAGE = "/console/broadcasts"
PAGE_SIZE = 50
CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'none'", "script-src 'self'")
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


def _local_value(value: dt.datetime | None) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M") if value else ""


def _scheduled_at(raw: str, now: dt.datetime) -> dt.datetime | None:
    """A datetime-local value (Shanghai time) → aware UTC, in the future; blank → None."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            "发送时间需为日期时间，如 2026-12-12T20:00 (scheduled_at must be a date and time)", field="scheduled_at"
        ) from None
    value = (value if value.tzinfo else value.replace(tzinfo=SHANGHAI)).astimezone(dt.UTC)
    if value <= now:
        raise InvalidInput("发送时间需晚于现在 (scheduled_at must be in the future)", field="scheduled_at")
    return value


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
        '<label>客群表达式<textarea name="segment" id="segment-expression" rows="2" maxlength="4000" spellcheck="false" '
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


def _counts(view: broadcasts.BroadcastView) -> str:
    totals = view.totals or {}
    reached = sum(v for k, v in (totals.get("channels") or {}).items() if k != Channel.NONE)
    return f"{totals.get('recipients', 0)} 人 / 可触达 {reached}" if totals else "—"


async def _list_page(
    request: web.Request, form: dict[str, str], outcome: dict[str, Any] | None, *, status: int = 200, error: str = ""
) -> web.Response:
    rt = request.app[RUNTIME]
    raw = request.query.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) < 19 else None
    async with rt.db.read() as conn:
        items = await broadcasts.list_broadcasts(conn, limit=PAGE_SIZE, before=before)
    templates = await coupons.list_templates(rt, active=True)
    ctx = _ctx(request, "broadcasts")
    if error:
        ctx = dataclasses.replace(ctx, flash=("err", error))
    rows = [
        (
            t('<a href="{href}">{name}</a>', href=f"{PAGE}/{b.id}", name=b.name),
            STATUS_ZH.get(b.status, b.status),
            t("<code>{e}</code>", e=b.segment),
            _counts(b),
            when(b.scheduled_at),
            when(b.created_at),
        )
        for b in items
    ]
    more = (
        t('<nav class="pager"><a href="{href}">更早的群发</a></nav>', href=url(PAGE, before=items[-1].id))
        if len(items) == PAGE_SIZE
        else ""
    )
    body = t(
        '{table}{more}<section class="card" id="new"><h3>新建群发</h3>{form}</section>'
        '<script src="/console/static/segments.js" defer></script>',
        table=table(["群发", "状态", "客群", "人数", "定时", "创建时间"], rows, empty="还没有群发，先在下面新建一个"),
        more=more,
        form=create_form(ctx, templates, form, outcome),
    )
    response = html_response(layout(ctx, "群发", body), status=status, headers={"Content-Security-Policy": CSP})
    auth.clear_flash(request, response)
    return response


async def broadcast_list(request: web.Request) -> web.Response:
    """群发: every broadcast (newest first) and the create form."""
    return await _list_page(request, {}, None)


async def _count(rt: Any, expression: str) -> dict[str, Any] | None:
    from tagging import segments

    if not expression.strip():
        return None
    try:
        return {"count": await segments.count_segment(rt, expression)}
    except segments.SegmentSyntaxError as exc:
        return {"error": f"{exc.message}（第 {exc.column} 个字符）"}


async def broadcast_create(request: web.Request) -> web.Response:
    """预览人数 shows the count with the form kept; 创建群发 creates it (draft, scheduled, or started now) and goes
    to its page. A refused form comes back filled in with the reason (400)."""
    rt = request.app[RUNTIME]
    form = await _form(request)
    outcome = await _count(rt, form.get("segment", ""))
    if form.get("action") == "preview":
        return await _list_page(request, form, outcome)
    try:
        if outcome is not None and "error" in outcome:
            raise InvalidInput(f"客群表达式有误：{outcome['error']}", field="segment")
        raw_template = form.get("coupon_template_id", "").strip()
        if raw_template and (not raw_template.isdigit() or len(raw_template) > 18):
            raise InvalidInput("请选择优惠券 (coupon_template_id)", field="coupon_template_id")
        send_now = form.get("send_now") == "1"
        at = _scheduled_at(form.get("scheduled_at", ""), rt.clock.now())
        if send_now and at is not None:
            raise InvalidInput("“立即发送”与“定时发送”只能选一个 (send now or at a time, not both)", field="scheduled_at")
        data: dict[str, Any] = {
            "name": form.get("name", ""),
            "segment": form.get("segment", ""),
            "text": form.get("text", ""),
            "coupon_template_id": int(raw_template) if raw_template else None,
            "scheduled_at": at.isoformat() if at else None,
        }
        view = await broadcasts.create_broadcast(rt, data, actor=_actor(request))
        if send_now:
            view = await _start(rt, view.id)
    except DomainError as exc:
        return await _list_page(request, form, outcome, status=400, error=exc.message)
    what = "已开始发送" if send_now else (f"将于 {when(view.scheduled_at)} 发送" if view.scheduled_at else "已保存为草稿")
    response = web.Response(status=303, headers={"Location": f"{PAGE}/{view.id}"})
    auth.set_flash(request, response, "ok", f"已创建群发“{view.name}”，{what}")
    return response


async def _start(rt: Any, broadcast_id: int) -> broadcasts.BroadcastView:
    """Start (or resume) and plan the first batches now, as the API's start does (throttled by the job)."""
    view = await broadcasts.start_broadcast(rt, broadcast_id)
    await rt.jobs.enqueue("broadcasts.plan", view.id, job_id=f"broadcast-plan:{view.id}:{rt.clock.now():%Y%m%d%H%M}")
    return view


# ---- one broadcast ------------------------------------------------------------------------------------------
def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("没有这个群发 (no such broadcast)")
    return int(raw)


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
        '<p>共 <strong>{total}</strong> 位收件人已规划{segment_hint}</p><div class="grid">{kpis}</div>'
        '<section class="card chart">{chart}</section>'
        "<h2>各渠道</h2>{channels}<h2>未送达原因</h2>{reasons}",
        total=prog["recipients"],
        segment_hint="（仍在逐批规划）" if view.status in (BroadcastStatus.RUNNING, BroadcastStatus.PAUSED) else "",
        kpis=kpis,
        chart=chart,
        channels=table(["渠道", *(RECIPIENT_ZH[s] for s in order), "合计"], channel_rows, empty="尚未开始规划收件人"),
        reasons=table(["结果", "原因", "人数"], reason_rows, empty="没有跳过或失败的收件人"),
    )


async def _names(conn: Any, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await conn.execute(sa.select(customers.c.id, customers.c.name).where(customers.c.id.in_(ids)))
    return {int(r.id): r.name or "" for r in rows}


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


async def broadcast_detail(request: web.Request) -> web.Response:
    """One broadcast: summary, the buttons its status allows, progress, reasons, per-recipient results."""
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "broadcasts")
    status = request.query.get("status", "")
    status = status if status in RECIPIENT_ZH else ""
    raw_after = request.query.get("after", "0")
    after = int(raw_after) if raw_after.isdigit() and len(raw_after) < 19 else 0
    try:
        bid = _id(request)
        async with rt.db.read() as conn:
            view = await broadcasts.get_broadcast(conn, bid)
            prog = await broadcasts.progress(conn, bid)
            reasons = await broadcasts.outcome_reasons(conn, bid)
            items = await broadcasts.list_recipients(conn, bid, status=status or None, after=after, limit=PAGE_SIZE)
            names = await _names(conn, [r["customer_id"] for r in items])
    except NotFound as exc:
        return _not_found(request, ctx, exc)
    template = ""
    if view.coupon_template_id is not None:
        try:
            tpl = await coupons.get_template(rt, view.coupon_template_id)
            template = f"{tpl.name}（{tpl.rule.label}）"
        except NotFound:
            template = f"#{view.coupon_template_id}"
    buttons = join(
        button_form(ctx, f"{PAGE}/{view.id}/{action}", label, cls=cls) for action, label, cls, shown in ACTIONS if view.status in shown
    )
    summary = t(
        '<dl class="summary"><dt>状态</dt><dd><strong data-broadcast-status="{s}">{status}</strong></dd><dt>定时</dt><dd>{at}</dd>'
        "<dt>客群</dt><dd><code>{segment}</code></dd><dt>优惠券</dt><dd>{coupon}</dd>"
        "<dt>开始</dt><dd>{started}</dd><dt>完成</dt><dd>{finished}</dd><dt>创建</dt><dd>{created}</dd><dt>消息</dt><dd>{text}</dd></dl>",
        s=view.status,
        status=STATUS_ZH.get(view.status, view.status),
        at=when(view.scheduled_at),
        segment=view.segment,
        coupon=template or "—",
        started=when(view.started_at),
        finished=when(view.finished_at),
        created=when(view.created_at),
        text=view.text,
    )
    body = t(
        '<p><a href="{page}">← 返回群发列表</a></p>{summary}<p>{buttons}</p><h2>发送进度</h2>{progress}{recipients}',
        page=PAGE,
        summary=summary,
        buttons=buttons,
        progress=progress_section(prog, reasons, view),
        recipients=recipients_section(view.id, items, names, status=status, after=after),
    )
    response = html_response(layout(ctx, f"群发：{view.name}", body))
    auth.clear_flash(request, response)
    return response


def _not_found(request: web.Request, ctx: PageContext, exc: NotFound) -> web.Response:
    response = html_response(layout(ctx, "没有找到群发", t('<p class="empty">{m}</p>', m=exc.message)), status=404)
    auth.clear_flash(request, response)
    return response


def _action(name: str) -> auth.Handler:
    async def handler(request: web.Request) -> web.Response:
        rt = request.app[RUNTIME]
        bid = _id(request)

        async def act() -> str:
            if name == "start":
                view = await _start(rt, bid)
            elif name == "pause":
                view = await broadcasts.pause_broadcast(rt, bid)
            else:
                view = await broadcasts.cancel_broadcast(rt, bid)
            return f"群发“{view.name}”{DONE_ZH[name]}"

        return await _act(request, f"{PAGE}/{bid}", act)

    handler.__name__ = f"broadcast_{name}"
    handler.__doc__ = f"POST {name}: one status change through scrm.campaigns.broadcasts (refusals become the red flash)."
    return handler


# ---- wiring -------------------------------------------------------------------------------------------------
ROUTES = (
    ("GET", PAGE, broadcast_list),
    ("POST", PAGE, broadcast_create),
    ("GET", PAGE + "/{id}", broadcast_detail),
    ("POST", PAGE + "/{id}/start", _action("start")),
    ("POST", PAGE + "/{id}/pause", _action("pause")),
    ("POST", PAGE + "/{id}/cancel", _action("cancel")),
)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.MARKETING_ROLES) -> None:
    """Mount the 群发 pages behind the console's sign-in (marketer or admin; CSRF on every POST)."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
