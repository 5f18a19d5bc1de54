"""Per-person API tokens over HTTP: made by the admin or by their owner, shown once, bounded by scopes and the
owner's current roles, refused at once when revoked, expired or when the owner leaves; every area reachable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from config import Settings
from scrm.app.webapp import create_app
from scrm.core.audit import audit_log
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts
from scrm.governance.tokens.domain import AREAS, area_of
from scrm.governance.tokens.models import api_tokens
from tests.conftest import make_customer

ORDERS = "/orders?customer=wmTok"  # a read in the orders area


@pytest.fixture
async def client(settings: Settings, catalog: Runtime) -> AsyncIterator[TestClient]:
    await make_customer(catalog, "wmTok")
    async with TestClient(TestServer(create_app(settings, runtime=catalog))) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(c: TestClient, method: str, path: str, token: str, **kw: Any) -> tuple[int, Any]:
    resp = await c.request(method, "/api/v1" + path, headers=bearer(token), **kw)
    return resp.status, await resp.json()


async def make_token(c: TestClient, settings: Settings, staff: str, **body: Any) -> dict[str, Any]:
    status, made = await call(c, "POST", "/tokens", settings.admin_token.get(), json={"name": "脚本", "staff": staff, **body})
    assert status == 201, made
    return made


async def test_a_token_acts_as_its_owner_within_its_scopes(client: TestClient, settings: Settings, catalog: Runtime) -> None:
    await accounts.create_staff(catalog, "ops.wang", "correct horse 1", ["operations"])
    made = await make_token(client, settings, "ops.wang", scopes=["orders:read", "catalog:write"])
    token = made["token"]
    assert token.startswith("scrm_") and made["shown_prefix"] == token[:12] and made["scopes"] == ["catalog:write", "orders:read"]
    assert made["status"] == "active" and made["created_by"] == "admin"

    assert (await call(client, "GET", ORDERS, token))[0] == 200
    assert (await call(client, "PATCH", "/products/WATER-550", token, json={"reorder_point": 7}))[0] == 200
    status, body = await call(client, "POST", "/orders", token, json={"customer": "wmTok", "lines": [{"sku": "WATER-550", "qty": 1}]})
    assert status == 403 and body["error"]["code"] == "forbidden" and "orders:write" in body["error"]["message"]
    status, body = await call(client, "GET", "/invoices", token)  # billing: neither in the scopes nor in the role
    assert status == 403 and "应收与收款" in body["error"]["message"]
    assert (await call(client, "GET", "/audit", token))[0] == 403
    assert (await call(client, "GET", "/inbound-events", token))[0] == 403  # ops:read is the role's, not the token's

    # the change is recorded as the owner, through that token, with before → after
    async with catalog.db.read() as conn:
        rows = (await conn.execute(sa.select(audit_log).where(audit_log.c.entity == "products"))).all()
    assert [(r.actor_kind, r.actor, r.token_id, r.before, r.after) for r in rows] == [
        ("token", "ops.wang", made["id"], {"reorder_point": None}, {"reorder_point": 7})
    ]
    assert rows[0].route == "PATCH /api/v1/products/{sku}"


async def test_scopes_beyond_the_owners_roles_are_refused_and_nothing_is_made(
    client: TestClient, settings: Settings, catalog: Runtime
) -> None:
    await accounts.create_staff(catalog, "mkt.zhao", "correct horse 1", ["marketer"])
    admin = settings.admin_token.get()
    cases = [
        ({"scopes": ["billing:read"]}, "令牌不能超出本人角色的权限"),
        ({"scopes": ["catalog:write"]}, "令牌不能超出本人角色的权限"),  # marketers may read the catalog, not change it
        ({"scopes": ["orders:delete"]}, "不存在"),
        ({"scopes": []}, "至少选择一个"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"name": "  "}, "name"),
    ]
    for extra, words in cases:
        status, body = await call(client, "POST", "/tokens", admin, json={"name": "x", "staff": "mkt.zhao", **extra})
        assert status == 400 and words in body["error"]["message"], (extra, body)
    status, body = await call(client, "POST", "/tokens", admin, json={"name": "x"})
    assert status == 400 and body["error"]["details"]["field"] == "staff"
    status, body = await call(client, "POST", "/tokens", admin, json={"name": "x", "staff": "nobody"})
    assert status == 404
    async with catalog.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(api_tokens))).scalar() == 0
    made = await make_token(client, settings, "mkt.zhao")  # no scopes given: everything the role allows
    assert made["scopes"] == [
        "approvals:write",
        "catalog:read",
        "customers:write",
        "marketing:write",
        "tokens:write",
    ]  # write includes read


async def test_revoked_expired_and_departed_tokens_are_refused_at_once(
    client: TestClient, settings: Settings, catalog: Runtime, clock: FrozenClock
) -> None:
    ops = await accounts.create_staff(catalog, "ops.li", "correct horse 1", ["operations"])
    fin = await accounts.create_staff(catalog, "fin.qian", "correct horse 1", ["finance"])
    revoked = (await make_token(client, settings, "ops.li"))["token"]
    short = (await make_token(client, settings, "ops.li", expires_in_days=1))["token"]
    never = await make_token(client, settings, "ops.li", expires_in_days=None)
    assert never["expires_at"] is None
    finance = (await make_token(client, settings, "fin.qian"))["token"]

    assert (await call(client, "GET", ORDERS, revoked))[0] == 200
    listed = {t["name"]: t for t in (await call(client, "GET", "/tokens", revoked))[1]["items"]}
    first = min(t["id"] for t in listed.values())
    status, body = await call(client, "DELETE", f"/tokens/{first}", settings.admin_token.get())
    assert status == 200 and body["status"] == "revoked"
    status, body = await call(client, "GET", ORDERS, revoked)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert (await call(client, "DELETE", f"/tokens/{first}", settings.admin_token.get()))[0] == 200  # again: no change

    clock.advance(days=1, seconds=1)
    assert (await call(client, "GET", ORDERS, short))[0] == 401
    assert (await call(client, "GET", ORDERS, never["token"]))[0] == 200

    # the owner's roles are read on every call: finance → operations takes billing away from the token at once
    assert (await call(client, "GET", "/invoices", finance))[0] == 200
    await accounts.update_staff(catalog, fin.id, roles=["operations"])
    assert (await call(client, "GET", "/invoices", finance))[0] == 403
    await accounts.deactivate_staff(catalog, ops.id)  # left the company
    assert (await call(client, "GET", ORDERS, never["token"]))[0] == 401
    for junk in ("scrm_" + "x" * 43, "scrm_short", "", settings.admin_token.get() + "x"):
        assert (await client.get("/api/v1" + ORDERS, headers=bearer(junk))).status == 401


async def test_a_person_manages_only_their_own_tokens(client: TestClient, settings: Settings, catalog: Runtime) -> None:
    await accounts.create_staff(catalog, "ops.li", "correct horse 1", ["operations"])
    await accounts.create_staff(catalog, "ops.sun", "correct horse 1", ["operations"])
    li = await make_token(client, settings, "ops.li", scopes=["tokens:write", "orders:read"])
    sun = await make_token(client, settings, "ops.sun")
    status, mine = await call(client, "POST", "/tokens", li["token"], json={"name": "第二个", "scopes": ["orders:read"]})
    assert status == 201 and mine["staff"] == "ops.li" and mine["created_by"] == "ops.li"
    status, body = await call(client, "POST", "/tokens", li["token"], json={"name": "冒名", "staff": "ops.sun"})
    assert status == 403 and "只能为自己" in body["error"]["message"]
    status, body = await call(client, "POST", "/tokens", li["token"], json={"name": "越权", "scopes": ["billing:read"]})
    assert status == 400 and body["error"]["details"]["field"] == "scopes"
    status, listed = await call(client, "GET", "/tokens?staff=ops.sun", li["token"])
    assert status == 200 and {t["staff"] for t in listed["items"]} == {"ops.li"} and len(listed["items"]) == 2
    assert "token" not in listed["items"][0]  # the secret is never listed
    assert (await call(client, "DELETE", f"/tokens/{sun['id']}", li["token"]))[0] == 404
    assert (await call(client, "GET", ORDERS, sun["token"]))[0] == 200
    assert (await call(client, "DELETE", f"/tokens/{mine['id']}", li["token"]))[0] == 200


async def test_every_api_route_belongs_to_an_area(client: TestClient) -> None:
    """A route outside every area would be reachable by the bootstrap admin token only: each must be placed."""
    seen = 0
    for route in client.app.router.routes():
        resource = route.resource
        if resource is None or not resource.canonical.startswith("/api/v1/"):
            continue
        assert area_of(resource.canonical) in AREAS, resource.canonical
        seen += 1
    assert seen >= 90
