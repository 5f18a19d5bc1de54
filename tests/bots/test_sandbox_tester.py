"""The sandbox's tester buttons: a customer adds / deletes a salesperson, joins / leaves a group, scans a channel
code — each through the emulator and the real signed /callback/wecom path; the channel code's QR image is a real
PNG of its scan page, served locally."""

from __future__ import annotations

import io
from typing import Any

import segno
import sqlalchemy as sa

from scrm.crm.customers.models import follows
from scrm.crm.groups.models import group_members
from tests.conftest import SandboxHarness


async def fire(h: SandboxHarness, action: str, **body: str) -> tuple[int, dict[str, Any]]:
    resp = await h.client.post(f"/sandbox/api/tester/{action}", json=body)
    data = await resp.json()
    await h.settle()
    return resp.status, data


async def follow_of(h: SandboxHarness, ext: str, userid: str) -> Any:
    async with h.rt.db.read() as conn:
        return (await conn.execute(sa.select(follows).where(follows.c.external_userid == ext, follows.c.userid == userid))).first()


async def test_customer_adds_then_deletes_a_salesperson(sandbox: SandboxHarness) -> None:
    h = sandbox
    status, body = await fire(h, "add-salesperson", external_userid="wmTester1", name="试用客户", userid="sales01")
    assert status == 200 and body["event"] == "add_external_contact", body
    follow = await follow_of(h, "wmTester1", "sales01")
    assert follow is not None and follow.status == "active"
    again, refused = await fire(h, "add-salesperson", external_userid="wmTester1", name="试用客户", userid="sales01")
    assert again == 400 and refused["error"]["message"] == "客户已经是 王销售 的好友"
    nobody, unknown = await fire(h, "add-salesperson", external_userid="wmTester1", userid="nobody")
    assert nobody == 400 and "没有成员 nobody" in unknown["error"]["message"]
    status, body = await fire(h, "delete-salesperson", external_userid="wmTester1", userid="sales01")
    assert status == 200 and body["event"] == "del_follow_user"
    ended = await follow_of(h, "wmTester1", "sales01")
    assert ended.status == "ended" and ended.ended_by == "customer"
    missing, why = await fire(h, "add-salesperson", external_userid="bad id!", userid="sales01")
    assert missing == 400 and "客户ID" in why["error"]["message"]
    empty, pick = await fire(h, "delete-salesperson", external_userid="wmTester1", userid="")
    assert empty == 400 and pick["error"]["message"] == "请选择销售"


async def test_customer_joins_and_leaves_the_sandbox_group(sandbox: SandboxHarness) -> None:
    h = sandbox
    options = await (await h.client.get("/sandbox/api/tester/options?external_userid=wmTester2")).json()
    assert {"chat_id": "wrSandboxGroup01", "name": "沙箱客户群", "joined": False} in options["groups"]
    assert {"userid": "sales01", "name": "王销售"} in options["members"]
    status, body = await fire(h, "join-group", external_userid="wmTester2", name="群里的客户", chat_id="wrSandboxGroup01")
    assert status == 200, body
    async with h.rt.db.read() as conn:
        member = (await conn.execute(sa.select(group_members).where(group_members.c.member_id == "wmTester2"))).one()
    assert member.chat_id == "wrSandboxGroup01" and member.left_at is None and member.join_scene == 3
    status, body = await fire(h, "leave-group", external_userid="wmTester2", chat_id="wrSandboxGroup01")
    assert status == 200, body
    async with h.rt.db.read() as conn:
        member = (await conn.execute(sa.select(group_members).where(group_members.c.member_id == "wmTester2"))).one()
    assert member.left_at is not None and member.quit_scene == 0
    twice, why = await fire(h, "leave-group", external_userid="wmTester2", chat_id="wrSandboxGroup01")
    assert twice == 400 and why["error"]["message"] == "客户不在这个群里"


async def test_scanning_a_channel_code_attributes_the_customer_and_its_qr_is_real(sandbox: SandboxHarness) -> None:
    h = sandbox
    status, code = await h.api("POST", "/channel-codes", json={"name": "门店海报", "userids": ["sales01"], "welcome_text": "欢迎！"})
    assert status == 201, code
    options = await (await h.client.get("/sandbox/api/tester/options")).json()
    assert [w["config_id"] for w in options["contact_ways"]] == [code["config_id"]]
    status, body = await fire(h, "scan-channel-code", external_userid="wmTester3", name="扫码客户", config_id=code["config_id"])
    assert status == 200 and body["state"] == code["state"], body
    follow = await follow_of(h, "wmTester3", "sales01")
    assert follow is not None and follow.state == code["state"]
    assert any(m["text"] == "欢迎！" and m["external_userid"] == "wmTester3" for m in h.state.welcome_messages)

    # the QR image: a PNG, served here, encoding this code's scan page
    base = h.rt.settings.base_url
    assert code["qr_code"] == f"{base}/sandbox/qr/contact-way/{code['config_id']}.png"
    image = await h.client.get(code["qr_code"].removeprefix(base))
    png = await image.read()
    assert image.status == 200 and image.headers["Content-Type"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    expected = io.BytesIO()
    segno.make(f"{base}/sandbox/scan/{code['config_id']}", error="m").save(expected, kind="png", scale=6, border=2)
    assert png == expected.getvalue()
    assert (await h.client.get("/sandbox/qr/contact-way/nope.png")).status == 404

    # the scan page a phone opens from it: a customer scans
    page = await h.client.get(f"/sandbox/scan/{code['config_id']}")
    assert page.status == 200 and "扫码添加 王销售（sales01）" in await page.text()
    done = await h.client.post(f"/sandbox/scan/{code['config_id']}", data={"external_userid": "wmTester4", "name": "手机扫码"})
    assert "已添加 王销售（sales01） 为好友" in await done.text()
    await h.settle()
    assert (await follow_of(h, "wmTester4", "sales01")).state == code["state"]
