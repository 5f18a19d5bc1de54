"""/console/broadcasts — 群发: the marketer's segment broadcasts. A list with the create form (name, segment
expression with a live count, text, optional coupon, send now / at a time / save as draft), and a page per
broadcast with its progress (planned / sent / awaiting salesperson confirmation / skipped and failed with the
reasons, per channel, an SVG bar), the start / resume / pause / cancel buttons its status allows, and the
per-recipient results, 50 a page (keyset on the customer id).

The live count reuses the segments page's script and endpoint (``static/segments.js`` →
``GET /console/segments/preview``, marketer and admin like this page); without JavaScript the 预览人数 button posts
the form back and the page shows the count with everything typed kept. A refused form is shown again, filled
in, with the reason (HTTP 400) — nothing typed is lost. Every change goes through :mod:`scrm.campaigns.broadcasts.services`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection
from typing import Any

from aiohttp import web

from scrm.campaigns.broadcasts import queries as broadcasts_queries
from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.broadcasts.domain import STATUS_ZH
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.referral import services as referral_services
from scrm.campaigns.referral import sharing as referral_sharing
from scrm.console import auth
from scrm.console.broadcast_pages import (
    ACTIONS,
    DONE_ZH,
    PAGE,
    PAGE_SIZE,
    RECIPIENT_ZH,
    broadcast_row,
    create_form,
    progress_view,
    recipients_view,
)
from scrm.console.pages import (
    SECURITY_HEADERS,
    PageContext,
    act,
    actor,
    forbidden,
    page_context,
    path_id,
    read_form,
    render,
    setup_templates,
    url,
    when,
)
from scrm.console.segments import SegmentPreview
from scrm.core.clock import SHANGHAI
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import names_of
from tagging.segments import services as segments
from tagging.segments import syntax as segments_syntax

CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'none'", "script-src 'self'")


def _scheduled_at(raw: str, now: dt.datetime) -> dt.datetime | None:
    """A datetime-local value (Shanghai time) → aware UTC, in the future; blank → None."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("发送时间需为日期时间，如 2026-12-12T20:00", field="scheduled_at") from None
    value = (value if value.tzinfo else value.replace(tzinfo=SHANGHAI)).astimezone(dt.UTC)
    if value <= now:
        raise InvalidInput("发送时间需晚于现在", field="scheduled_at")
    return value


async def _list_page(
    request: web.Request, form: dict[str, str], preview: SegmentPreview | None, *, status: int = 200, error: str = ""
) -> web.Response:
    rt = request.app[RUNTIME]
    raw = request.query.get("before", "")
    before = int(raw) if raw.isdecimal() and len(raw) < 19 else None
    async with rt.db.read() as conn:
        items = await broadcasts_queries.list_broadcasts(conn, limit=PAGE_SIZE, before=before)
    templates = await coupons.list_templates(rt, active=True)
    running = [(c.id, c.name) for c in await referral_sharing.running_campaigns(rt)]
    ctx = page_context(request, "broadcasts")
    if error:
        ctx = dataclasses.replace(ctx, flash=("err", error))
    return render(
        request,
        "broadcasts/list.html",
        ctx,
        http_status=status,
        http_headers={"Content-Security-Policy": CSP},
        rows=[broadcast_row(b) for b in items],
        more=url(PAGE, before=items[-1].id) if len(items) == PAGE_SIZE else "",
        form=create_form(templates, form, preview, running),
    )


async def broadcast_list(request: web.Request) -> web.Response:
    """群发: every broadcast (newest first) and the create form."""
    return await _list_page(request, {}, None)


async def _count(rt: Runtime, expression: str) -> SegmentPreview | None:
    """The typed segment's count for the form (None when blank; the syntax error's message when it does not parse)."""
    if not expression.strip():
        return None
    try:
        return SegmentPreview(count=await segments.count_segment(rt, expression))
    except segments_syntax.SegmentSyntaxError as exc:
        return SegmentPreview(error=exc.message)


