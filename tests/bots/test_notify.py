"""Notices choose the channel that can reach the customer, and record every outcome."""

from __future__ import annotations

import sqlalchemy as sa

from bots.notices.orders import notify_customer
from bots.outbound.models import outbound_messages
from scrm.crm.customers.models import customer_identities
from tests.conftest import SandboxHarness, make_customer


async def outcomes(h: SandboxHarness) -> list[tuple[str, str, str | None]]:
    async with h.rt.db.read() as conn:
        rows = await conn.execute(sa.select(outbound_messages).order_by(outbound_messages.c.id))
        return [(r.channel, r.status, r.error_message) for r in rows]


async def test_kf_while_the_window_is_open(sandbox: SandboxHarness) -> None:
    await sandbox.customer_says("wmKf", "你好")
    async with sandbox.rt.db.read() as conn:
        cid = (await conn.execute(sa.select(customer_identities.c.customer_id).where(customer_identities.c.value == "wmKf"))).scalar_one()
    assert await notify_customer(sandbox.rt, customer_id=cid, text="您的订单已发货", key="t1") == "kf"
    assert sandbox.replies("wmKf")[-1] == "您的订单已发货"


async def test_official_account_template_when_kf_window_closed(sandbox: SandboxHarness) -> None:
    await sandbox.customer_says("wmOld", "你好")
    sandbox.rt.clock.advance(hours=49)  # type: ignore[attr-defined]
    async with sandbox.rt.db.write() as conn:
        cid = (await conn.execute(sa.select(customer_identities.c.customer_id).where(customer_identities.c.value == "wmOld"))).scalar_one()
        await conn.execute(
            customer_identities.insert().values(customer_id=cid, kind="openid", value="oOld", created_at=sandbox.rt.clock.now())
        )
    sandbox.state.add_follower("oOld")
    assert await notify_customer(sandbox.rt, customer_id=cid, text="您的订单已发货", key="t2") == "mp_template"
    assert any(t.get("touser") == "oOld" for t in sandbox.state.templates_sent)
    assert len(sandbox.replies("wmOld")) == 1  # nothing more was pushed into the closed kf session


async def test_salesperson_task_when_the_bot_cannot_write(sandbox: SandboxHarness) -> None:
    cid = await make_customer(sandbox.rt, "wmQuiet")
    sandbox.state.add_customer("wmQuiet", "安静的客户", followers=["sales01"])
    channel = await notify_customer(sandbox.rt, customer_id=cid, text="您的订单已发货", key="t3", salesperson_userid="sales01")
    assert channel == "msg_template"
    assert [(c, s) for c, s, _ in await outcomes(sandbox)] == [("msg_template", "awaiting_salesperson"), ("wecom_app", "sent")]
    assert any("确认发送" in m for m in sandbox.state.app_messages_to("sales01"))


async def test_unreachable_is_recorded_not_lost(sandbox: SandboxHarness) -> None:
    cid = await make_customer(sandbox.rt, "wmNobodyReaches")
    assert await notify_customer(sandbox.rt, customer_id=cid, text="通知", key="t4") == "none"
    [(channel, status, reason)] = await outcomes(sandbox)
    assert (channel, status) == ("none", "skipped") and "no channel" in (reason or "")
