"""``run.py sync`` against the sandbox WeCom: members, corp tags, 3 members × 150 customers (paged by cursor),
groups; an interrupted run resumes at its cursor without duplicates; a second run changes nothing; the list+get
fallback; follows WeCom no longer lists are ended by the repair pass."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from bots.contacts.models import sync_checkpoints
from bots.contacts.sync import STEPS, SyncInterrupted, SyncOptions, run_sync
from bots.outbound.client import Errcode
from scrm.app.cli import sync_command
from scrm.core.clock import FrozenClock
from scrm.core.db import metadata
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, customers, follows
from scrm.crm.groups.models import group_members, groups
from scrm.crm.staff.models import salespeople
from scrm.crm.tags.models import TagSource, customer_tags, tags
from tests.conftest import SandboxHarness

MEMBERS = ("m0", "m1", "m2")
FAST = SyncOptions(waits=0)


def seed(h: SandboxHarness) -> dict[str, Any]:
    """3 members × 150 customers (neighbours share 10), tags on some follows, 2 groups."""
    state = h.state
    group = state.add_tag_group("等级", ["金牌", "银牌"])
    gold, silver = (t.id for t in group.tags)
    for i, userid in enumerate(MEMBERS):
        state.add_member(userid, f"销售{i}", direct_leader=["sales01"])
        for j in range(150):
            n = i * 140 + j
            tag_ids = [gold] if n % 3 == 0 else [silver] if n % 5 == 0 else []
            state.add_customer(f"wm{n:04d}", f"客户{n}", [userid], tag_ids=tag_ids, gender=1 + n % 2)
    state.add_group("wrG1", "老客户群", "m0", ["wm0001", "wm0002", "m1"])
    state.add_group("wrG2", "新客户群", "m1", ["wm0150", "wm0151", "wm0152"])
    with_gold = {f"wm{i * 140 + j:04d}" for i in range(3) for j in range(150) if (i * 140 + j) % 3 == 0}
    return {"customers": 430, "follows": 450, "gold": len(with_gold)}


async def count(rt: Runtime, table: sa.Table, *where: Any) -> int:
    async with rt.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one())


async def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but the checkpoints, as sorted rows."""
    out = {}
    async with rt.db.read() as conn:
        for table in metadata.sorted_tables:
            if table.name not in ("sync_checkpoints",):
                out[table.name] = sorted(tuple(map(repr, r)) for r in await conn.execute(sa.select(table)))
    return out


async def checkpoints(rt: Runtime) -> dict[str, Any]:
    async with rt.db.read() as conn:
        return {r.name: r for r in await conn.execute(sa.select(sync_checkpoints))}


async def assert_synced(h: SandboxHarness, want: dict[str, Any]) -> None:
    rt = h.rt
    assert await count(rt, customers) == want["customers"]
    assert await count(rt, follows, follows.c.status == FollowStatus.ACTIVE) == want["follows"]
    assert await count(rt, salespeople) == 6  # boss01, sales01, ops01 (seed_demo) and m0..m2
    gold = sa.select(tags.c.id).where(tags.c.name == "金牌")
    assert await count(rt, customer_tags, customer_tags.c.tag_id.in_(gold), customer_tags.c.source == TagSource.WECOM) == want["gold"]
    assert await count(rt, groups) == 2
    assert await count(rt, group_members, group_members.c.active.is_(True)) == 8  # owners + members
    async with rt.db.read() as conn:
        m1 = (await conn.execute(sa.select(salespeople).where(salespeople.c.userid == "m1"))).one()
        named = (await conn.execute(sa.select(customers.c.name, customers.c.gender).where(customers.c.id == 1))).one()
    assert (m1.name, m1.leader_userid) == ("销售1", "sales01")
    assert named.name.startswith("客户") and named.gender in (1, 2)


async def test_full_sync_pages_and_a_second_run_changes_nothing(sandbox: SandboxHarness) -> None:
    want = seed(sandbox)
    seen: list[tuple[str, int, int | None]] = []
    done = await run_sync(sandbox.rt, progress=lambda s, d, t, n: seen.append((s, d, t)), options=FAST)
    assert [done[s].status for s in STEPS] == ["done"] * 4
    await assert_synced(sandbox, want)
    # 450 follows, 100 per page → 5 pages; every group fetched once.
    assert sandbox.state.call_count("externalcontact/batch/get_by_user") == 5
    assert sandbox.state.call_count("externalcontact/groupchat/get") == 2
    assert ("customers", 5, 5) in seen and ("groups", 2, 2) in seen  # the progress the bar shows
    before = await snapshot(sandbox.rt)
    await run_sync(sandbox.rt, options=FAST)  # finished → a new run from scratch (repair), same result
    assert sandbox.state.call_count("externalcontact/batch/get_by_user") == 10
    assert await snapshot(sandbox.rt) == before


