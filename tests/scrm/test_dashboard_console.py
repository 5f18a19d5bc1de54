"""The dashboard and purchasing console pages over HTTP (real app, SQLite and PostgreSQL): sign-in required,
CSRF on every form, names escaped, charts as inline SVG, domain errors as red flashes with nothing changed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from fulfillment.catalog.models import products
from fulfillment.inventory import services as inventory
from fulfillment.orders import services as orders
from fulfillment.purchasing import services as ps
from fulfillment.purchasing.models import PurchaseStatus as P
from scrm.app.webapp import create_app
from scrm.console import charts
from scrm.console import dashboard as console_dashboard
from scrm.console import purchasing as console_purchasing
from scrm.console.pages import build_environment
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers
from tests.conftest import make_customer

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EVIL = "<script>alert(1)</script>"


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    app = create_app(catalog.settings, runtime=catalog)
    console_dashboard.setup_routes(app)
    console_purchasing.setup_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c


async def login(client: TestClient, rt: Runtime) -> str:
    resp = await client.post(
        "/console/login",
        data={"username": "admin", "password": rt.settings.admin_token.get(), "next": "/console/dashboard"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/dashboard"
    page = await client.get("/console/dashboard", headers=HTML)
    assert page.status == 200
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


def flash(text: str) -> tuple[str, str] | None:
    m = re.search(r'<div class="flash flash-(ok|err)" role="status">(.*?)</div>', text)
    return (m.group(1), m.group(2)) if m else None


async def post(client: TestClient, path: str, csrf: str, **data: str) -> tuple[str, tuple[str, str] | None]:
    """Submit a form as a browser does (303 → GET); returns the landing page and its flash."""
    resp = await client.post(path, data={"csrf_token": csrf, **data}, headers=HTML)
    assert resp.status == 200, (path, resp.status)
    text = await resp.text()
    return text, flash(text)


def test_charts_escape_labels_and_handle_empty_data() -> None:
    draw = build_environment().get_template("charts.html").module

    def svg(chart: object) -> str:
        return str(draw.chart(chart))

    bar = svg(charts.bar_geometry([(EVIL, 100), ("b", 0)], title="营业额<1>"))
    line = svg(charts.line_geometry([("a", 1)], title="t"))
    donut = svg(charts.donut_geometry([(EVIL, 3), ("x", 0)], title="d", center="50%"))
    for drawn in (bar, line, donut):
        assert drawn.startswith("<svg") and "<script>" not in drawn
    assert "&lt;script&gt;" in bar and "营业额&lt;1&gt;" in bar
    assert "暂无数据" in svg(charts.donut_geometry([("a", 0)], title="empty"))
    empty = svg(charts.bar_geometry([], title="none"))
    assert "<rect" in empty or "<line" in empty
    # a funnel with nothing in it yet: 暂无数据, not an empty plot topped by "0"
    for nothing in (charts.bar_geometry([("发码", 0), ("加好友", 0)], title="漏斗"), charts.line_geometry([("a", 0)], title="t")):
        drawn = svg(nothing)
        assert "暂无数据" in drawn and '">0</text>' not in drawn, drawn
    assert "暂无数据" not in bar and "暂无数据" not in line


def test_first_and_last_date_labels_stay_inside_the_chart() -> None:
    days = [(f"11-{d:02d}", d) for d in range(1, 31)]
    for chart in (charts.line_geometry(days, title="t"), charts.bar_geometry(days, title="t")):
        last = chart.labels[-1]
        assert last.text == "11-30"
        half = len(last.text) * charts.AXIS_CHAR_WIDTH / 2
        if last.anchor == "middle":
            assert float(last.x) + half <= chart.width
        else:
            assert last.anchor == "end" and float(last.x) <= chart.width
    line = charts.line_geometry(days, title="t")
    assert line.labels[-1].anchor == "end"  # the last point sits on the right edge
    drawn = str(build_environment().get_template("charts.html").module.chart(line))
    assert 'text-anchor="end" fill="#' in drawn and ">11-30</text>" in drawn


async def test_favicon_is_served(client: TestClient) -> None:
    resp = await client.get("/favicon.ico")
    body = await resp.read()
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/x-icon"
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file


async def test_pages_need_a_session(client: TestClient) -> None:
    paths = [("GET", "/console/dashboard")] + [(m, p.replace("{number}", "PO100001")) for m, p, _ in console_purchasing.ROUTES]
    for method, path in paths:
        resp = await client.request(method, path, allow_redirects=False)
        assert resp.status == 401, (method, path)
        assert (await resp.json())["error"]["code"] == "unauthorized"
    resp = await client.get("/console/dashboard", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login?next=%2Fconsole%2Fdashboard")


async def test_dashboard_renders_figures_charts_and_escapes_names(client: TestClient, catalog: Runtime) -> None:
    rt = catalog
    empty = await client.get("/console/dashboard", headers=HTML)  # not signed in: the login page
    assert "登录" in await empty.text()
    await login(client, rt)
    page = await (await client.get("/console/dashboard", headers=HTML)).text()
    assert page.count("<svg") == 3 and "近30天还没有订单" in page and "暂无数据" in page

    cid = await make_customer(rt, "wmBoss")
    async with rt.db.write() as conn:
        await conn.execute(customers.update().where(customers.c.id == cid).values(name=EVIL))
        await conn.execute(products.update().where(products.c.sku == "OIL-5L").values(reorder_point=20, name="花生油<b>5L</b>"))
    await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 2)], source="api", confirm=True)
    resp = await client.get("/console/dashboard", headers=HTML)
    assert resp.status == 200 and "script-src 'none'" in resp.headers["Content-Security-Policy"]
    page = await resp.text()
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "花生油&lt;b&gt;5L&lt;/b&gt;" in page and "<b>5L" not in page
    assert "¥72.00" in page and page.count("<svg") == 3
    assert 'href="/console/dashboard" class="active"' in page
    assert "按售价计" in page  # no purchase cost known yet: the note says so


async def test_purchasing_pages_from_supplier_to_receipt(client: TestClient, catalog: Runtime) -> None:
    rt = catalog
    csrf = await login(client, rt)
    resp = await client.post("/console/suppliers", data={"name": "x"}, allow_redirects=False)
    assert resp.status == 403  # no CSRF token
    page, note = await post(client, "/console/suppliers", csrf, name="<b>粮油</b>批发", contact="王", phone="138", lead_time_days="2")
    assert note == ("ok", "已添加供应商 &lt;b&gt;粮油&lt;/b&gt;批发") and "<b>粮油" not in page
    (supplier,) = await ps.list_suppliers(rt)
    _, note = await post(client, "/console/suppliers", csrf, name="<b>粮油</b>批发")
    assert note is not None and note[0] == "err"

    async with rt.db.write() as conn:
        wh = await inventory.default_warehouse(conn, rt.db.dialect)
        oil = (await conn.execute(sa.select(products.c.id).where(products.c.sku == "OIL-5L"))).scalar_one()
        await inventory.set_on_hand(conn, rt.db.dialect, oil, wh, 0, rt.clock.now())
    cid = await make_customer(rt, "wmWaiting")
    waiting = await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 3)], source="api", confirm=True)
    page = await (await client.get("/console/purchasing", headers=HTML)).text()
    assert "未指定供应商" in page and "OIL-5L" in page and "&lt;b&gt;粮油&lt;/b&gt;批发" in page

    _, note = await post(client, "/console/purchasing/suggestions", csrf, supplier_id=str(supplier.id), skus="OIL-5L")
    assert note is not None and note[0] == "ok" and "PO100001" in note[1]
    _, note = await post(client, "/console/purchasing/PO100001/place", csrf)
    assert note is not None and note[0] == "err" and "单价" in note[1]  # no cost known for a never-bought product
    _, note = await post(client, "/console/purchasing/PO100001/lines", csrf, **{"qty:OIL-5L": "10", "cost:OIL-5L": "95.5"})
    assert note == ("ok", "采购单 PO100001 已保存")
    _, note = await post(client, "/console/purchasing/PO100001/place", csrf)
    assert note is not None and note[0] == "ok"

    before = await ps.get_purchase_order(rt, "PO100001")
    page, note = await post(client, "/console/purchasing/PO100001/receive", csrf, reference="DN-1", **{"qty:OIL-5L": "11"})
    assert note is not None and note[0] == "err" and "超过" in note[1]
    assert (await ps.get_purchase_order(rt, "PO100001")) == before
    page, note = await post(client, "/console/purchasing/PO100001/receive", csrf, reference="DN-1", **{"qty:OIL-5L": "4"})
    assert note is not None and note[0] == "ok" and "OIL-5L×3" in note[1]  # released to the waiting order
    assert (await orders.get_order(rt, waiting.id)).lines[0].allocated_qty == 3
    _, note = await post(client, "/console/purchasing/PO100001/receive", csrf, reference="DN-1")
    assert note is not None and "未重复入库" in note[1]
    _, note = await post(client, "/console/purchasing/PO100001/cancel", csrf, reason="不要了")
    assert note is not None and note[0] == "err"
    page = await (await client.get("/console/purchasing/PO100001", headers=HTML)).text()
    assert "部分到货" in page and "DN-1" in page and "收货入库" in page
    async with rt.db.read() as conn:
        cost = (await conn.execute(sa.select(products.c.cost_fen).where(products.c.id == oil))).scalar_one()
    assert cost == 9550 and (await ps.get_purchase_order(rt, "PO100001")).status == P.PARTIALLY_RECEIVED

    _, note = await post(
        client, "/console/purchasing/new", csrf, supplier_id=str(supplier.id), **{"sku:0": "rice-5kg", "qty:0": "5", "cost:0": "-1"}
    )
    assert note is not None and note[0] == "err"
    _, note = await post(
        client, "/console/purchasing/new", csrf, supplier_id=str(supplier.id), **{"sku:0": "rice-5kg", "qty:0": "5", "cost:0": "40"}
    )
    assert note == ("ok", "采购单草稿 PO100002 已创建")
    _, note = await post(client, "/console/suppliers/deactivate", csrf, supplier_id=str(supplier.id))
    assert note is not None and note[0] == "ok"
    _, note = await post(client, "/console/purchasing/PO100002/place", csrf)
    assert note is not None and note[0] == "err" and "停用" in note[1]
    assert (await (await client.get("/console/purchasing/PO999999", headers=HTML)).text()).count("没有找到采购单") >= 1


async def test_purchasing_without_suppliers_says_add_one_and_unknown_costs_show_a_dash(client: TestClient, catalog: Runtime) -> None:
    """No supplier yet: no dead 请选择 dropdown whose submit silently does nothing, but a link to add one; a
    suggestion never bought before has no reference cost (—, not ¥0.00); cost fields hint 如：36.50."""
    await login(client, catalog)
    async with catalog.db.write() as conn:
        await conn.execute(products.update().where(products.c.sku == "WATER-550").values(reorder_point=500))
    page = await (await client.get("/console/purchasing", headers=HTML)).text()
    suggestions = page.split("<h2>补货建议</h2>")[1].split("<h2>采购单</h2>")[0]
    assert "WATER-550" in suggestions and "¥0.00" not in suggestions and '<td class="num">—</td>' in suggestions
    assert "还没有供应商" in suggestions and 'href="/console/suppliers">先添加供应商</a>' in suggestions
    assert 'name="supplier_id"' not in page and '<button type="submit" class="primary" disabled>生成采购单草稿</button>' in page
    assert '<button type="submit" class="primary" disabled>创建草稿</button>' in page and 'placeholder="如：36.50"' in page
    await ps.create_supplier(catalog, name="华东饮料批发")
    page = await (await client.get("/console/purchasing", headers=HTML)).text()
    assert "还没有供应商" not in page and "华东饮料批发</option>" in page and " disabled>" not in page