async def broadcast_create(request: web.Request) -> web.Response:
    """预览人数 shows the count with the form kept; 创建群发 creates it (draft, scheduled, or started now) and goes
    to its page. A refused form comes back filled in with the reason (400)."""
    rt = request.app[RUNTIME]
    form = await read_form(request)
    outcome = await _count(rt, form.get("segment", ""))
    if form.get("action") == "preview":
        return await _list_page(request, form, outcome)
    try:
        if outcome is not None and outcome.error:
            raise InvalidInput(f"客群表达式有误：{outcome.error}", field="segment")
        raw_template = form.get("coupon_template_id", "").strip()
        if raw_template and (not raw_template.isdecimal() or len(raw_template) > 18):
            raise InvalidInput("请选择优惠券", field="coupon_template_id")
        raw_referral = form.get("referral_campaign_id", "").strip()
        if raw_referral and (not raw_referral.isdecimal() or len(raw_referral) > 18):
            raise InvalidInput("请选择邀请活动", field="referral_campaign_id")
        send_now = form.get("send_now") == "1"
        at = _scheduled_at(form.get("scheduled_at", ""), rt.clock.now())
        if send_now and at is not None:
            raise InvalidInput("“立即发送”与“定时发送”只能选一个", field="scheduled_at")
        data: dict[str, Any] = {
            "name": form.get("name", ""),
            "segment": form.get("segment", ""),
            "text": form.get("text", ""),
            "coupon_template_id": int(raw_template) if raw_template else None,
            "referral_campaign_id": int(raw_referral) if raw_referral else None,
            "scheduled_at": at.isoformat() if at else None,
        }
        view = await broadcasts.create_broadcast(rt, data, actor=actor(request))
        if send_now:
            view = await _start(rt, view.id)
    except DomainError as exc:
        return await _list_page(request, form, outcome, status=400, error=exc.message)
    what = "已开始发送" if send_now else (f"将于 {when(view.scheduled_at)} 发送" if view.scheduled_at else "已保存为草稿")
    response = web.Response(status=303, headers={"Location": f"{PAGE}/{view.id}"})
    auth.set_flash(request, response, "ok", f"已创建群发“{view.name}”，{what}")
    return response


async def _start(rt: Runtime, broadcast_id: int) -> broadcasts.BroadcastView:
    """Start (or resume) and plan the first batches now, as the API's start does (throttled by the job)."""
    view = await broadcasts.start_broadcast(rt, broadcast_id)
    await rt.jobs.enqueue("broadcasts.plan", view.id, job_id=f"broadcast-plan:{view.id}:{rt.clock.now():%Y%m%d%H%M}")
    return view


# ---- one broadcast ------------------------------------------------------------------------------------------
def _id(request: web.Request) -> int:
    return path_id(request, what="群发")


async def broadcast_detail(request: web.Request) -> web.Response:
    """One broadcast: summary, the buttons its status allows, progress, reasons, per-recipient results."""
    rt = request.app[RUNTIME]
    ctx = page_context(request, "broadcasts")
    status = request.query.get("status", "")
    status = status if status in RECIPIENT_ZH else ""
    raw_after = request.query.get("after", "0")
    after = int(raw_after) if raw_after.isdecimal() and len(raw_after) < 19 else 0
    try:
        bid = _id(request)
        async with rt.db.read() as conn:
            view = await broadcasts_queries.get_broadcast(conn, bid)
            prog = await broadcasts_queries.progress(conn, bid)
            reasons = await broadcasts_queries.outcome_reasons(conn, bid)
            items = await broadcasts_queries.list_recipients(conn, bid, status=status or None, after=after, limit=PAGE_SIZE)
            names = await names_of(conn, [r["customer_id"] for r in items])
    except NotFound as exc:
        return _not_found(request, ctx, exc)
    referral = ""
    if view.referral_campaign_id is not None:
        async with rt.db.read() as conn:
            referral = (await referral_services.get_campaign(conn, view.referral_campaign_id)).name
    template = ""
    if view.coupon_template_id is not None:
        try:
            tpl = await coupons.get_template(rt, view.coupon_template_id)
            template = f"{tpl.name}（{tpl.rule.label}）"
        except NotFound:
            template = f"#{view.coupon_template_id}"
    return render(
        request,
        "broadcasts/detail.html",
        ctx,
        b=view,
        status=STATUS_ZH.get(view.status, view.status),
        coupon=template,
        referral=referral,
        actions=[(action, label, cls) for action, label, cls, shown in ACTIONS if view.status in shown],
        progress=progress_view(prog, reasons, view),
        recipients=recipients_view(view.id, items, names, status=status, after=after),
    )


def _not_found(request: web.Request, ctx: PageContext, exc: NotFound) -> web.Response:
    return render(request, "not_found.html", ctx, http_status=404, title="没有找到群发", message=exc.message)


def _action(name: str) -> auth.Handler:
    async def handler(request: web.Request) -> web.Response:
        rt = request.app[RUNTIME]
        bid = _id(request)

        async def change() -> str:
            if name == "start":
                view = await _start(rt, bid)
            elif name == "pause":
                view = await broadcasts.pause_broadcast(rt, bid)
            else:
                view = await broadcasts.cancel_broadcast(rt, bid)
            return f"群发“{view.name}”{DONE_ZH[name]}"

        return await act(request, f"{PAGE}/{bid}", change)

    handler.__name__ = f"broadcast_{name}"
    handler.__doc__ = f"POST {name}: one status change through scrm.campaigns.broadcasts.services (refusals become the red flash)."
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
    setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
