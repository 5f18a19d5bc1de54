"""/console/handovers — 交接 (admin): hand a member's customers to a colleague (在职转接, all or chosen customers) and follow
each handover's progress per customer; /console/handovers/resigned — members who left with customers still waiting
in WeCom (get_unassigned_list) and a one-click 离职继承. The rules live in :mod:`scrm.sales.handover`."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.pages import back, page_context, path_id, refused, render
from scrm.core.errors import DomainError
from scrm.core.http.keys import RUNTIME
from scrm.crm.customers.queries import customers_served_by
from scrm.crm.staff.services import list_salespeople
from scrm.governance.scopes.services import scope_for
from scrm.sales.handover import queries
from scrm.sales.handover import services as handover
from scrm.sales.handover.domain import KIND_ZH, STATUS_ZH, HandoverKind

HANDOVER_STATUS_ZH = {"running": "进行中", "done": "已完成"}
GROUP_STATUS_ZH = {"pending": "待发送", "success": "已转交", "failed": "失败"}
BADGE = {"pending": "pending", "waiting": "pending", "running": "pending", "success": "done", "done": "done",
         "refused": "cancelled", "limit_exceeded": "failed", "failed": "failed"}  # fmt: skip
MAX_CUSTOMERS_SHOWN = 2000


async def handovers_list(request: web.Request) -> web.Response:
    """交接: the handovers (newest first, counts per status) and the form: from, to, kind, all or chosen customers."""
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    items = await queries.list_handovers(rt, scope)
    async with rt.db.read() as conn:
        people = await list_salespeople(conn, active_only=False)
        chosen_from = request.query.get("from", "")
        served = await customers_served_by(conn, chosen_from) if chosen_from else []
    return render(
        request,
        "sales/handovers.html",
        page_context(request, "handovers"),
        items=items,
        people=people,
        active_people=[p for p in people if p.active],
        chosen_from=chosen_from,
        chosen_to=request.query.get("to", ""),
        chosen_kind=request.query.get("kind", HandoverKind.ONJOB),
        served=served[:MAX_CUSTOMERS_SHOWN],
        served_total=len(served),
        kinds=KIND_ZH,
        status_zh=STATUS_ZH,
        handover_status_zh=HANDOVER_STATUS_ZH,
        badge=BADGE,
    )


async def handover_create(request: web.Request) -> web.Response:
    """Ask for a handover from the form; its progress page on success, the form with the reason otherwise."""
    rt = request.app[RUNTIME]
    form = await request.post()
    from_userid = str(form.get("from", "")).strip()
    kind = str(form.get("kind", HandoverKind.ONJOB))
    everyone = form.get("all") == "1"
    chosen: list[int | str] = []
    for raw in form.getall("customer", []):
        text = str(raw).strip()
        if text.isdecimal() and len(text) <= 18:
            chosen.append(int(text))
    back_to = "/console/handovers/resigned" if kind == HandoverKind.RESIGNED else pages.url("/console/handovers", **{"from": from_userid})
    try:
        view = await handover.request_handover(
            rt, from_userid=from_userid, to_userid=str(form.get("to", "")).strip(), kind=kind,
            customers=chosen, all_customers=everyone, scope=await scope_for(rt),
        )  # fmt: skip
    except DomainError as exc:
        return await refused(request, back_to, exc)
    message = f"已提交{KIND_ZH.get(HandoverKind(view.kind), view.kind)}：{view.from_name} → {view.to_name}，{view.counts['total']} 位客户"
    return back(request, f"/console/handovers/{view.id}", "ok", message + "。企业微信将在 24 小时后完成接替（客户可拒绝）。")


async def handover_detail(request: web.Request) -> web.Response:
    """One handover's progress: counts, each customer's status and reason, the groups."""
    rt = request.app[RUNTIME]
    view = await queries.get_handover(rt, path_id(request, what="交接"), await scope_for(rt))
    return render(
        request,
        "sales/handover.html",
        page_context(request, "handovers"),
        h=view,
        kinds=KIND_ZH,
        status_zh=STATUS_ZH,
        handover_status_zh=HANDOVER_STATUS_ZH,
        group_status_zh=GROUP_STATUS_ZH,
        badge=BADGE,
    )


async def handover_refresh(request: web.Request) -> web.Response:
    """Ask WeCom now how the waiting customers stand (the cron does it every 10 minutes)."""
    rt = request.app[RUNTIME]
    handover_id = path_id(request, what="交接")
    path = f"/console/handovers/{handover_id}"
    try:
        await queries.get_handover(rt, handover_id, await scope_for(rt))
        changed = await handover.poll_handover(rt, handover_id)
    except DomainError as exc:
        return await refused(request, path, exc)
    text = "，".join(f"{STATUS_ZH[k]} {n} 位" for k, n in changed.items()) if changed else "暂无变化"
    return back(request, path, "ok", f"已向企业微信查询：{text}")


async def resigned_list(request: web.Request) -> web.Response:
    """离职继承: members who left with customers WeCom still lists as unassigned, each with a one-click handover."""
    rt = request.app[RUNTIME]
    problem = ""
    try:
        departed = await handover.sync_departed(rt)
    except DomainError as exc:
        departed, problem = [], pages.staff_text(exc.message)
    async with rt.db.read() as conn:
        active_people = [p for p in await list_salespeople(conn) if p.active]
    return render(
        request, "sales/handovers_resigned.html", page_context(request, "handovers"),
        departed=departed, active_people=active_people, problem=problem,
    )  # fmt: skip


ROUTES = (
    ("GET", "/console/handovers", handovers_list),
    ("POST", "/console/handovers", handover_create),
    ("GET", "/console/handovers/resigned", resigned_list),
    ("GET", "/console/handovers/{id}", handover_detail),
    ("POST", "/console/handovers/{id}/refresh", handover_refresh),
)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ADMIN_ROLES) -> None:
    """Mount 交接 behind :func:`auth.protected` (a manager's action: the admin role)."""
    pages.setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
