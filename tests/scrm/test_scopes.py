"""Data scopes (数据范围): a salesperson sees their own customers, a lead their team's, finance everyone's — the same in
the API (lists, records, orders), the console (directory, record, picker, orders) and the sidebar; out of scope
answers exactly as unknown; a scope change is a permission change in the audit trail."""

from __future__ import annotations

import re

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from fulfillment.orders import services as orders
from scrm.core.audit import audit_log
from scrm.crm.staff import accounts
from scrm.crm.staff.services import upsert_salesperson
from tests.conftest import SandboxHarness
from tests.scrm.test_sidebar import seed_follow
from tests.security.conftest import HTML

PASSWORD = "correct horse 1"


async def seed(h: SandboxHarness) -> dict[str, str]:
    """张经理 (boss01) leads 王销售 (sales01) and 刘销售 (sales02); 孙销售 (sales03) is elsewhere. One customer and
    one order each for sales01, sales02 and sales03. Returns customer external_userid → order number."""
    now = h.rt.clock.now()
    async with h.rt.db.write() as conn:
        await upsert_salesperson(conn, h.rt.db.dialect, "boss01", now, name="张经理", active=True)
        for userid, name in (("sales01", "王销售"), ("sales02", "刘销售")):
            await upsert_salesperson(conn, h.rt.db.dialect, userid, now, name=name, leader_userid="boss01", active=True)
        await upsert_salesperson(conn, h.rt.db.dialect, "sales03", now, name="孙销售", active=True)
    numbers = {}
    for userid, ext, name in (("sales01", "wmMine", "甲客户"), ("sales02", "wmTeam", "乙客户"), ("sales03", "wmOther", "丙客户")):
        cid = await seed_follow(h.rt, userid, ext, name=name)
        order = await orders.create_order(
            h.rt, customer_id=cid, items=[("WATER-550", 1)], source="api", salesperson_userid=userid, confirm=True
        )
        numbers[ext] = order.number
    return numbers


async def directory(h: SandboxHarness, token: str) -> list[str]:
    status, page = await h.as_token(token, "GET", "/customers")
    assert status == 200, page
    return sorted(row["name"] for row in page["items"])


async def test_each_person_sees_their_scope_over_the_api(sandbox: SandboxHarness) -> None:
    h = sandbox
    numbers = await seed(h)
    own = await h.staff_token("li", ["sales"], wecom_userid="sales01")  # sales: own by default
    team = await h.staff_token("zhang", ["sales"], wecom_userid="boss01", data_scope="team")
    unbound = await h.staff_token("zhao", ["sales"])
    finance = await h.staff_token("he", ["finance"])  # other roles: all by default

    assert await directory(h, own) == ["甲客户"]
    assert await directory(h, team) == ["乙客户", "甲客户"]
    assert await directory(h, unbound) == []
    assert await directory(h, finance) == ["丙客户", "乙客户", "甲客户"]

    assert (await h.as_token(own, "GET", "/customers/wmMine"))[0] == 200
    status, body = await h.as_token(own, "GET", "/customers/wmTeam")
    unknown = await h.as_token(own, "GET", "/customers/wmNobody")
    assert status == unknown[0] == 404 and body["error"]["code"] == unknown[1]["error"]["code"]  # someone else's = unknown
    assert (await h.as_token(team, "GET", "/customers/wmTeam"))[0] == 200

    assert [o["number"] for o in (await h.as_token(own, "GET", "/orders?customer=wmMine"))[1]["items"]] == [numbers["wmMine"]]
    assert (await h.as_token(own, "GET", "/orders?customer=wmTeam"))[1]["items"] == []
    assert (await h.as_token(own, "GET", f"/orders/{numbers['wmTeam']}"))[0] == 404
    assert (await h.as_token(team, "GET", f"/orders/{numbers['wmTeam']}"))[0] == 200
    assert (await h.as_token(team, "GET", f"/orders/{numbers['wmOther']}"))[0] == 404
    resp = await h.client.post(f"/api/v1/orders/{numbers['wmOther']}/cancel", json={}, headers={"Authorization": f"Bearer {own}"})
    assert resp.status == 404  # nor can they act on it
    assert (await h.as_token(finance, "GET", f"/orders/{numbers['wmOther']}"))[0] == 200


