"""Fixtures for the security suite (``pytest -m security``): the real app on a real local port (sandbox mounted),
signed-in clients for the console, the sidebar and the API, and a snapshot of every table's row count so a test can
assert that a refused request changed nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bots.sandbox.keys import SANDBOX_STATE
from bots.sandbox.state import SandboxState
from config import Settings
from fulfillment.catalog.services import seed_sample_if_empty
from scrm.app.runtime import build_runtime
from scrm.app.webapp import create_app
from scrm.core.clock import FrozenClock
from scrm.core.db import metadata
from scrm.core.runtime import Runtime
from tagging.rules import versions as rule_versions
from tagging.rules.engine import tagger_cache
from tests.conftest import make_settings
from tests.helpers import free_port

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class App:
    rt: Runtime
    client: TestClient
    settings: Settings
    state: SandboxState | None

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.admin_token.get()}"}


async def start_app(settings: Settings, clock: FrozenClock, port: int) -> tuple[Runtime, TestClient]:
    runtime = await build_runtime(settings, clock)
    app = create_app(settings, runtime=runtime)
    client = TestClient(TestServer(app, port=port))
    await client.start_server()
    async with runtime.db.write() as conn:
        await seed_sample_if_empty(conn, runtime.db.dialect, runtime.clock.now())
    # What a started product has done before its first request (webapp's start-up warm-up): tag rules seeded as
    # version 1 — so the "GET changes nothing" sweeps see pages, not the first start's one-time seeding.
    await rule_versions.seed_if_empty(runtime, tagger_cache(runtime).seed)
    return runtime, client


@pytest.fixture
async def app(database_url: str, clock: FrozenClock) -> AsyncIterator[App]:
    """The product in sandbox mode on a real port (the emulator calls our callbacks over HTTP)."""
    port = free_port()
    settings = make_settings(database_url=database_url, port=port)
    runtime, client = await start_app(settings, clock, port)
    try:
        yield App(runtime, client, settings, client.app[SANDBOX_STATE])
    finally:
        await client.close()
        await runtime.close()


PROD = {
    "sandbox": "0",
    "wecom_corp_id": "wwprodcorp",
    "wecom_agent_id": "1000009",
    "wecom_secret": "prod-secret",
    "wecom_token": "prodToken",
    "wecom_aes_key": "a" * 43,
    "mp_app_id": "wxprodapp",
    "mp_secret": "prod-mp-secret",
    "mp_token": "prodMpToken",
    "admin_token": "prod-admin-token",
}


@pytest.fixture
async def prod_app(database_url: str, clock: FrozenClock) -> AsyncIterator[App]:
    """The product with (fake) production credentials: no sandbox."""
    port = free_port()
    settings = make_settings(database_url=database_url, port=port, **PROD)
    assert not settings.is_sandbox
    runtime, client = await start_app(settings, clock, port)
    try:
        yield App(runtime, client, settings, None)
    finally:
        await client.close()
        await runtime.close()


async def console_login(client: TestClient, settings: Settings) -> str:
    """Sign in to the console as admin; returns the session's CSRF token as a page shows it."""
    resp = await client.post("/console/login", data={"username": "admin", "password": settings.admin_token.get()}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await client.get("/console/orders", headers=HTML)
    assert page.status == 200
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


async def sidebar_login(client: TestClient, userid: str = "sales01") -> str:
    """Sign in to the sidebar through the sandbox ``as=`` helper (a real OAuth code); returns the CSRF token."""
    resp = await client.get(f"/sidebar/?as={userid}", allow_redirects=False)
    assert resp.status == 302, await resp.text()
    me = await client.get("/sidebar/api/me")
    assert me.status == 200
    return str((await me.json())["csrf_token"])


async def row_counts(rt: Runtime) -> dict[str, int]:
    """Rows per table: equal before and after means a refused request wrote nothing."""
    out: dict[str, int] = {}
    async with rt.db.read() as conn:
        for table in metadata.sorted_tables:
            out[table.name] = int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())
    return out


async def table_digest(rt: Runtime, *, exports: bool = False) -> dict[str, Any]:
    """Every row of every table (small test databases): equal before and after means nothing changed at all.
    Reading a page that hands out a file leaves an ``export`` row in the audit trail, which is not a change of
    anything: those rows are left out unless ``exports``."""
    out: dict[str, Any] = {}
    async with rt.db.read() as conn:
        for table in metadata.sorted_tables:
            q = sa.select(table)
            if table.name == "audit_log" and not exports:
                q = q.where(table.c.action != "export")
            rows = (await conn.execute(q)).all()
            out[table.name] = sorted(repr(tuple(r)) for r in rows)
    return out
