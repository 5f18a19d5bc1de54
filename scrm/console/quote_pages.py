"""/console/quotes — 报价单: the list (filters), the create form (lines from the catalog, a discount % or an agreed
unit price per line; from an opportunity or for a customer), a quote's page with its share link (the customer's
printable page), accept and cancel. Everything goes through :mod:`scrm.sales.quotes`; a salesperson sees only
their own quotes."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from aiohttp import web

from fulfillment.catalog import services as catalog
from scrm.console import auth, pages
from scrm.console.auth import Handler
from scrm.console.customer_picker import PICKER_HEADERS, resolve_customer_text
from scrm.console.pages import page_context, path_id, read_form, render
from scrm.console.pipeline import act_to, date_field, salespeople
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.money import parse_yuan
from scrm.crm.customers.queries import names_of
from scrm.governance.approvals.services import waiting_brief
from scrm.governance.scopes.services import scope_for
from scrm.sales.pipeline import services as pipeline
from scrm.sales.quotes import services
from scrm.sales.quotes.domain import STATUS_ZH, LineRequest, line_error

NEW_ROWS = 5


async def quotes_index(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    status = request.query.get("status", "")
    status = status if status in STATUS_ZH else ""
    owner = request.query.get("owner", "").strip()[:64]
    found = await services.list_quotes(rt, scope, status=status, owner=owner)
    async with rt.db.read() as conn:
        names = await names_of(conn, {q.customer_id for q in found})
    people = await salespeople(rt, scope)
    return render(
        request,
        "sales/quotes.html",
        page_context(request, "quotes"),
        found=found,
        names=names,
        status=status,
        status_names=STATUS_ZH,
        people=people,
        person=dict(people),
        owner=owner,
        scope_text=scope.describe(),
    )


async def quote_new(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    raw = request.query.get("opportunity", "").strip()
    opportunity = await pipeline.get_opportunity(rt, int(raw), scope=scope) if raw.isdecimal() and len(raw) < 18 else None
    async with rt.db.read() as conn:
        products = [(p.sku, p.name, p.price_fen) for p in await catalog.list_products(conn)]
        names = await names_of(conn, [opportunity.customer_id]) if opportunity else {}
    return render(
        request,
        "sales/quote_new.html",
        page_context(request, "quotes"),
        http_headers=PICKER_HEADERS,
        opportunity=opportunity,
        customer_name=names.get(opportunity.customer_id, "") if opportunity else "",
        products=products,
        rows=range(NEW_ROWS),
        people=await salespeople(rt, scope),
        me=await pipeline.acting_userid(rt),
    )


def _lines(form: Mapping[str, str]) -> list[LineRequest]:
    """The form's filled rows: SKU, quantity, and a discount % or a unit price in 元 (the error names the row)."""
    out: list[LineRequest] = []
    for i in range(NEW_ROWS):
        sku, qty = form.get(f"sku:{i}", "").strip(), form.get(f"qty:{i}", "").strip()
        discount, price = form.get(f"discount:{i}", "").strip(), form.get(f"price:{i}", "").strip()
        if not (sku or qty or discount or price):
            continue
        n = len(out)
        if not sku:
            raise line_error(n, "请选择商品")
        if not qty.isdecimal() or not 0 < int(qty) <= catalog.MAX_QTY:
            raise line_error(n, f"数量需为 1 到 {catalog.MAX_QTY} 的整数")
        pct = None
        if discount:
            try:
                pct = float(discount.rstrip("%"))
            except ValueError:
                raise line_error(n, f"折扣请填写 0 到 100 的数字，如 10（%），现为 {discount[:16]}") from None
        unit = None
        if price:
            try:
                unit = parse_yuan(price)
            except ValueError:
                raise line_error(n, "单价请填写以元为单位的数字，最多两位小数") from None
        out.append(LineRequest(sku, int(qty), pct, unit))
    if not out:
        raise InvalidInput("请至少填写一行商品", field="sku:0")
    return out


async def quote_create(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    form = await read_form(request)
    raw_opportunity = form.get("opportunity_id", "").strip()
    error_path = "/console/quotes/new" + (f"?opportunity={raw_opportunity}" if raw_opportunity.isdecimal() else "")

    async def action() -> tuple[str, str]:
        scope = await scope_for(rt)
        opportunity_id = customer_id = None
        owner = form.get("owner", "").strip()
        if raw_opportunity.isdecimal() and len(raw_opportunity) < 18:
            opp = await pipeline.get_opportunity(rt, int(raw_opportunity), scope=scope)
            opportunity_id, owner = opp.id, owner or opp.owner
        else:
            customer_id = await resolve_customer_text(rt, form.get("customer", ""))
        owner = owner or await pipeline.acting_userid(rt)
        if not owner:
            raise InvalidInput("请选择负责人（企业微信成员）", field="owner")
        if not pipeline.owner_in_scope(scope, owner):
            raise InvalidInput(f"不能为不在您数据范围内的成员 {owner} 报价", field="owner")
        made = await services.create_quote(
            rt,
            lines=_lines(form),
            owner_userid=owner,
            customer_id=customer_id,
            opportunity_id=opportunity_id,
            valid_until=date_field(form, "valid_until", "有效期"),
            note=form.get("note", ""),
            actor=(await pipeline.acting_userid(rt)) or pages.actor(request),
        )
        waiting = "，等待审批后才能发送" if made.waiting else ""
        return f"/console/quotes/{made.id}", f"已创建报价单 {made.number}{waiting}"

    return await act_to(request, error_path, action)


async def quote_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    found = await services.get_quote(rt, path_id(request, what="报价单"), scope=await scope_for(rt))
    async with rt.db.read() as conn:
        names = await names_of(conn, [found.customer_id])
    approval = await waiting_brief(rt, "quote", found.number) if found.waiting else None
    return render(
        request,
        "sales/quote.html",
        page_context(request, "quotes"),
        q=found,
        customer_name=names.get(found.customer_id, ""),
        status_names=STATUS_ZH,
        approval=approval,
        share_url=services.share_url(rt, found) if found.sendable else "",
    )


async def quote_accept(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    quote_id = path_id(request, what="报价单")
    here = f"/console/quotes/{quote_id}"

    async def action() -> tuple[str, str]:
        actor = (await pipeline.acting_userid(rt)) or pages.actor(request)
        order, created = await services.accept_quote(rt, quote_id, actor=actor, scope=await scope_for(rt))
        return here, f"报价单已{'接受' if created else '接受过'}，订单 {order.number}（{pages.status_zh(order.status)}）"

    return await act_to(request, here, action)


async def quote_cancel(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    quote_id = path_id(request, what="报价单")
    here = f"/console/quotes/{quote_id}"

    async def action() -> tuple[str, str]:
        actor = (await pipeline.acting_userid(rt)) or pages.actor(request)
        found = await services.cancel_quote(rt, quote_id, actor=actor, scope=await scope_for(rt))
        return here, f"报价单 {found.number} 已作废"

    return await act_to(request, here, action)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/console/quotes", quotes_index),
    ("POST", "/console/quotes", quote_create),
    ("GET", "/console/quotes/new", quote_new),
    ("GET", "/console/quotes/{id}", quote_page),
    ("POST", "/console/quotes/{id}/accept", quote_accept),
    ("POST", "/console/quotes/{id}/cancel", quote_cancel),
]


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.SALES_ROLES) -> None:
    """Mount 报价 for the sales roles behind :func:`auth.protected`."""
    pages.setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
