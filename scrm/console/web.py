"""/console/ routes: sign-in and the operations pages (orders, picking and shipping, stock).

Views are thin: they read with the owning capability's ``queries`` (orders, catalog, customers), and every change
goes through a fulfilment service in its own transaction. A domain error becomes a red flash message on the page
it came from (nothing changed); success redirects back with a green one (POST → 303 → GET).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from fulfillment.catalog import services as catalog
from fulfillment.catalog.queries import StockRow, stock_rows
from fulfillment.catalog.services import MAX_QTY
from fulfillment.inventory import services as inventory
from fulfillment.inventory.services import Drift
from fulfillment.orders import backorders as orders_backorders
from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders import shipments
from fulfillment.orders.domain import CANCELLABLE, CONFIRMABLE, SHIPPABLE, STATUS_ZH
from fulfillment.orders.queries import OrderView, PickRow
from scrm.console import auth, pages
from scrm.console.auth import Handler, safe_next
from scrm.console.login_limit import LoginLimiter
from scrm.console.pages import (
    act,
    actor,
    html_response,
    int_field,
    message_page,
    order_url,
    page_context,
    read_form,
    render,
    render_document,
    setup_templates,
)
from scrm.core import audit
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME, SETTINGS
from scrm.crm.customers import queries as customer_queries
from scrm.governance.scopes.services import order_in_scope, scope_for

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOGIN_LIMITER = web.AppKey("console_login_limiter", LoginLimiter)


# ---- view values ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderActions:
    """What an order's status allows on its page: ship (something allocated is unshipped), confirm, cancel."""

    ship: bool
    confirm: bool
    cancel: bool

    @classmethod
    def of(cls, order: OrderView) -> OrderActions:
        return cls(
            ship=order.status in SHIPPABLE and any(ln.allocated_qty > ln.shipped_qty for ln in order.lines),
            confirm=order.status in CONFIRMABLE,
            cancel=order.status in CANCELLABLE and not any(ln.shipped_qty for ln in order.lines),
        )


@dataclass(frozen=True)
class PickTotal:
    """One SKU to pick: the total over orders and how many orders want it."""

    sku: str
    name: str
    unit: str
    qty: int
    orders: int


@dataclass(frozen=True)
class PickOrder:
    """One order's lines to pick (its quick ship form ships everything allocated)."""

    number: str
    customer_id: int
    customer_name: str
    confirmed_at: dt.datetime | None
    items: tuple[PickRow, ...]


def pick_views(rows: list[PickRow]) -> tuple[list[PickTotal], list[PickOrder]]:
    """The picking list per SKU (first-seen order) and per order."""
    totals: dict[str, tuple[PickRow, int, set[str]]] = {}
    by_order: dict[str, list[PickRow]] = {}
    for r in rows:
        first, qty, numbers = totals.get(r.sku, (r, 0, set()))
        totals[r.sku] = (first, qty + r.to_pick, numbers | {r.order_number})
        by_order.setdefault(r.order_number, []).append(r)
    skus = [PickTotal(p.sku, p.name, p.unit, qty, len(nums)) for p, qty, nums in totals.values()]
    orders_ = [
        PickOrder(number, items[0].customer_id, items[0].customer_name, items[0].confirmed_at, tuple(items))
        for number, items in by_order.items()
    ]
    return skus, orders_


@dataclass(frozen=True)
class DriftRow:
    """A (product, warehouse) whose counters disagree with the ledger, as the 对账 table shows it."""

    sku: str | int  # the product id when the product is unknown
    warehouse_id: int
    counters: str  # 在库/已分配
    ledger: str


def drift_rows(rows: list[StockRow], drifts: list[Drift]) -> list[DriftRow]:
    skus = {r.product_id: r.sku for r in rows}
    return [
        DriftRow(
            skus.get(d.product_id, d.product_id),
            d.warehouse_id,
            f"{d.counters.on_hand}/{d.counters.allocated}",
            f"{d.ledger.on_hand}/{d.ledger.allocated}",
        )
        for d in drifts
    ]


