"""The WeCom sidebar page in headless Chromium against the real app (sandbox mode, SQLite) served in-process on a
free port: sign in with the sandbox ``as=`` helper, let the stand-in JS-SDK pick the customer, add a tag and see
it with its reason, place an order and write a note, send the customer their referral poster — all through the page."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Dialog, async_playwright, expect

from fulfillment.catalog.services import seed_sample_if_empty
from scrm.app.runtime import build_runtime
from scrm.app.webapp import create_app
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms
from scrm.campaigns.coupons.services import create_template
from scrm.campaigns.referral import queries as referral_queries
from scrm.campaigns.referral.services import create_campaign
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus
from scrm.crm.customers.services import ensure_customer
from scrm.crm.groups.models import group_members, groups
from scrm.crm.staff.services import start_follow, upsert_salesperson
from scrm.crm.tags.services import ensure_tag
from tests.conftest import make_settings
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.helpers import free_port

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
HOSTILE_NAME = "<img src=x onerror=alert(1)>李四"


@dataclass
class Served:
    base_url: str
    rt: Runtime


@pytest.fixture
async def served(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Served]:
    """The app (create_app mounts the sidebar) on a real port."""
    require_chromium()
    db_path = tmp_path / "scrm.db"
    shutil.copy(sqlite_template, db_path)
    port = free_port()
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{db_path}", port=port)
    rt = await build_runtime(settings)
    app = create_app(settings, runtime=rt)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        now = rt.clock.now()
        async with rt.db.write() as conn:
            d = rt.db.dialect
            await seed_sample_if_empty(conn, d, now)
            await upsert_salesperson(conn, d, "sales01", now, name="王销售", active=True)
            cid = await ensure_customer(conn, d, kind="external_userid", value="wmE2ECustomer01", now=now, name=HOSTILE_NAME)
            await start_follow(
                conn,
                d,
                customer_id=cid,
                userid="sales01",
                external_userid="wmE2ECustomer01",
                status=FollowStatus.ACTIVE,
                at=now,
                now=now,
                remark="李总",
            )
            for name in ("重要客户", "普通客户"):
                await ensure_tag(conn, d, name, now, group="客户等级")
            await conn.execute(
                groups.insert().values(chat_id="wrE2EGroup", name="老客户群", owner_userid="sales01", member_count=2, updated_at=now)
            )
            await conn.execute(
                group_members.insert(),
                [
                    {"chat_id": "wrE2EGroup", "member_id": "sales01", "member_type": 1, "name": "王销售", "joined_at": now},
                    {"chat_id": "wrE2EGroup", "member_id": "wmE2ECustomer01", "member_type": 2, "name": "李四", "joined_at": now},
                ],
            )
        yield Served(settings.base_url, rt)
    finally:
        await runner.cleanup()
        await rt.close()


async def test_salesperson_tags_orders_and_notes_in_the_sidebar(served: Served, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page_errors: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
            page = await context.new_page()
            page.on("dialog", on_dialog)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            await page.goto(f"{served.base_url}/sidebar/?as=sales01&customer=wmE2ECustomer01", wait_until="domcontentloaded")
            await expect(page).to_have_url(f"{served.base_url}/sidebar/?customer=wmE2ECustomer01")
            await expect(page.locator("#customer-name")).to_have_text(HOSTILE_NAME, timeout=TIMEOUT_MS)
            assert await page.locator("#customer-view img[src='x']").count() == 0  # the name is text, not HTML
            await expect(page.locator("#me")).to_have_text("王销售（沙箱）")
            await expect(page.locator("#tag-list")).to_contain_text("还没有标签")

            await page.locator("#tag-select").select_option(label="重要客户")
            await page.locator("#add-tag-button").click()
            tag = page.locator("#tag-list li.tag", has_text="重要客户")
            await expect(tag).to_be_visible(timeout=TIMEOUT_MS)
            await expect(tag.locator(".why")).to_have_text("销售 王销售 手动添加")
            await expect(page.locator("#timeline")).to_contain_text("打上标签“重要客户”")
            # An applied tag is no longer offered; the × takes it off again.
            assert await page.locator("#tag-select option:not([disabled])", has_text="重要客户").count() == 0
            await page.locator("#tag-select").select_option(label="普通客户")
            await page.locator("#add-tag-button").click()
            plain = page.locator("#tag-list li.tag", has_text="普通客户")
            await expect(plain).to_be_visible(timeout=TIMEOUT_MS)
            await plain.locator("button").click()
            await expect(plain).to_have_count(0, timeout=TIMEOUT_MS)
            await expect(page.locator("#tag-message")).to_have_text("已移除标签")

            await page.locator("#order-sku").select_option("WATER-550")
            await page.locator("#order-qty").fill("2")
            await page.locator("#place-order-button").click()
            await expect(page.locator("#order-message")).to_contain_text("已下单 SO", timeout=TIMEOUT_MS)
            await expect(page.locator("#order-list")).to_contain_text("已确认，备货中")
            await expect(page.locator("#open-orders")).to_have_text("¥72.00")

            await page.locator("#note-input").fill("周五下午送货")
            await page.locator("#add-note-button").click()
            await expect(page.locator("#note-list")).to_contain_text("周五下午送货", timeout=TIMEOUT_MS)
            await expect(page.locator("#status")).to_have_text("")

            await page.evaluate("window.scrollTo(0, 0)")
            shot = tmp_path / "sidebar-360.png"
            await page.screenshot(path=str(shot), full_page=True)
            data = shot.read_bytes()
            assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")
            # No horizontal scrolling at the sidebar's width.
            assert await page.evaluate("document.documentElement.scrollWidth") <= 360
            await context.close()
        finally:
            await browser.close()
    assert dialogs == [], f"a dialog fired: {dialogs}"
    assert page_errors == [], f"JavaScript errors on the page: {page_errors}"


async def test_someone_elses_customer_shows_a_refusal(served: Served) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 360, "height": 740})
            await page.goto(f"{served.base_url}/sidebar/?as=sales01&customer=wmNotMine", wait_until="domcontentloaded")
            await expect(page.locator("#status")).to_contain_text("无权查看", timeout=TIMEOUT_MS)
            await expect(page.locator("#customer-view")).to_be_hidden()
        finally:
            await browser.close()


async def test_group_chat_shows_the_group(served: Served) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 360, "height": 740})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{served.base_url}/sidebar/?as=sales01&chat=wrE2EGroup", wait_until="domcontentloaded")
            await expect(page.locator("#group-name")).to_have_text("老客户群", timeout=TIMEOUT_MS)
            await expect(page.locator("#group-members")).to_contain_text("我的客户")
            await expect(page.locator("#group-activity")).to_contain_text("李四 入群")
            await expect(page.locator("#customer-view")).to_be_hidden()
            assert errors == []
        finally:
            await browser.close()


async def test_salesperson_sends_the_customers_referral_poster(served: Served, tmp_path: Path) -> None:
    """发送邀请海报: the customer's own poster (their code, made on this click) goes into the chat as a news card
    through the JS-SDK's sendChatMessage (the sandbox stand-in records it); the sidebar shows the poster."""
    rule = CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000)
    tpl = await create_template(served.rt, TemplateTerms(name="邀友券", rule=rule, budget_count=10, per_customer_limit=1))
    now = served.rt.clock.now()
    campaign = await create_campaign(
        served.rt,
        {
            "name": "老带新", "goal": 3, "reward_template_id": tpl.id, "userids": ["sales01"], "poster_text": "邀请好友领好礼",
            "starts_at": now, "ends_at": now + dt.timedelta(days=7), "status": "running",
        },
    )  # fmt: skip
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 360, "height": 740}, locale="zh-CN")
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{served.base_url}/sidebar/?as=sales01&customer=wmE2ECustomer01", wait_until="domcontentloaded")
            await expect(page.locator("#referral-campaign option")).to_have_text(["老带新（邀 3 人）"], timeout=TIMEOUT_MS)
            await page.locator("#send-referral-button").click()
            await expect(page.locator("#referral-message")).to_have_text("已把邀请海报发给客户", timeout=TIMEOUT_MS)
            poster = page.locator("#referral-poster")
            await expect(poster).to_be_visible()
            assert await poster.evaluate("img => img.decode().then(() => img.naturalWidth)") == 750
            sent = await page.evaluate("window.wx.sentMessages")
            assert len(sent) == 1 and sent[0]["to"] == "wmE2ECustomer01"
            message = sent[0]["message"]
            assert message["msgtype"] == "news" and message["news"]["title"] == "【老带新】您的专属邀请海报"
            assert message["news"]["link"] == message["news"]["imgUrl"] == await poster.get_attribute("src")
            assert message["news"]["link"].startswith(f"{served.base_url}/referral/posters/")
            async with served.rt.db.read() as conn:
                assert (await referral_queries.funnel(conn, campaign.id)).codes_issued == 1
            await page.locator("#referral-card").scroll_into_view_if_needed()
            await page.screenshot(path=str(tmp_path / "sidebar-referral.png"))
            assert errors == []
        finally:
            await browser.close()
