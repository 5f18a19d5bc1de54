"""客户联系 events end to end: signed callbacks from the simulator → /callback/wecom → processors → the CRM and
the emulator (welcome messages, app-message alerts, externalcontact/get, user/get)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from bots.contacts import customers as crm_events
from bots.gateway.models import inbound_events
from bots.outbound import services as sender
from bots.outbound.client import Errcode
from bots.outbound.models import OutboundStatus, outbound_attempts, outbound_messages
from bots.sandbox.simulator import CallbackSimulator, change_external_contact
from scrm.crm.channels.models import channel_codes
from scrm.crm.customers.models import FollowStatus, customers
from scrm.crm.customers.services import ensure_customer, find_customer, get_customer, identities_of, link_identity
from scrm.crm.staff.services import EndedBy, follow_of, follows_of, get_salesperson, upsert_salesperson
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import ensure_tag, tags_of
from scrm.crm.timeline.services import entries
from tests.conftest import SandboxHarness

WELCOME = "externalcontact/send_welcome_msg"


async def deliver(h: SandboxHarness, xml: str, times: int = 1) -> None:
    s = h.rt.settings
    sim = CallbackSimulator(s.wecom_token.get(), s.wecom_aes_key.get(), s.wecom_corp_id, now=h.rt.clock.now)
    for _ in range(times):
        query, body = sim.encrypt_post(xml)
        resp = await h.client.post("/callback/wecom", params=query, data=body)
        assert resp.status == 200, await resp.text()
    await h.settle()


def contact_event(h: SandboxHarness, change: str, ext: str, userid: str = "sales01", *, ago: int = 0, **kw: Any) -> str:
    return change_external_contact(change, userid, ext, create_time=h.rt.clock.timestamp() - ago, corp_id=h.rt.settings.wecom_corp_id, **kw)


async def added(h: SandboxHarness, ext: str, name: str, *, userid: str = "sales01", state: str = "", **fields: Any) -> str:
    """The customer adds the salesperson in the emulator and WeCom calls us back; returns the welcome code."""
    h.state.add_customer(ext, name, [userid], state=state, **fields)
    code = h.state.issue_welcome_code(userid, ext)
    await deliver(h, contact_event(h, "add_external_contact", ext, userid, state=state or None, welcome_code=code))
    return code


async def customer_of(h: SandboxHarness, ext: str) -> int:
    async with h.rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", ext)
    assert cid is not None
    return cid


async def rows(h: SandboxHarness, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[Any]:
    async with h.rt.db.read() as conn:
        return list(await conn.execute(sa.select(table).where(*where).order_by(table.c.id)))


async def inbound_id(h: SandboxHarness, change: str) -> int:
    [row] = await rows(h, inbound_events, inbound_events.c.change_type == change)
    return int(row.id)


async def test_add_creates_relation_sends_welcome_and_enriches(sandbox: SandboxHarness) -> None:
    state = sandbox.state
    state.add_member("boss01", "赵经理")
    state.add_member("sales01", "王销售", direct_leader=["boss01"])
    await added(sandbox, "wmAdd", "张三", unionid="uAdd", gender=1, avatar="https://img.example/1.png")

    cid = await customer_of(sandbox, "wmAdd")
    async with sandbox.rt.db.read() as conn:
        follow = await follow_of(conn, "sales01", "wmAdd")
        assert follow is not None and follow.status == FollowStatus.ACTIVE and follow.started_at == sandbox.rt.clock.now()
        customer = await get_customer(conn, cid)
        assert (customer.name, customer.gender, customer.avatar, customer.unionid) == ("张三", 1, "https://img.example/1.png", "uAdd")
        assert await identities_of(conn, cid) == {"external_userid": ["wmAdd"], "unionid": ["uAdd"]}
        person = await get_salesperson(conn, "sales01")  # filled from user/get, with the leader for churn alerts
        assert person is not None and (person.name, person.leader_userid) == ("王销售", "boss01")
        timeline = await entries(conn, cid)
    event_id = await inbound_id(sandbox, "add_external_contact")
    assert [e.title for e in timeline if e.ref == f"event:{event_id}"] == ["客户添加了销售 sales01"]
    [welcome] = state.welcome_messages
    assert welcome["external_userid"] == "wmAdd" and "您的专属顾问" in welcome["text"]
    [msg] = await rows(sandbox, outbound_messages, outbound_messages.c.purpose == "welcome")
    assert (msg.status, msg.customer_id, msg.recipient) == (OutboundStatus.SENT, cid, "wmAdd")


async def test_a_callback_delivered_three_times_is_one_relation_and_one_welcome(sandbox: SandboxHarness) -> None:
    sandbox.state.add_customer("wmTri", "三次", ["sales01"])
    code = sandbox.state.issue_welcome_code("sales01", "wmTri")
    await deliver(sandbox, contact_event(sandbox, "add_external_contact", "wmTri", welcome_code=code), times=3)
    assert len(await rows(sandbox, inbound_events, inbound_events.c.external_userid == "wmTri")) == 1
    assert len(await rows(sandbox, outbound_messages, outbound_messages.c.purpose == "welcome")) == 1
    assert len(sandbox.state.welcome_messages) == 1 and sandbox.state.call_count(WELCOME) == 1
    async with sandbox.rt.db.read() as conn:
        assert len(await follows_of(conn, await customer_of(sandbox, "wmTri"))) == 1


async def test_welcome_41051_is_recorded_failed_and_never_retried(sandbox: SandboxHarness) -> None:
    sandbox.state.inject(WELCOME, Errcode.WELCOME_CODE_INVALID)
    await added(sandbox, "wm41051", "已发过")
    [msg] = await rows(sandbox, outbound_messages, outbound_messages.c.purpose == "welcome")
    assert (msg.status, msg.error_code) == (OutboundStatus.FAILED, Errcode.WELCOME_CODE_INVALID)
    assert sandbox.state.call_count(WELCOME) == 1
    # Processing the event again (a job run twice) calls nothing.
    [row] = await rows(sandbox, inbound_events, inbound_events.c.external_userid == "wm41051")
    await crm_events.contact_added(sandbox.rt, row)
    await sandbox.settle()
    assert sandbox.state.call_count(WELCOME) == 1
    assert len(await rows(sandbox, outbound_attempts, outbound_attempts.c.message_id == msg.id)) == 1


async def test_welcome_after_the_window_is_failed_without_a_call(sandbox: SandboxHarness) -> None:
    sandbox.state.add_customer("wmLate", "迟到", ["sales01"])
    code = sandbox.state.issue_welcome_code("sales01", "wmLate")
    await deliver(sandbox, contact_event(sandbox, "add_external_contact", "wmLate", ago=30, welcome_code=code))
    [msg] = await rows(sandbox, outbound_messages, outbound_messages.c.purpose == "welcome")
    assert (msg.status, msg.error_message) == (OutboundStatus.FAILED, sender.WELCOME_WINDOW_PASSED)
    assert sandbox.state.call_count(WELCOME) == 0
    async with sandbox.rt.db.read() as conn:  # the relation is recorded all the same
        assert (await follow_of(conn, "sales01", "wmLate")).status == FollowStatus.ACTIVE  # type: ignore[union-attr]


async def test_welcome_retries_within_the_window(sandbox: SandboxHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sender, "WELCOME_RETRY_DELAY", 0.01)
    sandbox.state.inject(WELCOME, Errcode.RATE_LIMITED)
    await added(sandbox, "wmBusy", "限流")
    [msg] = await rows(sandbox, outbound_messages, outbound_messages.c.purpose == "welcome")
    assert msg.status == OutboundStatus.SENT and sandbox.state.call_count(WELCOME) == 2
    assert len(sandbox.state.welcome_messages) == 1


async def test_channel_code_tags_the_customer_and_sets_the_welcome_text(sandbox: SandboxHarness) -> None:
    rt = sandbox.rt
    now = rt.clock.now()
    async with rt.db.write() as conn:
        tag_id = await ensure_tag(conn, rt.db.dialect, "春季展会", now, group="渠道")
        await conn.execute(
            channel_codes.insert().values(
                name="春季展会",
                state="expo2026",
                userids=["sales01"],
                welcome_text="感谢扫码！我是{salesperson}，展会专享价已为您备好。",
                tag_ids=[tag_id],
                created_at=now,
                updated_at=now,
            )
        )
        await upsert_salesperson(conn, rt.db.dialect, "sales01", now, name="王销售", synced=True)
    await added(sandbox, "wmExpo", "李四", state="expo2026")
    cid = await customer_of(sandbox, "wmExpo")
    async with rt.db.read() as conn:
        [tag] = await tags_of(conn, cid)
        follow = await follow_of(conn, "sales01", "wmExpo")
        titles = [e.title for e in await entries(conn, cid)]
    assert (tag.name, tag.source, tag.evidence) == ("春季展会", TagSource.CHANNEL, {"channel": "春季展会", "state": "expo2026"})
    assert follow is not None and follow.state == "expo2026"
    assert "客户添加了销售 王销售，来自渠道「春季展会」" in titles
    assert [m["text"] for m in sandbox.state.welcome_messages] == ["感谢扫码！我是王销售，展会专享价已为您备好。"]


async def test_half_add_then_add_completes_the_relation(sandbox: SandboxHarness) -> None:
    sandbox.state.add_customer("wmHalf", "半程", ["sales01"])
    await deliver(sandbox, contact_event(sandbox, "add_half_external_contact", "wmHalf", ago=60))
    async with sandbox.rt.db.read() as conn:
        assert (await follow_of(conn, "sales01", "wmHalf")).status == FollowStatus.HALF  # type: ignore[union-attr]
    await deliver(sandbox, contact_event(sandbox, "add_external_contact", "wmHalf"))
    async with sandbox.rt.db.read() as conn:
        assert (await follow_of(conn, "sales01", "wmHalf")).status == FollowStatus.ACTIVE  # type: ignore[union-attr]


async def test_edit_refreshes_the_profile(sandbox: SandboxHarness) -> None:
    await added(sandbox, "wmEdit", "王五")
    sandbox.state.customers["wmEdit"].name = "王五（已改名）"
    sandbox.state.customers["wmEdit"].follows["sales01"].remark = "王老板"
    sandbox.rt.clock.advance(minutes=5)  # type: ignore[attr-defined]
    await deliver(sandbox, contact_event(sandbox, "edit_external_contact", "wmEdit"))
    cid = await customer_of(sandbox, "wmEdit")
    async with sandbox.rt.db.read() as conn:
        assert (await get_customer(conn, cid)).name == "王五（已改名）"
        assert (await follow_of(conn, "sales01", "wmEdit")).remark == "王老板"  # type: ignore[union-attr]
        assert any(e.title == "销售 王销售 编辑了客户资料" for e in await entries(conn, cid))


async def test_customer_deleting_the_salesperson_alerts_them_and_their_leader_once(sandbox: SandboxHarness) -> None:
    state = sandbox.state
    state.add_member("boss01", "赵经理")
    state.add_member("sales01", "王销售", direct_leader=["boss01"])
    await added(sandbox, "wmGone", "流失客户")
    sandbox.rt.clock.advance(days=3, hours=2)  # type: ignore[attr-defined]
    del state.customers["wmGone"].follows["sales01"]
    await deliver(sandbox, contact_event(sandbox, "del_follow_user", "wmGone"), times=3)

    [alert] = state.app_messages_to("sales01")
    assert state.app_messages_to("boss01") == [alert]
    assert "流失客户" in alert and "王销售" in alert and "3 天" in alert
    cid = await customer_of(sandbox, "wmGone")
    async with sandbox.rt.db.read() as conn:
        follow = await follow_of(conn, "sales01", "wmGone")
        titles = [e.title for e in await entries(conn, cid)]
    assert follow is not None and (follow.status, follow.ended_by, follow.ended_at) == (
        FollowStatus.ENDED,
        EndedBy.CUSTOMER,
        sandbox.rt.clock.now(),
    )
    assert titles.count("客户删除了销售 王销售") == 1
    [msg] = await rows(sandbox, outbound_messages, outbound_messages.c.purpose == "alert")
    assert msg.status == OutboundStatus.SENT and msg.recipient == "sales01|boss01"


@pytest.mark.parametrize(
    ("source", "ended_by", "title"),
    [
        (None, EndedBy.SALESPERSON, "销售 sales01 删除了客户"),
        ("DELETE_BY_TRANSFER", EndedBy.TRANSFER, "客户已从销售 sales01 转接给其他同事"),
    ],
)
async def test_salesperson_deleting_the_customer(sandbox: SandboxHarness, source: str | None, ended_by: str, title: str) -> None:
    sandbox.state.members.pop("sales01")  # user/get: 60111, so the salesperson stays nameless
    await added(sandbox, "wmDel", "被删客户")
    sandbox.rt.clock.advance(hours=1)  # type: ignore[attr-defined]
    await deliver(sandbox, contact_event(sandbox, "del_external_contact", "wmDel", source=source))
    cid = await customer_of(sandbox, "wmDel")
    async with sandbox.rt.db.read() as conn:
        follow = await follow_of(conn, "sales01", "wmDel")
        assert follow is not None and (follow.status, follow.ended_by) == (FollowStatus.ENDED, ended_by)
        assert title in [e.title for e in await entries(conn, cid)]
    assert sandbox.state.app_messages == []  # no churn alert when the salesperson ended it


async def test_transfer_fail_alerts_the_salesperson(sandbox: SandboxHarness) -> None:
    await added(sandbox, "wmMove", "转接客户")
    await deliver(sandbox, contact_event(sandbox, "transfer_fail", "wmMove", fail_reason="customer_refused"))
    [alert] = sandbox.state.app_messages_to("sales01")
    assert "转接客户" in alert and "客户拒绝了转接" in alert
    cid = await customer_of(sandbox, "wmMove")
    async with sandbox.rt.db.read() as conn:
        assert any("客户拒绝了转接" in e.title for e in await entries(conn, cid))


async def test_enrichment_of_a_non_customer_is_recorded_once_not_retried(sandbox: SandboxHarness) -> None:
    # WeCom tells us about an add, but externalcontact/get no longer knows the customer (84061).
    await deliver(sandbox, contact_event(sandbox, "add_external_contact", "wmGhost"))
    assert sandbox.state.call_count("externalcontact/get") == 1
    cid = await customer_of(sandbox, "wmGhost")
    async with sandbox.rt.db.read() as conn:
        notes = [e for e in await entries(conn, cid) if e.data.get("errcode") == Errcode.NOT_EXTERNAL_CONTACT]
    assert len(notes) == 1
    result = await crm_events.enrich_customer(sandbox.rt, "wmGhost")
    assert result.status == "not_customer" and result.customer_id == cid
    assert sandbox.rt.jobs.failed == []  # type: ignore[attr-defined]


async def test_unionid_shared_with_an_official_account_customer_merges_them(sandbox: SandboxHarness) -> None:
    rt = sandbox.rt
    async with rt.db.write() as conn:  # the Official Account follower came first (openid + unionid)
        fan = await ensure_customer(conn, rt.db.dialect, kind="openid", value="oFan", now=rt.clock.now())
        await link_identity(conn, rt.db.dialect, fan, "unionid", "uFan", rt.clock.now())
    rt.clock.advance(hours=1)  # type: ignore[attr-defined]
    await added(sandbox, "wmFan", "老粉丝", unionid="uFan")

    async with rt.db.read() as conn:
        assert await find_customer(conn, "external_userid", "wmFan") == fan
        assert await identities_of(conn, fan) == {"openid": ["oFan"], "unionid": ["uFan"], "external_userid": ["wmFan"]}
        [follow] = await follows_of(conn, fan)
        assert (follow.userid, follow.status) == ("sales01", FollowStatus.ACTIVE)
        assert (await get_customer(conn, fan)).name == "老粉丝"
        merged = list(await conn.execute(sa.select(customers.c.id).where(customers.c.merged_into == fan)))
        refs = [e.ref for e in await entries(conn, fan)]
    assert len(merged) == 1 and f"merge:{merged[0].id}" in refs
    assert f"event:{await inbound_id(sandbox, 'add_external_contact')}" in refs  # the add's timeline moved along
