"""The console's 线索 / 公海 / 跟进 / 线索分配 pages as their users work them: the admin writes an assignment rule and
the pool's rules; a salesperson types in a lead, imports a file (bad rows named, the rest in), claims from the pool
within the cap, records a follow-up with a next contact, and finds it on 跟进 — never seeing another's leads."""

from __future__ import annotations

import re

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from scrm.crm.staff import accounts
from tests.conftest import SandboxHarness
from tests.sales.test_leads import people, post_lead
from tests.security.conftest import CSRF, HTML, console_login

PASSWORD = "correct horse 1"


async def sign_in(c: TestClient, username: str) -> str:
    resp = await c.post("/console/login", data={"username": username, "password": PASSWORD}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await c.get("/console/leads", headers=HTML)
    assert page.status == 200, await page.text()
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


async def sign_out(c: TestClient, csrf: str) -> None:
    resp = await c.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status in (302, 303)


def flash(text: str) -> str:
    found = re.search(r'<div class="flash flash-(?:ok|err)" role="(?:status|alert)">([^<]*)</div>', text)
    return found.group(1) if found else ""


async def test_the_admin_writes_the_rules_and_a_salesperson_works_the_leads(sandbox: SandboxHarness) -> None:
    h, c = sandbox, sandbox.client
    await people(h)
    await accounts.create_staff(h.rt, "wang", PASSWORD, ["sales"], wecom_userid="sales01", data_scope="own")
    others = (await post_lead(h, name="孙的线索", phone="13600000001", owner="sales03"))[1]
    csrf = await console_login(c, h.rt.settings)
    page = await c.get("/console/lead-rules", headers=HTML)
    assert page.status == 200 and "新建分配规则" in await page.text()
    form = FormData(
        {"csrf_token": csrf, "name": "手工线索给王", "method": "round_robin", "daily_cap": "0", "priority": "10", "active": "1"}
    )
    form.add_field("members", "sales01")
    form.add_field("sources", "import")
    page = await c.post("/console/lead-rules", data=form, headers=HTML)
    text = await page.text()
    assert "已保存线索分配规则「手工线索给王」" in flash(text) and "来源：导入" in text, flash(text)
    bad = FormData({"csrf_token": csrf, "name": "没有成员", "method": "round_robin"})
    page = await c.post("/console/lead-rules", data=bad, headers=HTML)
    assert "至少选择一位接收线索的成员" in flash(await page.text())
    page = await c.post(
        "/console/lead-rules/pool",
        data={"csrf_token": csrf, "return_after_days": "10", "claim_daily_cap": "1", "reclaim_block_days": "3"},
        headers=HTML,
    )
    assert "已保存公海规则" in flash(await page.text())
    await sign_out(c, csrf)

    csrf = await sign_in(c, "wang")
    # A salesperson cannot change the rules.
    assert (await c.get("/console/lead-rules", headers=HTML)).status == 403
    page = await c.post(
        "/console/leads",
        data={"csrf_token": csrf, "name": "展会客户", "phone": "13711112222", "region": "上海", "owner": "sales01"},
        headers=HTML,
    )
    text = await page.text()
    assert re.search(r"已新建线索 #\d+（展会客户），分给了 sales01", flash(text)), flash(text)
    assert "孙的线索" not in text
    # A file: one good row, one bad phone, one the same person again.
    csv = "姓名,电话,公司,地区,备注\n李店长,13822223333,李记便利店,杭州,要饮料\n错号码,12345,,,\n展会客户,13711112222,,,又来了\n"
    upload = FormData({"csrf_token": csrf})
    upload.add_field("file", csv.encode(), filename="线索.csv", content_type="text/csv")
    page = await c.post("/console/leads/import", data=upload, headers=HTML)
    message = flash(await page.text())
    assert (
        "已导入 1 条线索，1 条与已有线索或客户重复" in message
        and "线索.csv（按 UTF-8 CSV 读取）" in message
        and "第 3 行 手机号「12345」应为 11 位" in message
    ), message
    listing = await (await c.get("/console/leads", headers=HTML)).text()
    assert "李店长" in listing and "展会客户" in listing
    # The pool: two leads, a cap of one a day.
    pooled = [(await post_lead(h, name=f"公海{i}", phone=f"1350000000{i}"))[1]["id"] for i in range(2)]
    pool = await (await c.get("/console/pool", headers=HTML)).text()
    assert "每人每天最多领取 1 条（您今天已领取 0 条）" in pool and "公海0" in pool and "公海1" in pool
    page = await c.post(f"/console/leads/{pooled[0]}/claim", data={"csrf_token": csrf, "from": "pool"}, headers=HTML)
    assert "已领取线索「公海0」，请在 10 天内跟进" in flash(await page.text())
    page = await c.post(f"/console/leads/{pooled[1]}/claim", data={"csrf_token": csrf, "from": "pool"}, headers=HTML)
    assert "已达每日上限 1 条" in flash(await page.text())
    # A follow-up with a next contact, then it is on 跟进.
    page = await c.post(
        "/console/follow-ups",
        data={"csrf_token": csrf, "lead_id": str(pooled[0]), "kind": "call", "body": "电话聊了，下周报价", "next_contact_on": "2026-11-25"},
        headers=HTML,
    )
    text = await page.text()
    assert "已记录跟进（电话），下次联系 11月25日" in flash(text) and "电话聊了，下周报价" in text
    h.rt.clock.advance(days=2)
    await sign_in(c, "wang")  # two days on: a new session
    todo = await (await c.get("/console/follow-ups", headers=HTML)).text()
    assert "公海0" in todo and "今天（1）" in todo
    # Another's lead is not there for them.
    assert (await c.get(f"/console/leads/{others['id']}", headers=HTML)).status == 404
