"""The 客群 console page and the segment / RFM API over HTTP (real app, SQLite and PostgreSQL): sign-in required,
the console session authenticates the live preview, CSRF on forms, names escaped, RFM charts as SVG; the live
preview in headless Chromium under the page's CSP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fulfillment.orders.services import create_order
from scrm.app.webapp import create_app
from scrm.console import segments as console_segments
from scrm.core.runtime import Runtime
from tagging.rfm.domain import SEGMENT_NAMES
from tagging.segments import web as tagging_web
from tagging.segments.jobs import recompute_all
from tests.conftest import make_customer

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EVIL = "<script>alert(1)</script>"


def build_app(rt: Runtime) -> web.Application:
    app = create_app(rt.settings, runtime=rt)
    mounted = {getattr(r.resource, "canonical", "") for r in app.router.routes()}
    if "/console/segments" not in mounted:  # until scrm/app/webapp.py mounts them itself
        console_segments.setup_routes(app)
    if "/api/v1/segments/preview" not in mounted:
        tagging_web.setup_routes(app)
    return app


async def seed(rt: Runtime) -> list[int]:
    ids = []
    for k in range(6):
        cid = await make_customer(rt, f"wmSegUi{k}")
        ids.append(cid)
        for _ in range(k % 3 + 1):
            await create_order(rt, customer_id=cid, items=[("WATER-550", 1 + k)], source="api", confirm=True)
    await recompute_all(rt, rebuild_stats=True)
    return ids


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    await seed(catalog)
    async with TestClient(TestServer(build_app(catalog))) as c:
        yield c


async def login(client: TestClient, rt: Runtime) -> str:
    resp = await client.post(
        "/console/login",
        data={"username": "admin", "password": rt.settings.admin_token.get(), "next": "/console/segments"},
        allow_redirects=False,
    )
    assert resp.status == 303
    page = await client.get("/console/segments", headers=HTML)
    assert page.status == 200
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


def flash(text: str) -> tuple[str, str] | None:
    m = re.search(r'<div class="flash flash-(ok|err)" role="status">(.*?)</div>', text)
    return (m.group(1), m.group(2)) if m else None


async def test_everything_needs_a_console_session(client: TestClient, catalog: Runtime) -> None:
    resp = await client.get("/console/segments", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    resp = await client.get("/console/segments/preview", params={"expression": "orders >= 1"}, allow_redirects=False)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    bearer = {"Authorization": f"Bearer {catalog.settings.admin_token.get()}"}
    resp = await client.get("/console/segments/preview", params={"expression": "orders >= 1"}, headers=bearer, allow_redirects=False)
    assert resp.status == 401  # the API token is not a console session
    for path in ("/console/segments", "/console/segments/1/delete", "/console/segments/recompute"):
        assert (await client.post(path, data={}, allow_redirects=False)).status in (303, 401)


async def test_page_charts_and_csp(client: TestClient, catalog: Runtime) -> None:
    await login(client, catalog)
    resp = await client.get("/console/segments", headers=HTML)
    text = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "default-src 'self'" in csp
    assert re.findall(r"<script[^>]*>", text) == ['<script src="/console/static/segments.js" defer>']  # no inline script
    assert " style=" not in text
    for name in SEGMENT_NAMES:
        assert name in text
    assert text.count("位客户</title></rect>") == 25  # the R×F heatmap
    assert "共 6 位客户" in text and "活跃度分群" in text
    # a shop this small is scored by cut points, and the page says so (and why)
    assert "评分方法：<strong>固定分界" in text and "有订单的客户 6 位，少于 200 位时用固定分界" in text
    assert "R：距上次下单 7/30/90/180 天" in text
    js = await client.get("/console/static/segments.js")
    assert js.status == 200 and "textContent" in await js.text() and "innerHTML" not in await js.text()


async def test_live_preview_with_the_console_session(client: TestClient, catalog: Runtime) -> None:
    await login(client, catalog)
    resp = await client.get("/console/segments/preview", params={"expression": "orders >= 2"})
    body = await resp.json()
    assert resp.status == 200 and body["count"] == 4 and len(body["sample"]) == 4
    resp = await client.get("/console/segments/preview", params={"expression": "orders >= 2 and tga:x"})
    body = await resp.json()
    assert resp.status == 400
    assert body["error"]["code"] == "segment_syntax" and body["error"]["details"] == {"column": 17}
    # the same without JavaScript: the form's GET renders the count, or the error with the column marked
    page = await (await client.get("/console/segments", params={"expression": "orders >= 2"}, headers=HTML)).text()
    assert "<strong>4</strong> 位客户" in page
    page = await (await client.get("/console/segments", params={"expression": "orders >= 2 and tga:x"}, headers=HTML)).text()
    assert "第 17 列" in page and "<mark>t</mark>" in page


async def test_save_and_delete_segments(client: TestClient, catalog: Runtime) -> None:
    csrf = await login(client, catalog)
    resp = await client.post("/console/segments", data={"name": "x", "expression": "orders >= 1"}, headers=HTML)
    assert resp.status == 403  # no CSRF token
    data = {"csrf_token": csrf, "name": EVIL, "expression": "orders >= 2", "description": "复购"}
    text = await (await client.post("/console/segments", data=data, headers=HTML)).text()
    assert flash(text) == ("ok", "已保存客群 “&lt;script&gt;alert(1)&lt;/script&gt;”")
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    text = await (await client.post("/console/segments", data=data, headers=HTML)).text()
    assert flash(text) is not None and flash(text)[0] == "err" and "同名" in flash(text)[1]  # type: ignore[index]
    bad = {**data, "name": "坏的", "expression": "orders >="}
    text = await (await client.post("/console/segments", data=bad, headers=HTML)).text()
    assert flash(text) is not None and "第 10 列" in flash(text)[1]  # type: ignore[index]
    seg_id = re.search(r'action="/console/segments/(\d+)/delete"', text)
    assert seg_id
    text = await (await client.post(f"/console/segments/{seg_id.group(1)}/delete", data={"csrf_token": csrf}, headers=HTML)).text()
    assert flash(text) == ("ok", "已删除客群") and "还没有保存的客群" in text
    text = await (await client.post("/console/segments/recompute", data={"csrf_token": csrf}, headers=HTML)).text()
    assert flash(text) is not None and "6 位客户有 RFM 评分" in flash(text)[1]  # type: ignore[index]


async def api(client: TestClient, rt: Runtime, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {rt.settings.admin_token.get()}"}
    resp = await client.request(method, "/api/v1" + path, headers=headers, **kw)
    return resp.status, await resp.json()


async def test_segment_api(client: TestClient, catalog: Runtime) -> None:
    rt = catalog
    assert (await client.post("/api/v1/segments/preview", json={"expression": "orders >= 1"})).status == 401
    status, body = await api(client, rt, "POST", "/segments/preview", json={"expression": "orders >= 3"})
    assert status == 200 and body["count"] == 2 and [s["name"] for s in body["sample"]] == ["", ""]
    status, body = await api(client, rt, "POST", "/segments/preview", json={"expression": "orders >= 3 or (rfm:好"})
    assert status == 400 and body["error"]["code"] == "segment_syntax" and body["error"]["details"]["column"] == 21
    assert (await api(client, rt, "POST", "/segments/preview", json={"expression": 3}))[0] == 400
    status, made = await api(client, rt, "POST", "/segments", json={"name": "复购", "expression": "orders >= 2"})
    assert status == 201 and made["name"] == "复购"
    assert (await api(client, rt, "POST", "/segments", json={"name": "复购", "expression": "orders >= 1"}))[0] == 409
    status, got = await api(client, rt, "GET", f"/segments/{made['id']}")
    assert status == 200 and got["count"] == 4
    status, page1 = await api(client, rt, "GET", f"/segments/{made['id']}/customers", params={"limit": "3"})
    assert status == 200 and len(page1["items"]) == 3 and page1["next_after"] == page1["items"][-1]
    status, page2 = await api(
        client, rt, "GET", f"/segments/{made['id']}/customers", params={"limit": "3", "after": str(page1["next_after"])}
    )
    assert page2 == {"items": page2["items"], "next_after": None} and len(page2["items"]) == 1
    status, changed = await api(client, rt, "PUT", f"/segments/{made['id']}", json={"expression": "orders >= 3"})
    assert status == 200 and changed["expression"] == "orders >= 3" and changed["name"] == "复购"
    status, listing = await api(client, rt, "GET", "/segments")
    assert [s["name"] for s in listing["items"]] == ["复购"]
    assert (await api(client, rt, "DELETE", f"/segments/{made['id']}"))[0] == 200
    assert (await api(client, rt, "GET", f"/segments/{made['id']}"))[0] == 404
    assert (await api(client, rt, "GET", "/segments/abc"))[0] == 404
    spec = await (await client.get("/api/openapi.json")).json()
    assert "/api/v1/segments/preview" in spec["paths"] and "/api/v1/customers/{external_userid}/rfm" in spec["paths"]


async def test_customer_rfm_api(client: TestClient, catalog: Runtime) -> None:
    status, body = await api(client, catalog, "GET", "/customers/wmSegUi5/rfm")
    assert status == 200
    assert body["rfm"]["frequency"] == 3 and body["rfm"]["segment"] in SEGMENT_NAMES and body["rfm"]["r"] in range(1, 6)
    assert body["activity"]["segment"] == "new" and body["order_stats"]["orders"] == 3
    assert (await api(client, catalog, "GET", "/customers/wmNobody/rfm"))[0] == 404


# ---- in a browser -----------------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_live_count_in_chromium(catalog: Runtime, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium

    require_chromium()
    await seed(catalog)
    server = TestServer(build_app(catalog))
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 1000})
                violations: list[str] = []
                page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
                await page.goto(base + "/console/segments")
                await page.fill('input[name="password"]', catalog.settings.admin_token.get())
                await page.click('button[type="submit"]')
                await expect(page.locator("h1")).to_have_text("客群")
                await expect(page.locator(".rfm-method")).to_contain_text("评分方法：固定分界")
                await expect(page.locator(".rfm-method")).to_contain_text("有订单的客户 6 位")
                box = page.locator("#segment-expression")
                await box.fill("orders >= 2")
                await expect(page.locator("#segment-preview strong")).to_have_text("4")
                await box.fill("orders >= 2 and rfm:最好")
                await expect(page.locator("#segment-preview .flash-err")).to_contain_text("第 21 列")
                await expect(page.locator("#segment-preview mark")).to_have_text("最")
                await box.fill("orders >= 3")
                await expect(page.locator("#segment-preview strong")).to_have_text("2")
                assert await page.locator("#segment-save-expression").input_value() == "orders >= 3"
                await page.fill('input[name="name"]', "老客户")
                await page.click('button:has-text("保存为客群")')
                await expect(page.locator(".flash-ok")).to_have_text("已保存客群 “老客户”")
                await page.screenshot(path=str(tmp_path / "segments.png"), full_page=True)
                assert violations == []
            finally:
                await browser.close()
    finally:
        await server.close()
