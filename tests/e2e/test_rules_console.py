"""The tag-rule editor in headless Chromium: a marketer edits the 投诉 rule in its form, tries a message live (the
page asks the server as they type, no reload), sees a refused save keep the input with the Chinese error next to the
field, saves a new version, reads its diff and rolls back to the first version. Screenshots at 1280 and 768 px."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts as staff_accounts
from tagging.rules import versions
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.scrm.test_staff import PASSWORD

pytestmark = pytest.mark.browser
KEYWORDS = "坏了、漏、漏水、投诉、退货、质量问题、破损、过期、变质、发霉、发错、少发、差评、补发"  # 投诉's, as seeded


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_marketer_edits_a_rule_tries_a_message_saves_and_rolls_back(server: str, catalog: Runtime) -> None:
    require_chromium()
    await staff_accounts.create_staff(catalog, "marketer3", PASSWORD, ["marketer"], display_name="市场部")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(server + "/console/login?next=/console/rules")
            await page.fill('input[name="username"]', "marketer3")
            await page.fill('input[name="password"]', PASSWORD)
            await page.get_by_role("button", name="登录").click()
            await expect(page.locator("h1")).to_have_text("标签规则")
            await expect(page.locator("#rules-version")).to_have_text("1")

            complaint = page.locator("fieldset.rule", has=page.locator("legend", has_text="投诉"))
            keywords = complaint.locator('input[name$=".keywords"]')
            await keywords.fill((await keywords.input_value()) + "、异味")
            # Live try-out of the unsaved rules: no reload, the server says which rules fire and why.
            url_before = page.url
            await page.fill("#rule-sample", "这箱水有异味，价钱无所谓，不讲价")
            result = page.locator('#rule-try-result .result[data-tag="投诉"]')
            await expect(result).to_contain_text("会打上")
            await expect(result).to_contain_text("“异味”命中")
            await expect(page.locator('#rule-try-result .result[data-tag="价格敏感"]')).to_contain_text("“讲价”被“不”否定，不计")
            assert page.url == url_before
            await page.screenshot(path=str(SCREENSHOTS / "tag_rules_try_1280.png"), full_page=True)

            # A refused save: the form comes back as typed, the error next to its field.
            threshold = complaint.locator('input[name$=".threshold"]')
            await threshold.fill("高")
            await page.get_by_role("button", name="保存为新版本").click()
            await expect(page.locator("#rules-refused")).to_contain_text("规则未保存：发现 1 个问题")
            complaint = page.locator("fieldset.rule", has=page.locator("legend", has_text="投诉"))
            await expect(complaint.locator('input[name$=".keywords"]')).to_have_value(
                "坏了、漏、漏水、投诉、退货、质量问题、破损、过期、变质、发霉、发错、少发、差评、补发、异味"
            )
            err = complaint.locator("label.has-error", has=page.locator('input[name$=".threshold"]'))
            await expect(err.locator(".field-error")).to_contain_text("'高' 不是数字")
            await complaint.locator('input[name$=".threshold"]').fill("2.0")
            # Add a rule (添加规则 copies the empty one) and delete another.
            await page.get_by_role("button", name="添加规则").click()
            added = page.locator("fieldset.rule").last
            await added.locator('input[name$=".tag"]').fill("要发票")
            await added.locator('input[name$=".keywords"]').fill("发票、开票")
            price = page.locator("fieldset.rule", has=page.locator("legend", has_text="比价"))
            await price.get_by_label("删除这条规则").check()
            await page.fill("#rule-sample", "麻烦开一下发票")
            await expect(page.locator('#rule-try-result .result[data-tag="要发票"]')).to_contain_text("会打上")
            await page.get_by_role("button", name="保存为新版本").click()
            await expect(page.locator(".flash-ok")).to_contain_text("已保存为版本 2（7 条规则）")
            await expect(page.locator("#rules-version")).to_have_text("2")
            await expect(page.locator("fieldset.rule legend", has_text="要发票")).to_have_count(1)
            await expect(page.locator("fieldset.rule legend", has_text="比价")).to_have_count(0)

            await page.get_by_role("link", name="查看差异").first.click()  # newest first: version 2
            await expect(page.locator("pre.diff .add", has_text="异味")).to_have_count(1)
            await expect(page.locator("pre.diff .add", has_text="threshold")).to_have_count(2)  # the new rule's two only
            await expect(page.locator("pre.diff .add", has_text='tag = "要发票"')).to_have_count(1)
            await expect(page.locator("pre.diff .del", has_text='tag = "比价"')).to_have_count(1)
            await page.screenshot(path=str(SCREENSHOTS / "tag_rules_diff_1280.png"), full_page=True)
            await page.goto(server + "/console/rules")
            await page.locator("tr", has=page.locator("td", has_text="初始导入")).get_by_role("button", name="回滚到此版本").click()
            await expect(page.locator(".flash-ok")).to_contain_text("已回滚到版本 1 的内容，保存为新版本 3")
            await expect(page.locator("#rules-version")).to_have_text("3")
            complaint = page.locator("fieldset.rule", has=page.locator("legend", has_text="投诉"))
            await expect(complaint.locator('input[name$=".keywords"]')).not_to_have_value("异味")

            await page.set_viewport_size({"width": 768, "height": 1000})
            await page.fill("#rule-sample", "送来的啤酒坏了")
            await expect(page.locator('#rule-try-result .result[data-tag="投诉"]')).to_contain_text("会打上")
            await page.screenshot(path=str(SCREENSHOTS / "tag_rules_768.png"), full_page=True)
            assert violations == []
        finally:
            await browser.close()
    async with catalog.db.read() as conn:
        listed = await versions.list_versions(conn)
    assert [(v.version, v.action, v.created_by) for v in listed] == [
        (3, "rollback", "console:marketer3"),
        (2, "save", "console:marketer3"),
        (1, "seed", "system"),
    ]
