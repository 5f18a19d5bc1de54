"""Customers, identities and merges, follow relations and notes, on both SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from scrm.core.clock import FrozenClock
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.outbox import outbox
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, customer_identities, customers
from scrm.crm.customers.services import (
    add_note,
    ensure_customer,
    find_customer,
    get_customer,
    identities_of,
    link_identity,
    merge_customers,
    notes_of,
    resolve_customer,
    set_custom_fields,
    update_profile,
)
from scrm.crm.staff.services import (
    EndedBy,
    apply_contact_details,
    end_follow,
    follow_of,
    follows_of,
    get_salesperson,
    is_following,
    set_leader,
    start_follow,
    upsert_salesperson,
)
from scrm.crm.tags.jobs import on_customer_merged as on_tags_merged
from scrm.crm.tags.services import apply_tag, ensure_tag, tags_of
from scrm.crm.timeline.services import add_entry, entries


async def ensure(rt: Runtime, kind: str, value: str) -> int:
    async with rt.db.write() as conn:
        return await ensure_customer(conn, rt.db.dialect, kind=kind, value=value, now=rt.clock.now())


async def link(rt: Runtime, customer_id: int, kind: str, value: str) -> int:
    async with rt.db.write() as conn:
        return await link_identity(conn, rt.db.dialect, customer_id, kind, value, rt.clock.now())


async def count(rt: Runtime, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    async with rt.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one())


async def test_concurrent_ensure_for_one_identity_makes_one_customer(rt: Runtime) -> None:
    ids = await asyncio.gather(*(ensure(rt, "external_userid", "wmSame") for _ in range(8)))
    assert len(set(ids)) == 1
    assert await count(rt, customers) == 1
    assert await count(rt, customer_identities) == 1


async def test_link_identity_attaches_and_is_idempotent(rt: Runtime) -> None:
    cid = await ensure(rt, "external_userid", "wmA")
    assert await link(rt, cid, "unionid", "uA") == cid
    assert await link(rt, cid, "unionid", "uA") == cid
    async with rt.db.read() as conn:
        assert await identities_of(conn, cid) == {"external_userid": ["wmA"], "unionid": ["uA"]}
        assert (await get_customer(conn, cid)).unionid == "uA"
    with pytest.raises(Conflict):
        await link(rt, cid, "unionid", "uOther")  # one person, one unionid


async def test_unionid_merges_into_the_older_customer(rt: Runtime, clock: FrozenClock) -> None:
    older = await ensure(rt, "openid", "oOA")  # the Official Account follower, seen first
    await link(rt, older, "unionid", "uX")
    clock.advance(days=2)
    newer = await ensure(rt, "external_userid", "wmX")
    async with rt.db.write() as conn:
        await update_profile(conn, newer, clock.now(), name="张三", gender=1)
        await add_entry(conn, rt.db.dialect, customer_id=newer, at=clock.now(), kind="event", title="加好友", ref="event:1")
    survivor = await link(rt, newer, "unionid", "uX")
    assert survivor == older
    async with rt.db.read() as conn:
        assert await identities_of(conn, older) == {"openid": ["oOA"], "unionid": ["uX"], "external_userid": ["wmX"]}
        assert await resolve_customer(conn, newer) == older
        assert await find_customer(conn, "external_userid", "wmX") == older
        profile = await get_customer(conn, newer)  # a merged id reads as its survivor
        assert (profile.id, profile.name, profile.gender) == (older, "张三", 1)
        merged_into = (await conn.execute(sa.select(customers.c.merged_into).where(customers.c.id == newer))).scalar_one()
        assert merged_into == older
        refs = [e.ref for e in await entries(conn, older)]
        assert "event:1" in refs and f"merge:{newer}" in refs
        topics = [(r.topic, dict(r.payload)) for r in await conn.execute(sa.select(outbox.c.topic, outbox.c.payload))]
    assert ("customer.merged", {"from": newer, "into": older}) in topics
    # ensure_customer on the merged customer's identity lands on the survivor.
    assert await ensure(rt, "external_userid", "wmX") == older


async def test_merge_moves_follows_notes_tags_and_timeline(rt: Runtime, clock: FrozenClock) -> None:
    a = await ensure(rt, "openid", "oA")
    b = await ensure(rt, "external_userid", "wmB")
    now = clock.now()
    async with rt.db.write() as conn:
        d = rt.db.dialect
        both = await ensure_tag(conn, d, "老客户", now)
        only_b = await ensure_tag(conn, d, "华东", now)
        await apply_tag(conn, d, customer_id=a, tag_id=both, source="manual", evidence={"by": "old"}, now=now)
        await apply_tag(conn, d, customer_id=b, tag_id=both, source="rule", evidence={"by": "new"}, now=now + dt.timedelta(hours=1))
        await apply_tag(conn, d, customer_id=b, tag_id=only_b, source="channel", evidence={"channel": "展会"}, now=now)
        await start_follow(conn, d, customer_id=b, userid="sales01", external_userid="wmB", status=FollowStatus.ACTIVE, at=now, now=now)
        for cid in (a, b):
            await add_entry(conn, d, customer_id=cid, at=now, kind="event", title="same fact", ref="order:SO1:created")
        await add_entry(conn, d, customer_id=b, at=now, kind="event", title="only b", ref="event:9")
    await add_note(rt, b, "sales01", "喜欢早上送货")
    async with rt.db.write() as conn:
        assert await merge_customers(conn, rt.db.dialect, b, a, clock.now()) == a
        assert await merge_customers(conn, rt.db.dialect, a, b, clock.now()) == a  # idempotent
    async with rt.db.read() as conn:  # the customer's own rows moved in the merge's transaction
        assert [f.customer_id for f in await follows_of(conn, b)] == [a]
        assert await is_following(conn, "sales01", b) and await is_following(conn, "sales01", a)
        assert [n.body for n in await notes_of(conn, a)] == ["喜欢早上送货"]
        refs = sorted(e.ref for e in await entries(conn, a, limit=100))
        merged = [r.id for r in await conn.execute(sa.select(outbox.c.id).where(outbox.c.topic == "customer.merged"))]
    assert refs.count("order:SO1:created") == 1 and "event:9" in refs
    assert len(merged) == 1
    # Tags are the tags capability's rows: they follow the customer.merged event (twice changes nothing).
    for _ in range(2):
        await on_tags_merged(rt, {"from": b, "into": a})
    async with rt.db.read() as conn:
        tags = {t.name: t for t in await tags_of(conn, a)}
        assert set(tags) == {"老客户", "华东"}
        assert tags["老客户"].evidence == {"by": "new"} and tags["老客户"].source == "rule"  # the newer evidence wins
        assert await tags_of(conn, b) == []


async def test_chains_resolve_and_different_unionids_never_merge(rt: Runtime, clock: FrozenClock) -> None:
    a = await ensure(rt, "openid", "o1")
    clock.advance(seconds=1)
    b = await ensure(rt, "external_userid", "wm2")
    clock.advance(seconds=1)
    c = await ensure(rt, "external_userid", "wm3")
    async with rt.db.write() as conn:
        assert await merge_customers(conn, rt.db.dialect, c, b, clock.now()) == b
        assert await merge_customers(conn, rt.db.dialect, b, a, clock.now()) == a
        assert await resolve_customer(conn, c) == a
        chain = (await conn.execute(sa.select(customers.c.merged_into).where(customers.c.id == c))).scalar_one()
    assert chain == a  # shortened to one hop
    x = await ensure(rt, "unionid", "uX")
    y = await ensure(rt, "unionid", "uY")
    with pytest.raises(Conflict):
        async with rt.db.write() as conn:
            await merge_customers(conn, rt.db.dialect, x, y, clock.now())
    async with rt.db.read() as conn:
        with pytest.raises(NotFound):
            await resolve_customer(conn, 999999)


async def test_concurrent_links_of_one_unionid_end_in_one_customer(rt: Runtime, clock: FrozenClock) -> None:
    ids = []
    for i in range(4):
        ids.append(await ensure(rt, "external_userid", f"wmC{i}"))
        clock.advance(seconds=1)
    await asyncio.gather(*(link(rt, cid, "unionid", "uShared") for cid in ids))
    async with rt.db.read() as conn:
        survivors = {await resolve_customer(conn, cid) for cid in ids}
        assert survivors == {ids[0]}
        owned = await identities_of(conn, ids[0])
    assert sorted(owned["external_userid"]) == [f"wmC{i}" for i in range(4)] and owned["unionid"] == ["uShared"]
    assert await count(rt, customers, customers.c.merged_into.is_(None)) == 1


async def test_follow_relation_is_time_guarded(rt: Runtime, clock: FrozenClock) -> None:
    cid = await ensure(rt, "external_userid", "wmF")
    t0 = clock.now()
    t1, t2 = t0 + dt.timedelta(days=3), t0 + dt.timedelta(days=5)
    d = rt.db.dialect
    async with rt.db.write() as conn:
        f = await start_follow(
            conn, d, customer_id=cid, userid="s1", external_userid="wmF", status=FollowStatus.HALF, at=t0, now=t0, state="ch1"
        )
        assert (f.status, f.state) == (FollowStatus.HALF, "ch1")
        f = await start_follow(conn, d, customer_id=cid, userid="s1", external_userid="wmF", status=FollowStatus.ACTIVE, at=t0, now=t0)
        assert f.status == FollowStatus.ACTIVE and f.state == "ch1"
        end = await end_follow(conn, d, customer_id=cid, userid="s1", external_userid="wmF", ended_by=EndedBy.CUSTOMER, at=t1, now=t1)
        assert end.changed and end.known and end.follow.ended_at == t1
        again = await end_follow(conn, d, customer_id=cid, userid="s1", external_userid="wmF", ended_by=EndedBy.CUSTOMER, at=t1, now=t1)
        assert not again.changed
        # A late duplicate of the first add does not re-open; a later re-add does.
        f = await start_follow(conn, d, customer_id=cid, userid="s1", external_userid="wmF", status=FollowStatus.ACTIVE, at=t0, now=t2)
        assert f.status == FollowStatus.ENDED
        f = await start_follow(conn, d, customer_id=cid, userid="s1", external_userid="wmF", status=FollowStatus.ACTIVE, at=t2, now=t2)
        assert (f.status, f.started_at, f.ended_at) == (FollowStatus.ACTIVE, t2, None)
        # An end older than the current start is stale.
        stale = await end_follow(conn, d, customer_id=cid, userid="s1", external_userid="wmF", ended_by=EndedBy.SALESPERSON, at=t1, now=t2)
        assert not stale.changed and stale.follow.status == FollowStatus.ACTIVE
        unknown = await end_follow(conn, d, customer_id=cid, userid="s2", external_userid="wmF", ended_by=EndedBy.TRANSFER, at=t1, now=t2)
        assert unknown.changed and not unknown.known and unknown.follow.started_at == t1
        assert (await follow_of(conn, "s2", "wmF")).ended_by == EndedBy.TRANSFER  # type: ignore[union-attr]


async def test_apply_contact_details_and_salespeople(rt: Runtime, clock: FrozenClock) -> None:
    contact = {"external_userid": "wmD", "name": "李四", "avatar": "https://a/1.png", "type": 2, "gender": 2, "corp_name": "李记商行"}
    follow_users = [
        {"userid": "s1", "remark": "李总", "description": "大客户", "createtime": 1763000000, "add_way": 3, "state": "expo"},
        {"userid": "s2", "remark": "", "createtime": 1763100000, "add_way": 1},
    ]
    async with rt.db.write() as conn:
        applied = await apply_contact_details(conn, rt.db.dialect, contact, follow_users, clock.now())
        again = await apply_contact_details(conn, rt.db.dialect, contact, follow_users, clock.now())
    assert applied.follows == 2 and sorted(applied.new_salespeople) == ["s1", "s2"] and again.new_salespeople == []
    async with rt.db.write() as conn:
        c = await get_customer(conn, applied.customer_id)
        assert (c.name, c.avatar, c.gender, c.corp_name) == ("李四", "https://a/1.png", 2, "李记商行")
        f = await follow_of(conn, "s1", "wmD")
        assert f is not None and (f.remark, f.description, f.add_way, f.state) == ("李总", "大客户", 3, "expo")
        assert f.started_at == dt.datetime.fromtimestamp(1763000000, dt.UTC)
        await upsert_salesperson(conn, rt.db.dialect, "s1", clock.now(), name="王销售", synced=True)
        await set_leader(conn, rt.db.dialect, "s1", "boss", clock.now())
        person = await get_salesperson(conn, "s1")
        assert person is not None and (person.name, person.leader_userid) == ("王销售", "boss") and person.synced_at is not None
        await upsert_salesperson(conn, rt.db.dialect, "s1", clock.now(), name="王销售")  # leader left out: kept
        assert (await get_salesperson(conn, "s1")).leader_userid == "boss"  # type: ignore[union-attr]


async def test_notes_and_custom_fields(rt: Runtime) -> None:
    cid = await ensure(rt, "external_userid", "wmN")
    with pytest.raises(InvalidInput):
        await add_note(rt, cid, "sales01", "   ")
    with pytest.raises(InvalidInput):
        await add_note(rt, cid, "sales01", "长" * 2001)
    with pytest.raises(InvalidInput):
        await add_note(rt, cid, "", "正文")
    with pytest.raises(NotFound):
        await add_note(rt, 424242, "sales01", "正文")
    note = await add_note(rt, cid, "sales01", "  " + "字" * 2000 + " ")
    assert len(note.body) == 2000
    async with rt.db.write() as conn:
        [entry] = await entries(conn, cid)
        assert (entry.kind, entry.ref, entry.title) == ("note", f"note:{note.id}", "sales01 添加了备注")
        fields = await set_custom_fields(conn, cid, {"生日": "05-01", "门店数": 3}, rt.clock.now())
        assert fields == {"生日": "05-01", "门店数": "3"}
        assert await set_custom_fields(conn, cid, {"生日": None}, rt.clock.now()) == {"门店数": "3"}
        with pytest.raises(InvalidInput):
            await set_custom_fields(conn, cid, {"x" * 33: "v"}, rt.clock.now())
