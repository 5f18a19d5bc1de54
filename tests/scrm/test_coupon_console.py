"""The coupon page's 按客群发放记录 over HTTP with a signed-in marketer, against the whole product (jobs in-process):
a distribution queued from the page is listed with its status in Chinese, who asked and its counts once the job
ran; a run that could not go on is listed as 已失败 with why."""

from __future__ import annotations

import re

import sqlalchemy as sa

from scrm.campaigns.coupons import services as coupons
from scrm.console.coupon_pages import terms_from_form
from scrm.core.outbox import outbox
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


async def test_the_page_issues_with_a_chat_notice_and_同时通知客户_can_be_unticked(sandbox: SandboxHarness) -> None:
    """发给客户 tells the customer in chat; 按客群发券 offers 同时通知客户, ticked by default: ticked, each customer who
    gets a coupon is told once; unticked (the browser then sends no field), nobody."""
    rt = sandbox.rt
    await sandbox.customer_says("wmTold", "你好", name="小王")  # a 微信客服 customer: the window is open
    await tagged(rt, ["wmTold"], "told")
    quiet_people = await tagged(rt, ["wmQuiet0", "wmQuiet1"], "quiet")
    tpl = await coupons.create_template(rt, terms_from_form({"name": "回馈券", "amount_off": "5", "per_customer_limit": "3"}))
    await staff_accounts.create_staff(rt, "mk", PASSWORD, ["marketer"])
    token = await sign_in(sandbox.client, "mk")
    page_url = f"/console/coupons/{tpl.id}"
    page = await (await sandbox.client.get(page_url, headers=HTML)).text()
    assert '<input type="checkbox" name="notify" value="1" checked> 同时通知客户' in page

    before = sandbox.replies("wmTold")
    form = {"csrf_token": token, "customer_id": "wmTold"}
    resp = await sandbox.client.post(f"{page_url}/issue", data=form, allow_redirects=False)
    assert resp.status == 303
    await sandbox.settle()
    assert sandbox.replies("wmTold") == [*before, "您获得一张优惠券：立减5，长期有效。下单时自动使用，发送“我的优惠券”查看。"]

    form = {"csrf_token": token, "segment": "tag:told", "action": "issue", "notify": "1"}
    resp = await sandbox.client.post(f"{page_url}/issue-segment", data=form, allow_redirects=False)
    assert resp.status == 303
    await sandbox.settle()
    assert len(sandbox.replies("wmTold")) == len(before) + 2  # the segment's coupon: a second notice, one only
    page = await (await sandbox.client.get(page_url, headers=HTML)).text()
    assert flash(page).endswith("领到券的客户会收到聊天通知")

    form = {"csrf_token": token, "segment": "tag:quiet", "action": "issue"}  # box unticked
    resp = await sandbox.client.post(f"{page_url}/issue-segment", data=form, allow_redirects=False)
    assert resp.status == 303
    await sandbox.settle()
    page = await (await sandbox.client.get(page_url, headers=HTML)).text()
    assert flash(page).endswith("不通知客户")
    async with rt.db.read() as conn:
        told = [dict(r.payload) for r in await conn.execute(sa.select(outbox.c.payload).where(outbox.c.topic == coupons.ISSUED_TOPIC))]
    assert len(told) == 2 and {p["customer_id"] for p in told}.isdisjoint(quiet_people)  # the single issue and wmTold's
    for cid in quiet_people:
        assert [c.template_id for c in await coupons.coupons_of_customer(rt, cid)] == [tpl.id]  # issued, untold