async def test_interrupted_sync_resumes_at_its_cursor(sandbox: SandboxHarness) -> None:
    want = seed(sandbox)
    state = sandbox.state

    def fault_after_two_pages(step: str, done: int, total: int | None, note: str) -> None:
        if step == "customers" and state.call_count("externalcontact/batch/get_by_user") == 2 and not state.faults:
            state.inject("externalcontact/batch/get_by_user", Errcode.RATE_LIMITED)

    with pytest.raises(SyncInterrupted) as stopped:
        await run_sync(sandbox.rt, progress=fault_after_two_pages, options=FAST)
    assert stopped.value.step == "customers"
    cps = await checkpoints(sandbox.rt)
    assert cps["customers"].status == "failed" and "45009" in cps["customers"].error
    assert cps["customers"].state["contacts"] == 200 and cps["customers"].state["cursor"]
    assert (cps["members"].status, cps["tags"].status, cps["groups"].status, cps["sync"].status) == ("done", "done", "pending", "running")
    assert await count(sandbox.rt, follows) == 200

    # Busy (-1) beyond the client's own retries stops the groups step; the run after it finishes.
    state.inject("externalcontact/groupchat/get", Errcode.BUSY, times=3)
    with pytest.raises(SyncInterrupted) as stopped:
        await run_sync(sandbox.rt, options=FAST)
    assert stopped.value.step == "groups"
    await run_sync(sandbox.rt, options=FAST)
    # Resumed, not restarted: the 3 pages after the cursor (+1 refused), the directory read once.
    assert state.call_count("externalcontact/batch/get_by_user") == 2 + 1 + 3
    assert state.call_count("user/list") == 1
    await assert_synced(sandbox, want)
    cps = await checkpoints(sandbox.rt)
    assert all(cps[s].status == "done" and cps[s].error is None for s in (*STEPS, "sync"))


async def test_fallback_prune_single_step_and_the_command(sandbox: SandboxHarness, clock: FrozenClock, capsys: Any) -> None:
    state = sandbox.state
    state.add_member("m0", "销售0")
    vip = state.add_tag_group("等级", ["金牌"]).tags[0]
    for n in range(5):
        state.add_customer(f"wmF{n}", f"客户{n}", ["m0"], tag_ids=[vip.id])
    state.add_customer("wmF0", "客户0", ["sales01"])
    state.inject("externalcontact/batch/get_by_user", Errcode.NOT_AUTHORISED)  # older permission set: list + get
    await run_sync(sandbox.rt, steps=("members", "tags", "customers"), options=FAST)
    assert state.call_count("externalcontact/get") == 6 and await count(sandbox.rt, follows) == 6
    assert await count(sandbox.rt, customer_tags, customer_tags.c.source == TagSource.WECOM) == 5

    # wmF4 deleted m0 and the event was missed: the repair run ends the follow and drops its WeCom tags.
    del state.customers["wmF4"]
    clock.advance(hours=1)
    await run_sync(sandbox.rt, steps=("customers",), options=FAST)
    async with sandbox.rt.db.read() as conn:
        gone = (await conn.execute(sa.select(follows).where(follows.c.external_userid == "wmF4"))).one()
    assert (gone.status, gone.ended_by) == (FollowStatus.ENDED, "sync")
    assert await count(sandbox.rt, customer_tags) == 4 and await count(sandbox.rt, follows, follows.c.status == "active") == 5

    # The command itself (in a thread: it runs its own event loop, the sandbox serves from this one).
    args = argparse.Namespace(step="groups", restart=False, no_batch=False)
    state.add_group("wrF", "测试群", "m0", ["wmF0"])
    code = await asyncio.to_thread(sync_command, sandbox.rt.settings, args)
    out = capsys.readouterr().out
    assert code == 0 and "客户群 groups" in out and "1/1" in out and "同步完成" in out
    assert await count(sandbox.rt, groups) == 1
