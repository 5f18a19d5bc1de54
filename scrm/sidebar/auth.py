"""Who is using the sidebar: WeCom OAuth, the signed session cookie, CSRF tokens, and the JS-SDK signature.

The userid comes only from WeCom (``auth/getuserinfo`` on an OAuth code, docs/wecom.md §6) and is then carried in a
stateless signed cookie — never from anything the browser says. Keys are derived from ``settings.session_secret``
for sidebar purposes alone ("sidebar:…"), so neither a console cookie nor an OAuth state can pass as a session.

The OAuth ``state`` WeCom hands back may hold only ``[a-zA-Z0-9]``, at most 128 bytes (doc 91022), so it is
base62 of ``mac(12) + expiry(4) + nonce(8) + return path``. The nonce is also kept in a short-lived cookie: a
code+state pair someone else started (login CSRF) does not sign this browser in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from aiohttp import web

from config import Settings
from scrm.core.http.signing import Signer

SESSION_COOKIE = "scrm_sidebar"
NONCE_COOKIE = "scrm_sidebar_oauth"
COOKIE_PATH = "/sidebar"
HOME = "/sidebar/"
OAUTH_CALLBACK = "/sidebar/oauth"
SESSION_TTL = dt.timedelta(hours=8)
STATE_TTL = dt.timedelta(minutes=10)  # WeCom's code lives 5 minutes; the whole round trip gets 10
CLOCK_SKEW = 60  # seconds an issued-at may lie in the future (several servers, slightly apart)
CSRF_HEADER = "X-CSRF-Token"

# WeCom's OAuth page (doc 91022). Parameter order as documented: WeCom matches the link strictly.
OAUTH_AUTHORIZE_URL = "https://open.weixin.qq.com/connect/oauth2/authorize"
SANDBOX_AUTHORIZE_PATH = "/sandbox/connect/oauth2/authorize"  # the emulator's stand-in (sandbox mode only)
STATE_MAX = 128
_B62 = string.digits + string.ascii_letters
_MAC_LEN, _NONCE_LEN = 12, 8


@dataclass(frozen=True)
class SidebarSession:
    sid: str  # random; the CSRF token is derived from it
    userid: str  # WeCom member userid, from auth/getuserinfo
    issued_at: int
    expires_at: int


def _signer(settings: Settings, purpose: str) -> Signer:
    return Signer(settings.session_secret.get(), "sidebar:" + purpose)


# ---- sessions ---------------------------------------------------------------------------------------------
def issue_session(settings: Settings, userid: str, now: dt.datetime) -> tuple[SidebarSession, str]:
    """A new session for a member whose userid WeCom vouched for, and its signed cookie value (8 h)."""
    issued = int(now.timestamp())
    session = SidebarSession(secrets.token_urlsafe(18), userid, issued, issued + int(SESSION_TTL.total_seconds()))
    payload = {"sid": session.sid, "uid": userid, "iat": issued, "exp": session.expires_at}
    return session, _signer(settings, "session").sign(payload)


def read_session(settings: Settings, cookie: str | None, now: dt.datetime) -> SidebarSession | None:
    """The session in a cookie value if we signed it, it is unexpired and well formed; else None."""
    if not cookie:
        return None
    p = _signer(settings, "session").unsign(cookie)
    if p is None:
        return None
    sid, uid, iat, exp = p.get("sid"), p.get("uid"), p.get("iat"), p.get("exp")
    if not (isinstance(sid, str) and sid and isinstance(uid, str) and uid and isinstance(iat, int) and isinstance(exp, int)):
        return None
    ts = int(now.timestamp())
    if exp <= ts or iat > ts + CLOCK_SKEW or exp - iat > SESSION_TTL.total_seconds():
        return None
    return SidebarSession(sid, uid, iat, exp)


def csrf_token(settings: Settings, session: SidebarSession) -> str:
    """The CSRF token of a session (an HMAC of its id): no storage, dies with the session."""
    return _signer(settings, "csrf").mac(session.sid.encode()).hex()


def check_csrf(settings: Settings, session: SidebarSession, token: object) -> bool:
    return isinstance(token, str) and hmac.compare_digest(token.encode(), csrf_token(settings, session).encode())


def _secure(request: web.Request, settings: Settings) -> bool:
    return request.secure or settings.base_url.startswith("https://")


def set_cookie(request: web.Request, response: web.StreamResponse, settings: Settings, name: str, value: str, max_age: int) -> None:
    """HttpOnly cookie under /sidebar. Over HTTPS it is SameSite=None; Secure, which WeCom's webview needs; on plain
    http (sandbox, local) a SameSite=None cookie without Secure would be dropped, so Lax."""
    secure = _secure(request, settings)
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, secure=secure, samesite="None" if secure else "Lax")


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=COOKIE_PATH)


# ---- OAuth ------------------------------------------------------------------------------------------------
def _b62encode(raw: bytes) -> str:
    n = int.from_bytes(b"\x01" + raw, "big")  # the marker byte keeps leading zero bytes
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out))


def _b62decode(text: str) -> bytes | None:
    n = 0
    for ch in text:
        i = _B62.find(ch)
        if i < 0:
            return None
        n = n * 62 + i
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return raw[1:] if raw[:1] == b"\x01" else None


def safe_return_path(target: str | None) -> str:
    """A path under /sidebar/ to land on after sign-in (never another site); the ``as`` helper and OAuth
    leftovers are dropped from its query."""
    if not target or not target.startswith(HOME) or "\\" in target or any(ord(c) < 32 for c in target):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path.startswith("//") or "//" in parts.path:
        return HOME
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("as", "code", "state")]
    return parts.path + (f"?{urlencode(query)}" if query else "")


def make_state(settings: Settings, return_path: str, now: dt.datetime) -> tuple[str, str]:
    """An OAuth ``state`` carrying a signed nonce, its expiry and where to return; and the nonce (hex) for the
    browser's cookie. A return path too long for WeCom's 128 characters falls back to /sidebar/."""
    nonce = secrets.token_bytes(_NONCE_LEN)
    expires = int((now + STATE_TTL).timestamp()).to_bytes(4, "big")
    rest = safe_return_path(return_path).removeprefix(HOME).encode()
    for suffix in (rest, b""):
        body = expires + nonce + suffix
        state = _b62encode(_signer(settings, "oauth-state").mac(body)[:_MAC_LEN] + body)
        if len(state) <= STATE_MAX:
            return state, nonce.hex()
    raise AssertionError("unreachable: an empty return path always fits")


def open_state(settings: Settings, state: str, now: dt.datetime) -> tuple[str, str] | None:
    """``(nonce hex, return path)`` of a state we issued and that has not expired; else None."""
    if not 0 < len(state) <= STATE_MAX:
        return None
    raw = _b62decode(state)
    if raw is None or len(raw) < _MAC_LEN + 4 + _NONCE_LEN:
        return None
    mac, body = raw[:_MAC_LEN], raw[_MAC_LEN:]
    if not hmac.compare_digest(mac, _signer(settings, "oauth-state").mac(body)[:_MAC_LEN]):
        return None
    if int.from_bytes(body[:4], "big") < now.timestamp():
        return None
    nonce, suffix = body[4 : 4 + _NONCE_LEN], body[4 + _NONCE_LEN :]
    try:
        path = HOME + suffix.decode()
    except UnicodeDecodeError:
        return None
    return nonce.hex(), safe_return_path(path)


def redirect_uri(settings: Settings) -> str:
    """Where WeCom sends the browser back with ``?code&state`` (must be on the app's trusted domain)."""
    return settings.base_url + OAUTH_CALLBACK


def authorize_url(settings: Settings, state: str) -> str:
    """WeCom's OAuth link (snsapi_base: silent, gives the member's userid); in sandbox mode the emulator's page."""
    base = settings.base_url + SANDBOX_AUTHORIZE_PATH if settings.is_sandbox else OAUTH_AUTHORIZE_URL
    query = (
        f"appid={quote(settings.wecom_corp_id, safe='')}&redirect_uri={quote(redirect_uri(settings), safe='')}"
        f"&response_type=code&scope=snsapi_base&state={state}&agentid={quote(settings.wecom_agent_id, safe='')}"
    )
    return f"{base}?{query}#wechat_redirect"


def userid_of(answer: dict[str, Any]) -> str | None:
    """The member's userid in an ``auth/getuserinfo`` answer; None for a non-member (WeCom then gives an openid).
    Older answers spell it ``UserId``."""
    userid = answer.get("userid") or answer.get("UserId")
    return str(userid) if isinstance(userid, str) and userid else None


# ---- JS-SDK -----------------------------------------------------------------------------------------------
def jsapi_signature(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """``sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL")`` with the URL cut at ``#`` (docs/wecom.md §6)."""
    plain = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url.split('#', 1)[0]}"
    return hashlib.sha1(plain.encode()).hexdigest()  # noqa: S324 - the protocol's digest, not our choice


def nonce_str(length: int = 16) -> str:
    return "".join(secrets.choice(_B62) for _ in range(length))


class TicketCache:
    """The app's ``agent_config`` ticket (for ``wx.agentConfig``), fetched once and kept until five minutes
    before it expires; WeCom limits how often a ticket may be fetched. One per process."""

    def __init__(self) -> None:
        self._ticket: str | None = None
        self._expires_at = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self, api: Any, now: dt.datetime) -> str:
        async with self._lock:
            if self._ticket is None or now >= self._expires_at:
                answer = await api.call("ticket/get", params={"type": "agent_config"}, method="GET")
                self.fetches += 1
                self._ticket = str(answer["ticket"])
                lifetime = max(int(answer.get("expires_in", 7200)) - 300, 60)
                self._expires_at = now + dt.timedelta(seconds=lifetime)
            return self._ticket
