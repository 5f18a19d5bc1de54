"""The 群发 console pages over HTTP with a signed-in marketer (staff account, CSRF token), against the whole product
with the sandbox emulator on a real port: the list and create form (preview count kept with the form, errors shown
with everything typed kept), send now → planned → sent through the emulator, the progress page (counts per status
and channel, reasons, SVG bar), pause / resume / cancel, the paged per-recipient results, and roles."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bots.notices.broadcasts import run_due_broadcasts
from scrm.campaigns.broadcasts import queries as broadcasts_queries
from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.broadcasts.models import broadcasts as broadcasts_table
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.referral import services as referral_services
from scrm.console import broadcast_pages as page_broadcast_pages
from scrm.console.coupon_pages import terms_from_form
from scrm.crm.staff import accounts as staff_accounts
from tests.campaigns.test_broadcasts import customer
from tests.conftest import SandboxHarness
from tests.scrm.test_staff import HTML, PASSWORD, flash, sign_in

SEGMENT = "first_seen < 7d"


async def _seed(h: SandboxHarness) -> dict[str, int]:
    """Four reachable customers (Official Account ×2, salesperson task ×2) and one nobody can reach."""
    h.state.add_member("sales01", "王销售")
    ids = {}
    for ext in ("wm_a", "wm_b"):
        h.state.add_customer(ext, ext, ["sales01"])
        ids[ext] = await customer(h.rt, ext, sales="sales01")
    for n in ("1", "2"):
        h.state.add_follower(f"o_oa{n}")
        ids[f"oa{n}"] = await customer(h.rt, f"wm_oa{n}", openid=f"o_oa{n}")
    ids["nobody"] = await customer(h.rt, "wm_nobody")
    return ids


async def _marketer(h: SandboxHarness) -> tuple[TestClient, str]:
    await staff_accounts.create_staff(h.rt, "mk", PASSWORD, ["marketer"])
    return h.client, await sign_in(h.client, "mk")


async def test_create_with_preview_send_now_progress_and_results(sandbox: SandboxHarness) -> None:
    ids = await _seed(sandbox)
    tpl = await coupons.create_template(sandbox.rt, terms_from_form({"name": "回馈券", "amount_off": "5", "per_customer_limit": "1"}))
    client, token = await _marketer(sandbox)

    listing = await client.get(page_broadcast_pages.PAGE, headers=HTML)
    text = await listing.text()
    assert listing.status == 200 and "新建群发" in text and "还没有群发" in text
    assert "script-src 'self'" in listing.headers["Content-Security-Policy"] and "/console/static/segments.js" in text
    assert 'href="/console/broadcasts" class="active">群发</a>' in text

    form = {
        "csrf_token": token,
        "name": "<b>双12</b>",
        "segment": SEGMENT,
        "text": "老客回馈，全场满100减20",
        "coupon_template_id": str(tpl.id),
    }
    preview = await client.post(page_broadcast_pages.PAGE, data={**form, "action": "preview"}, headers=HTML)
    text = await preview.text()
    assert preview.status == 200 and "<strong>5</strong> 位客户" in text
    assert "&lt;b&gt;双12&lt;/b&gt;" in text and "老客回馈，全场满100减20</textarea>" in text  # the form is kept
    assert f'<option value="{tpl.id}" selected>' in text
    async with sandbox.rt.db.read() as conn:
        assert await broadcasts_queries.list_broadcasts(conn) == []  # a preview creates nothing

    bad = await client.post(page_broadcast_pages.PAGE, data={**form, "segment": "orders >>= 2", "action": "create"}, headers=HTML)
    text = await bad.text()
    assert bad.status == 400 and "客群表达式有误" in text and "orders &gt;&gt;= 2</textarea>" in text
    both = await client.post(
        page_broadcast_pages.PAGE, data={**form, "send_now": "1", "scheduled_at": "2020-01-01T10:00", "action": "create"}, headers=HTML
    )
    assert both.status == 400 and "发送时间需晚于现在" in await both.text()
    assert (
        await client.post(page_broadcast_pages.PAGE, data={**form, "csrf_token": "forged", "action": "create"}, allow_redirects=False)
    ).status == 403

    resp = await client.post(page_broadcast_pages.PAGE, data={**form, "send_now": "1", "action": "create"}, allow_redirects=False)
    assert resp.status == 303 and re.fullmatch(r"/console/broadcasts/\d+", resp.headers["Location"])
    detail = resp.headers["Location"]
    await sandbox.settle()
    await sandbox.settle()
    text = await (await client.get(detail, headers=HTML)).text()
    assert "已创建群发" in flash(text) and "已开始发送" in flash(text)
    assert 'data-broadcast-status="done"' in text and "已完成" in text and "回馈券（满5减5" not in text
    for status, n in (("sent", 2), ("awaiting_confirmation", 2), ("skipped", 1), ("planned", 0), ("failed", 0)):
        assert f'data-status="{status}"><strong>{n}</strong>' in text, status
    assert "<svg" in text and "发送进度" in text and "公众号模板消息" in text and "销售确认群发" in text
    assert "没有可触达的渠道" in text  # the reason of the one skipped
    assert f"#{ids['nobody']} " in text and "王销售" not in text and "sales01" in text
    assert [t["touser"] for t in sandbox.state.templates_sent] == ["o_oa1", "o_oa2"]
    assert "优惠券" in sandbox.state.templates_sent[0]["data"]["content"]["value"]  # the coupon went with the message

    only = await (await client.get(detail + "?status=skipped", headers=HTML)).text()
    assert f"#{ids['nobody']} " in only and f"#{ids['oa1']} " not in only
    assert (await client.get("/console/broadcasts/999999", headers=HTML)).status == 404
    assert (await client.get("/console/broadcasts/abc", headers=HTML)).status == 404
    listing = await (await client.get(page_broadcast_pages.PAGE, headers=HTML)).text()
    assert "&lt;b&gt;双12&lt;/b&gt;" in listing and "已完成" in listing and "5 人 / 可触达 4" in listing


async def test_schedule_pause_resume_cancel_and_paging(sandbox: SandboxHarness, monkeypatch: Any) -> None:
    for i in range(page_broadcast_pages.PAGE_SIZE + 3):
        await customer(sandbox.rt, f"wm{i:03d}")  # nobody reachable: every one skipped with a reason
    client, token = await _marketer(sandbox)
    form = {
        "csrf_token": token,
        "name": "周末",
        "segment": SEGMENT,
        "text": "周末特惠",
        "scheduled_at": "2026-11-30T20:00",
        "action": "create",
    }
    resp = await client.post(page_broadcast_pages.PAGE, data=form, allow_redirects=False)
    assert resp.status == 303
    detail = resp.headers["Location"]
    bid = int(detail.rsplit("/", 1)[1])
    text = await (await client.get(detail, headers=HTML)).text()
    assert "将于 2026-11-30 20:00 发送" in flash(text) and "已排期" in text and "立即开始" in text and "暂停" in text

    text = await (await client.post(detail + "/pause", data={"csrf_token": token}, headers=HTML)).text()
    assert "已暂停" in flash(text) and "继续发送" in text
    text = await (await client.post(detail + "/start", data={"csrf_token": token}, headers=HTML)).text()
    assert "已开始发送" in flash(text)
    await sandbox.settle()
    text = await (await client.get(detail, headers=HTML)).text()
    assert 'data-status="skipped"><strong>53</strong>' in text and "下一页" in text
    assert text.count("没有可触达的渠道") == page_broadcast_pages.PAGE_SIZE + 1  # 50 rows + the reasons table
    nxt = re.search(r'href="(/console/broadcasts/\d+\?after=\d+#recipients)">下一页', text)
    assert nxt
    second = await (await client.get(nxt.group(1).replace("&amp;", "&"), headers=HTML)).text()
    assert second.count("没有可触达的渠道") == 3 + 1 and "第一页" in second and "下一页" not in second

    text = await (await client.post(detail + "/cancel", data={"csrf_token": token}, headers=HTML)).text()
    assert "不能 cancel" in flash(text)  # done: nothing left to cancel
    draft = await client.post(page_broadcast_pages.PAGE, data={**form, "scheduled_at": "", "name": "草稿"}, allow_redirects=False)
    text = await (await client.get(draft.headers["Location"], headers=HTML)).text()
    assert "已保存为草稿" in flash(text) and "草稿" in text
    text = await (await client.post(draft.headers["Location"] + "/cancel", data={"csrf_token": token}, headers=HTML)).text()
    assert "已取消" in flash(text) and "取消群发" not in text
    async with sandbox.rt.db.read() as conn:
        statuses = dict((await conn.execute(sa.select(broadcasts_table.c.id, broadcasts_table.c.status))).all())
    assert statuses[bid] == "done" and sorted(statuses.values()) == ["cancelled", "done"]


async def test_only_marketers_and_admins(sandbox: SandboxHarness) -> None:
    for role in ("operations", "finance"):
        await staff_accounts.create_staff(sandbox.rt, f"u-{role}", PASSWORD, [role])
        token = await sign_in(sandbox.client, f"u-{role}")
        resp = await sandbox.client.get(page_broadcast_pages.PAGE, headers=HTML)
        assert resp.status == 403 and "您的角色无权使用此页面" in await resp.text()
        data = {"csrf_token": token, "name": "x", "segment": SEGMENT, "text": "t", "action": "create"}
        assert (await sandbox.client.post(page_broadcast_pages.PAGE, data=data, allow_redirects=False)).status == 403
        assert 'href="/console/broadcasts"' not in await (await sandbox.client.get("/console/dashboard", headers=HTML)).text()
    await sign_in(sandbox.client, "admin", sandbox.rt.settings.admin_token.get())
    assert (await sandbox.client.get(page_broadcast_pages.PAGE, headers=HTML)).status == 200


async def test_the_page_shows_a_failed_broadcast_and_coupons_not_issued(sandbox: SandboxHarness) -> None:
    """A broadcast whose stored segment cannot run shows 已失败 and why; one whose coupon was refused to reached
    recipients (per-customer limit) says how many, instead of "nothing skipped or failed"."""
    rt = sandbox.rt
    ids = await _seed(sandbox)
    tpl = await coupons.create_template(rt, terms_from_form({"name": "回馈券", "amount_off": "5", "per_customer_limit": "1"}))
    for key in ("oa1", "oa2"):  # both Official Account followers already hold their one coupon
        await coupons.issue_coupon(rt, tpl.id, ids[key], source="console")
    now = rt.clock.now()
    async with rt.db.write() as conn:  # old data: stored before segments were checked
        bad_id = (
            await conn.execute(
                broadcasts_table.insert()
                .values(
                    name="旧群发", segment_expression="orders >>= 2", text="hi", status="running", totals={}, created_at=now, updated_at=now
                )
                .returning(broadcasts_table.c.id)
            )
        ).scalar_one()
    view = await broadcasts.create_broadcast(rt, {"name": "发券", "segment": SEGMENT, "text": "送券", "coupon_template_id": tpl.id})
    await broadcasts.start_broadcast(rt, view.id)
    await run_due_broadcasts(rt)
    await sandbox.settle()
    client, _ = await _marketer(sandbox)

    failed = await (await client.get(f"{page_broadcast_pages.PAGE}/{bad_id}", headers=HTML)).text()
    assert 'data-broadcast-status="failed">已失败<' in failed
    assert re.search(r"<dt>失败原因</dt><dd[^>]*>客群表达式无法解析：第 9 列：", failed)
    sent = await (await client.get(f"{page_broadcast_pages.PAGE}/{view.id}", headers=HTML)).text()
    assert "<h2>优惠券未发放</h2>" in sent and "<strong data-coupon-missed>2</strong> 人未能领到优惠券" in sent
    assert "<td>已达每人限领张数</td>" in sent
    assert "未发券：已达每人限领张数" in sent  # and on each of those recipients' rows


async def test_broadcast_with_a_referral_poster_from_the_form(sandbox: SandboxHarness) -> None:
    """附带邀请海报: the form offers the running referral campaigns; each reached customer's message carries their
    own poster link; the broadcast's page names the campaign."""
    ids = await _seed(sandbox)
    tpl = await coupons.create_template(sandbox.rt, terms_from_form({"name": "邀友券", "amount_off": "5"}))
    now = sandbox.rt.clock.now()
    campaign = await referral_services.create_campaign(
        sandbox.rt,
        {
            "name": "老带新", "goal": 3, "reward_template_id": tpl.id, "userids": ["sales01"], "status": "running",
            "starts_at": now, "ends_at": now + dt.timedelta(days=7),
        },
    )  # fmt: skip
    await referral_services.create_campaign(
        sandbox.rt,
        {
            "name": "草稿活动",
            "goal": 3,
            "reward_template_id": tpl.id,
            "userids": ["sales01"],
            "starts_at": now,
            "ends_at": now + dt.timedelta(days=7),
        },
    )
    client, token = await _marketer(sandbox)
    text = await (await client.get(page_broadcast_pages.PAGE, headers=HTML)).text()
    assert f'<option value="{campaign.id}">老带新</option>' in text and "草稿活动" not in text  # running ones only
    form = {"csrf_token": token, "name": "邀友", "segment": SEGMENT, "text": "邀请好友有礼", "send_now": "1", "action": "create"}
    bad = await client.post(page_broadcast_pages.PAGE, data={**form, "referral_campaign_id": "abc"}, headers=HTML)
    assert bad.status == 400 and "请选择邀请活动" in await bad.text()
    resp = await client.post(page_broadcast_pages.PAGE, data={**form, "referral_campaign_id": str(campaign.id)}, allow_redirects=False)
    assert resp.status == 303
    await sandbox.settle()
    await sandbox.settle()
    detail = await (await client.get(resp.headers["Location"], headers=HTML)).text()
    assert "<dt>邀请海报</dt><dd>老带新</dd>" in detail
    async with sandbox.rt.db.read() as conn:
        codes = {cid: await referral_services.code_row(conn, campaign.id, cid) for cid in ids.values()}
    for n in ("1", "2"):
        sent = [t["data"]["content"]["value"] for t in sandbox.state.templates_sent if t["touser"] == f"o_oa{n}"]
        token_part = codes[ids[f"oa{n}"]].state.removeprefix("rf:")
        assert len(sent) == 1 and sent[0].startswith("邀请好友有礼\n\n【老带新】") and f"/referral/posters/{token_part}.png" in sent[0]
