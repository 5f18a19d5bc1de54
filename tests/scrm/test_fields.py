"""Field permissions (字段权限): customers' phone numbers shown, masked or hidden; credit limits editable, read-only or
hidden; purchase prices visible or hidden — per role, changed by the admin in the console, and the same on every
route: the enumeration below calls every GET of /api/v1 each role's token may call and checks every answer."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from fulfillment.orders import services as orders
from scrm.crm.customers.services import set_custom_fields
from scrm.crm.staff import accounts
from scrm.governance.fields import services as field_rules
from scrm.governance.fields.domain import mask_phone
from tests.conftest import SandboxHarness
from tests.scrm.test_sidebar import seed_follow
from tests.security.conftest import HTML, console_login

PHONE = "13812341234"
MASKED = "138****1234"


def test_phones_are_masked_in_text() -> None:
    assert mask_phone(f"手机 {PHONE}，座机 021-12345678，订单号 SO100001") == f"手机 {MASKED}，座机 021****5678，订单号 SO100001"
    assert mask_phone("1381234123456") == "1381234123456"  # a longer number is not a phone


async def seed(h: SandboxHarness) -> dict[str, str]:
    cid = await seed_follow(h.rt, "sales01", "wmField", name="周先生")
    async with h.rt.db.write() as conn:
        await set_custom_fields(conn, cid, {"电话": f"手机 {PHONE}", "门店": "南京路 1 号"}, h.rt.clock.now())
    order = await orders.create_order(
        h.rt, customer_id=cid, items=[("WATER-550", 1)], source="api", salesperson_userid="sales01", confirm=True
    )
    await h.api("PATCH", "/accounts/wmField", json={"credit_limit_fen": 1_000_000})
    status, lead = await h.api("POST", "/leads", json={"name": "周先生", "phone": PHONE})  # his number: his lead, sales01's
    assert status == 201, lead
    status, supplier = await h.api("POST", "/suppliers", json={"name": "水厂", "phone": "021-12345678"})
    status, po = await h.api(
        "POST", "/purchase-orders", json={"supplier_id": supplier["id"], "lines": [{"sku": "WATER-550", "qty": 5, "unit_cost_fen": 2100}]}
    )
    assert status == 201, po
    return {"order": order.number, "po": po["number"], "customer": str(cid)}


async def test_phone_numbers_by_role_and_as_the_admin_sets_them(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed(h)
    marketer = await h.staff_token("mkt", ["marketer"])
    finance = await h.staff_token("fin", ["finance"])
    assert (await h.as_token(marketer, "GET", "/customers/wmField"))[1]["custom_fields"]["电话"] == f"手机 {MASKED}"
    assert (await h.as_token(finance, "GET", "/customers/wmField"))[1]["custom_fields"]["电话"] == f"手机 {PHONE}"
    csrf = await console_login(h.client, h.rt.settings)
    page = await h.client.post("/console/field-permissions", data={"csrf_token": csrf, "marketer.phone": "hidden"}, headers=HTML)
    assert "已保存字段权限（1 项变更）" in await page.text()
    shown = (await h.as_token(marketer, "GET", "/customers/wmField"))[1]["custom_fields"]
    assert shown == {"电话": "手机 （已隐藏）", "门店": "南京路 1 号"}
    assert (await h.api("GET", "/audit?entity=field-permissions"))[1]["items"][0]["after"] == {"mode": "hidden"}
    with pytest.raises(Exception, match="管理员"):
        await field_rules.set_mode(h.rt, "admin", "phone", "masked")


async def test_credit_limits_read_only_or_hidden(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed(h)
    finance = await h.staff_token("fin", ["finance"])
    assert (await h.as_token(finance, "PATCH", "/accounts/wmField", json={"credit_limit_fen": 2_000_000}))[0] == 200
    await field_rules.set_mode(h.rt, "finance", "credit_limit", "read")
    status, body = await h.as_token(finance, "PATCH", "/accounts/wmField", json={"credit_limit_fen": 1})
    assert status == 403 and "信用额度" in body["error"]["message"]
    status, body = await h.as_token(finance, "PATCH", "/accounts/wmField", json={"terms_days": 15})  # the rest stays editable
    assert status == 200 and body["credit_limit_fen"] == 2_000_000 and body["terms_days"] == 15
    await field_rules.set_mode(h.rt, "finance", "credit_limit", "hidden")
    status, body = await h.as_token(finance, "GET", "/accounts/wmField")
    assert status == 200 and "credit_limit_fen" not in body


async def test_purchase_prices_hidden_from_a_role_everywhere(sandbox: SandboxHarness) -> None:
    h = sandbox
    seeded = await seed(h)
    await accounts.create_staff(h.rt, "ops", "correct horse 1", ["operations"])
    ops = await h.staff_token("ops2", ["operations"])
    await field_rules.set_mode(h.rt, "operations", "cost", "hidden")
    status, po = await h.as_token(ops, "GET", f"/purchase-orders/{seeded['po']}")
    assert status == 200 and po["total_fen"] is None and [ln["unit_cost_fen"] for ln in po["lines"]] == [None]
    resp = await h.client.post("/console/login", data={"username": "ops", "password": "correct horse 1"}, allow_redirects=False)
    assert resp.status == 303
    page = await (await h.client.get(f"/console/purchasing/{seeded['po']}", headers=HTML)).text()
    assert "21.00" not in page and "105.00" not in page and 'name="cost:' not in page


# ---- every GET route, every role -------------------------------------------------------------------------------
def concrete(path: str, seeded: dict[str, str]) -> str:
    values = {
        "customer": "wmField",
        "external_userid": "wmField",
        "sku": "WATER-550",
        "id": "1",
        "run_id": "1",
        "customer_id": seeded["customer"],
    }
    number = seeded["po"] if path.startswith("/api/v1/purchase-orders") else seeded["order"]
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: number if m.group(1) == "number" else values.get(m.group(1), "1"), path)


def keys_and_strings(data: Any) -> tuple[list[tuple[str, Any]], list[str]]:
    pairs: list[tuple[str, Any]] = []
    strings: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            pairs.extend(item.items())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            strings.append(item)
    return pairs, strings


async def test_every_get_route_for_every_role_keeps_the_field_rules(sandbox: SandboxHarness) -> None:
    h = sandbox
    seeded = await seed(h)
    # make every rule bite somewhere a role can reach: operations see no prices, finance no credit limits
    await field_rules.set_mode(h.rt, "operations", "cost", "hidden")
    await field_rules.set_mode(h.rt, "finance", "credit_limit", "hidden")
    people = {
        "sales": await h.staff_token("sal", ["sales"], wecom_userid="sales01"),
        "marketer": await h.staff_token("mkt", ["marketer"]),
        "operations": await h.staff_token("ops", ["operations"]),
        "finance": await h.staff_token("fin", ["finance"]),
    }
    gets = sorted(
        {
            r.resource.canonical
            for r in h.client.app.router.routes()
            if r.method == "GET" and r.resource and r.resource.canonical.startswith("/api/v1/")
        }
    )
    assert len(gets) >= 40
    checked = 0
    for role, tok in people.items():
        modes = (await field_rules.matrix(h.rt))[role]
        for path in gets:
            resp = await h.client.get(concrete(path, seeded), headers={"Authorization": f"Bearer {tok}"})
            assert resp.status < 500, (role, path, resp.status)
            if resp.status != 200 or resp.content_type != "application/json":
                continue
            checked += 1
            pairs, strings = keys_and_strings(await resp.json())
            text = json.dumps(strings, ensure_ascii=False)
            if modes["phone"] != "visible":
                assert PHONE not in text, (role, path)
            if modes["cost"] == "hidden":
                assert all(v is None for k, v in pairs if k in ("unit_cost_fen",)), (role, path)
                if path.startswith("/api/v1/purchase"):
                    assert all(v is None for k, v in pairs if k == "total_fen"), (role, path)
            if modes["credit_limit"] == "hidden":
                assert not [k for k, _ in pairs if k in ("credit_limit_fen", "limit_fen")], (role, path)
    assert checked >= 40
    # and the other way round: the roles allowed to see them do
    assert PHONE in json.dumps((await h.as_token(people["sales"], "GET", "/customers/wmField"))[1], ensure_ascii=False)
