"""Leads arrive from where the product already sees people: a channel code scan (the salesperson's at once), a first
微信客服 message and an Official Account follow (to the assignment rules, else the pool) — once per person."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from scrm.crm.customers.models import customers
from scrm.sales.leads.models import leads
from tests.conftest import SandboxHarness
from tests.sales.test_leads import people
from tests.scrm.test_archive import NOON, record
from tests.scrm.test_sidebar import seed_follow


async def all_leads(h: SandboxHarness) -> list[tuple[str, str | None, str, str, str]]:
    async with h.rt.db.read() as conn:
        rows = await conn.execute(sa.select(leads).order_by(leads.c.id))
        return [(r.source, r.owner, r.status, r.source_ref, r.remark) for r in rows]


async def test_a_channel_code_scan_is_the_salespersons_lead_once(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    status, code = await h.api("POST", "/channel-codes", json={"name": "春季展会", "userids": ["sales01"]})
    assert status == 201, code
    from tests.campaigns.test_referral import scan

    await scan(h, code["config_id"], "wmExpo1", "展会客户")
    await scan(h, code["config_id"], "wmExpo1", "展会客户")  # the callback again: nothing more
    assert await all_leads(h) == [("channel_code", "sales01", "open", "春季展会", "")]
    status, page = await h.api("GET", "/leads?source=channel_code")
    assert [row["customer_id"] for row in page["items"]] != [None]
    # The salesperson took them in themselves: no "new lead" alert.
    assert not any("【新线索】" in m for m in h.state.app_messages_to("sales01"))


async def test_a_first_kf_message_is_a_lead_with_what_they_asked(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    await h.api("POST", "/lead-rules", json={"name": "客服线索", "members": ["sales01"], "sources": ["kf"]})
    await h.customer_says("wmKf1", "你好，想问下矿泉水批发价", name="新客")
    await h.customer_says("wmKf1", "要3箱矿泉水")
    assert await all_leads(h) == [("kf", "sales01", "open", "首次咨询", "你好，想问下矿泉水批发价")]
    told = h.state.app_messages_to("sales01")
    assert any("【新线索】" in m and "微信客服" in m and "想问下矿泉水批发价" in m for m in told), told


async def test_a_first_archived_conversation_is_the_members_lead_and_an_old_customer_is_not(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    h.rt.clock.set(NOON)  # type: ignore[attr-defined]
    old = await seed_follow(h.rt, "sales02", "wmOldArchive", name="老客户")
    async with h.rt.db.write() as conn:  # known for a month: not a newcomer
        await conn.execute(customers.update().where(customers.c.id == old).values(first_seen_at=NOON - dt.timedelta(days=30)))
    status, body = await h.api(
        "POST",
        "/archive/messages",
        json=[
            record("a1", "wmNewArchive", ["sales01"], "你好，朋友推荐来的，想订桶装水"),
            record("a2", "sales01", ["wmNewArchive"], "您好，马上给您报价"),
            record("a3", "wmOldArchive", ["sales02"], "老样子，下周再送 5 桶"),
            record("g1", "wmGroupOnly", ["sales01", "wmSomeone"], "群里问一下", room="wrRoom1"),
        ],
    )
    assert status == 200, body
    await h.settle()
    assert await all_leads(h) == [("archive", "sales01", "open", "会话存档", "你好，朋友推荐来的，想订桶装水")]
