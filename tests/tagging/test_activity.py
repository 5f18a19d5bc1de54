"""Activity segments: the rule with a controllable clock, the set-based recompute against the rule on SQLite and
PostgreSQL, and the on-event updates."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
import sqlalchemy as sa

from bots.gateway.models import inbound_events
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime
from scrm.crm.archive.models import archive_messages
from scrm.crm.customers.models import customers, follows
from tagging.activity import services as activity
from tagging.activity.domain import ActivityConfig, ActivityInputs
from tagging.activity.domain import ActivitySegment as A
from tagging.activity.models import customer_activity
from tagging.rfm.models import customer_order_stats
from tests.conftest import make_customer

DAY = dt.timedelta(days=1)
NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
CFG = ActivityConfig(new_days=7, silent_days=30, lost_days=90, unanswered_days=3)


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


# ---- the rule ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("inputs", "segment"),
    [
        (ActivityInputs(first_seen_at=ago(0)), A.NEW),
        (ActivityInputs(first_seen_at=ago(7)), A.NEW),  # inclusive
        (ActivityInputs(first_seen_at=ago(7.01)), A.SILENT),
        (ActivityInputs(first_seen_at=ago(40), last_message_at=ago(30)), A.ACTIVE),  # inclusive
        (ActivityInputs(first_seen_at=ago(40), last_message_at=ago(30.01)), A.SILENT),
        (ActivityInputs(first_seen_at=ago(200), last_order_at=ago(2)), A.ACTIVE),
        (ActivityInputs(first_seen_at=ago(2), last_order_at=ago(1), deleted_by_customer=True), A.NEW),  # new wins
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(90)), A.SILENT),  # not yet lost
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(90.01)), A.LOST),
        (ActivityInputs(first_seen_at=ago(91)), A.LOST),  # added, never heard of again
        (ActivityInputs(first_seen_at=ago(89)), A.SILENT),
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(100), last_order_at=ago(60)), A.SILENT),
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(40), deleted_by_customer=True), A.CHURN_RISK),
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(100), deleted_by_customer=True), A.LOST),  # lost wins
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(40), deleted_by_customer=True, last_order_at=ago(1)), A.ACTIVE),
        # unanswered: our 1:1 message at least unanswered_days old, nothing from the customer since
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(40), last_outreach_at=ago(3)), A.CHURN_RISK),
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(40), last_outreach_at=ago(2.9)), A.SILENT),
        (ActivityInputs(first_seen_at=ago(200), last_message_at=ago(35), last_outreach_at=ago(36)), A.SILENT),
        (ActivityInputs(first_seen_at=ago(60), last_outreach_at=ago(10)), A.CHURN_RISK),
    ],
)
def test_classify(inputs: ActivityInputs, segment: str) -> None:
    assert activity.classify(inputs, NOW, CFG) == segment


def test_the_same_customer_moves_through_segments_as_the_clock_runs() -> None:
    clock = FrozenClock(NOW)
    person = ActivityInputs(first_seen_at=NOW, last_message_at=NOW)
    seen = []
    for days in (0, 7, 8, 30, 31, 90, 91):
        clock.set(NOW + days * DAY + dt.timedelta(seconds=1 if days in (8, 31, 91) else 0))
        seen.append(activity.classify(person, clock.now(), CFG))
    assert seen == [A.NEW, A.NEW, A.ACTIVE, A.ACTIVE, A.SILENT, A.SILENT, A.LOST]


def test_config() -> None:
    assert activity.parse_activity_config({}) == ActivityConfig()
    assert activity.parse_activity_config({"activity": {"new_days": 3, "lost_days": 60}}) == ActivityConfig(3, 30, 60, 3)
    for bad, match in (
        ({"activity": {"new_days": 0}}, "new_days"),
        ({"activity": {"silent_days": 100}}, "silent_days < lost_days"),
        ({"activity": {"new_days": 40}}, "new_days ≤ silent_days"),
        ({"activity": {"lost_days": "90"}}, "lost_days"),
        ({"activity": {"lost": 90}}, "unknown"),
        ({"activity": {"lost_days": 400}, "rfm": {"window_days": 365}}, "window_days"),
    ):
        with pytest.raises(ValueError, match=match):
            activity.parse_activity_config(bad)
    from tagging.rfm.domain import load_segments_toml

    activity.parse_activity_config(load_segments_toml())  # the shipped file is valid


# ---- database ---------------------------------------------------------------------------------------------
_ids = itertools.count(1)


async def customer(rt: Runtime, first_seen_days: float, openid: str | None = None) -> tuple[int, str]:
    external = f"wmAct{next(_ids):04d}"
    cid = await make_customer(rt, external)
    async with rt.db.write() as conn:
        await conn.execute(sa.update(customers).where(customers.c.id == cid).values(first_seen_at=rt.clock.now() - first_seen_days * DAY))
        if openid:
            from scrm.crm.customers.models import customer_identities

            await conn.execute(customer_identities.insert().values(customer_id=cid, kind="openid", value=openid, created_at=rt.clock.now()))
    return cid, external


async def kf_message(rt: Runtime, external: str, days: float, kind: str = "kf.customer.text") -> int:
    at = rt.clock.now() - days * DAY
    async with rt.db.write() as conn:
        result = await conn.execute(
            inbound_events.insert()
            .values(
                channel="kf",
                kind=kind,
                dedupe_key=f"t:{next(_ids)}",
                external_userid=external,
                payload={},
                raw="",
                occurred_at=at,
                received_at=at,
                status="processed",
            )
            .returning(inbound_events.c.id)
        )
        return int(result.scalar_one())


async def mp_message(rt: Runtime, openid: str, days: float) -> int:
    at = rt.clock.now() - days * DAY
    async with rt.db.write() as conn:
        result = await conn.execute(
            inbound_events.insert()
            .values(
                channel="mp",
                kind="message.text",
                dedupe_key=f"t:{next(_ids)}",
                from_user=openid,
                payload={},
                raw="",
                occurred_at=at,
                received_at=at,
                status="processed",
            )
            .returning(inbound_events.c.id)
        )
        return int(result.scalar_one())


async def archive(rt: Runtime, cid: int, sender: str, days: float, *, to: str = "", room: str = "") -> str:
    msgid = f"m{next(_ids)}"
    at = rt.clock.now() - days * DAY
    async with rt.db.write() as conn:
        await conn.execute(
            archive_messages.insert().values(
                msgid=msgid,
                action="send",
                from_id=sender,
                tolist=[to] if to else [],
                roomid=room,
                msgtime=at,
                msgtype="text",
                content="hi",
                customer_id=cid,
                raw={},
                received_at=at,
            )
        )
    return msgid


async def order(rt: Runtime, cid: int, days: float) -> None:
    at = rt.clock.now() - days * DAY
    async with rt.db.write() as conn:
        await conn.execute(
            customer_order_stats.insert().values(
                customer_id=cid, orders=1, monetary_fen=100, first_order_at=at, last_order_at=at, updated_at=at
            )
        )


async def ended_by_customer(rt: Runtime, cid: int, external: str) -> None:
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(
            follows.insert().values(
                customer_id=cid,
                userid="sales01",
                external_userid=external,
                status="ended",
                started_at=now - 100 * DAY,
                ended_at=now - 50 * DAY,
                ended_by="customer",
                updated_at=now,
            )
        )


async def segments(rt: Runtime) -> dict[int, str]:
    async with rt.db.read() as conn:
        return {int(r.customer_id): r.segment for r in await conn.execute(sa.select(customer_activity))}


async def scenario(rt: Runtime) -> dict[int, str]:
    """Customers covering every segment and every source; returns what each should be."""
    expect: dict[int, str] = {}
    c, _ = await customer(rt, 2)
    expect[c] = A.NEW
    c, ext = await customer(rt, 100)
    await kf_message(rt, ext, 5)
    expect[c] = A.ACTIVE
    c, _ = await customer(rt, 100, openid="oMpActive")
    await mp_message(rt, "oMpActive", 29)
    expect[c] = A.ACTIVE
    c, ext = await customer(rt, 100)
    await archive(rt, c, ext, 10)  # the customer spoke (chat archive)
    expect[c] = A.ACTIVE
    c, ext = await customer(rt, 100)
    await archive(rt, c, "sales01", 10, to=ext)  # only we spoke → unanswered
    await kf_message(rt, ext, 40)
    expect[c] = A.CHURN_RISK
    c, ext = await customer(rt, 100)
    await archive(rt, c, "sales01", 1, to=ext)  # too recent to count as unanswered
    await kf_message(rt, ext, 40)
    expect[c] = A.SILENT
    c, ext = await customer(rt, 100)
    await archive(rt, c, "wmOtherGuy", 10, room="wrRoom")  # someone else in a group: not this customer
    await kf_message(rt, ext, 45, kind="kf.servicer.text")  # our servicer, not the customer
    expect[c] = A.LOST
    c, _ = await customer(rt, 300)
    await order(rt, c, 20)
    expect[c] = A.ACTIVE
    c, ext = await customer(rt, 300)
    await order(rt, c, 50)
    await ended_by_customer(rt, c, ext)
    expect[c] = A.CHURN_RISK
    c, ext = await customer(rt, 300)
    await kf_message(rt, ext, 120)
    expect[c] = A.LOST
    c, ext = await customer(rt, 60)
    expect[c] = A.SILENT
    return expect


async def test_recompute_matches_the_rule(rt: Runtime) -> None:
    expect = await scenario(rt)
    async with rt.db.write() as conn:
        run = await activity.recompute_activity(conn, rt.db.dialect, rt.clock.now(), CFG)
    assert await segments(rt) == expect
    assert sum(run.segments.values()) == len(expect) and set(run.segments) == set(activity.SEGMENTS)
    assert (run.written, run.removed) == (len(expect), 0)
    # the one-customer path (indexed look-ups + classify) agrees with the set-based statement
    async with rt.db.write() as conn:
        for cid in expect:
            assert await activity.touch_customer(conn, rt.db.dialect, cid, rt.clock.now(), CFG) == expect[cid]
            inputs = await activity.inputs_of(conn, cid)
            assert inputs is not None and activity.classify(inputs, rt.clock.now(), CFG) == expect[cid]


async def test_clock_moves_everyone_on(rt: Runtime, clock: FrozenClock) -> None:
    cid, ext = await customer(rt, 0)
    await kf_message(rt, ext, 0)

    async def nightly() -> str:
        async with rt.db.write() as conn:
            await activity.recompute_activity(conn, rt.db.dialect, rt.clock.now(), CFG)
        return (await segments(rt))[cid]

    assert await nightly() == A.NEW
    clock.advance(days=10)
    assert await nightly() == A.ACTIVE
    clock.advance(days=25)
    assert await nightly() == A.SILENT
    clock.advance(days=60)
    assert await nightly() == A.LOST
    async with rt.db.read() as conn:
        row = await activity.activity_of(conn, cid)
    assert row is not None and row["segment_zh"] == "已流失" and row["last_message_at"] is not None


async def test_events_update_one_customer(rt: Runtime, clock: FrozenClock) -> None:
    from tagging.segments.jobs import update_after_archive, update_after_inbound

    cid, ext = await customer(rt, 100)
    await kf_message(rt, ext, 95)
    async with rt.db.write() as conn:
        await activity.recompute_activity(conn, rt.db.dialect, rt.clock.now(), CFG)
    assert (await segments(rt))[cid] == A.LOST
    rt.put(activity.ACTIVITY_CONFIG, CFG)
    event = await kf_message(rt, ext, 0)
    await update_after_inbound(rt, {"inbound_id": event})
    await update_after_inbound(rt, {"inbound_id": event})  # replay: same result
    assert (await segments(rt))[cid] == A.ACTIVE
    old = await kf_message(rt, ext, 50)
    await update_after_inbound(rt, {"inbound_id": old})  # an old message arriving late never moves time back
    async with rt.db.read() as conn:
        row: Any = await activity.activity_of(conn, cid)
    assert dt.datetime.fromisoformat(row["last_message_at"]) == rt.clock.now()
    clock.advance(days=40)
    msgid = await archive(rt, cid, ext, 0)
    await update_after_archive(rt, {"msgid": msgid})
    assert (await segments(rt))[cid] == A.ACTIVE
    stranger = await kf_message(rt, "wmNobodyKnows", 0)
    await update_after_inbound(rt, {"inbound_id": stranger})  # unknown person: nothing happens
    assert set(await segments(rt)) == {cid}


async def test_merged_customers_leave(rt: Runtime) -> None:
    from scrm.crm.customers.services import merge_customers

    a, _ = await customer(rt, 10)
    b, _ = await customer(rt, 20)
    async with rt.db.write() as conn:
        await activity.recompute_activity(conn, rt.db.dialect, rt.clock.now(), CFG)
    assert set(await segments(rt)) == {a, b}
    async with rt.db.write() as conn:
        await merge_customers(conn, rt.db.dialect, a, b, rt.clock.now())
        await activity.recompute_activity(conn, rt.db.dialect, rt.clock.now(), CFG)
    assert len(await segments(rt)) == 1


async def stored_rows(rt: Runtime) -> dict[int, Any]:
    async with rt.db.read() as conn:
        return {int(r.customer_id): r for r in await conn.execute(sa.select(customer_activity))}


async def test_recompute_writes_only_rows_that_change(rt: Runtime, clock: FrozenClock) -> None:
    """A night rewrites the customers whose segment or tracked times moved — ``computed_at`` of every other row
    stays — and what it writes is still what the rule says for everybody."""
    expect = await scenario(rt)
    t0 = rt.clock.now()

    async def nightly() -> activity.ActivityRun:
        async with rt.db.write() as conn:
            return await activity.recompute_activity(conn, rt.db.dialect, rt.clock.now(), CFG)

    assert (await nightly()).written == len(expect)
    clock.advance(hours=1)
    quiet = await nightly()  # an hour later nobody moved: nothing is written
    assert (quiet.written, quiet.removed) == (0, 0)
    assert {r.computed_at for r in (await stored_rows(rt)).values()} == {t0}

    before = await stored_rows(rt)
    clock.advance(days=6)  # the new customer is no longer new, the 29-day message is now 35 days old, …
    talker = next(cid for cid, seg in expect.items() if seg == A.ACTIVE)
    talker_before = before[talker]
    async with rt.db.read() as conn:
        from scrm.crm.customers.models import customer_identities as ci

        external = (
            await conn.execute(sa.select(ci.c.value).where(ci.c.customer_id == talker, ci.c.kind == "external_userid"))
        ).scalar_one()
    await kf_message(rt, external, 0)  # … and an active customer speaks again: same segment, a later time
    run = await nightly()
    after = await stored_rows(rt)
    t1 = rt.clock.now()
    async with rt.db.read() as conn:
        rule = {cid: activity.classify(await activity.inputs_of(conn, cid), t1, CFG) for cid in expect}  # type: ignore[arg-type]
    assert {cid: r.segment for cid, r in after.items()} == rule
    moved = {
        cid
        for cid in expect
        if (before[cid].segment, before[cid].last_message_at, before[cid].last_order_at)
        != (after[cid].segment, after[cid].last_message_at, after[cid].last_order_at)
    }
    assert talker in moved and after[talker].segment == talker_before.segment == A.ACTIVE
    assert len(moved) >= 3 and len(moved) < len(expect) - 3
    assert run.written == len(moved)
    assert {cid for cid, r in after.items() if r.computed_at == t1} == moved
    assert all(after[cid].computed_at == t0 for cid in set(expect) - moved)


async def test_thresholds_are_inclusive_in_sql_and_move_with_the_clock(rt: Runtime, clock: FrozenClock) -> None:
    """Each threshold exactly at, and one second past, its edge — the set-based statement decides as the rule
    does; one second later exactly the customers on an edge move, and only their rows are written."""
    second = 1 / 86400
    edge: dict[str, int] = {}
    edge["new_at"], _ = await customer(rt, 7)
    edge["new_past"], _ = await customer(rt, 7 + second)
    edge["active_at"], ext = await customer(rt, 100)
    await kf_message(rt, ext, 30)
    edge["active_past"], ext = await customer(rt, 100)
    await kf_message(rt, ext, 30 + second)
    edge["lost_at"], ext = await customer(rt, 200)
    await kf_message(rt, ext, 90)
    edge["lost_past"], ext = await customer(rt, 200)
    await kf_message(rt, ext, 90 + second)
    edge["unanswered_at"], ext = await customer(rt, 200)
    await kf_message(rt, ext, 40)
    await archive(rt, edge["unanswered_at"], "sales01", 3, to=ext)
    edge["unanswered_short"], ext = await customer(rt, 200)
    await kf_message(rt, ext, 40)
    await archive(rt, edge["unanswered_short"], "sales01", 3 - second, to=ext)

    async def nightly() -> tuple[dict[str, str], int]:
        async with rt.db.write() as conn:
            run = await activity.recompute_activity(conn, rt.db.dialect, rt.clock.now(), CFG)
        got = await segments(rt)
        async with rt.db.read() as conn:
            for name, cid in edge.items():  # the rule on plain values agrees, customer by customer
                inputs = await activity.inputs_of(conn, cid)
                assert inputs is not None and activity.classify(inputs, rt.clock.now(), CFG) == got[cid], name
        return {name: got[cid] for name, cid in edge.items()}, run.written

    now_segments, written = await nightly()
    assert now_segments == {
        "new_at": A.NEW, "new_past": A.SILENT, "active_at": A.ACTIVE, "active_past": A.SILENT,
        "lost_at": A.SILENT, "lost_past": A.LOST, "unanswered_at": A.CHURN_RISK, "unanswered_short": A.SILENT,
    }  # fmt: skip
    assert written == len(edge)
    clock.advance(seconds=1)
    later, written = await nightly()
    moved = {name for name in edge if later[name] != now_segments[name]}
    assert moved == {"new_at", "active_at", "lost_at", "unanswered_short"}
    assert later["unanswered_short"] == A.CHURN_RISK and later["lost_at"] == A.LOST
    assert written == len(moved)
