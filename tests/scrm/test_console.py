"""The staff console over HTTP (real app, real SQLite and PostgreSQL): sign-in, CSRF, orders, shipping, stock."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from fulfillment.catalog.models import products
from fulfillment.inventory import services as inventory
from fulfillment.orders import services as orders
from fulfillment.orders.models import OrderStatus
from scrm.app.webapp import create_app
from scrm.console import auth
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers
from tests.conftest import make_customer

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(catalog.settings, runtime=catalog))) as c:
        yield c


async def login(client: TestClient, rt: Runtime) -> str:
    """Sign in; returns the CSRF token of the new session (read from a page, as a browser would)."""
    resp = await client.post(
        "/console/login",
        data={"username": "admin", "password": rt.settings.admin_token.get(), "next": "/console/orders"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/orders"
    page = await client.get("/console/orders", headers=HTML)
    assert page.status == 200
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


async def stock(rt: Runtime, sku: str) -> inventory.Level:
    async with rt.db.read() as conn:
        pid = (await conn.execute(sa.select(products.c.id).where(products.c.sku == sku))).scalar_one()
        return await inventory.level(conn, rt.db.dialect, pid)


async def place(rt: Runtime, items: list[tuple[str, int]], who: str = "wmConsole") -> orders.OrderView:
    cid = await make_customer(rt, who)
    return await orders.create_order(rt, customer_id=cid, items=items, source="api", confirm=True)


def page_flash(text: str) -> tuple[str, str] | None:
    m = re.search(r'<div class="flash flash-(ok|err)" role="status">(.*?)</div>', text)
    return (m.group(1), m.group(2)) if m else None


# ---- sign-in ---------------------------------------------------------------------------------------------
async def test_every_console_route_needs_a_session(client: TestClient) -> None:
    resp = await client.get("/console/orders?status=confirmed", headers=HTML, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login?next=%2Fconsole%2Forders%3Fstatus%3Dconfirmed"
    public = {"/console/login", "/console/static"}
    checked = 0
    for resource in client.app.router.resources():
        path = resource.canonical
        if not path.startswith("/console") or any(path.startswith(p) for p in public):
            continue
        for route in resource:
            concrete = re.sub(r"\{[^}]+\}", "SO100001", path)  # any path parameter
            resp = await client.request(route.method, concrete, allow_redirects=False)
            assert resp.status == 401, (route.method, path)
            assert (await resp.json())["error"]["code"] == "unauthorized"
            checked += 1
    assert checked >= 14
    css = await client.get("/console/static/console.css")
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]


async def test_wrong_password_then_rate_limited(client: TestClient, catalog: Runtime) -> None:
    for _ in range(5):
        resp = await client.post("/console/login", data={"username": "admin", "password": "nope"}, allow_redirects=False)
        assert resp.status == 401
        assert "用户名或密码不正确" in await resp.text()
        assert "Set-Cookie" not in resp.headers
    resp = await client.post(
        "/console/login", data={"username": "admin", "password": catalog.settings.admin_token.get()}, allow_redirects=False
    )
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "Set-Cookie" not in resp.headers
    assert isinstance(catalog.clock, FrozenClock)
    catalog.clock.advance(minutes=5)  # the failures age out
    await login(client, catalog)


async def test_login_cookie_logout_and_bad_cookies(client: TestClient, catalog: Runtime) -> None:
    resp = await client.post(
        "/console/login",
        data={"password": catalog.settings.admin_token.get(), "next": "https://evil.example/"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/orders"  # no open redirect
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie and "Max-Age=43200" in cookie
    value = resp.cookies[auth.SESSION_COOKIE].value
    root = await client.get("/console/", headers=HTML)
    assert root.status == 200 and str(root.url).endswith("/console/dashboard")  # / is the boss's daily page

    body, _, sig = value.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["exp"] += 3600
    forged_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    flipped = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    client.session.cookie_jar.clear()
    for bad in (f"{forged_body}.{sig}", flipped, "garbage", f"{body}."):
        resp = await client.get("/console/orders", headers={"Cookie": f"{auth.SESSION_COOKIE}={bad}"}, allow_redirects=False)
        assert resp.status == 401, bad
    ok = await client.get("/console/orders", headers={"Cookie": f"{auth.SESSION_COOKIE}={value}"}, allow_redirects=False)
    assert ok.status == 200
    assert isinstance(catalog.clock, FrozenClock)
    catalog.clock.advance(hours=12, seconds=1)
    expired = await client.get("/console/orders", headers={"Cookie": f"{auth.SESSION_COOKIE}={value}"}, allow_redirects=False)
    assert expired.status == 401


async def test_logout_needs_csrf_and_clears_the_session(client: TestClient, catalog: Runtime) -> None:
    token = await login(client, catalog)
    assert (await client.post("/console/logout", data={}, allow_redirects=False)).status == 403
    resp = await client.post("/console/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    assert (await client.get("/console/orders", allow_redirects=False)).status == 401


# ---- pages -----------------------------------------------------------------------------------------------
async def test_orders_list_filter_and_detail(client: TestClient, catalog: Runtime) -> None:
    order = await place(catalog, [("WATER-550", 3)])
    async with catalog.db.write() as conn:
        await conn.execute(customers.update().where(customers.c.id == order.customer_id).values(name="<b>张三</b>"))
    await login(client, catalog)
    text = await (await client.get("/console/orders", headers=HTML)).text()
    assert order.number in text and "已确认，备货中" in text and "¥108.00" in text
    assert "&lt;b&gt;张三&lt;/b&gt;" in text and "<b>张三" not in text
    assert "2026-11-23 10:00" in text  # 02:00 UTC shown in Asia/Shanghai
    link = f'href="/console/orders/{order.number}"'
    assert link in text
    assert link not in await (await client.get("/console/orders?status=shipped")).text()
    assert link in await (await client.get(f"/console/orders?q={order.number[-3:].lower()}&status=confirmed")).text()
    assert link not in await (await client.get("/console/orders?q=SO9")).text()
    detail = await client.get(f"/console/orders/{order.number}")
    assert detail.status == 200
    detail_text = await detail.text()
    assert "发货" in detail_text and "取消订单" in detail_text and 'name="qty:WATER-550"' in detail_text
    assert detail.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert (await client.get("/console/orders/SO999999")).status == 404


async def test_ship_needs_a_valid_csrf_token(client: TestClient, catalog: Runtime) -> None:
    order = await place(catalog, [("WATER-550", 3)])
    token = await login(client, catalog)
    for data in ({"carrier": "顺丰", "tracking_no": "SF1"}, {"carrier": "顺丰", "tracking_no": "SF1", "csrf_token": token[:-1] + "x"}):
        resp = await client.post(f"/console/orders/{order.number}/ship", data=data, allow_redirects=False)
        assert resp.status == 403
        assert "表单已失效" in await resp.text()
    after = await orders.get_order(catalog, order.id)
    assert after.status == OrderStatus.CONFIRMED and after.shipments == []
    assert await stock(catalog, "WATER-550") == inventory.Level(120, 3)


async def test_ship_deliver_and_flash(client: TestClient, catalog: Runtime) -> None:
    order = await place(catalog, [("WATER-550", 3), ("TISSUE-3", 2)])
    token = await login(client, catalog)
    resp = await client.post(
        f"/console/orders/{order.number}/ship",
        data={"csrf_token": token, "carrier": "顺丰", "tracking_no": "SF100", "qty:WATER-550": "", "qty:TISSUE-3": ""},
    )
    assert resp.status == 200 and str(resp.url).endswith(f"/console/orders/{order.number}")
    text = await resp.text()
    flash = page_flash(text)
    assert flash and flash[0] == "ok" and "已发货" in flash[1]
    assert "SF100" in text
    after = await orders.get_order(catalog, order.id)
    assert after.status == OrderStatus.SHIPPED
    assert await stock(catalog, "WATER-550") == inventory.Level(117, 0)
    assert page_flash(await (await client.get(f"/console/orders/{order.number}")).text()) is None  # shown once
    shipment = after.shipments[0].number
    resp = await client.post(
        f"/console/shipments/{shipment}/deliver", data={"csrf_token": token, "next": f"/console/orders/{order.number}"}
    )
    assert "已签收" in (page_flash(await resp.text()) or ("", ""))[1]
    assert (await orders.get_order(catalog, order.id)).status == OrderStatus.COMPLETED


async def test_partial_ship_cancel_shipment_and_too_much(client: TestClient, catalog: Runtime) -> None:
    order = await place(catalog, [("WATER-550", 3)])
    token = await login(client, catalog)
    resp = await client.post(
        f"/console/orders/{order.number}/ship", data={"csrf_token": token, "carrier": "中通", "tracking_no": "ZT1", "qty:WATER-550": "999"}
    )
    flash = page_flash(await resp.text())
    assert flash and flash[0] == "err" and "最多还能发 3" in flash[1]
    assert (await orders.get_order(catalog, order.id)).shipments == []
    assert await stock(catalog, "WATER-550") == inventory.Level(120, 3)

    resp = await client.post(
        f"/console/orders/{order.number}/ship", data={"csrf_token": token, "carrier": "中通", "tracking_no": "ZT2", "qty:WATER-550": "1"}
    )
    assert (page_flash(await resp.text()) or ("",))[0] == "ok"
    partly = await orders.get_order(catalog, order.id)
    assert partly.status == OrderStatus.PARTIALLY_SHIPPED and partly.lines[0].shipped_qty == 1
    resp = await client.post(
        f"/console/shipments/{partly.shipments[0].number}/cancel", data={"csrf_token": token, "next": "//evil.example"}
    )
    assert str(resp.url).endswith("/console/orders")  # unsafe next ignored
    back = await orders.get_order(catalog, order.id)
    assert back.status == OrderStatus.CONFIRMED and back.lines[0].shipped_qty == 0
    async with catalog.db.read() as conn:
        assert await inventory.reconcile(conn) == []


async def test_confirm_and_cancel_with_escaped_reason(client: TestClient, catalog: Runtime) -> None:
    cid = await make_customer(catalog, "wmDraft")
    draft = await orders.create_order(catalog, customer_id=cid, items=[("COLA-330", 2)], source="chat")
    token = await login(client, catalog)
    resp = await client.post(f"/console/orders/{draft.number}/confirm", data={"csrf_token": token})
    assert "已确认" in (page_flash(await resp.text()) or ("", ""))[1]
    assert (await orders.get_order(catalog, draft.id)).status == OrderStatus.CONFIRMED
    evil = "<script>alert('x')</script>"
    resp = await client.post(f"/console/orders/{draft.number}/cancel", data={"csrf_token": token, "reason": evil})
    text = await resp.text()
    assert "已取消" in (page_flash(text) or ("", ""))[1]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text and evil not in text
    assert (await orders.get_order(catalog, draft.id)).status == OrderStatus.CANCELLED
    again = await client.post(f"/console/orders/{draft.number}/ship", data={"csrf_token": token, "carrier": "x", "tracking_no": "y"})
    assert (page_flash(await again.text()) or ("",))[0] == "err"


async def test_picking_quick_ship_escapes_carrier(client: TestClient, catalog: Runtime) -> None:
    first = await place(catalog, [("WATER-550", 2), ("RICE-5KG", 1)], "wmP1")
    second = await place(catalog, [("WATER-550", 5)], "wmP2")
    token = await login(client, catalog)
    text = await (await client.get("/console/picking")).text()
    assert first.number in text and second.number in text
    assert re.search(r"<td>WATER-550</td><td>[^<]*</td><td>7箱</td><td class=\"num\">2</td>", text)
    carrier = '<script>alert("c")</script>'
    resp = await client.post(
        f"/console/orders/{first.number}/ship",
        data={"csrf_token": token, "carrier": carrier, "tracking_no": "T1", "next": "/console/picking"},
    )
    assert str(resp.url).endswith("/console/picking")
    text = await resp.text()
    assert (page_flash(text) or ("",))[0] == "ok"
    assert f'action="/console/orders/{first.number}/ship"' not in text  # gone from the picking list
    assert f'action="/console/orders/{second.number}/ship"' in text
    assert (await orders.get_order(catalog, first.id)).status == OrderStatus.SHIPPED
    detail = await (await client.get(f"/console/orders/{first.number}")).text()
    assert "&lt;script&gt;alert(&quot;c&quot;)&lt;/script&gt;" in detail and carrier not in detail


async def test_stock_receive_fills_backorder_and_count(client: TestClient, catalog: Runtime) -> None:
    token = await login(client, catalog)
    resp = await client.post("/console/stock/count", data={"csrf_token": token, "sku": "OIL-5L", "on_hand": "4"})
    assert (page_flash(await resp.text()) or ("",))[0] == "ok"
    order = await place(catalog, [("OIL-5L", 6)])
    assert order.lines[0].backordered_qty == 2
    async with catalog.db.write() as conn:
        await conn.execute(products.update().where(products.c.sku == "OIL-5L").values(reorder_point=3))
    text = await (await client.get("/console/stock")).text()
    assert "库存计数与流水一致" in text
    assert re.search(r'<tr class="low"><td>OIL-5L</td>', text) and '<tr class=""><td>WATER-550</td>' in text
    resp = await client.post("/console/stock/receive", data={"csrf_token": token, "sku": "OIL-5L", "qty": "5", "reference": "<i>PO-1</i>"})
    flash = page_flash(await resp.text())
    assert flash and flash[0] == "ok" and "补分配 2桶" in flash[1]
    assert (await orders.get_order(catalog, order.id)).lines[0].allocated_qty == 6
    assert await stock(catalog, "OIL-5L") == inventory.Level(9, 6)
    resp = await client.post("/console/stock/count", data={"csrf_token": token, "sku": "OIL-5L", "on_hand": "1"})
    flash = page_flash(await resp.text())
    assert flash and flash[0] == "err" and "已分配" in flash[1]
    resp = await client.post("/console/stock/receive", data={"csrf_token": token, "sku": "OIL-5L", "qty": "abc"})
    assert (page_flash(await resp.text()) or ("",))[0] == "err"
    assert await stock(catalog, "OIL-5L") == inventory.Level(9, 6)
