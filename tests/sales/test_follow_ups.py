"""Follow-ups (跟进记录): recorded on leads and customers in scope, next-contact to-dos, one reminder by app message on
the day, the pool's clock restarted, and a customer handed over taking their leads and to-dos along."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core import outbox
from scrm.core.jobs import JobContext
from scrm.crm.timeline.models import TimelineEntry
from scrm.sales.followups.jobs import follow_up_reminders_cron
from scrm.sales.leads.jobs import return_to_pool_cron
from tests.conftest import SandboxHarness
from tests.sales.test_leads import people, post_lead
from tests.scrm.test_sidebar import seed_follow

timeline = TimelineEntry.__table__


async def test_a_follow_up_restarts_the_pool_clock_and_reminds_once_on_the_day(sandbox: SandboxHarness) -> None:
    h = sandbox  # the clock: 2026-11-23 10:00 in Shanghai
    await people(h)
    wang = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    lead = (await post_lead(h, name="王老板", phone="13912345678", owner="sales01"))[1]
    status, first = await h.as_token(
        wang,
        "POST",
        "/follow-ups",
        json={"lead_id": lead["id"], "kind": "call", "body": "问了价格，下周再聊", "next_contact_on": "2026-11-30"},
    )
    assert status == 201, first
    assert (first["owner"], first["author"], first["next_contact_on"]) == ("sales01", "wang", "2026-11-30")
    ctx = JobContext(h.rt, "test", 1, 1)
    # Day 14 without a follow-up would be near the 15-day return; a second follow-up on day 10 restarts the clock.
    h.rt.clock.advance(days=7)  # 11-30 10:00: due today
    await follow_up_reminders_cron(ctx)
    await follow_up_reminders_cron(ctx)
    await h.settle()
    told = [m for m in h.state.app_messages_to("sales01") if "【今日跟进】" in m]
    assert len(told) == 1 and "王老板（线索，今天）上次电话：问了价格" in told[0], told
    status, due = await h.as_token(wang, "GET", "/follow-ups?due=today")
    assert [d["id"] for d in due["items"]] == [first["id"]]
    h.rt.clock.advance(days=3)
    status, _second = await h.as_token(
        wang, "POST", "/follow-ups", json={"lead_id": lead["id"], "kind": "visit", "body": "上门拜访，带了样品"}
    )
    assert status == 201
    status, due = await h.as_token(wang, "GET", "/follow-ups?due=today")
    assert due["items"] == []  # the earlier next contact happened
    h.rt.clock.advance(days=14)  # 14 days after the visit: still theirs
    await return_to_pool_cron(ctx)
    assert (await h.api("GET", f"/leads/{lead['id']}"))[1]["status"] == "open"
    h.rt.clock.advance(days=1, minutes=1)
    await return_to_pool_cron(ctx)
    assert (await h.api("GET", f"/leads/{lead['id']}"))[1]["status"] == "pool"
    status, page = await h.as_token(wang, "GET", f"/follow-ups?lead_id={lead['id']}")
    assert [f["kind"] for f in page["items"]] == ["visit", "call"]


async def test_overdue_to_dos_and_a_lead_gone_back_to_the_pool_is_no_longer_one(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    wang = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    kept = (await post_lead(h, name="留着的", phone="13900000001", owner="sales01"))[1]
    dropped = (await post_lead(h, name="放弃的", phone="13900000002", owner="sales01"))[1]
    for lead in (kept, dropped):
        status, _ = await h.as_token(
            wang, "POST", "/follow-ups", json={"lead_id": lead["id"], "body": "加了微信", "next_contact_on": "2026-11-24"}
        )
        assert status == 201
    await h.as_token(wang, "POST", f"/leads/{dropped['id']}/release", json={"reason": "没需求"})
    h.rt.clock.advance(days=3)
    status, due = await h.as_token(wang, "GET", "/follow-ups?due=today")
    assert [f["lead_id"] for f in due["items"]] == [kept["id"]]
    await follow_up_reminders_cron(JobContext(h.rt, "test", 1, 1))
    await h.settle()
    told = [m for m in h.state.app_messages_to("sales01") if "【今日跟进】" in m]
    assert len(told) == 1 and "留着的（线索，已逾期 2 天）" in told[0] and "放弃的" not in told[0], told
    status, done = await h.as_token(wang, "POST", f"/follow-ups/{due['items'][0]['id']}/done")
    assert status == 200 and done["next_done_at"]
    assert (await h.as_token(wang, "GET", "/follow-ups?due=today"))[1]["items"] == []


async def test_customer_follow_ups_go_on_the_timeline_and_stay_in_scope(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    mine = await seed_follow(h.rt, "sales01", "wmMine", name="甲客户")
    theirs = await seed_follow(h.rt, "sales03", "wmOther", name="丙客户")
    wang = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    status, made = await h.as_token(
        wang,
        "POST",
        "/follow-ups",
        json={"customer": "wmMine", "kind": "wechat", "body": "确认了下月用量", "next_contact_on": "2026-12-01"},
    )
    assert (status, made["customer_id"], made["owner"]) == (201, mine, "sales01")
    async with h.rt.db.read() as conn:
        titles = (await conn.execute(sa.select(timeline.c.title).where(timeline.c.customer_id == mine))).scalars().all()
    assert any("跟进（微信沟通）· wang；下次联系 12月01日" in t for t in titles), titles
    status, err = await h.as_token(wang, "POST", "/follow-ups", json={"customer_id": theirs, "body": "偷看"})
    assert status == 404
    status, err = await h.as_token(wang, "GET", f"/follow-ups?customer_id={theirs}")
    assert status == 404
    for body, words in (
        ({"customer_id": mine, "body": "x", "next_contact_on": "2026-11-01"}, "已经过去"),
        ({"customer_id": mine, "body": "x", "kind": "fax"}, "跟进方式"),
        ({"body": "x"}, "线索（lead_id）或客户"),
        ({"customer_id": mine, "lead_id": 1, "body": "x"}, "线索（lead_id）或客户"),
    ):
        status, err = await h.as_token(wang, "POST", "/follow-ups", json=body)
        assert status == 400 and words in err["error"]["message"], (body, err)
    pooled = (await post_lead(h, name="公海", phone="13900000009"))[1]
    status, err = await h.as_token(wang, "POST", "/follow-ups", json={"lead_id": pooled["id"], "body": "想跟"})
    assert status == 400 and "先领取" in err["error"]["message"]


async def test_a_customer_handed_over_takes_their_leads_and_to_dos(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    cid = await seed_follow(h.rt, "sales01", "wmMoved", name="要交接的")
    lead = (await post_lead(h, external_userid="wmMoved", remark="要报价"))[1]
    assert (lead["owner"], lead["customer_id"]) == ("sales01", cid)
    wang = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    await h.as_token(wang, "POST", "/follow-ups", json={"customer_id": cid, "body": "月底回访", "next_contact_on": "2026-11-30"})
    payload = {"customer_id": cid, "from_userid": "sales01", "to_userid": "sales02", "kind": "onjob", "handover_id": 1}
    for _ in range(2):  # delivered twice: the same effect
        async with h.rt.db.write() as conn:
            await outbox.add(conn, "customer.transferred", payload, h.rt.clock.now())
        await h.settle()
    _, moved = await h.api("GET", f"/leads/{lead['id']}")
    assert (moved["owner"], [m["action"] for m in moved["moves"]]) == ("sales02", ["create", "transfer"])
    liu = await h.staff_token("liu", ["sales"], wecom_userid="sales02", data_scope="own")
    h.rt.clock.advance(days=7)
    _status, due = await h.as_token(liu, "GET", "/follow-ups?due=today")
    assert [f["body"] for f in due["items"]] == ["月底回访"]
