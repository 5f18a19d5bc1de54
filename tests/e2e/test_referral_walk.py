"""Joining a referral campaign, the whole walk in headless Chromium against the real app on a real port (sandbox
mode, jobs in-process): a marketer creates a campaign picking a salesperson (and, for a group campaign, a customer
group) from lists; in the sandbox chat page a customer types “邀请好友” and gets their poster as a picture; a second sandbox
customer scans the code's link (the sandbox's 扫码 action: WeCom's add_external_contact callback with the code's
state); the campaign page's funnel shows the add and the invites table says why it does not count yet; the first
customer asks “我邀请的朋友算上了吗” and gets their progress. Screenshots at 1280 and 768 px in var/screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from bots.contacts.sync import run_sync
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms
from scrm.crm.staff import accounts as staff_accounts
from tests.conftest import SandboxHarness
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, REPLY_TIMEOUT_MS, require_chromium
from tests.scrm.test_staff import PASSWORD

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WIDTHS = (1280, 768)


async def shoot(page: Page, name: str) -> None:
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    await page.set_viewport_size({"width": WIDTHS[0], "height": 900})


async def customer_says(h: SandboxHarness, page: Page, text: str) -> None:
    """Type and send on the sandbox page, then let the product's jobs run (no worker runs in this test)."""
    box = page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("", timeout=REPLY_TIMEOUT_MS)
    await h.settle()


async def be_customer(page: Page, external_userid: str, name: str) -> None:
    await page.fill("#customer-id", external_userid)
    await page.locator("#customer-id").dispatch_event("change")
    await page.fill("#customer-name", name)
    await page.locator("#customer-name").dispatch_event("change")


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_a_customer_joins_by_chat_a_friend_scans_and_the_progress_is_explained(sandbox: SandboxHarness) -> None:
    require_chromium()
    h, base = sandbox, sandbox.rt.settings.base_url
    h.state.add_group("wrWalkVip", "VIP 老客户群", "sales01")
    await run_sync(h.rt, steps=("members", "groups"))  # what `python run.py sync` does: the pickers list them
    await staff_accounts.create_staff(h.rt, "marketer7", PASSWORD, ["marketer"], display_name="市场部")
    rule = CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000)
    await coupons.create_template(h.rt, TemplateTerms(name="邀友券", rule=rule, budget_count=100, per_customer_limit=1))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            console = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            errors: list[str] = []
            console.on("pageerror", lambda exc: errors.append(str(exc)))
            console.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
            await console.goto(base + "/console/login?next=/console/campaigns")
            await console.fill('input[name="username"]', "marketer7")
            await console.fill('input[name="password"]', PASSWORD)
            await console.get_by_role("button", name="登录").click()
            await expect(console.locator("h1")).to_have_text("裂变活动")

            # A group campaign (a draft) picks its group by name …
            await console.fill('input[name="name"]', "拉好友进 VIP 群")
            await console.select_option('select[name="kind"]', "group")
            await console.locator('fieldset[data-picker="chat_ids"]').get_by_label("VIP 老客户群").check()
            await console.get_by_role("button", name="创建活动").click()
            await expect(console.locator("main")).to_contain_text("入群：VIP 老客户群")
            # … and the friend campaign (started now) its salesperson.
            await console.goto(base + "/console/campaigns")
            await console.fill('input[name="name"]', "老带新 · 邀好友得券")
            await console.fill('input[name="goal"]', "2")
            await console.fill('textarea[name="poster_text"]', "邀请好友添加顾问，好友保持添加 24 小时即算成功，多邀多得！")
            await console.locator('fieldset[data-picker="userids"]').get_by_label("王销售").check()
            await console.check('input[name="start_now"]')
            await shoot(console, "referral-new")
            await console.get_by_role("button", name="创建活动").click()
            await expect(console.locator("h1")).to_have_text("裂变活动：老带新 · 邀好友得券")
            await expect(console.locator("main")).to_contain_text("承接成员 王销售")
            campaign_url = console.url

            chat = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            chat.on("pageerror", lambda exc: errors.append(str(exc)))
            await chat.goto(base + "/sandbox/", wait_until="domcontentloaded")
            await be_customer(chat, "wmWalkInviter", "老客户小王")
            await customer_says(h, chat, "邀请好友")
            invitation = chat.locator(".msg.bot", has_text="上图是您的专属邀请海报")
            await expect(invitation).to_be_visible(timeout=REPLY_TIMEOUT_MS)
            await expect(invitation).to_contain_text("【老带新 · 邀好友得券】")
            await expect(invitation).not_to_contain_text("/referral/posters/")  # the picture itself, not its link
            # The poster arrived as a picture message (uploaded as temporary media) right before the text.
            poster = chat.locator(".msg.bot img.sent-image")
            await expect(poster).to_have_count(1)
            await expect(poster).to_be_visible()
            assert await poster.evaluate("img => img.decode().then(() => img.naturalWidth)") == 750  # the PNG loaded
            assert await poster.evaluate("img => img.closest('.msg').nextElementSibling.textContent.includes('上图是')")
            await shoot(chat, "referral-chat-poster")

            # A friend scans the code: the link from the invitation, scanned by a new sandbox customer.
            await invitation.get_by_role("button", name="扫这个码").click()
            await be_customer(chat, "wmWalkFriend", "新朋友")
            await chat.get_by_role("button", name="扫码添加").click()
            await expect(chat.locator("#status")).to_have_text("扫码成功：已添加 sales01 为好友", timeout=REPLY_TIMEOUT_MS)
            await h.settle()

            await console.goto(campaign_url)
            adds = console.locator("tr", has=console.locator("td", has_text="扫码添加"))
            await expect(adds.locator("td").nth(1)).to_have_text("1")
            row = console.locator("#invites + .table-wrap tbody tr")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("新朋友")
            await expect(row.locator('[data-status="pending"]')).to_have_text("待确认")
            await expect(row.locator('[data-reason="holding"]')).to_contain_text("满 24 小时才计入")
            await shoot(console, "referral-funnel")

            await be_customer(chat, "wmWalkInviter", "老客户小王")
            await expect(invitation).to_be_visible(timeout=REPLY_TIMEOUT_MS)  # the inviter's conversation is back
            await customer_says(h, chat, "我邀请的朋友算上了吗")
            progress = chat.locator(".msg.bot", has_text="您的邀请进度")
            await expect(progress).to_be_visible(timeout=REPLY_TIMEOUT_MS)
            await expect(progress).to_contain_text("已计入：0 位（目标 2 位）")
            await expect(progress).to_contain_text("待确认：1 位")
            await expect(progress).to_contain_text("规则：")
            await shoot(chat, "referral-chat-progress")
            assert errors == []
        finally:
            await browser.close()
