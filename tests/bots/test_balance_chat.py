"""账单 / 欠款 / 还欠多少 through the dialogue, and billing notices (dunning, credit hold) reaching people through
the sandbox WeCom emulator — on real SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from bots.dialogue import balance as balance_intent
from bots.notices import billing as billing_notices
from fulfillment.billing import payments, receivables, services
from fulfillment.billing.models import dunning_notices
from fulfillment.orders import services as orders
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customer_identities
from tests.bots.test_dialog import Chat
from tests.conftest import SandboxHarness, make_customer
from tests.fulfillment.test_billing import ship_and_invoice

assert balance_intent.balance and billing_notices.on_dunning  # register the intent and the handlers


async def test_no_open_invoices_is_a_friendly_answer(catalog: Runtime) -> None:
    chat = Chat(catalog, await make_customer(catalog, "wmBal0"))
    assert "没有未结账单" in await chat.say("账单")
    assert "发送“账单”" in await chat.say("帮助")


async def test_balance_oldest_due_date_and_overdue(catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmBal")
    chat = Chat(rt, cid)
    old = await ship_and_invoice(rt, cid, [("WATER-550", 2)])  # ¥72, cash: due 2026-11-23
    await services.set_account(rt, cid, terms_days=30)
    clock.advance(days=5)
    await ship_and_invoice(rt, cid, [("COLA-330", 1)])  # ¥52.80, due 2026-12-28
    await payments.record_payment(rt, customer_id=cid, amount_fen=1200, reference="BAL-1")  # old: ¥60 left
    someone = await make_customer(rt, "wmBalOther")
    await ship_and_invoice(rt, someone, [("OIL-5L", 1)])  # never shown to wmBal

    for question in ("还欠多少", "我欠你们多少钱？", "欠款", "对账", "发个账单"):
        reply = await chat.say(question)
        assert "2 张未结账单，合计 ¥112.80" in reply, (question, reply)
        assert f"最早一张 {old.number} 的到期日是 2026-11-23（已逾期 5 天）" in reply
        assert "其中已逾期 ¥60.00" in reply
        assert "¥128.00" not in reply  # someone else's invoice
    await payments.record_payment(rt, customer_id=cid, amount_fen=11_280 + 500, reference="BAL-2")
    reply = await chat.say("账单")
    assert "没有未结账单" in reply and "预付余额 ¥5.00" in reply


async def test_confirmed_orders_not_yet_billed_are_mentioned(catalog: Runtime) -> None:
    cid = await make_customer(catalog, "wmBalUnbilled")
    chat = Chat(catalog, cid)
    first = await orders.create_order(catalog, customer_id=cid, items=[("WATER-550", 2)], source="api", confirm=True)
    await orders.create_order(catalog, customer_id=cid, items=[("COLA-330", 1)], source="api")  # a draft: not owed
    reply = await chat.say("还欠多少")
    assert "没有未结账单" in reply and f"另有 1 张订单（{first.number}）共 ¥72.00 尚未开账单" in reply
    await ship_and_invoice(catalog, cid, [("OIL-5L", 1)])  # shipped and invoiced: a bill, not "to come"
    reply = await chat.say("账单")
    assert "1 张未结账单，合计 ¥128.00" in reply and f"另有 1 张订单（{first.number}）共 ¥72.00" in reply


async def test_ordering_is_not_mistaken_for_a_balance_question(catalog: Runtime) -> None:
    chat = Chat(catalog, await make_customer(catalog, "wmBalOrder"))
    assert "合计：¥108.00" in await chat.say("要3箱矿泉水")


async def test_dunning_reaches_the_customer_and_the_salesperson(sandbox: SandboxHarness) -> None:
    rt = sandbox.rt
    await sandbox.customer_says("wmDunChat", "你好")  # the kf window opens for 48 h
    async with rt.db.read() as conn:
        cid = (
            await conn.execute(sa.select(customer_identities.c.customer_id).where(customer_identities.c.value == "wmDunChat"))
        ).scalar_one()
    inv = await ship_and_invoice(rt, cid, [("WATER-550", 1)], salesperson="sales01")  # cash: due today
    await sandbox.settle()
    assert isinstance(rt.clock, FrozenClock)
    rt.clock.advance(days=1)
    assert await receivables.run_dunning(rt) == receivables.DunningRun(1, 1)  # d+1 sent, d-3 skipped
    await sandbox.settle()
    assert await receivables.run_dunning(rt) == receivables.DunningRun(0, 0)
    await sandbox.settle()
    reminders = [r for r in sandbox.replies("wmDunChat") if "付款提醒" in r]
    assert len(reminders) == 1
    assert f"账单 {inv.number}" in reminders[0] and "尚欠 ¥36.00" in reminders[0] and "已逾期 1 天" in reminders[0]
    staff = [m for m in sandbox.state.app_messages_to("sales01") if "【催款】" in m]
    assert len(staff) == 1 and "微信客服" in staff[0]
    async with rt.db.read() as conn:
        channel = (
            await conn.execute(
                sa.select(dunning_notices.c.channel).where(dunning_notices.c.invoice_id == inv.id, dunning_notices.c.level == "d+1")
            )
        ).scalar_one()
    assert channel == "kf"


async def test_credit_hold_alerts_the_salesperson(sandbox: SandboxHarness) -> None:
    rt = sandbox.rt
    sandbox.state.add_member("sales02", "销售二")  # WeCom refuses app messages to unknown userids
    cid = await make_customer(rt, "wmHoldChat")
    await services.set_account(rt, cid, credit_limit_fen=1000)
    held = await orders.create_order(rt, customer_id=cid, items=[("COLA-330", 1)], source="api", salesperson_userid="sales02", confirm=True)
    await sandbox.settle()
    alerts = [m for m in sandbox.state.app_messages_to("sales02") if "【信用额度】" in m]
    assert len(alerts) == 1 and held.number in alerts[0] and "额度 ¥10.00" in alerts[0]
    released = await receivables.release_hold(rt, held.number, actor="console:admin")
    await sandbox.settle()
    assert released.status == "confirmed"
    assert len([m for m in sandbox.state.app_messages_to("sales02") if "【信用额度】" in m]) == 1  # alerted once
