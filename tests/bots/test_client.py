"""WeComApi / MpApi against the emulator on a real local server: token cache and refresh, busy retries,
rate limits, timeouts and network errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bots.outbound.client import ApiError, ApiUnavailable, Errcode, MpApi, RateLimited, WeComApi
from bots.sandbox.emulator import create_emulator_app
from bots.sandbox.state import SandboxState
from config.settings import SANDBOX_CORP_ID, SANDBOX_SECRET
from scrm.core.clock import FrozenClock
from tests.helpers import free_port


@dataclass
class Emulator:
    state: SandboxState
    server: TestServer
    session: aiohttp.ClientSession

    def wecom(self, **kw: float) -> WeComApi:
        return WeComApi(self.base("wecom"), SANDBOX_CORP_ID, SANDBOX_SECRET, self.get_session, busy_delay=0.01, **kw)

    def mp(self) -> MpApi:
        return MpApi(self.base("mp"), self.state.mp_app_id, self.state.mp_secret, self.get_session)

    def base(self, api: str) -> str:
        return str(self.server.make_url(f"/{api}/cgi-bin/"))

    async def get_session(self) -> aiohttp.ClientSession:
        return self.session


@pytest.fixture
async def emu(clock: FrozenClock) -> AsyncIterator[Emulator]:
    state = SandboxState(now=clock.now)
    state.seed_demo()
    async with TestServer(create_emulator_app(state)) as server, aiohttp.ClientSession() as session:
        yield Emulator(state, server, session)


async def test_token_is_cached_across_calls(emu: Emulator) -> None:
    api = emu.wecom()
    for _ in range(5):
        data = await api.call("user/simplelist", method="GET", params={"department_id": "1"})
        assert {u["userid"] for u in data["userlist"]} == {"boss01", "sales01", "ops01"}  # seed_demo (manager included)
    assert emu.state.call_count("gettoken") == 1 and api.token_fetches == 1


async def test_expired_token_is_refreshed_once(emu: Emulator) -> None:
    api = emu.wecom()
    await api.call("user/simplelist", method="GET")
    emu.state.expire_tokens()
    await api.call("user/simplelist", method="GET")
    assert emu.state.call_count("gettoken") == 2
    assert emu.state.call_count("user/simplelist") == 3  # ok, 42001, retried ok
    # A token still refused after the refresh is not retried again: exactly one retry.
    emu.state.inject("user/simplelist", Errcode.TOKEN_EXPIRED, times=2)
    with pytest.raises(ApiError) as caught:
        await api.call("user/simplelist", method="GET")
    assert caught.value.errcode == Errcode.TOKEN_EXPIRED
    assert emu.state.call_count("gettoken") == 3 and emu.state.call_count("user/simplelist") == 5


async def test_wrong_secret_is_an_api_error(emu: Emulator) -> None:
    api = WeComApi(emu.base("wecom"), SANDBOX_CORP_ID, "wrong-secret", emu.get_session)
    with pytest.raises(ApiError) as caught:
        await api.call("user/simplelist", method="GET")
    assert caught.value.errcode == Errcode.INVALID_SECRET
    assert emu.state.call_count("gettoken") == 1 and emu.state.call_count("user/simplelist") == 0


async def test_rate_limit_raises_without_retrying(emu: Emulator) -> None:
    api = emu.wecom()
    emu.state.inject("message/send", Errcode.RATE_LIMITED)
    body = {"touser": "ops01", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}}
    with pytest.raises(RateLimited) as caught:
        await api.call("message/send", body)
    assert caught.value.retry_after == 60
    assert emu.state.call_count("message/send") == 1 and emu.state.app_messages == []
    emu.state.inject("message/send", Errcode.CONCURRENCY_LIMITED)
    with pytest.raises(RateLimited):
        await api.call("message/send", body)


async def test_busy_is_retried(emu: Emulator) -> None:
    api = emu.wecom()
    emu.state.inject("user/simplelist", Errcode.BUSY)
    assert (await api.call("user/simplelist", method="GET"))["errcode"] == 0
    assert emu.state.call_count("user/simplelist") == 2
    emu.state.inject("user/simplelist", Errcode.BUSY, times=3)  # busy_retries=2: gives up after three tries
    with pytest.raises(ApiError) as caught:
        await api.call("user/simplelist", method="GET")
    assert caught.value.errcode == Errcode.BUSY and emu.state.call_count("user/simplelist") == 5


async def test_timeout_is_api_unavailable(emu: Emulator) -> None:
    api = emu.wecom(timeout=0.1)
    await api.access_token()
    emu.state.inject("user/simplelist", 0, delay=0.4)
    with pytest.raises(ApiUnavailable) as caught:
        await api.call("user/simplelist", method="GET")
    assert caught.value.timeout is True
    assert (await api.call("user/simplelist", method="GET"))["errcode"] == 0


async def test_network_errors_are_api_unavailable_without_secrets(emu: Emulator) -> None:
    dead = WeComApi(f"http://127.0.0.1:{free_port()}/wecom/cgi-bin/", SANDBOX_CORP_ID, SANDBOX_SECRET, emu.get_session)
    with pytest.raises(ApiUnavailable) as caught:
        await dead.call("user/simplelist", method="GET")
    assert caught.value.timeout is False and SANDBOX_SECRET not in str(caught.value)
    not_json = WeComApi(str(emu.server.make_url("/static/")), SANDBOX_CORP_ID, SANDBOX_SECRET, emu.get_session)
    with pytest.raises(ApiUnavailable) as caught:
        await not_json.call("index.html", method="GET")
    assert "HTTP 404" in caught.value.reason or "JSON" in caught.value.reason


async def test_official_account_refreshes_on_40001(emu: Emulator) -> None:
    api = emu.mp()
    emu.state.add_follower("oA")
    await api.call("user/info", method="GET", params={"openid": "oA"})
    emu.state.tokens.clear()  # the account's token was superseded elsewhere: MP answers 40001
    info = await api.call("user/info", method="GET", params={"openid": "oA"})
    assert info["subscribe"] == 1 and emu.state.call_count("mp:token") == 2
