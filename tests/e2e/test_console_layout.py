"""Console pages at a 1280 px desktop and a 768 px tablet in headless Chromium: nothing a user needs is off-screen or
runs past its card (库存's 入库 / 盘点, 标签规则's 回滚 button, 客户's search placeholder, 采购 without suppliers);
screenshots in var/screenshots for a human look."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, async_playwright, expect

from scrm.core.runtime import Runtime
from scrm.crm.customers.services import add_note
from tagging.rules import versions
from tagging.rules.engine import RULES_FILE
from tests.conftest import make_customer
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser
WIDTHS = (1280, 768)


async def sign_in(page: Page, server: str, rt: Runtime) -> None:
    await page.goto(server + "/console/login")
    await page.fill('input[name="username"]', "admin")
    await page.fill('input[name="password"]', rt.settings.admin_token.get())
    await page.click('button[type="submit"]')
    await expect(page.locator("h1")).to_be_visible()


async def off_screen(page: Page, selector: str) -> list[str]:
    """The elements matching ``selector`` whose right edge is past the viewport (or the page scrolls sideways)."""
    return await page.evaluate(
        """(sel) => {
            const width = document.documentElement.clientWidth, out = [];
            if (document.documentElement.scrollWidth > width) out.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
            for (const el of document.querySelectorAll(sel)) {
                const r = el.getBoundingClientRect();
                const name = el.getAttribute('aria-label') || el.textContent.trim();
                if (r.right > width + 0.5) out.push(name + ' right=' + Math.round(r.right));
            }
            return out;
        }""",
        selector,
    )


async def shoot(page: Page, name: str, width: int) -> None:
    await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_pages_fit_desktop_and_tablet(server: str, catalog: Runtime) -> None:
    require_chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seed = RULES_FILE.read_text(encoding="utf-8")
    await versions.save_rules(catalog, seed, by="console:admin", base_version=0)
    await versions.save_rules(catalog, seed + '\n[[rules]]\ntag = "要发票"\nkeywords = ["发票"]\n', by="console:admin", base_version=1)
    customer = await make_customer(catalog, "wmLongNote")
    await add_note(catalog, customer, "sales01", "客户说" + "货到了要先验货再付款，" * 180 + "结尾在这里")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for width in WIDTHS:
                page = await browser.new_page(viewport={"width": width, "height": 900}, locale="zh-CN")
                await sign_in(page, server, catalog)

                await page.goto(server + "/console/stock")
                await expect(page.locator("h1")).to_have_text("库存")
                await shoot(page, "stock", width)
                assert await off_screen(page, "td.stock-forms input, td.stock-forms button") == [], width
                await expect(page.get_by_role("button", name="盘点").first).to_be_in_viewport()

                await page.goto(server + "/console/rules")
                await shoot(page, "rules", width)
                row_button = page.locator("#versions + .table-wrap").get_by_role("button", name="回滚到此版本")
                card = await page.locator("#versions + .table-wrap").bounding_box()
                button = await row_button.bounding_box()
                assert card and button and button["x"] + button["width"] <= card["x"] + card["width"], (width, card, button)

                await page.goto(server + "/console/rules/versions/1")
                rollback = page.get_by_role("button", name="回滚到此版本（保存为新版本 3）")
                await expect(rollback).to_be_visible()
                await shoot(page, "rules-version", width)
                assert await off_screen(page, "main button") == [], width

                await page.goto(server + "/console/customers")
                search = page.locator('form.toolbar input[name="q"]')
                fits = await search.evaluate(
                    """(el) => {
                        const s = getComputedStyle(el), c = document.createElement('canvas').getContext('2d');
                        c.font = s.font;
                        const room = el.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
                        return [c.measureText(el.placeholder).width, room];
                    }"""
                )
                assert fits[0] <= fits[1], (width, fits)  # the whole placeholder shows
                await shoot(page, "customers", width)

                await page.goto(server + "/console/purchasing")
                await expect(page.locator("main")).to_contain_text("还没有供应商：先添加供应商")
                await shoot(page, "purchasing", width)
                assert await off_screen(page, "main button, main input") == [], width

                await page.goto(server + f"/console/customers/{customer}")  # a long note: its start, the rest behind 展开
                clamp = page.locator("details.clamp").first
                await expect(clamp.locator(".more")).to_have_text("展开")
                await expect(page.get_by_text("结尾在这里").locator("visible=true")).to_have_count(0)  # only the start shows…
                await shoot(page, "customer-long-note", width)
                await clamp.locator("summary").click()
                await expect(clamp.get_by_text("结尾在这里")).to_be_visible()  # …until 展开
                await expect(clamp.locator(".less")).to_be_visible()

                await page.goto(server + "/console/products/1")
                save = await page.get_by_role("button", name="保存").bounding_box()
                toggle = await page.get_by_role("button", name="停用商品").bounding_box()
                assert save and toggle and toggle["y"] >= save["y"] + save["height"] + 8, (width, save, toggle)  # not touching
                await shoot(page, "product", width)

                await page.goto(server + "/console/products/new")
                await page.get_by_role("button", name="新建").click()  # the browser's own required check first
                await page.evaluate("document.querySelector('form.stack').noValidate = true")
                await page.get_by_role("button", name="新建").click()
                await expect(page.locator(".field-error")).to_have_count(4)
                await shoot(page, "product-new-errors", width)
                await page.close()
        finally:
            await browser.close()
