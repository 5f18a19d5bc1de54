"""The customer pool (客户公海): a customer their salesperson has not followed up (no follow-up, no order) for the
pool's customer period goes to the pool as a lead; a colleague who claims it takes the customer over through WeCom's
on-job transfer (the customer may refuse); the previous salesperson waits like for any lead."""

from __future__ import annotations

import sqlalchemy as sa

from fulfillment.orders import services as orders
from scrm.core.jobs import JobContext
from scrm.crm.customers.models import follows
from scrm.sales.followups.jobs import customer_pool_cron
from scrm.sales.leads.models import leads
from tests.conftest import SandboxHarness
from tests.sales.test_leads import people
from tests.scrm.test_sidebar import seed_follow


async def pooled(h: SandboxHarness) -> list[tuple[int | None, str, str | None, str]]:
    async with h.rt.db.read() as conn:
        rows = await conn.execute(sa.select(leads).order_by(leads.c.id))
        return [(r.customer_id, r.status, r.pooled_from, r.source) for r in rows]


async def test_an_idle_customer_goes_to_the_pool_and_a_claim_starts_their_transfer(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    await h.api(
        "PUT", "/lead-pool", json={"return_after_days": 15, "claim_daily_cap": 5, "reclaim_block_days": 7, "customer_return_after_days": 30}
    )
    idle = await seed_follow(h.rt, "sales01", "wmIdle", name="沉睡客户")
    followed = await seed_follow(h.rt, "sales01", "wmFollowed", name="常联系")
    bought = await seed_follow(h.rt, "sales01", "wmBought", name="常下单")
    h.rt.clock.advance(days=25)
    wang = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    status, _ = await h.as_token(wang, "POST", "/follow-ups", json={"customer_id": followed, "body": "回访"})
    assert status == 201
    await orders.create_order(h.rt, customer_id=bought, items=[("WATER-550", 1)], source="api", salesperson_userid="sales01", confirm=True)
    h.rt.clock.advance(days=6)  # 31 days since they were added; the other two were touched 6 days ago
    ctx = JobContext(h.rt, "test", 1, 1)
    await customer_pool_cron(ctx)
    await customer_pool_cron(ctx)  # twice: one pool lead
    assert await pooled(h) == [(idle, "pool", "sales01", "recycle")]
    lead_id = (await h.api("GET", "/leads?status=pool"))[1]["items"][0]["id"]
    # The previous salesperson may not take them back at once; a colleague may.
    status, err = await h.as_token(wang, "POST", f"/leads/{lead_id}/claim")
    assert status == 409 and "7 天内不能再领取" in err["error"]["message"]
    liu = await h.staff_token("liu", ["sales"], wecom_userid="sales02", data_scope="own")
    status, lead = await h.as_token(liu, "POST", f"/leads/{lead_id}/claim")
    assert (status, lead["owner"]) == (200, "sales02"), lead
    status, handovers = await h.api("GET", "/handovers")
    [handover] = handovers["items"]
    assert (handover["from"], handover["to"], handover["kind"]) == ("sales01", "sales02", "onjob"), handover
    async with h.rt.db.read() as conn:
        still = (
            (await conn.execute(sa.select(follows.c.userid).where(follows.c.customer_id == idle, follows.c.status == "active")))
            .scalars()
            .all()
        )
    assert still == ["sales01"]  # WeCom moves them after its 24 h (unless they refuse): the handover's to follow


async def test_the_customer_pool_is_off_until_the_admin_sets_a_period(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    await seed_follow(h.rt, "sales01", "wmIdle", name="沉睡客户")
    h.rt.clock.advance(days=400)
    await customer_pool_cron(JobContext(h.rt, "test", 1, 1))
    assert await pooled(h) == []
    assert (await h.api("GET", "/lead-pool"))[1]["customer_return_after_days"] == 0
    status, err = await h.api(
        "PUT", "/lead-pool", json={"return_after_days": 15, "claim_daily_cap": 5, "reclaim_block_days": 7, "customer_return_after_days": -3}
    )
    assert status == 400 and "customer_return_after_days 超出范围" in err["error"]["message"], err
