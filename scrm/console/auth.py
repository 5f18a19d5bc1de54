"""Console sign-in: signed session cookies, CSRF tokens derived from the session, a login rate limit.

The session is stateless: ``base64url(json) "." base64url(HMAC-SHA256)`` under a key derived from
``settings.session_secret`` for that purpose alone (a flash cookie can never pass as a session). Any
``run.py serve`` process behind a load balancer can check it; rotating ``SCRM_SESSION_SECRET`` signs everyone out.
Logout deletes the cookie. A staff session also carries the account id and its ``session_version``; each
request checks them against ``staff_users`` (:func:`scrm.crm.staff.accounts.current_roles`), so a deactivated account,
a new password or changed roles end every open session at once. The admin-token session (username ``admin``)
has no account row: it lives until it expires (12 h) or ``SCRM_SESSION_SECRET`` rotates.

Who may sign in is decided by :func:`authenticate`: ``admin`` with the admin token as its password, or a staff
account (:mod:`scrm.console.staff`, scrypt hashes) with its roles. Each route names the roles that may use it
(:func:`protected`); a signed-in user without one of them gets a 403 page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from config import Settings
from scrm.console.form_echo import FormEcho
from scrm.core import audit
from scrm.core.http.errors import json_error
from scrm.core.http.keys import RUNTIME, SETTINGS
from scrm.core.http.signing import Signer, b64url
from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts
from scrm.crm.staff.domain import ROLE_ADMIN, ROLE_FINANCE, ROLE_MARKETER, ROLE_NAMES_ZH, ROLE_OPERATIONS, ROLE_SALES
from scrm.governance.audit.edge import mark_refused

SESSION_COOKIE = "scrm_console"
FLASH_COOKIE = "scrm_console_flash"
COOKIE_PATH = "/console"
SESSION_TTL = dt.timedelta(hours=12)
CLOCK_SKEW = 60  # seconds a session's issued-at may lie in the future (several servers, slightly apart)
CSRF_FIELD = "csrf_token"

ADMIN_ROLES = frozenset({ROLE_ADMIN})  # staff accounts
OPERATIONS_ROLES = frozenset({ROLE_ADMIN, ROLE_OPERATIONS})  # orders, picking, stock, purchasing, groups
MARKETING_ROLES = frozenset({ROLE_ADMIN, ROLE_MARKETER})  # campaigns, coupons, broadcasts, segments, tag rules
FINANCE_ROLES = frozenset({ROLE_ADMIN, ROLE_FINANCE})  # receivables, payments, statements, credit holds
SALES_ROLES = frozenset({ROLE_ADMIN, ROLE_SALES})  # leads, the public pool, opportunities, quotes, follow-ups, handover
ALL_ROLES = frozenset(ROLE_NAMES_ZH)  # pages every signed-in staff member may see (the dashboard)
# Where a role lands after sign-in when no page was asked for (first match wins).
HOME_BY_ROLE = (
    (ROLE_ADMIN, "/console/orders"),
    (ROLE_SALES, "/console/customers"),
    (ROLE_OPERATIONS, "/console/orders"),
    (ROLE_MARKETER, "/console/coupons"),
    (ROLE_FINANCE, "/console/finance/receivables"),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Principal:
    """Who is signed in: a subject (account name), a primary role (shown in the header), all roles, and for a
    staff account its id and the ``session_version`` its sessions must match."""

    subject: str
    role: str
    roles: tuple[str, ...] = ()  # empty = (role,)
    staff_id: int | None = None
    session_version: int = 0

    @property
    def all_roles(self) -> tuple[str, ...]:
        return self.roles or (self.role,)

    @property
    def actor(self) -> audit.Actor:
        """Who this is in the audit trail: the admin-token login, or a staff account."""
        if self.staff_id is None:
            return audit.Actor("admin", ROLE_ADMIN, "启动管理员", roles=self.all_roles)
        return audit.Actor("staff", self.subject, staff_id=self.staff_id, roles=self.all_roles)


@dataclass(frozen=True)
class Session:
    sid: str  # random; the CSRF token is derived from it
    subject: str
    role: str
    issued_at: int  # unix seconds
    expires_at: int
    roles: tuple[str, ...] = ()
    staff_id: int | None = None  # None: the admin-token session
    session_version: int = 0

    @property
    def principal(self) -> Principal:
        return Principal(self.subject, self.role, self.all_roles, self.staff_id, self.session_version)

    @property
    def all_roles(self) -> tuple[str, ...]:
        return self.roles or (self.role,)

    def may(self, roles: Collection[str]) -> bool:
        return not set(self.all_roles).isdisjoint(roles)


def home_for(roles: Collection[str]) -> str:
    """The page a user with ``roles`` lands on after signing in."""
    return next((path for role, path in HOME_BY_ROLE if role in roles), "/console/dashboard")


SESSION = web.RequestKey("console_session", Session)


def _signer(settings: Settings, purpose: str) -> Signer:
    return Signer(settings.session_secret.get(), purpose)


# ---- sessions ---------------------------------------------------------------------------------------------
def authenticate_admin(settings: Settings, username: str, password: str) -> Principal | None:
    """``admin`` (or a blank username) with the admin token as its password (constant-time comparison)."""
    expected = settings.admin_token.get()
    user_ok = hmac.compare_digest((username.strip() or ROLE_ADMIN).encode(), ROLE_ADMIN.encode())
    pass_ok = bool(expected) and hmac.compare_digest(password.encode(), expected.encode())
    return Principal(ROLE_ADMIN, ROLE_ADMIN) if user_ok and pass_ok else None


async def authenticate(rt: Runtime, username: str, password: str) -> Principal | None:
    """Check sign-in credentials: the admin token for ``admin``, otherwise an active staff account's scrypt
    password. Returns who signed in (with their roles), or None."""
    if (username.strip() or ROLE_ADMIN) == ROLE_ADMIN:
        return authenticate_admin(rt.settings, username, password)
    user = await accounts.check_login(rt, username, password)
    if user is None or not user.roles:
        return None
    return Principal(user.username, user.roles[0], user.roles, user.id, user.session_version)


def issue_session(settings: Settings, principal: Principal, now: dt.datetime) -> tuple[Session, str]:
    """A new session for ``principal`` and its signed cookie value; valid for SESSION_TTL."""
    issued = int(now.timestamp())
    expires = issued + int(SESSION_TTL.total_seconds())
    p = principal
    session = Session(secrets.token_urlsafe(18), p.subject, p.role, issued, expires, p.all_roles, p.staff_id, p.session_version)
    payload: dict[str, Any] = {"sid": session.sid, "sub": session.subject, "role": session.role, "iat": issued, "exp": expires}
    payload["roles"] = list(session.all_roles)
    if p.staff_id is not None:
        payload.update(uid=p.staff_id, sv=p.session_version)
    return session, _signer(settings, "session").sign(payload)


def read_session(settings: Settings, cookie: str | None, now: dt.datetime) -> Session | None:
    """The session in a cookie value if it is signed by us, unexpired and well formed; else None."""
    if not cookie:
        return None
    p = _signer(settings, "session").unsign(cookie)
    if p is None:
        return None
    sid, sub, role, iat, exp = p.get("sid"), p.get("sub"), p.get("role"), p.get("iat"), p.get("exp")
    if not (isinstance(sid, str) and sid and isinstance(sub, str) and sub and isinstance(role, str) and role in ROLE_NAMES_ZH):
        return None
    if not (isinstance(iat, int) and isinstance(exp, int)):
        return None
    ts = int(now.timestamp())
    if exp <= ts or iat > ts + CLOCK_SKEW or exp - iat > SESSION_TTL.total_seconds():
        return None
    roles, uid, sv = p.get("roles", [role]), p.get("uid"), p.get("sv", 0)
    if not (isinstance(roles, list) and roles and all(isinstance(r, str) and r in ROLE_NAMES_ZH for r in roles)):
        return None
    if not ((uid is None or (isinstance(uid, int) and uid > 0)) and isinstance(sv, int)):
        return None
    return Session(sid, sub, str(role), iat, exp, tuple(roles), uid, sv)


async def current_session(request: web.Request) -> Session | None:
    """The request's session if its cookie is good and, for a staff account, the account is still active at the
    same ``session_version`` (the roles are then the account's current ones)."""
    rt = request.app[RUNTIME]
    session = read_session(request.app[SETTINGS], request.cookies.get(SESSION_COOKIE), rt.clock.now())
    if session is None or session.staff_id is None:
        return session
    roles = await accounts.current_roles(rt, session.staff_id, session.session_version)
    if roles is None:
        return None
    return dataclasses.replace(session, roles=roles, role=roles[0])


def csrf_token(settings: Settings, session: Session) -> str:
    """The CSRF token of a session: an HMAC of its id, so it needs no storage and dies with the session."""
    return b64url(_signer(settings, "csrf").mac(session.sid.encode()))


def check_csrf(settings: Settings, session: Session, token: object) -> bool:
    """True when ``token`` is this session's CSRF token (constant-time)."""
    return isinstance(token, str) and hmac.compare_digest(token.encode(), csrf_token(settings, session).encode())


def set_session_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(SESSION_TTL.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="Lax")


# ---- flash messages ---------------------------------------------------------------------------------------
def set_flash(request: web.Request, response: web.StreamResponse, kind: str, message: str, *, form: FormEcho | None = None) -> None:
    """A one-time message for the next page (signed, so nobody can put words in our mouth via a link); with
    ``form``, the refused submission the next page refills (:mod:`scrm.console.form_echo`)."""
    if kind == "err":
        mark_refused()  # the redirect carries a refusal: the audit edge must not record the form as done
    now = int(request.app[RUNTIME].clock.now().timestamp())
    payload: dict[str, Any] = {"k": kind, "m": message[:300], "exp": now + 120}
    if form is not None:
        payload["form"] = form.to_payload()
    value = _signer(request.app[SETTINGS], "flash").sign(payload)
    response.set_cookie(FLASH_COOKIE, value, max_age=120, path=COOKIE_PATH, httponly=True, samesite="Lax", secure=request.secure)


def read_flash(request: web.Request) -> tuple[str, str] | None:
    """The flash message for this page as ``(kind, text)`` — kind ``ok``, ``warn`` (done, but not all of it) or
    ``err`` — if a valid one was set."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    p = _signer(request.app[SETTINGS], "flash").unsign(raw)
    now = int(request.app[RUNTIME].clock.now().timestamp())
    if p is None or not isinstance(p.get("exp"), int) or p["exp"] < now or p.get("k") not in ("ok", "warn", "err"):
        return None
    return str(p["k"]), str(p.get("m", ""))


def read_form_echo(request: web.Request) -> FormEcho | None:
    """The refused submission the flash carries, if any (see :func:`set_flash`)."""
    raw, flash = request.cookies.get(FLASH_COOKIE), read_flash(request)
    if not raw or flash is None:
        return None
    p = _signer(request.app[SETTINGS], "flash").unsign(raw)
    return FormEcho.from_payload(p.get("form"), flash[1]) if p is not None else None


def clear_flash(request: web.Request, response: web.StreamResponse) -> None:
    """Shown once: the page that displayed the message deletes its cookie."""
    if FLASH_COOKIE in request.cookies:
        response.del_cookie(FLASH_COOKIE, path=COOKIE_PATH)


# ---- the guard around every console route -----------------------------------------------------------------
def wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def safe_next(target: str | None, default: str = "/console/orders") -> str:
    """Only a path inside the console may be a redirect target (no open redirects)."""
    if not target or not target.startswith("/console/") or target.startswith("//") or "\\" in target:
        return default
    return target


def login_redirect(request: web.Request) -> web.Response:
    target = request.path_qs if request.method == "GET" else request.headers.get("Referer", "")
    location = "/console/login?next=" + quote(safe_next(target if target.startswith("/") else None), safe="")
    return web.Response(status=303, headers={"Location": location})


def protected(
    handler: Handler, *, roles: Collection[str] = OPERATIONS_ROLES, forbidden_page: Callable[[web.Request, str], web.Response]
) -> Handler:
    """Wrap a console handler: a valid, unrevoked session with one of ``roles`` is required (browsers go to the
    login page, other clients get 401 JSON; a signed-in user without the role gets ``forbidden_page``, 403), and a
    POST must carry the session's CSRF token (else ``forbidden_page``)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        session = await current_session(request)
        if session is None:
            if wants_html(request):
                response = login_redirect(request)
            else:
                response = json_error(401, "unauthorized", "请先登录控制台")
            if SESSION_COOKIE in request.cookies:  # expired or revoked: drop the dead cookie
                clear_session_cookie(response)
            return response
        if not session.may(roles):
            return forbidden_page(request, "您的角色无权使用此页面")
        if request.method == "POST":
            form = await request.post()
            if not check_csrf(settings, session, form.get(CSRF_FIELD)):
                return forbidden_page(request, "表单已失效或来源不明，请刷新页面后重试")
        request[SESSION] = session
        audit.set_request_actor(session.principal.actor)
        return await handler(request)

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    guarded.__doc__ = handler.__doc__
    guarded.console_roles = frozenset(roles)  # type: ignore[attr-defined]  # read by the route × role test
    return guarded


def route_roles(handler: object) -> frozenset[str] | None:
    """The roles a console route admits (set by :func:`protected`), or None for a handler it did not wrap."""
    roles = getattr(handler, "console_roles", None)
    return roles if isinstance(roles, frozenset) else None
