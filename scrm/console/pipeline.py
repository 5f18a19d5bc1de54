"""/console/opportunities — 商机: the kanban (a column per stage; each card moves with a form POST, no script), the
list with filters, an opportunity's page (history, its quotes, changes), the create form (customer picker), and
/console/opportunities/charts — the funnel and the weighted forecast; /console/opportunity-stages — the stages
(admin). Everything goes through :mod:`scrm.sales.pipeline`; a salesperson sees only their own opportunities."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.auth import Handler
from scrm.console.charts import bar_geometry
from scrm.console.customer_picker import PICKER_HEADERS, resolve_customer_text
from scrm.console.pages import page_context, path_id, read_form, render
from scrm.core.errors import DomainError, InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.money import format_fen, parse_yuan
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import names_of
from scrm.crm.staff.services import list_salespeople
from scrm.governance.scopes.services import DataScope, scope_for
from scrm.sales.pipeline import queries, services
from scrm.sales.pipeline.domain import Stage
from scrm.sales.quotes.domain import STATUS_ZH as QUOTE_STATUS_ZH
from scrm.sales.quotes.services import list_quotes

VIEWS = {"board": "看板", "list": "列表"}


# ---- shared helpers ------------------------------------------------------------------------------------------
async def act_to(request: web.Request, error_path: str, action: Callable[[], Awaitable[tuple[str, str]]]) -> web.Response:
    """Run a service call that answers (where to go, what happened); a domain error goes back to ``error_path``
    with the form refilled and the reason beside its field."""
    try:
        path, message = await action()
    except DomainError as exc:
        return await pages.refused(request, error_path, exc)
    return pages.back(request, path, "ok", message)


async def salespeople(rt: Runtime, scope: DataScope) -> list[tuple[str, str]]:
    """(userid, name) of the members a person may pick as owner (their scope's)."""
    async with rt.db.read() as conn:
        found = await list_salespeople(conn)
    return [(s.userid, s.display_name) for s in found if services.owner_in_scope(scope, s.userid)]


def yuan_field(form: Mapping[str, str], name: str, label: str) -> int:
    raw = form.get(name, "").strip()
    if not raw:
        return 0
    try:
        fen = parse_yuan(raw)
    except ValueError:
        raise InvalidInput(f"{label}请填写以元为单位的数字，最多两位小数，如 12000", field=name) from None
    if fen < 0:
        raise InvalidInput(f"{label}不能为负", field=name)
    return fen


def date_field(form: Mapping[str, str], name: str, label: str) -> dt.date | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{label}请填写日期，如 2026-12-31", field=name) from None


def skus_field(form: Mapping[str, str], name: str = "products") -> list[str]:
    raw = form.get(name, "").replace("，", ",").replace("、", ",")
    return [s.strip() for s in raw.split(",") if s.strip()]


# ---- the board and the list ----------------------------------------------------------------------------------
def _filters(request: web.Request) -> queries.Filters:
    raw_customer = request.query.get("customer_id", "").strip()
    return queries.Filters(
        owner=request.query.get("owner", "").strip()[:64],
        stage=request.query.get("stage", "").strip()[:32],
        customer_id=int(raw_customer) if raw_customer.isdecimal() and len(raw_customer) < 18 else None,
    )


async def opportunities_index(request: web.Request) -> web.Response:
    """商机: the kanban (default) or the list, with filters; each card's stage moves with its own small form."""
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    view = request.query.get("view", "board")
    view = view if view in VIEWS else "board"
    filters = _filters(request)
    stages = [s for s in await services.list_stages(rt) if s.active]
    columns = await queries.board(rt, scope, filters) if view == "board" else []
    found = await queries.list_opportunities(rt, scope, filters) if view == "list" else [c for col in columns for c in col.cards]
    async with rt.db.read() as conn:
        names = await names_of(conn, {o.customer_id for o in found})
    people = await salespeople(rt, scope)
    return render(
        request,
        "sales/opportunities.html",
        page_context(request, "opportunities"),
        view=view,
        views=list(VIEWS.items()),
        columns=columns,
        found=found,
        stages=stages,
        names=names,
        people=people,
        person=dict(people),
        filters=filters,
        scope_text=scope.describe(),
        here=request.path_qs,
    )


async def opportunity_new(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    return render(
        request,
        "sales/opportunity_new.html",
        page_context(request, "opportunities"),
        http_headers=PICKER_HEADERS,
        stages=[s for s in await services.list_stages(rt) if s.active],
        people=await salespeople(rt, scope),
        me=await services.acting_userid(rt),
    )


async def opportunity_create(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    form = await read_form(request)

    async def action() -> tuple[str, str]:
        customer_id = await resolve_customer_text(rt, form.get("customer", ""))
        scope = await scope_for(rt)
        owner = form.get("owner", "").strip() or await services.acting_userid(rt)
        if not owner:
            raise InvalidInput("请选择负责人（企业微信成员）", field="owner")
        if not services.owner_in_scope(scope, owner):
            raise InvalidInput(f"不能为不在您数据范围内的成员 {owner} 新建商机", field="owner")
        made = await services.create_opportunity(
            rt,
            customer_id=customer_id,
            owner_userid=owner,
            title=form.get("title", ""),
            stage=form.get("stage", "").strip() or None,
            amount_fen=yuan_field(form, "amount", "预计金额"),
            expected_close_on=date_field(form, "expected_close_on", "预计成交日期"),
            products=skus_field(form),
            reason=form.get("reason", ""),
            actor=await _actor(rt, request),
        )
        return f"/console/opportunities/{made.id}", f"已新建商机「{made.title}」"

    return await act_to(request, "/console/opportunities/new", action)


async def _actor(rt: Runtime, request: web.Request) -> str:
    return (await services.acting_userid(rt)) or pages.actor(request)


# ---- one opportunity ------------------------------------------------------------------------------------------
async def opportunity_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    found = await services.get_opportunity(rt, path_id(request, what="商机"), scope=scope)
    async with rt.db.read() as conn:
        names = await names_of(conn, [found.customer_id])
    quotes = await list_quotes(rt, scope, opportunity_id=found.id)
    stages = await services.list_stages(rt)
    return render(
        request,
        "sales/opportunity.html",
        page_context(request, "opportunities"),
        o=found,
        customer_name=names.get(found.customer_id, ""),
        quotes=quotes,
        quote_status=QUOTE_STATUS_ZH,
        stages=[s for s in stages if s.active],
        stage_names={s.key: s.name for s in stages},
        person=dict(await salespeople(rt, scope)),
    )


def _back_to(form: Mapping[str, str], default: str) -> str:
    nxt = form.get("next", "")
    return nxt if nxt.startswith("/console/opportunities") and "//" not in nxt else default


async def opportunity_stage(request: web.Request) -> web.Response:
    """Move to a stage (a kanban card's form or the page's): a won/lost stage needs the reason."""
    rt = request.app[RUNTIME]
    opportunity_id = path_id(request, what="商机")
    form = await read_form(request)
    back = _back_to(form, f"/console/opportunities/{opportunity_id}")

    async def action() -> tuple[str, str]:
        moved = await services.update_opportunity(
            rt,
            opportunity_id,
            actor=await _actor(rt, request),
            scope=await scope_for(rt),
            stage=form.get("stage", "").strip(),
            reason=form.get("reason", ""),
        )
        return back, f"商机「{moved.title}」已移到「{moved.stage_name}」"

    return await act_to(request, back, action)


async def opportunity_edit(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    opportunity_id = path_id(request, what="商机")
    form = await read_form(request)
    here = f"/console/opportunities/{opportunity_id}"

    async def action() -> tuple[str, str]:
        raw_probability = form.get("probability", "").strip()
        if raw_probability and not raw_probability.isdecimal():
            raise InvalidInput("成交概率请填写 0 到 100 的整数，留空则按阶段", field="probability")
        changed = await services.update_opportunity(
            rt,
            opportunity_id,
            actor=await _actor(rt, request),
            scope=await scope_for(rt),
            title=form.get("title", ""),
            amount_fen=yuan_field(form, "amount", "预计金额"),
            expected_close_on=date_field(form, "expected_close_on", "预计成交日期"),
            probability=int(raw_probability) if raw_probability else None,
            products=skus_field(form),
            version=int(form["version"]) if form.get("version", "").isdecimal() else None,
        )
        return here, f"已保存商机「{changed.title}」"

    return await act_to(request, here, action)


# ---- charts ---------------------------------------------------------------------------------------------------
async def opportunity_charts(request: web.Request) -> web.Response:
    """漏斗与预测: count and amount per stage; Σ amount × probability per expected-close month, per salesperson."""
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    owner = request.query.get("owner", "").strip()[:64]
    steps = await queries.funnel(rt, scope, owner=owner)
    cells = await queries.forecast(rt, scope, owner=owner)
    by_month: dict[str, int] = defaultdict(int)
    for c in cells:
        by_month[c.month] += c.weighted_fen
    people = await salespeople(rt, scope)
    return render(
        request,
        "sales/charts.html",
        page_context(request, "opportunities"),
        steps=steps,
        cells=cells,
        funnel_count=bar_geometry([(s.stage.name, s.count) for s in steps], title="商机漏斗（个数）", width=700, height=220),
        funnel_amount=bar_geometry(
            [(s.stage.name, s.amount_fen) for s in steps], title="商机漏斗（金额）", fmt=format_fen, width=700, height=220
        ),
        forecast=bar_geometry(list(by_month.items()), title="加权预测（按预计成交月份）", fmt=format_fen, width=700, height=220),
        people=people,
        person=dict(people),
        owner=owner,
        scope_text=scope.describe(),
    )


# ---- stages (admin) ------------------------------------------------------------------------------------------
async def stages_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return render(request, "sales/stages.html", page_context(request, "opportunity-stages"), stages=await services.list_stages(rt))


async def stage_save(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    form = await read_form(request)

    async def action() -> tuple[str, str]:
        raw_position, raw_probability = form.get("position", "").strip(), form.get("probability", "").strip()
        if not raw_position.isdecimal() or int(raw_position) > 10_000:
            raise InvalidInput("顺序请填写 0 到 10000 的整数", field="position")
        if not raw_probability.isdecimal() or int(raw_probability) > 100:
            raise InvalidInput("概率请填写 0 到 100 的整数", field="probability")
        kind = form.get("kind", "open")
        saved: Stage = await services.save_stage(
            rt,
            key=form.get("key", ""),
            name=form.get("name", ""),
            position=int(raw_position),
            probability_pct=int(raw_probability),
            is_won=kind == "won",
            is_lost=kind == "lost",
            active=form.get("active", "1") == "1",
        )
        return "/console/opportunity-stages", f"已保存阶段「{saved.name}」（{saved.probability_pct}%）"

    return await act_to(request, "/console/opportunity-stages", action)


# ---- wiring ---------------------------------------------------------------------------------------------------
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/console/opportunities", opportunities_index),
    ("POST", "/console/opportunities", opportunity_create),
    ("GET", "/console/opportunities/new", opportunity_new),
    ("GET", "/console/opportunities/charts", opportunity_charts),
    ("GET", "/console/opportunities/{id}", opportunity_page),
    ("POST", "/console/opportunities/{id}", opportunity_edit),
    ("POST", "/console/opportunities/{id}/stage", opportunity_stage),
]
ADMIN_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/console/opportunity-stages", stages_page),
    ("POST", "/console/opportunity-stages", stage_save),
]


def setup_routes(
    app: web.Application, *, roles: Collection[str] = auth.SALES_ROLES, admin_roles: Collection[str] = auth.ADMIN_ROLES
) -> None:
    """Mount 商机 (sales roles) and 商机阶段 (admin) behind :func:`auth.protected`."""
    pages.setup_templates(app)
    for routes, allowed in ((ROUTES, roles), (ADMIN_ROUTES, admin_roles)):
        for method, path, handler in routes:
            app.router.add_route(method, path, auth.protected(handler, roles=allowed, forbidden_page=pages.forbidden))
