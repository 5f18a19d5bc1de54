"""The sidebar's home, 我的一天: a salesperson's follow-ups due, repurchase alerts, untouched new leads and the
overdue invoices of their customers — and only theirs; follow-ups recorded from the chat's sidebar."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from fulfillment.billing import invoices
from fulfillment.orders.models import orders
from scrm.sales.repurchase import services as repurchase
from scrm.sidebar import auth
from tests.conftest import SandboxHarness
from tests.sales.test_leads import people, post_lead
from tests.sales.test_repurchase import regular_customer
from tests.scrm.test_sidebar import seed_follow
from tests.security.conftest import sidebar_login


async def test_my_day_has_what_is_mine_to_do_today(sandbox: SandboxHarness) -> None:
    h, c = sandbox, sandbox.client
    await people(h)
    cid, last = await regular_customer(h)  # 甲客户 buys water every 10 days from sales01
    other = await seed_follow(h.rt, "sales03", "wmOther", name="丙客户")
    async with h.rt.db.read() as conn:
        first_order = (
            (await conn.execute(sa.select(orders.c.id).where(orders.c.customer_id == cid).order_by(orders.c.id))).scalars().first()
        )
    assert await invoices.invoice_order(h.rt, first_order) is not None
    h.rt.clock.set(last + dt.timedelta(days=7))  # type: ignore[attr-defined]
    await repurchase.recompute(h.rt)
    await post_lead(h, name="新来的", phone="13900001234", remark="问价格", owner="sales01")
    await post_lead(h, name="别人的", phone="13900005678", owner="sales03")

    csrf = await sidebar_login(c, "sales01")
    headers = {auth.CSRF_HEADER: csrf}
    resp = await c.post(
        "/sidebar/api/customers/wmRegular/follow-ups",
        json={"kind": "wechat", "body": "提醒下周补货", "next_contact_on": (last + dt.timedelta(days=7)).date().isoformat()},
        headers=headers,
    )
    assert resp.status == 201, await resp.text()
    resp = await c.post("/sidebar/api/customers/wmOther/follow-ups", json={"body": "偷看"}, headers=headers)
    assert resp.status == 403
    resp = await c.post("/sidebar/api/customers/wmRegular/follow-ups", json={"body": "x", "next_contact_on": "明天"}, headers=headers)
    assert resp.status == 400 and "年-月-日" in (await resp.json())["error"]["message"]

    day = await (await c.get("/sidebar/api/home")).json()
    assert [(f["subject"], f["about"], f["overdue_days"]) for f in day["follow_ups"]] == [("甲客户", "customer", 0)]
    assert [(a["kind"], a["customer_name"]) for a in day["repurchase"]] == [("due", "甲客户")]
    assert [lead["label"] for lead in day["leads"]] == ["新来的"] and day["leads_total"] == 1
    [invoice] = day["overdue_invoices"]
    assert invoice["customer_name"] == "甲客户" and invoice["days_overdue"] > 0
    assert "别人的" not in str(day) and "丙客户" not in str(day) and other not in [i["customer_id"] for i in day["overdue_invoices"]]

    history = await (await c.get("/sidebar/api/customers/wmRegular/follow-ups")).json()
    assert [f["body"] for f in history["follow_ups"]] == ["提醒下周补货"] and history["kinds"]["wechat"] == "微信沟通"
    resp = await c.post(f"/sidebar/api/follow-ups/{day['follow_ups'][0]['id']}/done", json={}, headers=headers)
    assert resp.status == 200
    assert (await (await c.get("/sidebar/api/home")).json())["follow_ups"] == []
