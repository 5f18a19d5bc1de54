"""Customer groups: membership transitions in any order and any number of times, snapshots, dismissal, business
days, per-customer memberships, and the console pages (SVG chart, escaping)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scrm.app.webapp import create_app
from scrm.console import groups as console_groups
from scrm.core.clock import UTC
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import find_customer
from scrm.crm.groups import services as g
from scrm.crm.groups.domain import GroupSnapshot, MemberSnapshot, business_day, day_bounds, parse_group_chat
from scrm.crm.groups.models import group_daily_stats, group_members, groups
from scrm.crm.timeline.services import entries

CHAT = "wrChatTest0001"
T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


async def joined(rt: Runtime, ids: list[str], when: dt.datetime, scene: int | None = 3) -> list[str]:
    async with rt.db.write() as conn:
        return await g.members_joined(conn, rt.db.dialect, CHAT, ids, at=when, now=rt.clock.now(), callback_scene=scene)


async def left(rt: Runtime, ids: list[str], when: dt.datetime, scene: int = 0) -> list[str]:
    async with rt.db.write() as conn:
        return await g.members_left(conn, rt.db.dialect, CHAT, ids, at=when, now=rt.clock.now(), quit_scene=scene)


async def stats(rt: Runtime) -> dict[dt.date, tuple[int, int, int, int]]:
    async with rt.db.read() as conn:
        rows = await conn.execute(sa.select(group_daily_stats).where(group_daily_stats.c.chat_id == CHAT))
        return {r.day: (r.joins, r.leaves, r.messages, r.active_members) for r in rows}


async def member(rt: Runtime, member_id: str) -> Any:
    async with rt.db.read() as conn:
        q = sa.select(group_members).where(group_members.c.chat_id == CHAT, group_members.c.member_id == member_id)
        return (await conn.execute(q)).one()


async def count(rt: Runtime) -> int:
    async with rt.db.read() as conn:
        return int((await conn.execute(sa.select(groups.c.member_count).where(groups.c.chat_id == CHAT))).scalar_one())


# ---- pure ------------------------------------------------------------------------------------------------------
def test_business_day_is_shanghai() -> None:
    late = dt.datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # 00:30 on the 24th in Shanghai
    assert business_day(late) == dt.date(2026, 11, 24)
    start, end = day_bounds(dt.date(2026, 11, 24))
    assert (start, end) == (dt.datetime(2026, 11, 23, 16, 0, tzinfo=UTC), dt.datetime(2026, 11, 24, 16, 0, tzinfo=UTC))


def test_parse_group_chat_keeps_what_is_usable() -> None:
    snap = parse_group_chat(
        {
            "chat_id": CHAT,
            "name": "群",
            "owner": "sales01",
            "create_time": 1763863200,
            "member_list": [
                {"userid": "sales01", "type": 1, "join_time": 1763863200, "join_scene": 1, "name": "王销售"},
                {"userid": "wmX", "type": 2, "join_time": "1763863300", "join_scene": 3},
                {"userid": ""},
                "garbage",
                {"userid": "wmY", "type": 9, "join_time": None, "join_scene": True},
            ],
        }
    )
    assert [(m.userid, m.type, m.join_scene) for m in snap.members] == [("sales01", 1, 1), ("wmX", 2, 3), ("wmY", 2, None)]
    assert snap.members[2].join_time is None and snap.created_at == dt.datetime.fromtimestamp(1763863200, UTC)
    with pytest.raises(ValueError):
        parse_group_chat({"name": "no id"})


# ---- transitions -------------------------------------------------------------------------------------------------
async def test_joins_and_leaves_count_once_in_any_order(rt: Runtime) -> None:
    assert await joined(rt, ["wmA", "wmB", "wmA"], at(0)) == ["wmA", "wmB"]
    assert await joined(rt, ["wmA", "wmB"], at(0)) == []  # the same event again
    assert await left(rt, ["wmA"], at(1)) == ["wmA"]
    assert await left(rt, ["wmA"], at(1)) == []
    assert await count(rt) == 1
    # A leave that arrives before its join (processing out of order): both counted once, ending inactive.
    assert await left(rt, ["wmC"], at(3)) == ["wmC"]
    assert await joined(rt, ["wmC"], at(2)) == ["wmC"]
    assert await joined(rt, ["wmC"], at(2)) == []
    c = await member(rt, "wmC")
    assert (c.active, c.joined_at, c.left_at) == (False, at(2), at(3))
    # A rejoin is a new join; the old leave delivered late changes nothing.
    assert await joined(rt, ["wmA"], at(4)) == ["wmA"]
    assert await left(rt, ["wmA"], at(1)) == []
    a = await member(rt, "wmA")
    assert (a.active, a.joined_at, a.left_at, a.join_scene) == (True, at(4), None, 3)
    assert await count(rt) == 2
    assert await stats(rt) == {dt.date(2026, 11, 23): (4, 2, 0, 0)}
    async with rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", "wmA")
        assert cid is not None
        titles = [e.title for e in reversed(await entries(conn, cid))]
        (membership,) = await g.memberships_of(conn, cid)
    assert titles == ["加入客户群（扫码）", "退出客户群", "加入客户群（扫码）"]
    assert membership.active and membership.joined_at == at(4)


async def test_member_ids_that_are_not_external_are_staff(rt: Runtime) -> None:
    await joined(rt, ["zhangsan", "woCorpUser"], at(0), scene=0)
    staff, other_corp = await member(rt, "zhangsan"), await member(rt, "woCorpUser")
    assert (staff.member_type, staff.customer_id, staff.join_scene) == (1, None, None)  # 0 = invite or link: unknown
    assert other_corp.member_type == 2 and other_corp.customer_id is not None


async def test_snapshot_fills_names_types_and_reconciles(rt: Runtime) -> None:
    await joined(rt, ["wmA", "wmGone", "robot01"], at(0))
    snap = GroupSnapshot(
        CHAT,
        "新品群",
        "sales01",
        "公告",
        at(-24),
        [
            MemberSnapshot("sales01", 1, at(-24), 1, "王销售"),
            MemberSnapshot("wmA", 2, at(0), 3, "阿甲"),
            MemberSnapshot("robot01", 2, at(0), 2, "外部成员"),  # the snapshot knows better than the id's shape
        ],
    )
    async with rt.db.write() as conn:
        result = await g.apply_snapshot(conn, rt.db.dialect, snap, at(1), reconcile=True)
    assert (result.joined, result.left, result.member_count) == (["sales01"], ["wmGone"], 3)
    a, robot = await member(rt, "wmA"), await member(rt, "robot01")
    assert (a.name, a.join_scene) == ("阿甲", 3)
    assert (robot.member_type, robot.join_scene) == (2, 2) and robot.customer_id is not None
    assert not (await member(rt, "wmGone")).active
    # The owner joined the day before (business day of its join_time); the reconcile leave is today.
    assert await stats(rt) == {dt.date(2026, 11, 22): (1, 0, 0, 0), dt.date(2026, 11, 23): (3, 1, 0, 0)}
    # Applied again: nothing moves. An older snapshot does not overwrite the group's fields.
    old = GroupSnapshot(CHAT, "旧名字", "sales01", "", None, snap.members)
    async with rt.db.write() as conn:
        assert (await g.apply_snapshot(conn, rt.db.dialect, snap, at(1), reconcile=True)).joined == []
        stale = await g.apply_snapshot(conn, rt.db.dialect, old, at(2), fetched_at=at(0.5))
        name = (await conn.execute(sa.select(groups.c.name).where(groups.c.chat_id == CHAT))).scalar_one()
    assert stale.stale and name == "新品群"
    assert await stats(rt) == {dt.date(2026, 11, 22): (1, 0, 0, 0), dt.date(2026, 11, 23): (3, 1, 0, 0)}


async def test_dismissed_group_has_no_members_even_after_late_events(rt: Runtime) -> None:
    await joined(rt, ["wmA"], at(0))
    async with rt.db.write() as conn:
        assert await g.dismiss_group(conn, rt.db.dialect, CHAT, at=at(2), now=at(2))
        assert not await g.dismiss_group(conn, rt.db.dialect, CHAT, at=at(2), now=at(2))
    assert await joined(rt, ["wmLate"], at(1)) == ["wmLate"]  # processed after the dismissal
    assert not (await member(rt, "wmLate")).active and await count(rt) == 0
    assert (await member(rt, "wmA")).left_at == at(2)
    assert await stats(rt) == {dt.date(2026, 11, 23): (2, 0, 0, 0)}


# ---- console -------------------------------------------------------------------------------------------------
HTML = {"Accept": "text/html"}
EVIL = "<script>alert('群')</script>"


def wired(app: web.Application) -> None:
    """Mount the group pages unless the app factory does already."""
    if not any(r.canonical == "/console/groups" for r in app.router.resources()):
        console_groups.setup_routes(app)


@pytest.fixture
async def console(rt: Runtime) -> AsyncIterator[TestClient]:
    app = create_app(rt.settings, runtime=rt)
    wired(app)
    async with TestClient(TestServer(app)) as client:
        yield client


async def sign_in(client: TestClient, rt: Runtime) -> None:
    resp = await client.post(
        "/console/login",
        data={"username": "admin", "password": rt.settings.admin_token.get(), "next": "/console/groups"},
        allow_redirects=False,
    )
    assert resp.status == 303


async def test_console_group_pages(console: TestClient, rt: Runtime) -> None:
    await joined(rt, ["wmA", "wmB"], rt.clock.now() - dt.timedelta(days=2))
    await left(rt, ["wmB"], rt.clock.now())
    async with rt.db.write() as conn:
        await conn.execute(groups.update().where(groups.c.chat_id == CHAT).values(name=EVIL))
        await g.set_message_stats(conn, rt.db.dialect, CHAT, business_day(rt.clock.now()), messages=17, active_members=3)
        await g.set_message_stats(
            conn, rt.db.dialect, CHAT, business_day(rt.clock.now()) - dt.timedelta(days=40), messages=99, active_members=1
        )

    # Signed out: browsers go to the login page, other clients get 401.
    resp = await console.get("/console/groups", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    assert (await console.get(f"/console/groups/{CHAT}", allow_redirects=False)).status == 401

    await sign_in(console, rt)
    listing = await console.get("/console/groups", headers=HTML)
    text = await listing.text()
    assert listing.status == 200 and "script-src 'none'" in listing.headers["Content-Security-Policy"]
    assert EVIL not in text and "&lt;script&gt;" in text
    assert 'href="/console/groups"' in text  # the nav item
    row = re.search(r"<tr[^>]*><td><a href=\"/console/groups/wrChatTest0001\">.*?</tr>", text)
    assert row
    assert re.findall(r'<td class="num">(\d+)</td>', row.group(0)) == ["1", "2", "1", "17"]  # members, joins, leaves, messages (7 days)

    detail = await console.get(f"/console/groups/{CHAT}", headers=HTML)
    page = await detail.text()
    assert detail.status == 200
    assert "<svg" in page and "<rect" in page and "<polyline" in page
    assert EVIL not in page and "&lt;script&gt;alert(&#x27;群&#x27;)&lt;/script&gt;" in page
    assert "消息 17，发言 3 人" in page and "<dt>近30天消息</dt><dd>17</dd>" in page  # 40 days ago is outside
    assert "<script" not in page

    missing = await console.get("/console/groups/nope", headers=HTML)
    assert missing.status == 404 and "没有这个客户群" in await missing.text()
