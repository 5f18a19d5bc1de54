"""客户群 events end to end: real signed callbacks to /callback/wecom, processing, groupchat/get against the sandbox
emulator. The group's life — created, two customers join by QR code, one leaves, renamed, dismissed — with every
callback delivered three times, and then every event processed a second time: one state."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from bots.gateway.models import inbound_events
from bots.gateway.processing import process_inbound
from bots.sandbox.entities import GroupMember
from bots.sandbox.simulator import CallbackSimulator, change_external_chat
from scrm.crm.customers.services import find_customer, get_customer
from scrm.crm.groups.models import group_daily_stats, group_members, groups
from scrm.crm.groups.services import memberships_of
from scrm.crm.timeline.models import timeline
from scrm.crm.timeline.services import entries
from tests.conftest import SandboxHarness

CHAT = "wrOgQhDgAAVIPbvXZPi1Xd3uvG0hlkXA"


def simulator(h: SandboxHarness) -> CallbackSimulator:
    s = h.rt.settings
    return CallbackSimulator(s.wecom_token.get(), s.wecom_aes_key.get(), s.wecom_corp_id, now=h.rt.clock.now, agent_id=s.wecom_agent_id)


async def deliver(h: SandboxHarness, xml: str, times: int = 3) -> None:
    """POST the callback ``times`` times (WeCom retries), then let the work settle."""
    sim = simulator(h)
    for _ in range(times):
        query, body = sim.encrypt_post(xml)
        resp = await h.client.post("/callback/wecom", params=query, data=body)
        assert resp.status == 200, await resp.text()
    await h.settle()


def chat_event(h: SandboxHarness, change: str, **kw: Any) -> str:
    return change_external_chat(change, CHAT, create_time=h.rt.clock.timestamp(), corp_id=h.rt.settings.wecom_corp_id, **kw)


async def state_of(h: SandboxHarness) -> dict[str, Any]:
    """Everything the group events write, without surrogate ids."""
    async with h.rt.db.read() as conn:
        group = dict((await conn.execute(sa.select(groups).where(groups.c.chat_id == CHAT))).one()._mapping)
        group.pop("updated_at")
        members = [dict(r._mapping) for r in await conn.execute(sa.select(group_members).order_by(group_members.c.member_id))]
        stats = [dict(r._mapping) for r in await conn.execute(sa.select(group_daily_stats).order_by(group_daily_stats.c.day))]
        lines = [
            (r.customer_id, r.at, r.kind, r.title, r.ref)
            for r in await conn.execute(sa.select(timeline).order_by(timeline.c.customer_id, timeline.c.ref))
        ]
    return {"group": group, "members": members, "stats": stats, "timeline": lines}


async def member(h: SandboxHarness, member_id: str) -> Any:
    async with h.rt.db.read() as conn:
        return (
            await conn.execute(sa.select(group_members).where(group_members.c.chat_id == CHAT, group_members.c.member_id == member_id))
        ).one()


async def titles(h: SandboxHarness, external_userid: str) -> list[str]:
    async with h.rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", external_userid)
        assert cid is not None, external_userid
        return [e.title for e in reversed(await entries(conn, cid))]


async def test_group_life_from_callbacks(sandbox: SandboxHarness) -> None:
    h, state, clock = sandbox, sandbox.state, sandbox.rt.clock
    state.add_customer("wmAlice", "Alice", ["sales01"])
    group = state.add_group(CHAT, "VIP 客户群", "sales01", ["wmAlice"], notice="每周五发新品")

    # 1. Created: the processor asks for groupchat/get; names, owner, notice and both members arrive.
    await deliver(h, chat_event(h, "create"))
    async with h.rt.db.read() as conn:
        row = (await conn.execute(sa.select(groups).where(groups.c.chat_id == CHAT))).one()
    assert (row.name, row.owner_userid, row.notice, row.member_count) == ("VIP 客户群", "sales01", "每周五发新品", 2)
    owner = await member(h, "sales01")
    assert (owner.member_type, owner.name, owner.customer_id) == (1, "王销售", None)
    alice = await member(h, "wmAlice")
    assert alice.member_type == 2 and alice.name == "Alice" and alice.customer_id is not None and alice.active
    assert await titles(h, "wmAlice") == ["加入客户群「VIP 客户群」（被邀请）"]
    assert state.call_count("externalcontact/groupchat/get") == 1  # three deliveries, one event, one fetch

    # 2. Two customers join by QR code: the callback lists ids only; groupchat/get supplies the names.
    clock.advance(hours=1)
    state.add_customer("wmBob", "Bob", ["sales01"])
    state.add_customer("wmCarol", "Carol")  # nobody's contact: known to us only through the group
    for ext in ("wmBob", "wmCarol"):
        group.members.append(GroupMember(ext, 2, state.ts(), join_scene=3, invitor="sales01", name=state.customers[ext].name))
    await deliver(h, chat_event(h, "update", update_detail="add_member", join_scene=3, mem_change_list=["wmBob", "wmCarol"]))
    bob, carol = await member(h, "wmBob"), await member(h, "wmCarol")
    assert (bob.name, bob.join_scene, bob.active, carol.name, carol.member_type) == ("Bob", 3, True, "Carol", 2)
    assert bob.joined_at == clock.now()
    async with h.rt.db.read() as conn:
        assert (await get_customer(conn, carol.customer_id)).name == "Carol"
        assert (await conn.execute(sa.select(groups.c.member_count).where(groups.c.chat_id == CHAT))).scalar_one() == 4
    assert await titles(h, "wmCarol") == ["加入客户群「VIP 客户群」（扫码）"]

    # 3. Bob leaves by himself (QuitScene 0).
    clock.advance(hours=1)
    group.members = [m for m in group.members if m.userid != "wmBob"]
    await deliver(h, chat_event(h, "update", update_detail="del_member", quit_scene=0, mem_change_list=["wmBob"]))
    bob = await member(h, "wmBob")
    assert (bob.active, bob.quit_scene, bob.left_at) == (False, 0, clock.now())
    assert (await titles(h, "wmBob"))[-1] == "退出客户群「VIP 客户群」"

    # 4. Renamed: the event carries no name; the refresh brings it.
    clock.advance(minutes=5)
    group.name = "VIP 客户群 · 冬季"
    await deliver(h, chat_event(h, "update", update_detail="change_name"))
    async with h.rt.db.read() as conn:
        assert (await conn.execute(sa.select(groups.c.name).where(groups.c.chat_id == CHAT))).scalar_one() == "VIP 客户群 · 冬季"
        cid = await find_customer(conn, "external_userid", "wmAlice")
        assert cid is not None
        (membership,) = await memberships_of(conn, cid)
    assert (membership.group_name, membership.active, membership.member_count) == ("VIP 客户群 · 冬季", True, 3)

    # 5. Dismissed: the group is gone from WeCom; members become inactive, the count 0.
    clock.advance(hours=1)
    del state.groups[CHAT]
    await deliver(h, chat_event(h, "dismiss"))
    final = await state_of(h)
    assert final["group"]["dismissed_at"] == clock.now() and final["group"]["member_count"] == 0
    assert not any(m["active"] for m in final["members"])
    assert (await titles(h, "wmAlice"))[-1] == "所在的客户群「VIP 客户群 · 冬季」已解散"
    day = dt.date(2026, 11, 23)
    assert [(s["day"], s["joins"], s["leaves"]) for s in final["stats"]] == [(day, 4, 1)]

    # Every callback was stored once; processing each event again (a job run twice) changes nothing.
    async with h.rt.db.write() as conn:
        rows = (await conn.execute(sa.select(inbound_events.c.id, inbound_events.c.kind).order_by(inbound_events.c.id))).all()
        await conn.execute(inbound_events.update().values(status="pending"))
    assert [r.kind.split(".")[-1] for r in rows] == ["create", "update", "update", "update", "dismiss"]
    for r in rows:
        await process_inbound(h.rt, {"inbound_id": r.id})
    await h.settle()
    assert await state_of(h) == final


async def test_refresh_of_a_vanished_group_is_not_retried(sandbox: SandboxHarness) -> None:
    """create for a group WeCom no longer knows (40050): the group row stays, nothing fails or loops."""
    await deliver(sandbox, chat_event(sandbox, "create"), times=1)
    assert sandbox.state.call_count("externalcontact/groupchat/get") == 1
    async with sandbox.rt.db.read() as conn:
        row = (await conn.execute(sa.select(groups).where(groups.c.chat_id == CHAT))).one()
        status = (await conn.execute(sa.select(inbound_events.c.status))).scalar_one()
    assert row.name == "" and row.synced_at is None and status == "processed"


async def test_member_change_without_its_list_reconciles_from_the_snapshot(sandbox: SandboxHarness) -> None:
    state = sandbox.state
    state.add_customer("wmDan", "Dan", ["sales01"])
    group = state.add_group(CHAT, "老客户群", "sales01", ["wmDan"])
    await deliver(sandbox, chat_event(sandbox, "create"), times=1)
    sandbox.rt.clock.advance(minutes=10)
    group.members = [m for m in group.members if m.userid != "wmDan"]
    await deliver(sandbox, chat_event(sandbox, "update", update_detail="del_member", quit_scene=1), times=1)
    dan = await member(sandbox, "wmDan")
    assert (dan.active, dan.left_at) == (False, sandbox.rt.clock.now())
    assert (await titles(sandbox, "wmDan"))[-1] == "退出客户群「老客户群」"  # removed or left: the snapshot cannot tell
