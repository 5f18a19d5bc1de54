"""The console's menu bar in Chromium at desktop (1280 px) and tablet (768 px) width: grouped into 销售 / 运营 / 财务 /
营销 / 设置, every label on one line, the bar on one row at 1280, the drop-downs open on a click and stay on screen.
Screenshots go to var/screenshots/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, async_playwright, expect

from scrm.app.webapp import create_app
from scrm.core.runtime import Runtime
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
SECTIONS = ["销售", "运营", "营销", "设置"]  # drop-downs for the admin (财务 holds one page: a plain link)


@pytest.fixture
async def server(catalog: Runtime) -> AsyncIterator[str]:
    require_chromium()
    server = TestServer(create_app(catalog.settings, runtime=catalog))
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def one_line(page: Page, selector: str) -> None:
    """Each element's text fits on one line: its height is about one line box."""
    heights = await page.eval_on_selector_all(selector, "els => els.map(e => [e.textContent, e.getBoundingClientRect().height])")
    tall = [(text, h) for text, h in heights if h > 40]
    assert not tall, tall


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.parametrize("width", [1280, 768])
async def test_menu_fits_and_opens(server: str, catalog: Runtime, width: int) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": 800})
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(server + "/console/segments")
            await page.fill('input[name="password"]', catalog.settings.admin_token.get())
            await page.click('button[type="submit"]')
            await expect(page.locator("h1")).to_have_text("客群")
            nav = page.locator("header.top nav")
            assert await nav.locator("details.menu > summary").all_inner_texts() == ["销售", "运营", "营销·客群", "设置"]
            assert await nav.locator(":scope > a").all_inner_texts() == ["概览", "财务", "审批"]  # 审批: everyone's inbox
            await one_line(page, "header.top nav > a, header.top nav summary")
            box = await nav.bounding_box()
            assert box is not None and box["height"] < 48, box  # one row
            header = await page.locator("header.top").bounding_box()
            assert header is not None and header["height"] < (60 if width == 1280 else 110), header
            # 营销 marks the current page; its drop-down opens on a click, on screen, with 客群 active
            marketing = nav.locator("details.menu", has_text="营销")
            await expect(marketing).to_have_class("menu current")
            await marketing.locator("summary").click()
            items = marketing.locator(".menu-items")
            await expect(items).to_be_visible()
            await expect(items.locator("a.active")).to_have_text("客群")
            await one_line(page, "header.top .menu-items a")
            menu_box = await items.bounding_box()
            assert menu_box is not None and menu_box["x"] >= 0 and menu_box["x"] + menu_box["width"] <= width
            await page.screenshot(path=str(SHOTS / f"console-menu-{width}.png"))
            await marketing.locator("summary").click()  # closes again
            # from another section: 运营 → 库存
            operations = nav.locator("details.menu", has_text="运营")
            await operations.locator("summary").click()
            await operations.locator("a", has_text="库存").click()
            await expect(page.locator("h1")).to_have_text("库存")
            await expect(nav.locator("details.menu.current > summary")).to_have_text("运营·库存")
            assert violations == []
        finally:
            await browser.close()
