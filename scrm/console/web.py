"""/console/ routes: sign-in and the operations pages (orders, picking and shipping, stock).

Views are thin: they read with :mod:`scrm.console.queries` or the fulfilment query functions, and every change
goes through a fulfilment service in its own transaction. A domain error becomes a red flash message on the page
it came from (nothing changed); success redirects back with a green one (POST → 303 → GET).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from fulfillment.catalog import services as catalog
from fulfillment.catalog.services import MAX_QTY
from fulfillment.inventory import services as inventory
from fulfillment.orders import backorders as orders_backorders
from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders import shipments as shipments
from fulfillment.orders.domain import STATUS_ZH
from scrm.console import auth, queries, render
from scrm.console.auth import SESSION, Handler, safe_next
from scrm.console.login_limit import LoginLimiter
from scrm.console.render import PageContext, html_response, layout, login_page, message_page, order_url, t
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME, SETTINGS
from scrm.crm.staff.domain import ROLE_NAMES_ZH

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOGIN_LIMITER = web.AppKey("console_login_limiter", LoginLimiter)


def forbidden(message: str) -> web.Response:
    return message_page("无法完成操作", message, status=403)


def _ctx(request: web.Request, active: str) -> PageContext:
    session = request[SESSION]
    return PageContext(
        subject=session.subject,
        role_zh="、".join(ROLE_NAMES_ZH.get(r, r) for r in session.all_roles),
        csrf=auth.csrf_token(request.app[SETTINGS], session),
        flash=auth.read_flash(request),
        active=active,
        roles=session.all_roles,
    )


def _page(request: web.Request, ctx: PageContext, title: str, body: object, *, status: int = 200) -> web.Response:
    response = html_response(layout(ctx, title, body), status=status)
    auth.clear_flash(request, response)
    return response


def _back(request: web.Request, path: str, kind: str, message: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": path})
    auth.set_flash(request, response, kind, message)
    return response


def _actor(request: web.Request) -> str:
    return f"console:{request[SESSION].subject}"


async def _form(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def _act(request: web.Request, back: str, action: Callable[[], Awaitable[str]]) -> web.Response:
    """Run one service call; its domain error (Chinese message, stable code) becomes the red flash."""
    try:
        message = await action()
    except DomainError as exc:
        log.info("console action refused", extra={"path": request.path, "code": exc.code})
        return _back(request, back, "err", exc.message)
    return _back(request, back, "ok", message)


def path_id(request: web.Request, name: str = "id", *, what: str = "编号") -> int:
    """A numeric id from the route (``/console/…/{id}``); anything else is NotFound (never a 500 or a huge int)."""
    raw = request.match_info[name]
    if not raw.isdecimal() or len(raw) > 18:
        raise NotFound(f"没有这个{what}：{raw[:32]} (no such id)")
    return int(raw)


def _int_field(form: dict[str, str], name: str, label: str, *, minimum: int) -> int:
    raw = form.get(name, "").strip()
    if not raw.isdecimal() or not minimum <= int(raw) <= MAX_QTY:
        raise InvalidInput(f"{label}必须是 {minimum} 到 {MAX_QTY} 之间的整数 ({name} must be a whole number)", field=name)
    return int(raw)


# ---- sign-in ----------------------------------------------------------------------------------------------
async def index(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/console/dashboard"})  # every role may see the dashboard


async def login_form(request: web.Request) -> web.Response:
    target = safe_next(request.query.get("next"), "")  # blank: each role lands on its own page
    session = await auth.current_session(request)
    if session is not None:
        return web.Response(status=303, headers={"Location": target or auth.home_for(session.all_roles)})
    return html_response(login_page(next_path=target))


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
        return message_page("无法登录", "登录请求来自其他网站，已拒绝。请直接打开控制台登录页 (cross-site sign-in refused)", status=403)
    form = await _form(request)
    target = safe_next(form.get("next"), "")
    username = form.get("username", "admin")[:64]
    wait = await limiter.retry_after(client, username, now)
    if wait:
        log.warning("console login rate-limited", extra={"client": client})
        return message_page(
            "登录尝试过多",
            f"登录失败次数过多，请 {(wait + 59) // 60} 分钟后再试 (too many attempts)",
            status=429,
            headers={"Retry-After": str(wait)},
        )
    principal = await auth.authenticate(request.app[RUNTIME], username, form.get("password", "")[:256])
    if principal is None:
        await limiter.failed(client, username, now)
        log.warning("console login failed", extra={"client": client})
        return html_response(login_page(next_path=target, error="用户名或密码不正确", username=username), status=401)
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
        rows, more = await queries.list_orders(conn, status=status, number=number, page=page)
    ctx = _ctx(request, "orders")
    return _page(request, ctx, "订单", render.orders_list(rows, status=status, number=number, page=page, more=more))


async def order_detail(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "orders")
    try:
        order = await orders_queries.get_order_by_number(rt, request.match_info["number"])
    except NotFound as exc:
        return _page(request, ctx, "没有找到订单", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    async with rt.db.read() as conn:
        history = await queries.history_of(conn, order.id)
        name = await queries.customer_name(conn, order.customer_id)
    return _page(request, ctx, f"订单 {order.number}", render.order_detail(ctx, order, name, history))


async def _order_id(request: web.Request) -> int:
    async with request.app[RUNTIME].db.read() as conn:
        return await orders_queries.order_id_by_number(conn, request.match_info["number"])


async def order_confirm(request: web.Request) -> web.Response:
    async def action() -> str:
        order = await orders.confirm_order(request.app[RUNTIME], await _order_id(request), actor=_actor(request))
        short = sum(ln.backordered_qty for ln in order.lines)
        return f"订单 {order.number} 已确认" + (f"，缺货 {short} 件待补" if short else "，已全部备货")

    return await _act(request, order_url(request.match_info["number"]), action)


async def order_cancel(request: web.Request) -> web.Response:
    form = await _form(request)

    async def action() -> str:
        reason = form.get("reason", "").strip()
        if len(reason) > 200:
            raise InvalidInput("取消原因不超过 200 字 (reason ≤ 200 chars)", field="reason")
        order = await orders.cancel_order(request.app[RUNTIME], await _order_id(request), actor=_actor(request), reason=reason)
        return f"订单 {order.number} 已取消"

    return await _act(request, order_url(request.match_info["number"]), action)


def _ship_lines(form: dict[str, str]) -> list[tuple[str, int]] | None:
    """``qty:<sku>`` fields: all blank → None (everything outstanding); otherwise the filled, non-zero ones."""
    given = {k.removeprefix("qty:"): v.strip() for k, v in form.items() if k.startswith("qty:") and v.strip()}
    if not given:
        return None
    for sku, v in given.items():
        if not v.isdecimal() or int(v) > MAX_QTY:
            raise InvalidInput(f"{sku} 的发货数量必须是整数 (quantity must be a whole number)", field="lines", sku=sku)
    lines = [(sku, int(v)) for sku, v in given.items() if int(v) > 0]
    if not lines:
        raise InvalidInput("请至少填写一行大于 0 的发货数量，或全部留空发出全部 (fill a quantity or leave all blank)", field="lines")
    return lines


async def order_ship(request: web.Request) -> web.Response:
    """发货: carrier + tracking number; blank quantities ship everything allocated and not yet shipped."""
    form = await _form(request)
    back = safe_next(form.get("next"), order_url(request.match_info["number"]))

    async def action() -> str:
        order, number = await shipments.create_shipment(
            request.app[RUNTIME],
            await _order_id(request),
            carrier=form.get("carrier", ""),
            tracking_no=form.get("tracking_no", ""),
            lines=_ship_lines(form),
            actor=_actor(request),
        )
        return f"订单 {order.number} 已发货（发货单 {number}），状态：{STATUS_ZH.get(order.status, order.status)}"

    return await _act(request, back, action)


async def shipment_deliver(request: web.Request) -> web.Response:
    form = await _form(request)

    async def action() -> str:
        order = await shipments.mark_delivered(request.app[RUNTIME], request.match_info["number"], actor=_actor(request))
        return f"发货单 {request.match_info['number']} 已签收，订单状态：{STATUS_ZH.get(order.status, order.status)}"

    return await _act(request, safe_next(form.get("next")), action)


async def shipment_cancel(request: web.Request) -> web.Response:
    form = await _form(request)

    async def action() -> str:
        order = await shipments.cancel_shipment(request.app[RUNTIME], request.match_info["number"], actor=_actor(request))
        return f"发货单 {request.match_info['number']} 已取消，货物已退回库存；订单状态：{STATUS_ZH.get(order.status, order.status)}"

    return await _act(request, safe_next(form.get("next")), action)


# ---- picking and stock ------------------------------------------------------------------------------------
async def picking(request: web.Request) -> web.Response:
    """发货/拣货: what to pick, per SKU and per order, with a quick ship form per order."""
    async with request.app[RUNTIME].db.read() as conn:
        rows = await queries.picking_list(conn)
    ctx = _ctx(request, "picking")
    return _page(request, ctx, "拣货发货", render.picking(ctx, rows))


async def stock(request: web.Request) -> web.Response:
    """库存: counters per product, low stock highlighted, receive / count forms and the ledger reconciliation."""
    async with request.app[RUNTIME].db.read() as conn:
        rows = await queries.stock_rows(conn)
        drifts = await inventory.reconcile(conn)
    ctx = _ctx(request, "stock")
    return _page(request, ctx, "库存", render.stock(ctx, rows, drifts))


async def _change_stock(request: web.Request, kind: str) -> web.Response:
    form = await _form(request)
    rt = request.app[RUNTIME]

    async def action() -> str:
        note = form.get("reference", "").strip()[:100]
        reference = f"{_actor(request)} {note}".strip()[:128]
        async with rt.db.write() as conn:
            product = await catalog.get_product(conn, form.get("sku", ""))
            warehouse = await inventory.default_warehouse(conn, rt.db.dialect)
            if kind == "receive":
                qty = _int_field(form, "qty", "入库数量", minimum=1)
                await inventory.receive(conn, rt.db.dialect, product.id, warehouse, qty, rt.clock.now(), reference=reference)
                done = f"{product.name} 入库 {qty}{product.unit}"
            else:
                qty = _int_field(form, "on_hand", "盘点数量", minimum=0)
                await inventory.set_on_hand(conn, rt.db.dialect, product.id, warehouse, qty, rt.clock.now(), reference=reference)
                done = f"{product.name} 盘点后在库 {qty}{product.unit}"
        filled = await orders_backorders.fill_backorders(rt, product.id)
        return done + (f"；已为缺货订单补分配 {filled}{product.unit}" if filled else "")

    return await _act(request, "/console/stock", action)


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


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.OPERATIONS_ROLES) -> None:
    """Mount the console. Every route but the login form and the stylesheet goes through :func:`auth.protected`."""
    limiter = app[LOGIN_LIMITER] = LoginLimiter.for_settings(app[SETTINGS].redis_url)

    async def close_limiter(app: web.Application) -> None:
        await limiter.close()

    app.on_cleanup.append(close_limiter)
    app.router.add_get("/console/login", login_form)
    app.router.add_post("/console/login", login_submit)
    app.router.add_static("/console/static", STATIC_DIR, append_version=False)
    for method, path, handler in EVERYONE:
        app.router.add_route(method, path, auth.protected(handler, roles=auth.ALL_ROLES, forbidden_page=forbidden))
    for method, path, handler in PROTECTED:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
