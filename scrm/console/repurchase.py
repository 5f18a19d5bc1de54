"""/console/repurchase — 复购预警 (sales roles): due reminders and at-risk recall tasks of the customers in the
reader's data scope, with 完成 / 忽略 and 发券 when a coupon is configured; the admin sets the lead time and the coupon
(/console/repurchase/settings). The rules live in :mod:`scrm.sales.repurchase`."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from scrm.campaigns.coupons.services import list_templates
from scrm.console import auth, pages
from scrm.console.pages import act, page_context, path_id, render
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.crm.staff.services import list_salespeople
from scrm.governance.scopes.services import scope_for
from scrm.sales.repurchase import services
from scrm.sales.repurchase.domain import ALERT_STATUS_ZH, KIND_ZH, MAX_LEAD_DAYS, AlertStatus
from scrm.sales.repurchase.queries import list_alerts

PAGE = "/console/repurchase"


def _choice(value: str, allowed: Collection[str], default: str = "") -> str:
    return value if value in allowed else default


async def alerts_page(request: web.Request) -> web.Response:
    """复购预警: open alerts first (at-risk, then by predicted date); filters kind / status / owner."""
    rt = request.app[RUNTIME]
    kind = _choice(request.query.get("kind", ""), KIND_ZH)
    status = _choice(request.query.get("status", AlertStatus.OPEN), (*ALERT_STATUS_ZH, "all"), AlertStatus.OPEN)
    owner = request.query.get("owner", "").strip()[:64]
    scope = await scope_for(rt)
    is_admin = "admin" in request[auth.SESSION].all_roles
    async with rt.db.read() as conn:
        items = await list_alerts(conn, scope=scope, kind=kind, status="" if status == "all" else status, owner=owner)
        people = {s.userid: s.display_name for s in await list_salespeople(conn, active_only=False)}
        settings = await services.read_settings(conn)
    owners = sorted(people.items()) if scope.everything else sorted((u, people.get(u, u)) for u in scope.userids)
    templates = await list_templates(rt, active=True)
    coupon = next((t for t in templates if t.id == settings.coupon_template_id), None)
    return render(
        request,
        "sales/repurchase.html",
        page_context(request, "repurchase"),
        items=items,
        kind=kind,
        status=status,
        owner=owner,
        owners=owners,
        people=people,
        kinds=list(KIND_ZH.items()),
        statuses=[*ALERT_STATUS_ZH.items(), ("all", "全部")],
        scope_text=scope.describe(),
        settings=settings,
        coupon=coupon,
        templates=[(t.id, t.name) for t in templates],
        is_admin=is_admin,
        max_lead_days=MAX_LEAD_DAYS,
    )


async def _resolve(request: web.Request, status: str) -> web.Response:
    alert_id = path_id(request, what="复购预警")

    async def action() -> str:
        rt = request.app[RUNTIME]
        await services.resolve_alert(rt, alert_id, status=status, scope=await scope_for(rt))
        return "已标记完成" if status == AlertStatus.DONE else "已忽略这条预警"

    return await act(request, PAGE, action)


async def mark_done(request: web.Request) -> web.Response:
    return await _resolve(request, AlertStatus.DONE)


async def dismiss(request: web.Request) -> web.Response:
    return await _resolve(request, AlertStatus.DISMISSED)


async def send_coupon(request: web.Request) -> web.Response:
    alert_id = path_id(request, what="复购预警")

    async def action() -> str:
        rt = request.app[RUNTIME]
        await services.send_coupon(rt, alert_id, scope=await scope_for(rt), source="console")
        return "已发券，客户会在能收到消息的渠道收到通知"

    return await act(request, PAGE, action)


async def save_settings(request: web.Request) -> web.Response:
    form = await pages.read_form(request)

    async def action() -> str:
        raw_days = form.get("lead_days", "").strip()
        if not raw_days.isdecimal() or int(raw_days) > MAX_LEAD_DAYS:
            raise InvalidInput(f"提前提醒天数请写 0–{MAX_LEAD_DAYS} 的整数", field="lead_days")
        raw_coupon = form.get("coupon_template_id", "").strip()
        if raw_coupon and not (raw_coupon.isdecimal() and len(raw_coupon) <= 18):
            raise InvalidInput("请选择优惠券模板", field="coupon_template_id")
        saved = await services.update_settings(
            request.app[RUNTIME], lead_days=int(raw_days), coupon_template_id=int(raw_coupon) if raw_coupon else None
        )
        coupon = "不附优惠券" if saved.coupon_template_id is None else "提醒时可发优惠券"
        return f"已保存：预计复购日前 {saved.lead_days} 天提醒，{coupon}"

    return await act(request, PAGE, action)


ALERT_ROUTES = (
    ("GET", PAGE, alerts_page),
    ("POST", PAGE + "/{id}/done", mark_done),
    ("POST", PAGE + "/{id}/dismiss", dismiss),
    ("POST", PAGE + "/{id}/coupon", send_coupon),
)
SETTINGS_ROUTES = (("POST", PAGE + "/settings", save_settings),)


def setup_routes(
    app: web.Application, *, roles: Collection[str] = auth.SALES_ROLES, settings_roles: Collection[str] = auth.ADMIN_ROLES
) -> None:
    """Mount 复购预警 (sales roles; each sees their data scope) and its settings (admin) behind :func:`auth.protected`."""
    pages.setup_templates(app)
    for routes, allowed in ((ALERT_ROUTES, roles), (SETTINGS_ROUTES, settings_roles)):
        for method, path, handler in routes:
            app.router.add_route(method, path, auth.protected(handler, roles=allowed, forbidden_page=pages.forbidden))
