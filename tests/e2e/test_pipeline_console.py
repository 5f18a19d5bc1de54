"""商机's kanban and a quote's customer page in headless Chromium: at 1280 px and 768 px the page itself never scrolls
sideways (the board does, inside its own box), a card's stage moves with its form, and the quote page prints to PDF."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from scrm.core.runtime import Runtime
from scrm.sales.pipeline.services import create_opportunity
from scrm.sales.quotes.domain import LineRequest
from scrm.sales.quotes.services import create_quote, share_url
from tests.conftest import make_customer
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_console_layout import off_screen, shoot, sign_in
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_the_board_scrolls_inside_itself_and_a_card_moves(server: str, catalog: Runtime) -> None:
    require_chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    customer = await make_customer(catalog, "wmBoard")
    for i in range(3):
        await create_opportunity(catalog, customer_id=customer, owner_userid="sales01", title=f"商机{i}", amount_fen=100_000 * (i + 1))
    quote = await create_quote(catalog, lines=[LineRequest("WATER-550", 2, 10)], owner_userid="sales01", customer_id=customer)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for width in (1280, 768):
                page = await browser.new_page(viewport={"width": width, "height": 900}, locale="zh-CN")
                await sign_in(page, server, catalog)
                await page.goto(server + "/console/opportunities")
                await expect(page.locator("h1")).to_have_text("商机")
                await shoot(page, "opportunities", width)
                assert [x for x in await off_screen(page, "h1") if x.startswith("page scrolls")] == [], width
                board = await page.evaluate("() => { const b = document.querySelector('.kanban'); return [b.scrollWidth, b.clientWidth]; }")
                assert board[0] > board[1], board  # six stage columns: the board scrolls sideways inside its box
            card = page.locator(".kanban-card", has_text="商机0")
            await card.locator("select[name=stage]").select_option("negotiation")
            await card.get_by_role("button", name="移动").click()
            await expect(page.locator(".flash-ok")).to_contain_text("已移到「谈判」")
            await expect(page.locator(".kanban-col", has_text="谈判").locator(".kanban-card", has_text="商机0")).to_be_visible()

            page = await browser.new_page(viewport={"width": 768, "height": 900}, locale="zh-CN")
            await page.goto(share_url(catalog, quote).replace(catalog.settings.base_url, server))
            await expect(page.locator("h1")).to_contain_text(quote.number)
            await page.screenshot(path=str(SCREENSHOTS / "quote-shared-768.png"), full_page=True)
            button = page.get_by_role("button", name="接受报价并下单")
            styled = await button.evaluate("b => getComputedStyle(b).backgroundColor")
            assert styled == "rgb(7, 193, 96)", styled  # the inline stylesheet passed the CSP by its hash
            pdf = await page.pdf(format="A4")
            assert pdf.startswith(b"%PDF") and len(pdf) > 2000
        finally:
            await browser.close()