async def console_login(c: TestClient, username: str) -> str:
    resp = await c.post("/console/login", data={"username": username, "password": PASSWORD}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await c.get("/console/approvals", headers=HTML)
    match = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert match
    return match.group(1)


async def test_the_console_shows_the_same_scope(sandbox: SandboxHarness) -> None:
    h, c = sandbox, sandbox.client
    numbers = await seed(h)
    await accounts.create_staff(h.rt, "li", PASSWORD, ["sales", "operations"], wecom_userid="sales01", data_scope="own")
    csrf = await console_login(c, "li")
    listed = await (await c.get("/console/customers", headers=HTML)).text()
    assert "甲客户" in listed and "乙客户" not in listed and "丙客户" not in listed
    mine = await (await c.get("/console/customers", params={"q": "wmMine"}, headers=HTML)).text()
    assert "甲客户" in mine
    async with h.rt.db.read() as conn:
        other_id = (await conn.execute(sa.text("SELECT customer_id FROM customer_identities WHERE value = 'wmOther'"))).scalar_one()
    assert (await c.get(f"/console/customers/{other_id}", headers=HTML)).status == 404
    refused = await c.post(f"/console/customers/{other_id}/notes", data={"csrf_token": csrf, "body": "偷看"}, headers=HTML)
    assert "没有这个客户" in await refused.text()
    picked = await (await c.get("/console/customers/pick", params={"q": "客户"})).json()
    assert [p["name"] for p in picked["items"]] == ["甲客户"]
    order_list = await (await c.get("/console/orders", headers=HTML)).text()
    assert numbers["wmMine"] in order_list and numbers["wmTeam"] not in order_list and numbers["wmOther"] not in order_list
    assert (await c.get(f"/console/orders/{numbers['wmOther']}", headers=HTML)).status == 404
    cancel = await c.post(f"/console/orders/{numbers['wmOther']}/cancel", data={"csrf_token": csrf, "reason": "x"}, headers=HTML)
    assert "没有找到订单" in await cancel.text()
    assert (await h.api("GET", f"/orders/{numbers['wmOther']}"))[1]["status"] == "confirmed"


async def test_a_scope_change_is_a_permission_change_in_the_trail(sandbox: SandboxHarness) -> None:
    h = sandbox
    user = await accounts.create_staff(h.rt, "li", PASSWORD, ["sales"], wecom_userid="sales01")
    assert user.data_scope == "own"
    await accounts.update_staff(h.rt, user.id, data_scope="team")
    async with h.rt.db.read() as conn:
        row = (await conn.execute(sa.select(audit_log).where(audit_log.c.action == "permission_change"))).one()
    assert (row.before, row.after) == ({"data_scope": "own"}, {"data_scope": "team"})


async def test_every_route_about_one_customer_keeps_to_the_scope(sandbox: SandboxHarness) -> None:
    """Routes naming a customer in their path (tags here; coupons, RFM, accounts alike) answer as unknown outside."""
    h = sandbox
    await seed(h)
    own = await h.staff_token("li", ["sales"], wecom_userid="sales01")
    status, tag = await h.api("POST", "/tags", json={"name": "意向强", "mirror": False})
    assert status == 201
    headers = {"Authorization": f"Bearer {own}"}
    mine = await h.client.post("/api/v1/customers/wmMine/tags", json={"tag_id": tag["id"]}, headers=headers)
    assert mine.status == 200, await mine.text()
    theirs = await h.client.post("/api/v1/customers/wmTeam/tags", json={"tag_id": tag["id"]}, headers=headers)
    assert theirs.status == 404 and (await theirs.json())["error"]["code"] == "not_found"
    gone = await h.client.delete(f"/api/v1/customers/wmOther/tags/{tag['id']}", headers=headers)
    assert gone.status == 404
    status, record = await h.api("GET", "/customers/wmTeam")
    assert [t["name"] for t in record["tags"]] == []  # nothing reached the other salesperson's customer


async def test_invoices_and_payments_keep_to_the_scope(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed(h)
    for ext, ref in (("wmMine", "P-mine"), ("wmOther", "P-other")):
        status, _ = await h.api("POST", "/payments", json={"customer": ext, "amount_fen": 500, "reference": ref, "method": "bank"})
        assert status == 201
    scoped = await h.staff_token("he", ["finance"], wecom_userid="sales01", data_scope="own")
    everyone = await h.staff_token("qian", ["finance"])
    status, mine = await h.as_token(scoped, "GET", "/payments")
    assert status == 200 and [p["reference"] for p in mine["items"]] == ["P-mine"]
    assert len((await h.as_token(everyone, "GET", "/payments"))[1]["items"]) == 2
    assert (await h.as_token(scoped, "GET", "/payments?customer=wmOther"))[0] == 404
    assert (await h.as_token(scoped, "GET", "/invoices?customer=wmOther"))[0] == 404
    assert (await h.as_token(scoped, "GET", "/invoices?customer=wmMine"))[0] == 200
