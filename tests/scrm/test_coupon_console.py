"""The coupon page's 按客群发放记录 over HTTP with a signed-in marketer, against the whole product (jobs in-process):
a distribution queued from the page is listed with its status in Chinese, who asked and its counts once the job
ran; a run that could not go on is listed as 已失败 with why."""

from __future__ import annotations

import re

from scrm.campaigns.coupons import services as coupons
from scrm.console.coupon_pages import terms_from_form
from scrm.crm.staff import accounts as staff_accounts
from tests.campaigns.test_coupons import tagged
from tests.conftest import SandboxHarness
from tests.scrm.test_staff import HTML, PASSWORD, flash, sign_in


def run_rows(page: str) -> list[list[str]]:
    """The runs table's rows as the text of their cells (tags stripped)."""
    section = page.split('<section id="issue-runs">', 1)[1].split("</section>", 1)[0]
    return [
        [re.sub(r"<[^>]+>", " ", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", section)
        if "<td" in row
    ]


async def test_the_coupon_page_lists_its_segment_runs_with_status_counts_and_why(sandbox: SandboxHarness) -> None:
    rt = sandbox.rt
    people = await tagged(rt, ["wmVip0", "wmVip1", "wmVip2"], "vip")
    tpl = await coupons.create_template(rt, terms_from_form({"name": "回馈券", "amount_off": "5", "per_customer_limit": "1"}))
    await coupons.issue_coupon(rt, tpl.id, people[1], source="console")  # already holds their one
    await staff_accounts.create_staff(rt, "mk", PASSWORD, ["marketer"])
    token = await sign_in(sandbox.client, "mk")
    page_url = f"/console/coupons/{tpl.id}"
    empty = await (await sandbox.client.get(page_url, headers=HTML)).text()
    assert "还没有按客群发过券" in empty

    form = {"csrf_token": token, "segment": "tag:vip", "action": "issue"}
    resp = await sandbox.client.post(f"{page_url}/issue-segment", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == page_url
    await sandbox.settle()
    current = await coupons.get_template(rt, tpl.id)
    await coupons.update_template(rt, tpl.id, current.terms, active=False)
    late = await coupons.issue_to_segment(rt, tpl.id, "tag:vip", run_ref="late")  # a job that ran after it was stopped

    page = await (await sandbox.client.get(page_url, headers=HTML)).text()
    assert flash(page).startswith("已开始向客群发券：3 位客户")
    failed, done = run_rows(page)  # newest first
    assert 'data-run-status="failed">已失败<' in page and 'data-run-status="done">已完成<' in page
    # 批次, 客群, 状态, 客群人数, 已发, 已有, 限领跳过, 预算用完, 失败, 问题, 发起, 完成
    assert done[1:10] == ["tag:vip", "已完成", "3", "2", "0", "1", "0", "0", "—"]
    assert done[10:] == ["2026-11-23 10:00  console:mk", "2026-11-23 10:00"]  # asked by whom, when (Shanghai); finished
    assert failed[0] == "late" and failed[1:10] == ["tag:vip", "已失败", "1", "0", "0", "0", "0", "0", late.error]
    assert late.error == "该优惠券已停用 (template inactive)"
    assert "data-run-problem" in page
