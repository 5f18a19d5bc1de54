"""Every console page and every /api/v1 GET a scoped person may open, checked for someone else's customer (name,
external_userid, order number): the data scope holds on every route, not only on the ones written for it."""

from __future__ import annotations

import pytest

from fulfillment.orders import services as orders
from scrm.crm.staff import accounts
from tests.conftest import SandboxHarness
from tests.scrm.test_sidebar import seed_follow
from tests.security.conftest import HTML
from tests.security.test_route_inventory import concrete, routes


async def seed_lead_of_another(h: SandboxHarness) -> None:
    """丙客户's lead (线索 #1, sales03's: they serve the customer) with a follow-up by sales03."""
    status, lead = await h.api("POST", "/leads", json={"name": "丙客户隐私", "external_userid": "wmOther", "phone": "13900009999"})
    assert (status, lead["id"], lead["owner"]) == (201, 1, "sales03"), lead
    sun = await h.staff_token("sun", ["sales"], wecom_userid="sales03", data_scope="own")
    status, made = await h.as_token(
        sun, "POST", "/follow-ups", json={"lead_id": 1, "body": "丙客户隐私的跟进", "next_contact_on": "2026-11-23"}
    )
    assert (status, made["id"]) == (201, 1), made


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_no_console_page_shows_a_customer_outside_the_scope(sandbox: SandboxHarness) -> None:
    h, c = sandbox, sandbox.client
    for userid, ext, name in (("sales01", "wmMine", "甲客户"), ("sales03", "wmOther", "丙客户隐私")):
        cid = await seed_follow(h.rt, userid, ext, name=name)
        await orders.create_order(h.rt, customer_id=cid, items=[("WATER-550", 1)], source="api", salesperson_userid=userid, confirm=True)
    await seed_lead_of_another(h)
    await accounts.create_staff(h.rt, "li", "correct horse 1", ["sales", "operations"], wecom_userid="sales01", data_scope="own")
    resp = await c.post("/console/login", data={"username": "li", "password": "correct horse 1"}, allow_redirects=False)
    assert resp.status == 303
    leaks = []
    for method, path in routes(c.app):
        if method != "GET" or not path.startswith("/console") or "static" in path:
            continue
        page = await c.get(concrete(path), headers=HTML, allow_redirects=False)
        body = await page.read()
        if page.status == 200 and "丙客户隐私".encode() in body:
            leaks.append(path)
    assert leaks == []


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_no_api_answer_shows_a_customer_outside_the_scope(sandbox: SandboxHarness) -> None:
    h = sandbox
    numbers = {}
    for userid, ext, name in (("sales01", "wmMine", "甲客户"), ("sales03", "wmOther", "丙客户隐私")):
        cid = await seed_follow(h.rt, userid, ext, name=name)
        placed = await orders.create_order(
            h.rt, customer_id=cid, items=[("WATER-550", 1)], source="api", salesperson_userid=userid, confirm=True
        )
        numbers[ext] = placed.number
    await seed_lead_of_another(h)
    await h.customer_says("wmOther", "丙客户隐私的消息")  # inbound events and replies about them exist too
    token = await h.staff_token("li", ["sales", "operations"], wecom_userid="sales01", data_scope="own")
    leaks = []
    for method, path in routes(h.client.app):
        if method != "GET" or not path.startswith("/api/v1"):
            continue
        url = concrete(path).replace("SO100001", numbers["wmOther"]).replace("wmInventory", "wmOther")
        status, body = await h.as_token(token, "GET", url.removeprefix("/api/v1"))
        text = str(body)
        if status == 200 and ("丙客户隐私" in text or "wmOther" in text or numbers["wmOther"] in text):
            leaks.append(path)
    assert leaks == []
