"""HTTP clients of the WeCom and WeChat Official Account APIs (aiohttp; never blocks the event loop).

One place knows the protocol rules of docs/wecom.md §5: the access token is cached and refreshed on 40014/42001
(one retry), -1 (system busy) is retried with a short back-off, 45009/45033 (rate/concurrency limit) raise
:class:`RateLimited` so the caller's job can back off (~60 s), timeouts and network errors raise
:class:`ApiUnavailable`. The base URL is a setting, so the sandbox emulator stands in for the real hosts.

The errcode constants below are the protocol vocabulary shared by the sender and the sandbox emulator, so a
number that turns out wrong against the real API is fixed here once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from scrm.core import metrics
from scrm.core.runtime import ResourceKey

log = logging.getLogger(__name__)


class Errcode:
    """errcodes of WeCom (企业微信) and the Official Account (公众号) that the product reacts to."""

    BUSY = -1  # system busy: retry
    INVALID_SECRET = 40001  # WeCom gettoken: wrong corpsecret
    MP_INVALID_TOKEN = 40001  # the Official Account's answer to an invalid or superseded access token
    MP_INVALID_GRANT_TYPE = 40002
    MP_INVALID_OPENID = 40003
    INVALID_MEDIA_TYPE = 40004  # media/upload: type is not image / voice / video / file
    INVALID_FILE_TYPE = 40005  # media/upload: the file is not of its type (an image must be JPG or PNG)
    INVALID_FILE_SIZE = 40006  # media/upload: empty (5 bytes or less)
    INVALID_MEDIA_ID = 40007  # unknown or expired media_id (temporary media live 3 days)
    INVALID_IMAGE_SIZE = 40009  # media/upload: an image over 10 MB
    INVALID_CORP_ID = 40013  # also the Official Account's "invalid appid"
    MP_INVALID_APPID = 40013
    INVALID_TOKEN = 40014
    INVALID_OAUTH_CODE = 40029  # auth/getuserinfo: unknown, used or expired code
    MP_INVALID_TEMPLATE = 40037
    INVALID_CHAT_ID = 40050
    INVALID_AGENT_ID = 40056
    INVALID_PARAMETER = 40058  # e.g. add_contact_way state longer than 30 chars, bad msgid
    INVALID_TAG_ID = 40068
    TAG_NAME_EXISTS = 40071
    MP_INVALID_SECRET = 40125
    TOKEN_MISSING = 41001
    MISSING_CORP_ID = 41002
    MISSING_SECRET = 41004
    WELCOME_CODE_INVALID = 41051  # send_welcome_msg: code already used / unknown / expired
    TOKEN_EXPIRED = 42001
    MP_NOT_FOLLOWER = 43004  # template message to someone who does not follow the account
    CONTENT_TOO_LONG = 45002  # text over 2048 bytes
    RATE_LIMITED = 45009
    MP_OUT_OF_WINDOW = 45015  # customer-service message after 48 h without interaction
    CONCURRENCY_LIMITED = 45033
    NOT_AUTHORISED = 48002
    IP_NOT_WHITELISTED = 60020
    INVALID_USERID = 60111
    ALL_RECIPIENTS_INVALID = 81013  # message/send: user & party & tag all invalid
    NOT_EXTERNAL_CONTACT = 84061  # no such customer / no relationship with this member
    # 微信客服 refusals. (unconfirmed) — the real numbers could not be checked against an official page:
    # 95018 is what WeCom answers as "send msg session status invalid"; we use it for "48 h window closed".
    KF_INVALID_OPEN_KFID = 95000  # (unconfirmed)
    KF_QUOTA_EXHAUSTED = 95015  # (unconfirmed) 5 messages sent since the customer last wrote
    KF_EVENT_CODE_INVALID = 95016  # (unconfirmed) send_msg_on_event: welcome code used / unknown / expired
    KF_WINDOW_CLOSED = 95018  # (unconfirmed) 48 h since the customer last wrote (or they never did)
    KF_INVALID_SYNC_TOKEN = 95007  # (unconfirmed) sync_msg token unknown or older than 10 minutes
    # 审批 (oa/*) refusals (unconfirmed: no official errcode table for them could be checked).
    APPROVAL_TEMPLATE_INVALID = 301025  # (unconfirmed) oa/applyevent: no such template in this corp
    APPROVAL_NOT_FOUND = 301055  # (unconfirmed) oa/getapprovaldetail: no such sp_no
    # Customer and group transfers (在职继承 / 离职继承, docs/wecom.md §5b). WeCom's global errcode table; the per-customer
    # codes come back inside transfer_customer's answer, not as the call's errcode.
    INVALID_EXTERNAL_USERID = 40096  # 不合法的外部联系人 userid
    MEMBER_NOT_RESIGNED = 40097  # resigned/transfer_customer: 该成员尚未离职
    TRANSFER_TOO_FREQUENT = 40128  # 客户转接过于频繁 (an employed member's customer: at most twice in 90 days)
    TRANSFER_IN_PROGRESS = 40129  # 当前客户正在转接中 (a transfer waits for its 24 h)
    TRANSFER_SAME_MEMBER = 40130  # 原跟进人与接手人一样，不可继承
    NOT_FOLLOWER = 40131  # handover_userid 并不是外部联系人的跟进人
    NO_CONTACT_PERMISSION = 84074  # (unconfirmed) 没有外部联系人权限: the takeover member has no 客户联系
    GROUP_OWNER_NOT_RESIGNED = 90500  # (unconfirmed) groupchat/transfer: 群主并未离职
    GROUP_OWNER_RESIGNED = 90502  # (unconfirmed) groupchat/onjob_transfer: 群主已经离职
    GROUP_SAME_OWNER = 90504  # (unconfirmed) 群主没有变化 (the new owner already owns the group)


# kf refusals the sender records as "skipped" (a deliberate, explained non-delivery), with these reasons.
KF_REFUSALS = {Errcode.KF_WINDOW_CLOSED: "kf_window_closed", Errcode.KF_QUOTA_EXHAUSTED: "kf_quota_exhausted"}
BUSY = Errcode.BUSY
RATE_LIMITS = {Errcode.RATE_LIMITED, Errcode.CONCURRENCY_LIMITED}
TOKEN_ERRORS = {Errcode.INVALID_TOKEN, Errcode.TOKEN_EXPIRED, Errcode.TOKEN_MISSING}


class ApiError(Exception):
    """The API answered with a non-zero errcode."""

    def __init__(self, path: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"{path}: errcode {errcode}: {errmsg}")
        self.path = path
        self.errcode = errcode
        self.errmsg = errmsg


class RateLimited(ApiError):
    """45009 / 45033: back off (WeCom asks for about a minute; the client's ``rate_limit_backoff``) and try again."""

    retry_after = 60.0

    def __init__(self, path: str, errcode: int, errmsg: str, retry_after: float | None = None) -> None:
        super().__init__(path, errcode, errmsg)
        if retry_after is not None:
            self.retry_after = retry_after


class ApiUnavailable(Exception):
    """Timeout, connection refused, or a non-JSON/non-200 answer: the call may be retried.

    ``timeout`` tells a timeout (the request may have been carried out) from a refused/garbled exchange.
    ``maybe_delivered`` is False only when the request certainly never reached the API (the connection was not
    made): a caller of an API without an idempotency key may repeat only such a call.
    """

    def __init__(self, path: str, reason: str, *, timeout: bool = False, maybe_delivered: bool = True) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.timeout = timeout
        self.maybe_delivered = maybe_delivered


SessionGetter = Callable[[], Awaitable[aiohttp.ClientSession]]
Files = Mapping[str, tuple[str, bytes, str]]  # form field → (filename, content, content type)


class TokenApi:
    """Shared machinery: token cache, errcode handling, metrics."""

    token_path = ""
    token_errors: frozenset[int] = frozenset(TOKEN_ERRORS)

    def __init__(
        self,
        base_url: str,
        session: SessionGetter,
        *,
        busy_retries: int = 2,
        busy_delay: float = 0.2,
        timeout: float | None = None,
        rate_limit_backoff: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.rate_limit_backoff = rate_limit_backoff
        self._session = session
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.busy_retries = busy_retries
        self.busy_delay = busy_delay
        # None = the session's own timeout (settings.http_timeout for the runtime's session).
        self._timeout = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
        self.token_fetches = 0  # how many times a token was fetched (diagnostics, tests)

    def _token_params(self) -> dict[str, str]:
        raise NotImplementedError

    def _secrets(self) -> list[str]:
        return [s for s in (self._token, *self._token_params().values()) if s and len(s) >= 8]

    async def access_token(self, *, force: bool = False) -> str:
        """The cached access token, fetched when missing, expired (5 min early) or ``force``d."""
        async with self._token_lock:
            if force or self._token is None or time.monotonic() >= self._token_expires:
                data = await self._request("GET", self.token_path, params=self._token_params())
                self.token_fetches += 1
                self._token = str(data["access_token"])
                # Refresh five minutes early so a token never expires mid-flight.
                self._token_expires = time.monotonic() + max(int(data.get("expires_in", 7200)) - 300, 60)
            return self._token

    def invalidate_token(self, rejected: str | None = None) -> None:
        """Forget the token; with ``rejected``, only if it is still the cached one (concurrent callers that
        saw the same rejection then cause one refresh, not one each)."""
        if rejected is None or self._token == rejected:
            self._token = None

    def _redact(self, text: str) -> str:
        # aiohttp errors may quote the URL, whose query carries the secret or the access token.
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    async def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None, files: Files | None = None
    ) -> dict[str, Any]:
        session = await self._session()
        url = self.base_url + path
        kwargs: dict[str, Any] = {"params": params, "json": json}
        if files:
            # multipart/form-data (media/upload); a FormData is single use, so one is built per request
            form = aiohttp.FormData()
            for field, (filename, content, content_type) in files.items():
                form.add_field(field, content, filename=filename, content_type=content_type)
            kwargs = {"params": params, "data": form}
        if self._timeout is not None:
            kwargs["timeout"] = self._timeout
        try:
            async with session.request(method, url, **kwargs) as resp:
                if resp.status != 200:
                    raise ApiUnavailable(path, f"HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except TimeoutError as exc:
            metrics.wecom_api_calls.labels(path=path, errcode="timeout").inc()
            connecting = isinstance(exc, aiohttp.ConnectionTimeoutError)
            raise ApiUnavailable(path, "timeout", timeout=True, maybe_delivered=not connecting) from exc
        except aiohttp.ClientError as exc:
            metrics.wecom_api_calls.labels(path=path, errcode="network").inc()
            connecting = isinstance(exc, aiohttp.ClientConnectorError)
            raise ApiUnavailable(path, self._redact(f"{type(exc).__name__}: {exc}"), maybe_delivered=not connecting) from None
        except ValueError as exc:
            raise ApiUnavailable(path, "answer is not JSON") from exc
        if not isinstance(data, dict):
            raise ApiUnavailable(path, "answer is not a JSON object")
        errcode = int(data.get("errcode", 0) or 0)
        metrics.wecom_api_calls.labels(path=path, errcode=str(errcode)).inc()
        if errcode:
            errmsg = str(data.get("errmsg", ""))
            if errcode in RATE_LIMITS:
                raise RateLimited(path, errcode, errmsg, self.rate_limit_backoff)
            raise ApiError(path, errcode, errmsg)
        return data

    async def call(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        method: str = "POST",
        files: Files | None = None,
    ) -> dict[str, Any]:
        """Call an API path with the access token; returns the JSON answer (errcode 0) or raises. ``files``
        (field → (filename, bytes, content type)) posts a multipart form instead of ``data`` as JSON.

        A rejected token is refreshed and the call retried once; -1 (busy) is retried ``busy_retries`` times.
        Raises :class:`RateLimited`, :class:`ApiError` or :class:`ApiUnavailable`.
        """
        refreshed = False
        busy = 0
        while True:
            token = await self.access_token()
            query = {"access_token": token, **(params or {})}
            try:
                return await self._request(method, path, params=query, json=data if method == "POST" and not files else None, files=files)
            except RateLimited:
                raise
            except ApiError as exc:
                if exc.errcode in self.token_errors and not refreshed:
                    refreshed = True
                    log.info("access token rejected; refreshing", extra={"path": path, "errcode": exc.errcode})
                    self.invalidate_token(token)
                    continue
                if exc.errcode == BUSY and busy < self.busy_retries:
                    busy += 1
                    await asyncio.sleep(self.busy_delay * busy)
                    continue
                raise


class WeComApi(TokenApi):
    """WeCom (企业微信) server API: qyapi.weixin.qq.com/cgi-bin/ or the sandbox emulator."""

    token_path = "gettoken"  # noqa: S105 - a URL path, not a password

    def __init__(self, base_url: str, corp_id: str, secret: str, session: SessionGetter, **kw: Any) -> None:
        self.corp_id = corp_id
        self._secret = secret
        super().__init__(base_url, session, **kw)

    def _token_params(self) -> dict[str, str]:
        return {"corpid": self.corp_id, "corpsecret": self._secret}


class MpApi(TokenApi):
    """WeChat Official Account (公众号) API: api.weixin.qq.com/cgi-bin/ or the sandbox emulator."""

    token_path = "token"  # noqa: S105 - a URL path, not a password
    # The Official Account answers 40001 for an invalid or superseded access token.
    token_errors = frozenset({*TOKEN_ERRORS, Errcode.MP_INVALID_TOKEN})

    def __init__(self, base_url: str, app_id: str, secret: str, session: SessionGetter, **kw: Any) -> None:
        self.app_id = app_id
        self._secret = secret
        super().__init__(base_url, session, **kw)

    def _token_params(self) -> dict[str, str]:
        return {"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret}


WECOM_API: ResourceKey[WeComApi] = ResourceKey("wecom_api")
MP_API: ResourceKey[MpApi] = ResourceKey("mp_api")
