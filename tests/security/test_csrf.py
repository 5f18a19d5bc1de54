"""CSRF on every console POST form, enumerated from the router: without the token, with a wrong one, with another
session's token, or with the token somewhere other than the form body, the request is refused (403) and no row
in any table changes. Also: safe methods are safe (signed in, every console GET page leaves the database as is)."""

from __future__ import annotations

import re

import pytest
from aiohttp import FormData

from fulfillment.orders import services as orders
from scrm.console import auth as console_auth
from scrm.governance.audit.domain import is_export
from tests.conftest import make_customer
from tests.security.conftest import HTML, App, console_login, table_digest
from tests.security.test_route_inventory import concrete, routes

pytestmark = pytest.mark.security

NOT_FORMS = {"/console/login"}  # signs in; has no session yet (rate-limited instead, see test_login_limits)


async def seed(a: App) -> None:
    cid = await make_customer(a.rt, "wmCsrf")
    await orders.create_order(a.rt, customer_id=cid, items=[("WATER-550", 2)], source="api", confirm=True)


def console_posts(a: App) -> list[str]:
    return sorted(p for m, p in routes(a.client.app) if m == "POST" and p.startswith("/console") and p not in NOT_FORMS)


async def test_every_console_post_needs_the_sessions_csrf_token(app: App) -> None:
    await seed(app)
    c = app.client
    other_token = await console_login(c, app.settings)  # a first session: its token is "another session's"
    token = await console_login(c, app.settings)
    assert token != other_token
    posts = console_posts(app)
    assert len(posts) >= 35, posts
    before = await table_digest(app.rt)
    refused = 0
    for path in posts:
        url = concrete(path)
        fields = {"sku": "WATER-550", "qty": "1", "on_hand": "1", "carrier": "顺丰", "tracking_no": "SF1", "name": "x", "reason": "x"}
        variants: list[tuple[dict[str, str], object]] = [
            ({}, fields),
            ({}, {**fields, "csrf_token": ""}),
            ({}, {**fields, "csrf_token": token[:-2] + ("AA" if not token.endswith("AA") else "BB")}),
            ({}, {**fields, "csrf_token": other_token}),
            ({}, {**fields, "csrf_token": [token, token]}),
            ({"X-CSRF-Token": token}, fields),  # the console reads the form, not headers
        ]
        multipart = FormData()
        for k, v in fields.items():
            multipart.add_field(k, v)
        variants.append(({}, multipart))
        for headers, data in variants:
            if isinstance(data, dict) and isinstance(data.get("csrf_token"), list):
                body = "&".join(f"{k}={v}" for k, v in fields.items()) + f"&csrf_token=x&csrf_token={token}"
                resp = await c.post(
                    url, data=body, headers={**HTML, **headers, "Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False
                )
            else:
                resp = await c.post(url, data=data, headers={**HTML, **headers}, allow_redirects=False)
            text = await resp.text()
            assert resp.status == 403, (path, headers, resp.status, text[:200])
            assert "表单已失效" in text, (path, text[:200])
            refused += 1
        # The token in the query string is not the form's either.
        resp = await c.post(f"{url}?csrf_token={token}", data=fields, headers=HTML, allow_redirects=False)
        assert resp.status == 403, path
        # A JSON body carrying the token is not a form post.
        resp = await c.post(url, json={**fields, "csrf_token": token}, headers=HTML, allow_redirects=False)
        assert resp.status == 403, path
    assert await table_digest(app.rt) == before
    assert refused >= 7 * 35
    # The session still works and the right token is accepted (the 403s were about the token alone).
    resp = await c.post("/console/stock/receive", data={"csrf_token": token, "sku": "WATER-550", "qty": "1"}, allow_redirects=False)
    assert resp.status == 303
    assert await table_digest(app.rt) != before


async def test_a_token_dies_with_its_session(app: App) -> None:
    token = await console_login(app.client, app.settings)
    resp = await app.client.post("/console/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    before = await table_digest(app.rt)
    resp = await app.client.post(
        "/console/stock/receive", data={"csrf_token": token, "sku": "WATER-550", "qty": "1"}, allow_redirects=False
    )
    assert resp.status == 401  # not signed in any more
    # Replaying the old cookie with its token still works until expiry (stateless sessions), but a token minted
    # for one session id never matches another session.
    session, _ = console_auth.issue_session(app.settings, console_auth.Principal("admin", "admin"), app.rt.clock.now())
    assert not console_auth.check_csrf(app.settings, session, token)
    assert await table_digest(app.rt) == before


async def test_every_console_get_page_changes_nothing(app: App) -> None:
    await seed(app)
    c = app.client
    await console_login(c, app.settings)
    before = await table_digest(app.rt, exports=True)
    pages = sorted(p for m, p in routes(c.app) if m == "GET" and p.startswith("/console") and "static" not in p)
    assert len(pages) >= 30
    for path in pages:
        resp = await c.get(concrete(path), headers=HTML, allow_redirects=False)
        assert resp.status < 500, path
        if resp.content_type == "text/html":
            assert re.search(r"<form[^>]*method=\"post\"", await resp.text(), re.I) is None or "csrf_token" in await resp.text(), path
    after = await table_digest(app.rt, exports=True)
    # A page that hands out a file is an export, which the audit trail records (issue "Governance" §5): that row,
    # and nothing else, may be new.
    new_rows = sorted(set(after.pop("audit_log")) - set(before.pop("audit_log")))
    assert after == before
    exports = [p for p in pages if is_export(p)]
    assert len(new_rows) == len(exports) >= 3 and all("'export'" in r for r in new_rows), new_rows
