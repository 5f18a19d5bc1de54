"""HTTP clients of the WeCom and WeChat Official Account APIs (aiohttp; never blocks the event loop).

One place knows the protocol rules of WECOM.md §5: the access token is cached and refreshed on 40014/42001 (one
retry), -1 (system busy) is retried with a short back-off, 45009/45033 (rate/concurrency limit) raise
:class:`RateLimited` so the caller's job can back off (~60 s), timeouts and network errors raise
:class:`ApiUnavailable`. The base URL is a setting, so the sandbox emulator stands in for the real hosts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from scrm.core import metrics
from scrm.core.runtime import ResourceKey

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40014, 42001, 41001}
BUSY = -1
RATE_LIMITS = {45009, 45033}


class ApiError(Exception):
    """The API answered with a non-zero errcode."""

    def __init__(self, path: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"{path}: errcode {errcode}: {errmsg}")
        self.path = path
        self.errcode = errcode
        self.errmsg = errmsg


class RateLimited(ApiError):
    """45009 / 45033: back off (WeCom asks for about a minute) and try again."""

    retry_after = 60.0


class ApiUnavailable(Exception):
    """Timeout, connection refused, or a non-JSON/non-200 answer: the call may be retried."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


SessionGetter = Callable[[], Awaitable[aiohttp.ClientSession]]


class _TokenApi:
    """Shared machinery: token cache, errcode handling, metrics."""

    token_path = ""

    def __init__(self, base_url: str, session: SessionGetter, *, busy_retries: int = 2, busy_delay: float = 0.2) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._session = session
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.busy_retries = busy_retries
        self.busy_delay = busy_delay

    def _token_params(self) -> dict[str, str]:
        raise NotImplementedError

    async def access_token(self, *, force: bool = False) -> str:
        async with self._token_lock:
            if force or self._token is None or time.monotonic() >= self._token_expires:
                data = await self._request("GET", self.token_path, params=self._token_params())
                self._token = str(data["access_token"])
                # Refresh five minutes early so a token never expires mid-flight.
                self._token_expires = time.monotonic() + max(int(data.get("expires_in", 7200)) - 300, 60)
            return self._token

    def invalidate_token(self) -> None:
        self._token = None

    async def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]:
        session = await self._session()
        url = self.base_url + path
        try:
            async with session.request(method, url, params=params, json=json) as resp:
                if resp.status != 200:
                    raise ApiUnavailable(path, f"HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            metrics.wecom_api_calls.labels(path=path, errcode="network").inc()
            raise ApiUnavailable(path, f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise ApiUnavailable(path, "answer is not JSON") from exc
        if not isinstance(data, dict):
            raise ApiUnavailable(path, "answer is not a JSON object")
        errcode = int(data.get("errcode", 0) or 0)
        metrics.wecom_api_calls.labels(path=path, errcode=str(errcode)).inc()
        if errcode:
            errmsg = str(data.get("errmsg", ""))
            if errcode in RATE_LIMITS:
                raise RateLimited(path, errcode, errmsg)
            raise ApiError(path, errcode, errmsg)
        return data

    async def call(
        self, path: str, data: dict[str, Any] | None = None, *, params: dict[str, Any] | None = None, method: str = "POST"
    ) -> dict[str, Any]:
        """Call an API path with the access token; returns the JSON answer (errcode 0) or raises."""
        refreshed = False
        busy = 0
        while True:
            token = await self.access_token()
            query = {"access_token": token, **(params or {})}
            try:
                return await self._request(method, path, params=query, json=data if method == "POST" else None)
            except RateLimited:
                raise
            except ApiError as exc:
                if exc.errcode in TOKEN_ERRORS and not refreshed:
                    refreshed = True
                    log.info("access token rejected; refreshing", extra={"path": path, "errcode": exc.errcode})
                    self.invalidate_token()
                    continue
                if exc.errcode == BUSY and busy < self.busy_retries:
                    busy += 1
                    await asyncio.sleep(self.busy_delay * busy)
                    continue
                raise


class WeComApi(_TokenApi):
    """WeCom (企业微信) server API: qyapi.weixin.qq.com/cgi-bin/ or the sandbox emulator."""

    token_path = "gettoken"

    def __init__(self, base_url: str, corp_id: str, secret: str, session: SessionGetter, **kw: Any) -> None:
        super().__init__(base_url, session, **kw)
        self.corp_id = corp_id
        self._secret = secret

    def _token_params(self) -> dict[str, str]:
        return {"corpid": self.corp_id, "corpsecret": self._secret}


class MpApi(_TokenApi):
    """WeChat Official Account (公众号) API: api.weixin.qq.com/cgi-bin/ or the sandbox emulator."""

    token_path = "token"

    def __init__(self, base_url: str, app_id: str, secret: str, session: SessionGetter, **kw: Any) -> None:
        super().__init__(base_url, session, **kw)
        self.app_id = app_id
        self._secret = secret

    def _token_params(self) -> dict[str, str]:
        return {"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret}


WECOM_API: ResourceKey[WeComApi] = ResourceKey("wecom_api")
MP_API: ResourceKey[MpApi] = ResourceKey("mp_api")
