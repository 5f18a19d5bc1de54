"""The audit trail: append-only in the database, retention the only way out, every write of the console, the
sidebar and the API recorded as the person who made it (before → after where the service knows it), sign-ins and
exports too, refusals not at all; searchable over /api/v1/audit and on the console page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from scrm.core import audit
from scrm.core.audit import audit_log
from scrm.core.clock import FrozenClock
from scrm.core.jobs import JobContext
from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts
from scrm.governance.audit.domain import describe, wants_row
from scrm.governance.audit.jobs import audit_retention_cron
from tests.conftest import SandboxHarness
from tests.scrm.test_sidebar import seed_follow
from tests.security.conftest import HTML, console_login, sidebar_login


async def rows(rt: Runtime, **where: str) -> list[sa.Row[tuple[object, ...]]]:
    q = sa.select(audit_log).order_by(audit_log.c.id)
    for k, v in where.items():
        q = q.where(audit_log.c[k] == v)
    async with rt.db.read() as conn:
        return list((await conn.execute(q)).all())


async def test_the_trail_is_append_only_and_only_retention_removes_rows(rt: Runtime, clock: FrozenClock) -> None:
    old_day = clock.now()
    async with rt.db.write() as conn:
        await audit.record(
            conn, old_day, action="update", entity="products", entity_id="WATER-550", before={"price_fen": 1}, after={"price_fen": 2}
        )
    for statement in (audit_log.update().values(summary="改过了"), audit_log.delete()):
        with pytest.raises((IntegrityError, DBAPIError)):  # the database itself refuses (triggers, migration 0015)
            async with rt.db.write() as conn:
                await conn.execute(statement)
    assert len(await rows(rt)) == 1

    clock.advance(days=rt.settings.audit_retention_days - 1)
    async with rt.db.write() as conn:
        await audit.record(conn, clock.now(), action="create", entity="orders", entity_id="SO1")
    await audit_retention_cron(JobContext(rt, "cron:audit_retention", 1, 1))
    assert len(await rows(rt)) == 2  # not old enough yet
    clock.advance(days=2)
    await audit_retention_cron(JobContext(rt, "cron:audit_retention", 1, 1))
    assert [r.entity for r in await rows(rt)] == ["orders"]
    with pytest.raises((IntegrityError, DBAPIError)):  # the newer row is still protected
        async with rt.db.write() as conn:
            await conn.execute(audit_log.delete())


def test_a_route_reads_as_an_action_on_a_thing() -> None:
    assert describe("POST", "/api/v1/orders", {}, 201) == ("create", "orders", "")
    assert describe("POST", "/api/v1/orders/{number}/cancel", {"number": "SO1"}, 200) == ("cancel", "orders", "SO1")
    assert describe("PATCH", "/api/v1/products/{sku}", {"sku": "W"}, 200) == ("update", "products", "W")
    assert describe("DELETE", "/api/v1/customers/{external_userid}/tags/{tag_id}", {"external_userid": "wm", "tag_id": "3"}, 200) == (
        "delete",
        "customers",
        "wm",
    )
    assert describe("POST", "/console/products/{id}", {"id": "7"}, 303) == ("update", "products", "7")
    assert describe("POST", "/console/stock/receive", {}, 303) == ("receive", "stock", "")
    assert describe("POST", "/console/logout", {}, 303) == ("sign_out", "console", "")
    assert describe("GET", "/console/products/export.xlsx", {}, 200) == ("export", "products", "")
    assert describe("GET", "/api/v1/receivables/aging.csv", {}, 200) == ("export", "aging", "")
    assert describe("POST", "/sidebar/api/customers/{external_userid}/orders", {"external_userid": "wm"}, 201) == (
        "orders",
        "customers",
        "wm",
    )
    assert not wants_row("POST", "/api/v1/segments/preview") and not wants_row("GET", "/api/v1/orders")


async def test_console_sign_in_changes_exports_and_refusals(sandbox: SandboxHarness) -> None:
    h, c = sandbox, sandbox.client
    staff = await accounts.create_staff(h.rt, "fin.he", "correct horse 1", ["finance"])
    bad = await c.post("/console/login", data={"username": "fin.he", "password": "wrong password"}, allow_redirects=False)
    assert bad.status == 401
    csrf = await console_login(c, h.rt.settings)
    # a permission change, with before → after
    resp = await c.post(
        f"/console/staff/{staff.id}", data={"csrf_token": csrf, "display_name": "何会计", "role": ["finance", "operations"], "active": "1"}
    )
    assert resp.status == 200
    # a form the service refuses (quantity 0) records nothing; the same form done right records the receipt
    await c.post("/console/stock/receive", data={"csrf_token": csrf, "sku": "WATER-550", "qty": "0"})
    await c.post("/console/stock/receive", data={"csrf_token": csrf, "sku": "WATER-550", "qty": "5", "reference": "入库-9"})
    export = await c.get("/console/finance/aging.csv")
    assert export.status == 200

    trail = [(r.actor_kind, r.actor, r.action, r.entity) for r in await rows(h.rt)]
    expected = [
        ("system", "system", "create", "staff"),  # made outside any request (the test's set-up): the system acted
        ("anonymous", "fin.he", "sign_in_failed", "console"),
        ("admin", "admin", "sign_in", "console"),
        ("admin", "admin", "permission_change", "staff"),
        ("admin", "admin", "receive", "stock"),
        ("admin", "admin", "export", "aging"),
    ]
    assert trail == expected
    change = (await rows(h.rt, action="permission_change"))[0]
    assert change.before == {"display_name": "", "roles": ["finance"]}
    assert change.after == {"display_name": "何会计", "roles": ["operations", "finance"]}
    assert change.route == "POST /console/staff/{id}" and change.entity_id == str(staff.id) and change.ip == "127.0.0.1"
    receipt = (await rows(h.rt, action="receive"))[0]
    assert receipt.after == {"sku": "WATER-550", "qty": "5", "reference": "入库-9"}  # the form, CSRF token left out

    # the console page finds them; the filter narrows; the export of the trail is itself recorded
    page = await c.get("/console/audit", params={"entity": "staff"}, headers=HTML)
    text = await page.text()
    assert page.status == 200 and "权限变更" in text and "何会计" in text and "入库-9" not in text
    csv = await c.get("/console/audit/export.csv", params={"actor": "admin"})
    body = (await csv.read()).decode("utf-8-sig")
    assert csv.status == 200 and body.splitlines()[0].startswith("编号,时间") and "permission_change" in body
    assert [r.entity for r in await rows(h.rt, action="export")] == ["aging", "audit"]


async def test_the_sidebar_and_the_api_record_who_acted(sandbox: SandboxHarness) -> None:
    h, c = sandbox, sandbox.client
    await seed_follow(h.rt, "sales01", "wmAud")
    csrf = await sidebar_login(c, "sales01")
    resp = await c.post("/sidebar/api/customers/wmAud/notes", json={"body": "想要整箱的价格"}, headers={"X-CSRF-Token": csrf})
    assert resp.status < 300, await resp.text()
    status, order = await h.api("POST", "/orders", json={"customer": "wmAud", "lines": [{"sku": "WATER-550", "qty": 1}]})
    assert status == 201
    status, _ = await h.api("POST", f"/orders/{order['number']}/cancel", json={"reason": "客户改主意"})
    assert status == 200
    status, _ = await h.api("POST", "/orders", json={"customer": "wmAud", "lines": [{"sku": "NOPE", "qty": 1}]})
    assert status >= 400

    note = (await rows(h.rt, actor_kind="sidebar"))[0]
    assert (note.actor, note.entity, note.entity_id, note.after) == ("sales01", "customers", "wmAud", {"body": "想要整箱的价格"})
    status, found = await h.api("GET", f"/audit?entity=orders&id={order['number']}")
    assert status == 200 and [i["action"] for i in found["items"]] == ["cancel"]
    assert found["items"][0]["after"] == {"reason": "客户改主意"} and found["items"][0]["actor_kind"] == "admin"
    status, created = await h.api("GET", "/audit?entity=orders&action=create")
    assert len(created["items"]) == 1  # the refused order left no row
    status, body = await h.api("GET", "/audit?since=2026-13-01")
    assert status == 400 and body["error"]["details"]["field"] == "since"
    day = h.rt.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    status, today = await h.api("GET", f"/audit?since={day}&until={day}&limit=1")
    assert status == 200 and len(today["items"]) == 1 and today["next_before_id"] == today["items"][0]["id"]
    status, older = await h.api("GET", f"/audit?since={day}&until={day}&before_id={today['next_before_id']}")
    assert all(i["id"] < today["next_before_id"] for i in older["items"]) and older["items"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", note.ip)
