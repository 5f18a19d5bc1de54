"""交接 in headless Chromium at 1280 and 768 px: the form with a member's customers, a handover's progress and the
离职继承 list fit the screen; screenshots in var/screenshots for a human look."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from scrm.core.clock import FrozenClock
from tests.conftest import SandboxHarness
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_console_layout import WIDTHS, off_screen, shoot, sign_in
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.sales.test_handover import seed

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_handover_pages_fit_desktop_and_tablet(sandbox: SandboxHarness, clock: FrozenClock) -> None:
    require_chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await seed(sandbox, "sales01", [f"wmShot{i}" for i in range(6)])
    await seed(sandbox, "sales04", ["wmShotGone"])
    status, made = await sandbox.api("POST", "/handovers", json={"from": "sales01", "to": "sales02", "customers": ["wmShot0", "wmShot1"]})
    assert status == 202
    await sandbox.settle()
    await sandbox.client.post("/sandbox/api/transfers/refuse", json={"external_userid": "wmShot1"})
    await sandbox.settle()
    await sandbox.client.post("/sandbox/api/members/depart", json={"userid": "sales04"})
    server = str(sandbox.client.make_url("")).rstrip("/")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for width in WIDTHS:
                page = await (await browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")).new_page()
                await sign_in(page, server, sandbox.rt)
                await page.goto(server + "/console/handovers?from=sales01")
                await expect(page.get_by_role("button", name="提交交接")).to_be_visible()
                assert await off_screen(page, "button, select, input[type=checkbox]") == []
                await shoot(page, "handovers", width)
                await page.goto(server + f"/console/handovers/{made['id']}")
                await expect(page.get_by_text("客户拒绝").first).to_be_visible()
                assert await off_screen(page, "button, .badge") == []
                await shoot(page, "handover-detail", width)
                await page.goto(server + "/console/handovers/resigned")
                await expect(page.get_by_role("button", name="离职继承")).to_be_visible()
                assert await off_screen(page, "button, select") == []
                await shoot(page, "handovers-resigned", width)
        finally:
            await browser.close()
