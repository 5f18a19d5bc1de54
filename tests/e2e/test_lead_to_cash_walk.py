"""线索 → 商机 → 报价 → 订单, against the real `python run.py serve` (sandbox mode), in Chromium: a customer scans a
channel code on their phone and is the salesperson's lead at once; in the console the lead becomes a customer and an
opportunity; a quote is made, its share page opened on the customer's phone and accepted; the order ships; the
funnel counts the win. Screenshots of the sales pages at 1280 and 768 px go to var/screenshots/."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, REPLY_TIMEOUT_MS, Server, server  # noqa: F401

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ADMIN_TOKEN = "sandbox-admin-token"


def api(server: Server, method: str, path: str, body: dict[str, Any] | None = None) -> Any:  # noqa: F811
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"{server.base_url}/api/v1{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def fits(page: Page) -> None:
    width = await page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"{page.url} scrolls sideways: {width}"


async def test_a_channel_code_lead_becomes_an_order_and_the_funnel_counts_it(server: Server) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    code = api(server, "POST", "/channel-codes", {"name": "春季展会", "userids": ["sales01"]})
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            phone = await browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
            phone.on("pageerror", lambda exc: errors.append(str(exc)))
            await phone.goto(f"{server.base_url}/sandbox/scan/{code['config_id']}")
            await phone.fill('input[name="external_userid"]', "wmExpoWalk")
            await phone.fill('input[name="name"]', "展会客户")
            await phone.get_by_role("button", name="以客户身份添加").click()
            await expect(phone.locator("p.ok")).to_contain_text("产品已收到回调")

            console = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            console.on("pageerror", lambda exc: errors.append(str(exc)))
            await console.goto(f"{server.base_url}/console/leads")
            await console.fill('input[name="password"]', ADMIN_TOKEN)
            await console.click('button[type="submit"]')
            await expect(console.locator("h1")).to_have_text("线索")
            row = console.locator("table tbody tr", has_text="渠道活码")
            for _ in range(20):  # the callback's processing is a job: the lead appears within moments
                if await row.count():
                    break
                await console.wait_for_timeout(250)
                await console.reload()
            await expect(row).to_contain_text("春季展会")
            await expect(row).to_contain_text("展会客户")  # the lead shows the customer's WeCom name
            await expect(row).to_contain_text("跟进中")
            for width in (1280, 768):
                await console.set_viewport_size({"width": width, "height": 900})
                await fits(console)
                await console.screenshot(path=str(SHOTS / f"leads-{width}.png"), full_page=True)
            await console.set_viewport_size({"width": 1280, "height": 900})
            await row.locator("a").first.click()
            await expect(console.locator("h1")).to_contain_text("线索")
            await console.fill('input[name="title"]', "展会批量采购")
            await console.fill('input[name="amount"]', "1000")
            await console.get_by_role("button", name="转为客户").click()
            flash = console.locator(".flash-ok")
            await expect(flash).to_contain_text("并建了商机")
            await console.screenshot(path=str(SHOTS / "lead-converted-1280.png"), full_page=True)
            opportunity_id = int((await flash.text_content() or "").rsplit("#", 1)[1].strip("）) "))

            quote = api(
                server, "POST", "/quotes", {"opportunity_id": opportunity_id, "lines": [{"sku": "WATER-550", "qty": 10, "discount_pct": 5}]}
            )
            shared = api(server, "GET", f"/quotes/{quote['id']}")["share_url"]
            assert shared, quote
            await phone.goto(shared.replace(shared.split("/quotes/")[0], server.base_url))
            await expect(phone.locator("h1")).to_contain_text(quote["number"])
            await phone.get_by_role("button", name="接受报价并下单").click()
            await expect(phone.locator("body")).to_contain_text("SO", timeout=REPLY_TIMEOUT_MS)

            accepted = api(server, "GET", f"/quotes/{quote['id']}")
            assert accepted["status"] == "accepted" and accepted["order_number"], accepted
            order = api(server, "GET", f"/orders/{accepted['order_number']}")
            assert order["status"] == "confirmed", order
            api(server, "POST", f"/orders/{order['number']}/shipments", {"carrier": "顺丰", "tracking_no": "SF1234567890"})
            assert api(server, "GET", f"/orders/{order['number']}")["status"] == "shipped"

            await console.goto(f"{server.base_url}/console/opportunities/charts")
            won = console.locator("table tbody tr", has_text="赢单")
            await expect(won.locator("td").nth(2)).to_have_text("1")
            for width in (1280, 768):
                await console.set_viewport_size({"width": width, "height": 900})
                await fits(console)
                await console.screenshot(path=str(SHOTS / f"funnel-{width}.png"), full_page=True)
            for path, name in (("/console/pool", "pool"), ("/console/follow-ups", "follow-ups"), ("/console/lead-rules", "lead-rules")):
                await console.goto(server.base_url + path)
                for width in (1280, 768):
                    await console.set_viewport_size({"width": width, "height": 900})
                    await fits(console)
                    await console.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
            # The salesperson's sidebar opened from the workbench (no chat): 我的一天.
            sidebar = await browser.new_page(viewport={"width": 360, "height": 740}, locale="zh-CN")
            sidebar.on("pageerror", lambda exc: errors.append(str(exc)))
            await sidebar.goto(f"{server.base_url}/sidebar/?as=sales01")
            await expect(sidebar.locator("#home-title")).to_contain_text("我的一天")
            await expect(sidebar.locator("#home-view")).to_be_visible()
            await fits(sidebar)
            await sidebar.screenshot(path=str(SHOTS / "sidebar-my-day-360.png"), full_page=True)
        finally:
            await browser.close()
    assert errors == []
