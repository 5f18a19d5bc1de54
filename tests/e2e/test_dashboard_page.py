"""The dashboard and purchasing pages in headless Chromium: sign in, see the charts drawn (inline SVG under the
console's strict CSP, no script, no CDN), take screenshots for a human look."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import async_playwright, expect

from fulfillment.orders import services as orders
from fulfillment.purchasing import services as ps
from scrm.app.webapp import create_app
from scrm.console import dashboard as console_dashboard
from scrm.console import purchasing as console_purchasing
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime
from tests.conftest import make_customer
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(catalog: Runtime, clock: FrozenClock) -> AsyncIterator[str]:
    rt = catalog
    for k in range(12):  # a few days of orders for the charts
        clock.set(dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC) - dt.timedelta(days=k * 2, hours=k))
        cid = await make_customer(rt, f"wmChart{k % 5}")
        await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1 + k % 3), ("TISSUE-3", 1)], source="api", confirm=True)
    clock.set(dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC))
    supplier = await ps.create_supplier(rt, name="饮料批发")
    await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("COLA-330", 20, 4000)])
    app = create_app(rt.settings, runtime=rt)
    console_dashboard.setup_routes(app)
    console_purchasing.setup_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_dashboard_in_chromium(server: str, catalog: Runtime, tmp_path: Path) -> None:
    require_chromium()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(server + "/console/dashboard")
            await page.fill('input[name="password"]', catalog.settings.admin_token.get())
            await page.click('button[type="submit"]')
            await expect(page.locator("h1")).to_have_text("经营概览")
            charts = page.locator("main svg")
            await expect(charts).to_have_count(3)
            box = await charts.first.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 50
            assert await page.locator("main svg rect").count() >= 30
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            await page.click('header.top details.menu summary:has-text("运营")')  # the menu's 运营 drop-down
            await page.click('header.top a[href="/console/purchasing"]')
            await expect(page.locator("h1")).to_have_text("采购")
            await page.screenshot(path=str(tmp_path / "purchasing.png"), full_page=True)
            await page.click('a[href="/console/purchasing/PO100001"]')
            await expect(page.locator("h1")).to_have_text("采购单 PO100001")
            await page.screenshot(path=str(tmp_path / "purchase_order.png"), full_page=True)
            await page.goto(server + "/console/suppliers")
            await expect(page.locator("h1")).to_have_text("供应商")
            await page.screenshot(path=str(tmp_path / "suppliers.png"), full_page=True)
            assert violations == []
        finally:
            await browser.close()
