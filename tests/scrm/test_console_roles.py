"""Console authorisation per role, over every console route the real app mounts (enumerated from its router, not a
hand list): each route's guard admits exactly the roles :data:`access.ACCESS_BY_PREFIX` gives its page family (a
route outside every family, or mounted without the guard, fails here); then, per role, every route answered over
HTTP with a session of that role and its CSRF token — 403 with the role message for the roles outside, anything but
403 (and never a 5xx) for the roles inside; and the nav shows a role exactly the pages it may open."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scrm.app.webapp import create_app
from scrm.console import access, auth
from scrm.console.access import NAV
from scrm.core.runtime import Runtime
from scrm.crm.staff.domain import ROLE_ADMIN, ROLE_NAMES_ZH
from tests.conftest import make_settings

HTML = {"Accept": "text/html,application/xhtml+xml"}
ROLES = sorted(ROLE_NAMES_ZH)
PUBLIC = {"/console/login", "/console/static"}
PARAMS = {"number": "SO-NOPE-1", "id": "999999", "chat_id": "wrNoSuchChat", "customer_id": "999999"}


def console_routes(app: web.Application) -> list[tuple[str, str, object]]:
    """(method, canonical path, handler) of every signed-in console route (HEAD mirrors GET and is left out)."""
    out = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/console") and path not in PUBLIC and route.method != "HEAD":
            out.append((route.method, path, route.handler))
    return out


ROUTES = console_routes(create_app(make_settings()))  # collected once: the same factory the server uses


def concrete(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PARAMS.get(m.group(1), "999999"), path)


@pytest.mark.parametrize(("method", "path", "handler"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_console_route_has_its_familys_role_rule(method: str, path: str, handler: object) -> None:
    expected = access.roles_for_path(path)
    assert expected is not None, f"{method} {path}: no role rule — add its page family to access.ACCESS_BY_PREFIX"
    actual = auth.route_roles(handler)
    assert actual is not None, f"{method} {path}: mounted without auth.protected"
    assert actual == expected, f"{method} {path}: guard admits {sorted(actual)}, its family {sorted(expected)}"


def test_the_route_list_is_the_whole_console() -> None:
    paths = {p for _, p, _ in ROUTES}
    families = {"/console/orders", "/console/finance/receivables", "/console/coupons", "/console/broadcasts/{id}", "/console/staff"}
    assert families <= paths and len(ROUTES) > 60
    assert access.roles_for_path("/console/somewhere-new") is None  # a new family needs its rule


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(catalog.settings, runtime=catalog))) as c:
        yield c


def session_for(rt: Runtime, role: str) -> tuple[dict[str, str], str]:
    """A signed session cookie of ``role`` (as sign-in issues it) and its CSRF token."""
    principal = auth.Principal("admin" if role == ROLE_ADMIN else f"test-{role}", role)
    session, cookie = auth.issue_session(rt.settings, principal, rt.clock.now())
    return {auth.SESSION_COOKIE: cookie}, auth.csrf_token(rt.settings, session)


@pytest.mark.parametrize("db_backend", ["sqlite"])  # the guard is the same on both databases; the pages are tested on both elsewhere
@pytest.mark.parametrize("role", ROLES)
async def test_every_route_answers_each_role(client: TestClient, catalog: Runtime, role: str) -> None:
    cookies, token = session_for(catalog, role)
    wrong: list[str] = []
    for method, path, _ in ROUTES:
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies(cookies)
        allowed = role in (access.roles_for_path(path) or ())
        data = {auth.CSRF_FIELD: token} if method == "POST" else None
        resp = await client.request(method, concrete(path), data=data, headers=HTML, allow_redirects=False)
        body = (await resp.read()).decode("utf-8", errors="replace")  # a download (xlsx) is bytes
        if allowed and (resp.status == 403 or resp.status >= 500):
            wrong.append(f"{method} {path}: {role} may use it, got {resp.status}")
        elif not allowed and (resp.status != 403 or "您的角色无权使用此页面" not in body):
            wrong.append(f"{method} {path}: {role} may not use it, got {resp.status}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.parametrize("role", ROLES)
async def test_nav_shows_only_the_pages_the_role_may_open(client: TestClient, catalog: Runtime, role: str) -> None:
    cookies, _ = session_for(catalog, role)
    client.session.cookie_jar.update_cookies(cookies)
    resp = await client.get("/console/dashboard", headers=HTML)
    assert resp.status == 200
    nav = re.search(r"<nav>(.*?)</nav>", await resp.text(), re.S)
    assert nav
    shown = set(re.findall(r'href="([^"]+)"', nav.group(1)))
    for key, href, _, roles in NAV:
        assert roles == access.roles_for_path(href), key  # the nav and the routes use the same rule
        assert (href in shown) == (role in roles), (role, href)
