"""Console sign-in rate limits (:mod:`scrm.console.login_limit`): per client address and per username, a sliding
window on the runtime's (frozen) clock, in process or in Redis shared by several app processes; 429 in Chinese."""

from __future__ import annotations

import datetime as dt

import pytest
from aiohttp.test_utils import TestClient, TestServer

from scrm.app.runtime import build_runtime
from scrm.app.webapp import create_app
from scrm.console.login_limit import Limit, LoginLimiter, MemoryFailures, RedisFailures
from scrm.core.clock import UTC, FrozenClock
from tests.conftest import make_settings
from tests.security.conftest import App, console_login

pytestmark = pytest.mark.security

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


async def attempt(client: TestClient, username: str, password: str) -> tuple[int, str, dict[str, str]]:
    resp = await client.post("/console/login", data={"username": username, "password": password}, allow_redirects=False)
    return resp.status, await resp.text(), dict(resp.headers)


async def test_per_client_limit_answers_429_in_chinese_until_the_window_slides(app: App, clock: FrozenClock) -> None:
    c = app.client
    for i in range(5):  # different usernames: the address's own counter fills
        status, text, headers = await attempt(c, f"guess{i}", "nope")
        assert status == 401 and "用户名或密码不正确" in text and "Set-Cookie" not in headers
        clock.advance(seconds=30)
    status, text, headers = await attempt(c, "admin", app.settings.admin_token.get())  # even the right password
    assert status == 429 and "登录失败次数过多" in text and "Set-Cookie" not in headers
    # The first failure was 2.5 min ago: it ages out at 5 min, so 150 s to go.
    assert int(headers["Retry-After"]) == 150
    clock.advance(seconds=149)
    assert (await attempt(c, "admin", app.settings.admin_token.get()))[0] == 429
    clock.advance(seconds=1)  # the oldest failure slid out: one more try is allowed
    assert (await attempt(c, "guess9", "nope"))[0] == 401
    assert (await attempt(c, "admin", app.settings.admin_token.get()))[0] == 429  # and that was the fifth again
    clock.advance(minutes=5)
    await console_login(c, app.settings)


async def test_success_clears_the_counters(app: App) -> None:
    for _ in range(4):
        assert (await attempt(app.client, "admin", "nope"))[0] == 401
    await console_login(app.client, app.settings)
    for _ in range(4):  # a fresh budget after signing in
        assert (await attempt(app.client, "admin", "nope"))[0] == 401


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_per_username_limit_holds_across_client_addresses(store: str, request: pytest.FixtureRequest) -> None:
    backend = RedisFailures(request.getfixturevalue("redis_url")) if store == "redis" else MemoryFailures()
    limiter = LoginLimiter(backend, per_client=Limit(5, dt.timedelta(minutes=5)), per_username=Limit(10, dt.timedelta(minutes=15)))
    try:
        now = T0
        for i in range(10):  # a botnet: ten addresses, one failure each, same account
            assert await limiter.retry_after(f"10.0.0.{i}", "Finance01", now) == 0
            await limiter.failed(f"10.0.0.{i}", "Finance01", now)
            now += dt.timedelta(seconds=10)
        assert await limiter.retry_after("10.9.9.9", " finance01 ", now) == 15 * 60 - 100  # same account, any spelling
        assert await limiter.retry_after("10.9.9.9", "marketer01", now) == 0  # other accounts stay open
        assert await limiter.retry_after("10.0.0.1", "marketer01", now) == 0  # one failure from that address only
        now += dt.timedelta(minutes=15)
        assert await limiter.retry_after("10.9.9.9", "finance01", now) == 0
        await limiter.succeeded("10.0.0.1", "finance01")
    finally:
        await limiter.close()


async def test_redis_counters_are_shared_by_every_process(redis_url: str, database_url: str, clock: FrozenClock) -> None:
    """Two app processes (two apps, two runtimes) with one Redis: failures on one count on the other."""
    settings = make_settings(database_url=database_url, redis_url=redis_url)
    runtimes = [await build_runtime(settings, clock) for _ in range(2)]
    clients = [TestClient(TestServer(create_app(settings, runtime=rt))) for rt in runtimes]
    try:
        for c in clients:
            await c.start_server()
        for i in range(5):
            assert (await attempt(clients[i % 2], "admin", "nope"))[0] == 401
        for c in clients:
            status, text, headers = await attempt(c, "admin", settings.admin_token.get())
            assert status == 429 and "登录失败次数过多" in text and int(headers["Retry-After"]) == 300
        clock.advance(minutes=5)
        await console_login(clients[1], settings)
    finally:
        for c in clients:
            await c.close()
        for rt in runtimes:
            await rt.close()


async def test_redis_down_falls_back_to_counting_in_process() -> None:
    limiter = LoginLimiter(RedisFailures("redis://127.0.0.1:1/0"))
    try:
        for _ in range(5):
            await limiter.failed("10.0.0.1", "admin", T0)
        assert await limiter.retry_after("10.0.0.1", "admin", T0) == 300
    finally:
        await limiter.close()


async def test_sidebar_oauth_code_is_single_use(app: App) -> None:
    """A code WeCom gave us signs in once; the same code again (fresh state, same browser) is refused."""
    from scrm.sidebar import auth as sidebar_auth
    from tests.scrm.test_sidebar import seed_people

    await seed_people(app.rt)
    assert app.state is not None
    code = app.state.issue_oauth_code("sales01")
    for expected in (302, 401):
        state, nonce = sidebar_auth.make_state(app.settings, "/sidebar/", app.rt.clock.now())
        app.client.session.cookie_jar.clear()
        resp = await app.client.get(
            "/sidebar/oauth",
            params={"code": code, "state": state},
            headers={"Cookie": f"{sidebar_auth.NONCE_COOKIE}={nonce}"},
            allow_redirects=False,
        )
        assert resp.status == expected, await resp.text()
    assert "登录码已失效" in await resp.text()
    assert (await app.client.get("/sidebar/api/me")).status == 401


async def test_a_sign_in_posted_from_another_site_is_refused(app: App) -> None:
    """Login CSRF: a form on another site must not sign the browser in (to the attacker's account)."""
    c = app.client
    host = f"{c.server.host}:{c.server.port}"
    data = {"username": "admin", "password": app.settings.admin_token.get()}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Referer": "https://evil.example/form"}):
        resp = await c.post("/console/login", data=data, headers=headers, allow_redirects=False)
        assert resp.status == 403 and "Set-Cookie" not in resp.headers and "其他网站" in await resp.text(), headers
    for headers in ({"Origin": f"http://{host}"}, {"Referer": f"http://{host}/console/login"}, {}):
        resp = await c.post("/console/login", data=data, headers=headers, allow_redirects=False)
        assert resp.status == 303 and "Set-Cookie" in resp.headers, headers