# ---- sign-in ----------------------------------------------------------------------------------------------
async def index(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/console/dashboard"})  # every role may see the dashboard


async def login_form(request: web.Request) -> web.Response:
    target = safe_next(request.query.get("next"), "")  # blank: each role lands on its own page
    session = await auth.current_session(request)
    if session is not None:
        return web.Response(status=303, headers={"Location": target or auth.home_for(session.all_roles)})
    return html_response(render_document(request.app, "login.html", next_path=target, error="", username="admin"))


def _same_origin(request: web.Request) -> bool:
    """True unless the browser says the form came from another origin (``Origin``, else ``Referer``, when sent)."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True  # not a browser, or one that sends neither: nothing to check against
    parsed = urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == request.host.lower()


async def login_submit(request: web.Request) -> web.Response:
    """Check the password (rate-limited per client address and per username, :mod:`scrm.console.login_limit`),
    then set the signed session cookie."""
    now = request.app[RUNTIME].clock.now()
    limiter = request.app[LOGIN_LIMITER]
    client = request.remote or "unknown"
    if not _same_origin(request):
        # Login CSRF: another site's form must not sign this browser in to an account of the attacker's choosing.
        refused = "登录请求来自其他网站，已拒绝。请直接打开控制台登录页"
        return message_page(request, "无法登录", refused, status=403)
    form = await read_form(request)
    target = safe_next(form.get("next"), "")
    username = form.get("username", "admin")[:64]
    wait = await limiter.retry_after(client, username, now)
    if wait:
        log.warning("console login rate-limited", extra={"client": client})
        return message_page(
            request,
            "登录尝试过多",
            f"登录失败次数过多，请 {(wait + 59) // 60} 分钟后再试",
            status=429,
            headers={"Retry-After": str(wait)},
        )
    rt = request.app[RUNTIME]
    principal = await auth.authenticate(rt, username, form.get("password", "")[:256])
    async with rt.db.write() as conn:
        who = principal.actor if principal is not None else audit.Actor("anonymous", (username.strip() or "admin")[:64])
        action = "sign_in" if principal is not None else "sign_in_failed"
        summary = "登录控制台" if principal is not None else "控制台登录失败（用户名或密码不正确）"
        await audit.record(
            conn, now, action=action, entity="console", summary=summary, actor=who.with_ip(client), route="POST /console/login"
        )
    if principal is None:
        await limiter.failed(client, username, now)
        log.warning("console login failed", extra={"client": client})
        document = render_document(request.app, "login.html", next_path=target, error="用户名或密码不正确", username=username)
        return html_response(document, status=401)
    await limiter.succeeded(client, username)
    _, cookie = auth.issue_session(request.app[SETTINGS], principal, now)
    response = web.Response(status=303, headers={"Location": target or auth.home_for(principal.all_roles)})
    auth.set_session_cookie(request, response, cookie)
    log.info("console login", extra={"subject": principal.subject})
    return response


async def logout(request: web.Request) -> web.Response:
    response = web.Response(status=303, headers={"Location": "/console/login"})
    auth.clear_session_cookie(response)
    return response


# ---- orders -----------------------------------------------------------------------------------------------
async def orders_list(request: web.Request) -> web.Response:
    """订单: filter by status, search by number, newest first, 50 a page."""
    status = request.query.get("status", "")
    status = status if status in STATUS_ZH else ""
    number = request.query.get("q", "").strip()[:32]
    raw_page = request.query.get("page", "1")
    page = min(int(raw_page), 100_000) if raw_page.isdecimal() and int(raw_page) > 0 else 1
    async with request.app[RUNTIME].db.read() as conn:
        scope = await scope_for(request.app[RUNTIME])
        rows, more = await orders_queries.list_orders(conn, status=status, number=number, page=page, scope=scope)
    ctx = page_context(request, "orders")
    return render(request, "orders/list.html", ctx, rows=rows, status=status, number=number, page=page, more=more)


async def order_detail(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = page_context(request, "orders")
    try:
        order = await orders_queries.get_order_by_number(rt, request.match_info["number"])
        if not await order_in_scope(rt, await scope_for(rt), order.customer_id, order.salesperson_userid):
            raise NotFound(f"没有找到订单 {order.number}")
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有找到订单", message=exc.message)
    async with rt.db.read() as conn:
        history = await orders_queries.history_of(conn, order.id)
        name = await customer_queries.customer_name(conn, order.customer_id)
    return render(
        request,
        "orders/detail.html",
        ctx,
        order=order,
        name=name,
        history=history,
        actions=OrderActions.of(order),
    )


async def _order_id(request: web.Request) -> int:
    """The order the form is about, if it is in the person's data scope (else NotFound, as for an unknown one)."""
    rt = request.app[RUNTIME]
    order = await orders_queries.get_order_by_number(rt, request.match_info["number"])
    if not await order_in_scope(rt, await scope_for(rt), order.customer_id, order.salesperson_userid):
        raise NotFound(f"没有找到订单 {order.number}")
    return order.id


async def order_confirm(request: web.Request) -> web.Response:
    async def action() -> str:
        order = await orders.confirm_order(request.app[RUNTIME], await _order_id(request), actor=actor(request))
        short = sum(ln.backordered_qty for ln in order.lines)
        return f"订单 {order.number} 已确认" + (f"，缺货 {short} 件待补" if short else "，已全部备货")

    return await act(request, order_url(request.match_info["number"]), action)


async def order_cancel(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        reason = form.get("reason", "").strip()
        if len(reason) > 200:
            raise InvalidInput("取消原因不超过 200 字", field="reason")
        order = await orders.cancel_order(request.app[RUNTIME], await _order_id(request), actor=actor(request), reason=reason)
        return f"订单 {order.number} 已取消"

    return await act(request, order_url(request.match_info["number"]), action)


def _ship_lines(form: dict[str, str]) -> list[tuple[str, int]] | None:
    """``qty:<sku>`` fields: all blank → None (everything outstanding); otherwise the filled, non-zero ones."""
    given = {k.removeprefix("qty:"): v.strip() for k, v in form.items() if k.startswith("qty:") and v.strip()}
    if not given:
        return None
    for sku, v in given.items():
        if not v.isdecimal() or int(v) > MAX_QTY:
            raise InvalidInput(f"{sku} 的发货数量必须是整数", field="lines", sku=sku)
    lines = [(sku, int(v)) for sku, v in given.items() if int(v) > 0]
    if not lines:
        raise InvalidInput("请至少填写一行大于 0 的发货数量，或全部留空发出全部", field="lines")
    return lines


async def order_ship(request: web.Request) -> web.Response:
    """发货: carrier + tracking number; blank quantities ship everything allocated and not yet shipped."""
    form = await read_form(request)
    back = safe_next(form.get("next"), order_url(request.match_info["number"]))

    async def action() -> str:
        order, number = await shipments.create_shipment(
            request.app[RUNTIME],
            await _order_id(request),
            carrier=form.get("carrier", ""),
            tracking_no=form.get("tracking_no", ""),
            lines=_ship_lines(form),
            actor=actor(request),
        )
        return f"订单 {order.number} 已发货（发货单 {number}），状态：{STATUS_ZH.get(order.status, order.status)}"

    return await act(request, back, action)


async def shipment_deliver(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        order = await shipments.mark_delivered(request.app[RUNTIME], request.match_info["number"], actor=actor(request))
        return f"发货单 {request.match_info['number']} 已签收，订单状态：{STATUS_ZH.get(order.status, order.status)}"

    return await act(request, safe_next(form.get("next")), action)


async def shipment_cancel(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        order = await shipments.cancel_shipment(request.app[RUNTIME], request.match_info["number"], actor=actor(request))
        return f"发货单 {request.match_info['number']} 已取消，货物已退回库存；订单状态：{STATUS_ZH.get(order.status, order.status)}"

    return await act(request, safe_next(form.get("next")), action)


# ---- picking and stock ------------------------------------------------------------------------------------
async def picking(request: web.Request) -> web.Response:
    """发货/拣货: what to pick, per SKU and per order, with a quick ship form per order."""
    scope = await scope_for(request.app[RUNTIME])
    async with request.app[RUNTIME].db.read() as conn:
        rows = await orders_queries.picking_list(conn, scope=scope)
    skus, by_order = pick_views(rows)
    return render(request, "orders/picking.html", page_context(request, "picking"), skus=skus, by_order=by_order)


async def stock(request: web.Request) -> web.Response:
    """库存: counters per product, low stock highlighted, receive / count forms and the ledger reconciliation."""
    async with request.app[RUNTIME].db.read() as conn:
        rows = await stock_rows(conn, await orders_backorders.backordered_by_product(conn))
        drifts = await inventory.reconcile(conn)
    ctx = page_context(request, "stock")
    row_classes = ["low" if r.low else ("inactive" if not r.active else "") for r in rows]
    return render(request, "orders/stock.html", ctx, rows=rows, row_classes=row_classes, drifts=drift_rows(rows, drifts))


async def _change_stock(request: web.Request, kind: str) -> web.Response:
    form = await read_form(request)
    rt = request.app[RUNTIME]

    async def action() -> str:
        note = form.get("reference", "").strip()[:100]
        reference = f"{actor(request)} {note}".strip()[:128]
        async with rt.db.write() as conn:
            product = await catalog.get_product(conn, form.get("sku", ""))
            warehouse = await inventory.default_warehouse(conn, rt.db.dialect)
            if kind == "receive":
                qty = int_field(form, "qty", "入库数量", minimum=1)
                await inventory.receive(conn, rt.db.dialect, product.id, warehouse, qty, rt.clock.now(), reference=reference)
                done = f"{product.name} 入库 {qty}{product.unit}"
            else:
                qty = int_field(form, "on_hand", "盘点数量", minimum=0)
                await inventory.set_on_hand(conn, rt.db.dialect, product.id, warehouse, qty, rt.clock.now(), reference=reference)
                done = f"{product.name} 盘点后在库 {qty}{product.unit}"
        filled = await orders_backorders.fill_backorders(rt, product.id)
        return done + (f"；已为缺货订单补分配 {filled}{product.unit}" if filled else "")

    return await act(request, "/console/stock", action)


async def stock_receive(request: web.Request) -> web.Response:
    return await _change_stock(request, "receive")


async def stock_count(request: web.Request) -> web.Response:
    return await _change_stock(request, "count")


# ---- wiring -----------------------------------------------------------------------------------------------
EVERYONE: list[tuple[str, str, Handler]] = [  # every signed-in role: the index (→ dashboard) and signing out
    ("GET", "/console", index),
    ("GET", "/console/", index),
    ("POST", "/console/logout", logout),
]
PROTECTED: list[tuple[str, str, Handler]] = [
    ("GET", "/console/orders", orders_list),
    ("GET", "/console/orders/{number}", order_detail),
    ("POST", "/console/orders/{number}/confirm", order_confirm),
    ("POST", "/console/orders/{number}/cancel", order_cancel),
    ("POST", "/console/orders/{number}/ship", order_ship),
    ("POST", "/console/shipments/{number}/deliver", shipment_deliver),
    ("POST", "/console/shipments/{number}/cancel", shipment_cancel),
    ("GET", "/console/picking", picking),
    ("GET", "/console/stock", stock),
    ("POST", "/console/stock/receive", stock_receive),
    ("POST", "/console/stock/count", stock_count),
]
PUBLIC_PATHS = frozenset({"/console/login", "/console/static"})  # everything else needs a session


async def favicon(request: web.Request) -> web.FileResponse:
    """The site icon browsers ask for on every page (console, sidebar, sandbox): a file, cached for a day."""
    return web.FileResponse(STATIC_DIR / "favicon.ico", headers={"Cache-Control": "public, max-age=86400", "Content-Type": "image/x-icon"})


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.OPERATIONS_ROLES) -> None:
    """Mount the console. Every route but the login form and the stylesheet goes through :func:`auth.protected`."""
    setup_templates(app)
    limiter = app[LOGIN_LIMITER] = LoginLimiter.for_settings(app[SETTINGS].redis_url)

    async def close_limiter(app: web.Application) -> None:
        await limiter.close()

    app.on_cleanup.append(close_limiter)
    app.router.add_get("/console/login", login_form)
    app.router.add_post("/console/login", login_submit)
    app.router.add_static("/console/static", STATIC_DIR, append_version=False)
    app.router.add_get("/favicon.ico", favicon)
    for method, path, handler in EVERYONE:
        app.router.add_route(method, path, auth.protected(handler, roles=auth.ALL_ROLES, forbidden_page=pages.forbidden))
    for method, path, handler in PROTECTED:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
