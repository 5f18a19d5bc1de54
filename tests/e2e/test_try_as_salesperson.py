"""README's "以销售身份试用": against the real `python run.py serve` (sandbox mode), in Chromium —

* a chat customer with a 昵称 orders in the sandbox chat page and appears *by name* in the console's order list
  (the product fetched the nickname with kf/customer/batchget from the emulator);
* the sidebar refuses the customer until the customer adds a salesperson: the chat page's 企业微信事件 button
  sends the signed add_external_contact callback, and then the sidebar, opened as that salesperson, shows them.

Screenshots go to var/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, REPLY_TIMEOUT_MS, Server, bot_says, say, server  # noqa: F401

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ADMIN_TOKEN = "sandbox-admin-token"  # the sandbox's default (README)


async def test_named_chat_customer_and_the_sidebar_after_adding_a_salesperson(server: Server) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    page_errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            chat = await context.new_page()
            chat.on("pageerror", lambda exc: page_errors.append(str(exc)))
            await chat.goto(f"{server.base_url}/sandbox/", wait_until="domcontentloaded")
            customer = await chat.locator("#customer-id").input_value()
            await chat.locator("#customer-name").fill("王小明")
            await chat.locator("#customer-name").dispatch_event("change")
            await say(chat, "要3箱矿泉水")
            await bot_says(chat, "合计：¥108.00")
            await say(chat, "确认")
            await bot_says(chat, "已确认")

            # 3: the console's order list names the customer
            console = await context.new_page()
            await console.goto(f"{server.base_url}/console/orders", wait_until="domcontentloaded")
            await console.fill('input[name="password"]', ADMIN_TOKEN)
            await console.click('button[type="submit"]')
            await expect(console.locator("h1")).to_have_text("订单")
            row = console.locator("table tbody tr").first
            await expect(row).to_contain_text("王小明", timeout=REPLY_TIMEOUT_MS)
            assert await console.locator("text=未命名客户").count() == 0
            await console.screenshot(path=str(SHOTS / "orders-named-customer-1280.png"), full_page=True)

            # 5: the sidebar refuses a customer who follows nobody …
            sidebar = await context.new_page()
            await sidebar.set_viewport_size({"width": 360, "height": 740})
            await sidebar.goto(f"{server.base_url}/sidebar/?as=sales01&customer={customer}", wait_until="domcontentloaded")
            await expect(sidebar.locator("body")).to_contain_text("无权查看", timeout=REPLY_TIMEOUT_MS)

            # … the customer adds 王销售 with the chat page's button …
            await chat.locator("#events summary").click()
            await expect(chat.locator("#event-member option[value='sales01']")).to_have_count(1)
            await chat.locator("#event-member").select_option("sales01")
            await chat.locator("#add-salesperson").click()
            await expect(chat.locator("#event-result")).to_have_text(
                "已添加销售为好友（add_external_contact 已送达）", timeout=REPLY_TIMEOUT_MS
            )
            await expect(chat.locator("#event-member option[value='sales01']")).to_contain_text("已是好友")
            link = await chat.locator("#open-sidebar").get_attribute("href")
            assert link == f"/sidebar/?as=sales01&customer={customer}"
            await chat.screenshot(path=str(SHOTS / "sandbox-events-1280.png"))

            # … and the sidebar, opened as 王销售 from that link, shows the customer by name
            await sidebar.goto(server.base_url + link, wait_until="domcontentloaded")
            await expect(sidebar.locator("#customer-name")).to_have_text("王小明", timeout=REPLY_TIMEOUT_MS)
            await expect(sidebar.locator("#me")).to_have_text("王销售（沙箱）")
            await sidebar.screenshot(path=str(SHOTS / "sidebar-after-add.png"), full_page=True)
            assert page_errors == []
        finally:
            await browser.close()
