"""The channel-code console pages (/console/channels) against the sandbox WeCom, over HTTP on the real app:
a marketer creates a code from the form (contact way made in WeCom with our state, salespeople and auto-tags as
ticked), sees its adds/deletes, edits it, deactivates it; bad input and a WeCom refusal leave nothing behind;
CSRF and roles are enforced."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from scrm.crm.channels.models import channel_codes
from scrm.crm.customers.models import FollowStatus
from scrm.crm.customers.services import ensure_customer
from scrm.crm.staff import accounts as staff_accounts
from scrm.crm.staff.services import end_follow, start_follow, upsert_salesperson
from scrm.crm.tags.services import ensure_tag
from tests.conftest import SandboxHarness

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse 9"


@pytest.fixture
async def h(sandbox: SandboxHarness) -> SandboxHarness:
    """The sandbox harness with two salespeople known to WeCom and to us."""
    sandbox.state.add_member("sales02", "赵销售")
    async with sandbox.rt.db.write() as conn:
        for userid, name in (("sales01", "王销售"), ("sales02", "赵销售")):
            await upsert_salesperson(conn, sandbox.rt.db.dialect, userid, sandbox.rt.clock.now(), name=name, active=True)
    return sandbox


async def sign_in(h: SandboxHarness, username: str = "admin", password: str | None = None) -> str:
    resp = await h.client.post(
        "/console/login", data={"username": username, "password": password or h.rt.settings.admin_token.get(), "next": "/console/channels"}
    )
    assert resp.status == 200, await resp.text()
    match = CSRF.search(await resp.text())
    assert match
    return match.group(1)


def flash(text: str) -> tuple[str, str] | None:
    m = re.search(r'<div class="flash flash-(ok|err)" role="status">(.*?)</div>', text)
    return (m.group(1), m.group(2)) if m else None


async def test_create_see_edit_and_deactivate_from_the_console(h: SandboxHarness) -> None:
    async with h.rt.db.write() as conn:
        tag = await ensure_tag(conn, h.rt.db.dialect, "展会客户", h.rt.clock.now())
    csrf = await sign_in(h)
    form = await (await h.client.get("/console/channels", headers=HTML)).text()
    assert 'name="userids" value="sales01"' in form and "王销售" in form and f'name="tag_ids" value="{tag}"' in form
    data = [("csrf_token", csrf), ("name", "2026 春季展会"), ("userids", "sales01"), ("userids", "sales02")]
    data += [("welcome_text", "欢迎光临展位！"), ("tag_ids", str(tag))]
    resp = await h.client.post("/console/channels", data=data, headers=HTML)
    assert resp.status == 200 and re.fullmatch(r"/console/channels/\d+", resp.url.path)
    page = await resp.text()
    assert flash(page) == ("ok", "已生成渠道活码“2026 春季展会”")
    async with h.rt.db.read() as conn:
        row = (await conn.execute(sa.select(channel_codes))).one()
    assert (row.userids, row.tag_ids, row.welcome_text) == (["sales01", "sales02"], [tag], "欢迎光临展位！")
    way = h.state.contact_ways[row.config_id]
    assert (way.state, way.users, way.type) == (row.state, ["sales01", "sales02"], 2)  # several people: a type-2 way
    assert row.qr_code in page and row.state in page

    # two customers add through the code, one of them deletes the salesperson again
    now, d = h.rt.clock.now(), h.rt.db.dialect
    async with h.rt.db.write() as conn:
        for ext in ("wmA", "wmB"):
            cid = await ensure_customer(conn, d, kind="external_userid", value=ext, now=now)
            follow = {"customer_id": cid, "userid": "sales01", "external_userid": ext, "at": now, "now": now}
            await start_follow(conn, d, status=FollowStatus.ACTIVE, state=row.state, **follow)
        await end_follow(conn, d, ended_by="customer", **follow)
    listing = await (await h.client.get("/console/channels", headers=HTML)).text()
    counts = r'<td class="num">2</td><td class="num">1</td><td class="num">1</td>'  # added, still friends, deleted
    assert re.search("2026 春季展会</a></td><td>王销售、赵销售</td>" + counts, listing)
    detail = await (await h.client.get(f"/console/channels/{row.id}", headers=HTML)).text()
    assert "<svg" in detail and "每日新增好友" in detail and "客户删除了销售" in detail

    resp = await h.client.post(
        f"/console/channels/{row.id}", data=[("csrf_token", csrf), ("name", "春季展会"), ("userids", "sales02"), ("welcome_text", "你好")]
    )
    assert flash(await resp.text()) == ("ok", "已保存渠道活码“春季展会”")
    async with h.rt.db.read() as conn:
        changed = (await conn.execute(sa.select(channel_codes))).one()
    assert (changed.name, changed.userids, changed.tag_ids, changed.state) == ("春季展会", ["sales02"], [], row.state)

    resp = await h.client.post(f"/console/channels/{row.id}/deactivate", data={"csrf_token": csrf})
    page = await resp.text()
    assert flash(page) == ("ok", "已停用渠道活码“春季展会”，二维码不再可用") and "已停用" in page and "保存修改" not in page
    assert changed.config_id not in h.state.contact_ways


async def test_bad_input_and_wecom_refusal_leave_nothing(h: SandboxHarness) -> None:
    csrf = await sign_in(h)
    cases = [
        [("csrf_token", csrf), ("name", "无人接待")],  # no salesperson ticked
        [("csrf_token", csrf), ("name", ""), ("userids", "sales01")],
        [("csrf_token", csrf), ("name", "幽灵"), ("userids", "ghost")],  # WeCom does not know the member
        [("csrf_token", csrf), ("name", "坏标签"), ("userids", "sales01"), ("tag_ids", "abc")],
        [("csrf_token", csrf), ("name", "无此标签"), ("userids", "sales01"), ("tag_ids", "999")],
    ]
    for data in cases:
        page = await (await h.client.post("/console/channels", data=data, headers=HTML)).text()
        assert (flash(page) or ("", ""))[0] == "err", data
    h.state.inject("externalcontact/add_contact_way", 45009)
    page = await (await h.client.post("/console/channels", data=[("csrf_token", csrf), ("name", "限流"), ("userids", "sales01")])).text()
    assert (flash(page) or ("", ""))[0] == "err"
    forged = await h.client.post("/console/channels", data=[("csrf_token", "forged"), ("name", "伪造"), ("userids", "sales01")])
    assert forged.status == 403
    async with h.rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(channel_codes))).scalar_one() == 0
    assert h.state.contact_ways == {}
    assert (await h.client.get("/console/channels/999", headers=HTML)).status == 404


async def test_marketers_may_operations_may_not(h: SandboxHarness) -> None:
    await staff_accounts.create_staff(h.rt, "mk", PASSWORD, ["marketer"])
    await staff_accounts.create_staff(h.rt, "ops", PASSWORD, ["operations"])
    await sign_in(h, "mk", PASSWORD)
    assert (await h.client.get("/console/channels", headers=HTML)).status == 200
    h.client.session.cookie_jar.clear()
    resp = await h.client.post("/console/login", data={"username": "ops", "password": PASSWORD})
    assert resp.status == 200
    assert (await h.client.get("/console/channels", headers=HTML)).status == 403
