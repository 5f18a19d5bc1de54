"""The marketer's console in headless Chromium: a marketer (a staff account, scrypt password) signs in, creates a
满100减10 coupon with a budget of 100 through the form, issues it to a customer and sees the issued count on its
stats page. The app runs in-process on a free port (AppRunner), with sandbox settings."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import async_playwright, expect

from scrm.campaigns.coupons import services as coupons
from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts as staff_accounts
from tests.conftest import make_customer
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.scrm.test_staff import PASSWORD, console_app

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server(catalog: Runtime) -> AsyncIterator[str]:
    runner = web.AppRunner(console_app(catalog))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_marketer_creates_a_coupon_and_sees_its_stats(server: str, catalog: Runtime) -> None:
    require_chromium()
    await staff_accounts.create_staff(catalog, "marketer1", PASSWORD, ["marketer"], display_name="市场部")
    customer_id = await make_customer(catalog, "wmCouponFan")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(server + "/console/login")
            await page.fill('input[name="username"]', "marketer1")
            await page.fill('input[name="password"]', PASSWORD)
            await page.get_by_role("button", name="登录").click()
            await expect(page.locator("h1")).to_have_text("优惠券")  # a marketer lands on the coupons page
            await expect(page.locator("header .who")).to_contain_text("marketer1（营销）")

            await page.fill('input[name="name"]', "满100减10 新客券")
            await page.select_option('select[name="kind"]', "fixed")
            await page.fill('input[name="threshold"]', "100")
            await page.fill('input[name="amount_off"]', "10")
            await page.fill('input[name="budget_count"]', "100")
            await page.get_by_role("button", name="创建优惠券").click()
            await expect(page.locator("h1")).to_have_text("优惠券：满100减10 新客券")
            await expect(page.locator(".flash-ok")).to_contain_text("已创建优惠券")

            await page.fill('input[name="customer_id"]', str(customer_id))
            await page.get_by_role("button", name="发给客户").click()
            await expect(page.locator(".flash-ok")).to_contain_text(f"已发给客户 #{customer_id}：满100减10")
            issued = page.locator("tr", has=page.locator("td", has_text="发放"))
            await expect(issued.locator("td").nth(1)).to_have_text("1")
            await expect(page.locator("main")).to_contain_text("1/100 张")
            await page.screenshot(path=str(SCREENSHOTS / "coupon_stats.png"), full_page=True)

            await page.goto(server + "/console/coupons")
            await expect(page.locator("tbody tr").first).to_contain_text("满100减10")
            await page.screenshot(path=str(SCREENSHOTS / "coupon_list.png"), full_page=True)
            assert violations == []
        finally:
            await browser.close()
    tpl = (await coupons.list_templates(catalog))[0]
    assert (tpl.budget.issued_count, tpl.budget.budget_count, tpl.rule.label) == (1, 100, "满100减10")


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_marketer_creates_a_broadcast_sees_the_count_and_its_progress(server: str, catalog: Runtime) -> None:
    """群发 in Chromium: the live count (segments.js, the console session) as the segment is typed, then 创建群发 with
    立即发送 lands on the progress page; after planning ran, the page shows the recipients skipped with the reason."""
    from scrm.campaigns.broadcasts import services as broadcasts

    require_chromium()
    await staff_accounts.create_staff(catalog, "marketer2", PASSWORD, ["marketer"])
    for ext in ("wmFanA", "wmFanB", "wmFanC"):
        await make_customer(catalog, ext)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000}, locale="zh-CN")
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(server + "/console/login?next=/console/broadcasts")
            await page.fill('input[name="username"]', "marketer2")
            await page.fill('input[name="password"]', PASSWORD)
            await page.get_by_role("button", name="登录").click()
            await expect(page.locator("h1")).to_have_text("群发")
            await expect(page.locator("header nav")).not_to_contain_text("订单")  # a marketer's nav: no operations pages

            await page.fill('input[name="name"]', "周末回馈")
            box = page.locator("#segment-expression")
            await box.fill("first_seen < 7d")
            await expect(page.locator("#segment-preview strong")).to_have_text("3")
            await box.fill("first_seen << 7d")
            await expect(page.locator("#segment-preview .flash-err")).to_contain_text("列")
            await box.fill("first_seen < 7d")
            await expect(page.locator("#segment-preview strong")).to_have_text("3")
            await page.fill('textarea[name="text"]', "周末全场满100减20")
            await page.check('input[name="send_now"]')
            await page.screenshot(path=str(SCREENSHOTS / "broadcast_new.png"), full_page=True)
            await page.get_by_role("button", name="创建群发").click()
            await expect(page.locator("h1")).to_have_text("群发：周末回馈")
            await expect(page.locator(".flash-ok")).to_contain_text("已开始发送")

            bid = int(page.url.rsplit("/", 1)[1])
            await broadcasts.plan_broadcast(catalog, bid)  # what the plan job does (no worker runs in this test)
            await page.reload()
            await expect(page.locator("[data-broadcast-status]")).to_have_text("已完成")
            await expect(page.locator('[data-status="skipped"] strong')).to_have_text("3")
            await expect(page.locator("main")).to_contain_text("没有可触达的渠道")
            await expect(page.locator("section.chart svg")).to_be_visible()
            await page.screenshot(path=str(SCREENSHOTS / "broadcast_progress.png"), full_page=True)
            assert violations == []
        finally:
            await browser.close()
