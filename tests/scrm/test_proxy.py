"""X-Forwarded-For / -Proto are believed only from trusted proxies: the client address (the login limiter's key)
and https (cookies' Secure flag) come through nginx, and a client cannot spoof them."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scrm.core.http.proxy import TRUSTED_PROXIES, client_of, forwarded_middleware, parse_trusted


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"remote": request.remote, "secure": request.secure})


async def ask(trusted: str, headers: dict[str, str]) -> dict[str, object]:
    app = web.Application(middlewares=[forwarded_middleware])
    app[TRUSTED_PROXIES] = parse_trusted(trusted)
    app.router.add_get("/", whoami)
    async with TestClient(TestServer(app)) as client:
        return await (await client.get("/", headers=headers)).json()


async def test_headers_from_a_trusted_proxy_are_believed() -> None:
    got = await ask("127.0.0.1", {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert got == {"remote": "203.0.113.9", "secure": True}


async def test_headers_are_ignored_without_trusted_proxies() -> None:
    got = await ask("", {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert got == {"remote": "127.0.0.1", "secure": False}
    got = await ask("10.0.0.0/8", {"X-Forwarded-For": "203.0.113.9"})  # the peer is no listed proxy
    assert got["remote"] == "127.0.0.1"


def test_a_client_cannot_spoof_past_the_proxies() -> None:
    nets = parse_trusted("127.0.0.1, 10.0.0.0/8")
    # the client wrote "1.1.1.1" itself; nginx appended the address it saw (198.51.100.7), then an inner proxy
    assert client_of("127.0.0.1", ["1.1.1.1, 198.51.100.7, 10.0.0.5"], nets) == "198.51.100.7"
    assert client_of("127.0.0.1", ["garbage, 10.0.0.5"], nets) == "10.0.0.5"
    assert client_of("127.0.0.1", [], nets) == "127.0.0.1"
    assert client_of("192.0.2.1", ["1.1.1.1"], nets) == "192.0.2.1"


def test_bad_entries_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_trusted("127.0.0.1, not-an-ip")
