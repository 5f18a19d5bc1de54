"""Every route of the real app, in sandbox and in production mode, against an explicit allow-list of public routes.

A route not on the allow-list must refuse a request without credentials (and with the wrong kind of credentials:
a wrong bearer token, a sidebar cookie on the console, a console cookie on the sidebar) with 401/403 or a redirect
to a login page — never 2xx. Adding a new public route therefore fails here until it is added to ``PUBLIC`` on
purpose. The sandbox is mounted in sandbox mode only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from fulfillment.orders import services as orders
from scrm.console import auth as console_auth
from scrm.sidebar import auth as sidebar_auth
from tests.conftest import make_customer
from tests.security.conftest import HTML, App

pytestmark = pytest.mark.security

# (method, canonical path) that anyone may call. HEAD is checked like GET.
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/api/openapi.json"),  # the API's description (§4); it holds no data
        ("GET", "/callback/wecom"),  # signed by WeCom, checked in bots/gateway/web.py
        ("POST", "/callback/wecom"),
        ("GET", "/callback/mp"),
        ("POST", "/callback/mp"),
        ("GET", "/console/login"),
        ("POST", "/console/login"),
        ("GET", "/console/static"),  # stylesheet
        ("GET", "/favicon.ico"),  # the site icon (a static file)
        ("GET", "/sidebar"),  # → /sidebar/
        ("GET", "/sidebar/"),  # → WeCom OAuth when not signed in (the sidebar's login)
        ("GET", "/sidebar/oauth"),  # OAuth return; the code is checked with WeCom
        ("GET", "/sidebar/static/{name}"),
        ("GET", "/referral/posters/{token}.png"),  # a referral poster customers forward; its token is the code's random id
        ("GET", "/quotes/shared/{token}"),  # a quote's page the salesperson sends into the chat; the token is signed (HMAC)
        ("POST", "/quotes/shared/{token}/accept"),  # the customer accepts that quote (the signed token is the credential)
    }
)
SANDBOX_PREFIX = "/sandbox"  # the emulator: public by design, sandbox mode only

PARAMS = {
    "number": "SO100001",
    "sku": "WATER-550",
    "external_userid": "wmInventory",
    "chat_id": "wrInventory",
    "customer": "wmInventory",
    "name": "sidebar.js",
}


def routes(app: web.Application) -> Iterator[tuple[str, str]]:
    """(method, canonical path) of every route, sub-apps included."""
    seen: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        key = (route.method, resource.canonical)
        if key not in seen:
            seen.add(key)
            yield key


def public(method: str) -> str:
    return "GET" if method == "HEAD" else method


def concrete(path: str) -> str:
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: PARAMS.get(m.group(1), "1"), path)


def is_login_redirect(resp_status: int, location: str) -> bool:
    return resp_status in (302, 303) and (
        location.startswith("/console/login") or location.startswith(sidebar_auth.OAUTH_AUTHORIZE_URL) or "/oauth2/authorize" in location
    )


async def refuses(client: TestClient, method: str, path: str, headers: dict[str, str]) -> tuple[bool, str]:
    resp = await client.request(method, path, headers=headers, allow_redirects=False)
    body = await resp.read()
    ok = resp.status in (401, 403) or is_login_redirect(resp.status, resp.headers.get("Location", ""))
    if ok and method != "HEAD" and resp.status in (401, 403) and resp.content_type == "application/json":
        error = (await resp.json())["error"]
        ok = bool(error["code"] and error["message"])
    return ok, f"{method} {path} {headers} -> {resp.status} {body[:120]!r}"


def wrong_credentials(a: App) -> list[dict[str, str]]:
    now = a.rt.clock.now()
    _, console_cookie = console_auth.issue_session(a.settings, console_auth.Principal("admin", "admin"), now)
    _, sidebar_cookie = sidebar_auth.issue_session(a.settings, "sales01", now)
    return [
        {},
        HTML,
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {a.settings.admin_token.get()}"},
        # A valid cookie of the other surface (same secret, other key purpose) must not pass.
        {"Cookie": f"{console_auth.SESSION_COOKIE}={sidebar_cookie}", **HTML},
        {"Cookie": f"{sidebar_auth.SESSION_COOKIE}={console_cookie}"},
        # The API token as a console cookie or a sidebar cookie is nothing either.
        {"Cookie": f"{console_auth.SESSION_COOKIE}={a.settings.admin_token.get()}; {sidebar_auth.SESSION_COOKIE}=x.y"},
    ]


async def check_inventory(a: App, *, sandbox: bool) -> int:
    cid = await make_customer(a.rt, "wmInventory")
    await orders.create_order(a.rt, customer_id=cid, items=[("WATER-550", 1)], source="api", confirm=True)
    found = set(routes(a.client.app))
    assert found, "no routes?"
    stale = {r for r in PUBLIC if r not in {(public(m), p) for m, p in found}}
    assert not stale, f"allow-list names routes that do not exist: {stale}"
    sandbox_routes = {r for r in found if r[1].startswith(SANDBOX_PREFIX)}
    if sandbox:
        assert sandbox_routes, "the sandbox should be mounted in sandbox mode"
    else:
        assert not sandbox_routes, f"sandbox routes outside sandbox mode: {sandbox_routes}"
    checked = 0
    failures = []
    for method, path in sorted(found):
        if (public(method), path) in PUBLIC or path.startswith(SANDBOX_PREFIX):
            continue
        for headers in wrong_credentials(a):
            ok, what = await refuses(a.client, method, concrete(path), headers)
            if not ok:
                failures.append(what)
            checked += 1
    assert not failures, "\n".join(failures)
    return checked


async def test_every_route_but_the_allow_list_needs_auth_in_sandbox_mode(app: App) -> None:
    checked = await check_inventory(app, sandbox=True)
    assert checked > 1000  # ~180 routes x 7 credential variants


async def test_every_route_but_the_allow_list_needs_auth_in_production_mode(prod_app: App) -> None:
    checked = await check_inventory(prod_app, sandbox=False)
    assert checked > 1000
    c = prod_app.client
    for path in ("/sandbox/", "/sandbox/api/faults", "/sandbox/connect/oauth2/authorize", "/sidebar/static/jwxwork-sandbox.js"):
        assert (await c.get(path, allow_redirects=False)).status == 404, path
    assert (await c.get("/sidebar/?as=sales01", allow_redirects=False)).status == 404


async def test_public_routes_answer_without_data(app: App) -> None:
    """The allow-listed routes, unauthenticated, show nothing from the database."""
    c = app.client
    cid = await make_customer(app.rt, "wmSecretCustomer")
    await orders.create_order(app.rt, customer_id=cid, items=[("WATER-550", 1)], source="api", confirm=True)
    for path in ("/healthz", "/readyz", "/metrics", "/api/openapi.json", "/console/login", "/sidebar/oauth", "/callback/wecom"):
        resp = await c.get(path, allow_redirects=False)
        text = await resp.text()
        assert "wmSecretCustomer" not in text and "SO100001" not in text, path
    resp = await c.get("/sidebar/", allow_redirects=False)
    assert resp.status == 302 and "/oauth2/authorize" in resp.headers["Location"]
    # The console stylesheet directory serves files only, no listing and no path traversal.
    assert (await c.get("/console/static/", allow_redirects=False)).status in (403, 404)
    assert (await c.get("/console/static/../auth.py", allow_redirects=False)).status in (403, 404)
    assert (await c.get("/console/static/%2e%2e/auth.py", allow_redirects=False)).status in (403, 404)
    assert (await c.get("/sidebar/static/..%2fweb.py", allow_redirects=False)).status in (403, 404)


async def running_referral_campaign(app: App, template_id: int) -> int:
    from scrm.campaigns.referral.services import create_campaign

    now = app.rt.clock.now()
    data = {"name": "老带新", "goal": 3, "reward_template_id": template_id, "userids": ["sales01"], "status": "running"}
    return (await create_campaign(app.rt, {**data, "starts_at": now, "ends_at": now + dt.timedelta(days=7)})).id


async def own_quote(app: App, customer_id: int) -> Any:
    """A quote of sales01 for their customer (the sidebar's quote routes name one in their body)."""
    from scrm.sales.quotes.domain import LineRequest
    from scrm.sales.quotes.services import create_quote

    return await create_quote(app.rt, lines=[LineRequest("WATER-550", 1)], owner_userid="sales01", customer_id=customer_id)


async def test_a_salesperson_reaches_no_other_salespersons_customer_on_any_sidebar_route(app: App) -> None:
    """Every sidebar route that names a customer or a group (enumerated from the router) answers 403 for a
    customer or group of another salesperson, with valid bodies, and changes nothing; the owner gets 2xx."""
    from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms
    from scrm.campaigns.coupons.services import create_template
    from scrm.crm.tags.services import ensure_tag
    from tests.scrm.test_sidebar import seed_follow, seed_people
    from tests.security.conftest import sidebar_login, table_digest

    await seed_people(app.rt)
    mine = await seed_follow(app.rt, "sales01", "wmMine")
    await seed_follow(app.rt, "sales02", "wmTheirs", name="秘密客户")
    async with app.rt.db.write() as conn:
        tag_id = await ensure_tag(conn, app.rt.db.dialect, "重要客户", app.rt.clock.now())
    tpl = await create_template(app.rt, TemplateTerms(name="满100减10", rule=CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000)))
    bodies = {
        "tags": {"tag_id": tag_id, "op": "add"},
        "notes": {"body": "偷看"},
        "follow-ups": {"body": "偷看"},
        "orders": {"items": [{"sku": "WATER-550", "qty": 1}], "request_id": "own-req-00001"},
        "coupons": {"template_id": tpl.id, "request_id": "own-req-00002"},
        "referral-invitation": {"campaign_id": await running_referral_campaign(app, tpl.id)},
        "quote-link": {"quote_id": (await own_quote(app, mine)).id},
        "quote-acceptance": {"quote_id": (await own_quote(app, mine)).id},
    }
    targets = [
        (m, p) for m, p in routes(app.client.app) if p.startswith("/sidebar/api/") and ("{external_userid}" in p or "{chat_id}" in p)
    ]
    assert len(targets) >= 6
    csrf = await sidebar_login(app.client, "sales01")
    before = await table_digest(app.rt)
    for method, path in targets:
        if method == "HEAD":
            continue
        body = bodies.get(path.rsplit("/", 1)[-1], {}) if method == "POST" else None
        for theirs in ("wmTheirs", "wmNobody"):
            url = path.replace("{external_userid}", theirs).replace("{chat_id}", "wrTheirs")
            resp = await app.client.request(method, url, json=body, headers={sidebar_auth.CSRF_HEADER: csrf})
            text = await resp.text()
            assert resp.status == 403, (method, url, resp.status, text)
            assert "秘密" not in text
    assert await table_digest(app.rt) == before
    # The same requests for one's own customer work (so the 403s above are about ownership, not the bodies).
    for method, path in targets:
        if method == "HEAD" or "{chat_id}" in path:
            continue
        body = bodies.get(path.rsplit("/", 1)[-1], {}) if method == "POST" else None
        resp = await app.client.request(
            method, path.replace("{external_userid}", "wmMine"), json=body, headers={sidebar_auth.CSRF_HEADER: csrf}
        )
        assert resp.status in (200, 201), (method, path, await resp.text())
