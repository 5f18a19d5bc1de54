"""What the console browser tests share: the console served on a free port (``server``: the product's app with
every console page mounted, over the test's ``catalog`` runtime), signing a staff member in, and where screenshots
go. A module that needs another app (the dashboard's seeded charts, the menu over ``create_app``) defines its own
``server`` fixture, which takes precedence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Page

from scrm.core.runtime import Runtime
from tests.helpers import free_port
from tests.scrm.test_staff import PASSWORD, console_app

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
async def server(catalog: Runtime) -> AsyncIterator[str]:
    runner = web.AppRunner(console_app(catalog))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def sign_in(page: Page, server: str, username: str, next_path: str) -> None:
    """A staff member (made with ``PASSWORD``) signs in through the login form and lands on ``next_path``."""
    await page.goto(f"{server}/console/login?next={next_path}")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', PASSWORD)
    await page.get_by_role("button", name="登录").click()
