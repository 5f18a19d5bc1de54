"""The marketer's console in headless Chromium: a marketer (a staff account, scrypt password) signs in, creates a
满100减10 coupon with a budget of 100 through the form, issues it to a customer and sees the issued count on its
stats page; a coupon campaign issued to a segment of tagged customers; a referral campaign edited; a broadcast.
The app runs in-process on a free port (AppRunner), with sandbox settings."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.async_api import Page, async_playwright, expect

from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.referral import services as referral_services
from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts as staff_accounts
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import apply_tag, ensure_tag
from tests.conftest import make_customer
from tests.e2e.conftest import SCREENSHOTS, sign_in
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.scrm.test_staff import PASSWORD

pytestmark = pytest.mark.browser


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


async def tag_customers(rt: Runtime, externals: list[str], tag: str) -> list[int]:
    """Real customers with a real tag, so a segment expression picks exactly them."""
    ids = [await make_customer(rt, ext) for ext in externals]
    now = rt.clock.now()
    async with rt.db.write() as conn:
        tag_id = await ensure_tag(conn, rt.db.dialect, tag, now, group="客户类型")
        for cid in ids:
            await apply_tag(conn, rt.db.dialect, customer_id=cid, tag_id=tag_id, source=TagSource.MANUAL, evidence={}, now=now)
    return ids


async def shots(page: Page, name: str) -> None:
    """The page as it is, at 1280 and 768 px wide."""
    for width in (1280, 768):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.wait_for_timeout(300)  # let the layout settle at the new width
        await page.screenshot(path=str(SCREENSHOTS / f"{name}_{width}.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_marketer_creates_a_coupon_campaign_issues_it_to_a_segment_and_edits_a_referral(server: str, catalog: Runtime) -> None:
    """A real campaign flow in Chromium: create a coupon, issue it to a segment (a refused expression comes back with
    its column and the text kept; the live and the no-JavaScript counts; the issuing job runs) and see the issued
    count; then edit a running referral campaign (a bad eligible segment refused and kept, then saved) and a draft
    one's goal."""
    require_chromium()
    await catalog.jobs.start(catalog)  # the in-process runner: the issue-to-segment job runs as in `run.py serve`
    await staff_accounts.create_staff(catalog, "marketer3", PASSWORD, ["marketer"])
    members = await tag_customers(catalog, ["wmMember0", "wmMember1", "wmMember2"], "会员")
    passers = await tag_customers(catalog, ["wmPasser0", "wmPasser1"], "路人")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await sign_in(page, server, "marketer3", "/console/coupons")
            await expect(page.locator("h1")).to_have_text("优惠券")
            await page.fill('input[name="name"]', "会员满100减10")
            await page.select_option('select[name="kind"]', "fixed")
            await page.fill('input[name="threshold"]', "100")
            await page.fill('input[name="amount_off"]', "10")
            await page.fill('input[name="budget_count"]', "50")
            await page.get_by_role("button", name="创建优惠券").click()
            await expect(page.locator("h1")).to_have_text("优惠券：会员满100减10")
            await expect(page.locator("[data-issued-count]")).to_have_text("0")

            box = page.locator("#segment-expression")
            await box.fill("tag:会员 and")  # the live count shows the error and where
            await expect(page.locator("#segment-preview .flash-err")).to_contain_text("第 11 列")
            await page.get_by_role("button", name="发给客群").click()  # sent anyway: refused, nothing queued
            await expect(page.locator(".flash-err").first).to_contain_text("客群表达式有误，第 11 列")
            await expect(page.locator("#segment-expression")).to_have_value("tag:会员 and")
            await shots(page, "coupon_segment_refused")

            await page.locator("#segment-expression").fill("tag:会员")
            await expect(page.locator("#segment-preview strong")).to_have_text("3")
            await page.get_by_role("button", name="预览人数").click()  # the no-JavaScript count, the input kept
            await expect(page.locator("#segment-preview strong")).to_have_text("3")
            await expect(page.locator("#segment-expression")).to_have_value("tag:会员")
            await page.get_by_role("button", name="发给客群").click()
            await expect(page.locator(".flash-ok")).to_contain_text("已开始向客群发券：3 位客户")
            await catalog.jobs.drain(30)  # type: ignore[attr-defined]
            await page.reload()
            await expect(page.locator("[data-issued-count]")).to_have_text("3")
            issued = page.locator("tr", has=page.locator("td", has_text="发放"))
            await expect(issued.locator("td").nth(1)).to_have_text("3")
            await expect(page.locator("main")).to_contain_text("3/50 张")
            await shots(page, "coupon_segment_issued")
            tpl = (await coupons.list_templates(catalog))[0]
            for cid in members:
                assert [c.template_id for c in await coupons.coupons_of_customer(catalog, cid)] == [tpl.id]
            for cid in passers:
                assert await coupons.coupons_of_customer(catalog, cid) == []

            # a running referral campaign: only what a live campaign may change is offered
            now = catalog.clock.now()
            window = {"starts_at": now, "ends_at": now + dt.timedelta(days=14)}
            common = {"goal": 3, "reward_template_id": tpl.id, "userids": ["sales01"], **window}
            live = await referral_services.create_campaign(catalog, {"name": "老带新", "status": "running", **common})
            draft = await referral_services.create_campaign(catalog, {"name": "草稿活动", **common})
            await page.goto(f"{server}/console/campaigns/{live.id}")
            await expect(page.locator("h1")).to_have_text("裂变活动：老带新")
            await expect(page.locator("section.chart svg")).to_contain_text("暂无数据")  # no invite yet: no empty plot
            form = page.locator("#edit")
            await expect(form.locator('input[name="goal"]')).to_have_count(0)
            await form.locator('input[name="name"]').fill("老带新（双12）")
            await form.locator("#segment-expression").fill("tag:会员 or")
            await expect(page.locator("#segment-preview .flash-err")).to_contain_text("第 10 列")
            await form.get_by_role("button", name="保存修改").click()
            # refused, and said once — beside the field (the preview box), not again in a flash at the top
            await expect(page.locator("#segment-preview .flash-err")).to_contain_text("第 10 列")
            await expect(page.locator(".flash-err")).to_have_count(1)
            await expect(page.locator("#segment-expression")).to_have_value("tag:会员 or")
            await expect(page.locator('#edit input[name="name"]')).to_have_value("老带新（双12）")  # what was typed is kept
            await page.locator("#segment-expression").fill("tag:会员")
            await expect(page.locator("#segment-preview strong")).to_have_text("3")
            await page.locator('#edit textarea[name="poster_text"]').fill("邀 3 位好友，得满100减10")
            await shots(page, "referral_edit")
            await page.locator("#edit").get_by_role("button", name="保存修改").click()
            await expect(page.locator(".flash-ok")).to_contain_text("已保存裂变活动“老带新（双12）”")
            await expect(page.locator("h1")).to_have_text("裂变活动：老带新（双12）")
            await expect(page.locator("#segment-expression")).to_have_value("tag:会员")

            await page.goto(f"{server}/console/campaigns/{draft.id}")  # a draft: everything, the goal too
            await page.locator('#edit input[name="goal"]').fill("5")
            await page.locator("#edit").get_by_role("button", name="保存修改").click()
            await expect(page.locator(".flash-ok")).to_contain_text("已保存裂变活动“草稿活动”")
            await expect(page.locator("main")).to_contain_text("目标 5 位好友")
            assert violations == []
        finally:
            await browser.close()
    async with catalog.db.read() as conn:
        saved = await referral_services.get_campaign(conn, live.id)
        edited_draft = await referral_services.get_campaign(conn, draft.id)
    assert (saved.name, saved.eligible_segment, saved.poster_text, saved.goal, saved.status) == (
        "老带新（双12）", "tag:会员", "邀 3 位好友，得满100减10", 3, "running"
    )  # fmt: skip
    assert edited_draft.goal == 5
