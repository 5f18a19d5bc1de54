"""/api/v1 authentication (the bootstrap admin token or a person's token) and the /api/v1/tokens routes (thin).

Order of checks on every /api/v1 request (:func:`api_auth_middleware`): a ``Bearer`` header → the admin token
(``SCRM_ADMIN_TOKEN``, constant-time) acts as the bootstrap admin → otherwise a person's token must exist, be
neither revoked nor expired, belong to an active account (401) → the route's area must be in the token's scopes
and the owner's roles (403). The request then acts as that person: the audit trail records them.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated, ClassVar

from aiohttp import web
from pydantic import Field

from scrm.core import audit
from scrm.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from scrm.core.http.bodies import Body, NonBlank, read_body
from scrm.core.http.keys import RUNTIME, SETTINGS
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.crm.customers.services import find_customer
from scrm.crm.staff import accounts
from scrm.governance.scopes.services import customer_in_scope, scope_for
from scrm.governance.tokens import services
from scrm.governance.tokens.domain import AREAS, MAX_EXPIRY_DAYS, area_of, permits

ADMIN = audit.Actor("admin", "admin", "启动管理员")
# Areas that show every customer's traffic at once (the kernel's operations views): only an "all" data scope reads them.
WHOLE_COMPANY_AREAS = frozenset({"ops"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def authenticate_api(request: web.Request) -> audit.Actor:
    """Who this /api/v1 request acts as, or Unauthorized / Forbidden (see the module docstring)."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("需要有效的访问令牌 (missing or invalid bearer token)")
    expected = request.app[SETTINGS].admin_token.get()
    if expected and hmac.compare_digest(secret.encode(), expected.encode()):
        return ADMIN
    owner = await services.authenticate(request.app[RUNTIME], secret)
    if owner is None:
        raise Unauthorized("需要有效的访问令牌：令牌不存在、已过期、已吊销或其员工账号已停用 (missing or invalid bearer token)")
    match = request.match_info
    if match.http_exception is not None:  # no such route: the handler answers 404/405 to a known caller
        return owner.actor
    area = area_of(match.route.resource.canonical if match.route.resource is not None else request.path)
    write = request.method not in READ_METHODS
    if area is None:
        raise Forbidden("此接口只能用管理员启动令牌调用 (this route needs the bootstrap admin token)")
    if area in WHOLE_COMPANY_AREAS and not (await scope_for(request.app[RUNTIME], owner.actor)).everything:
        raise Forbidden(f"「{AREAS[area]}」包含所有客户的消息，只有数据范围为“全部客户”的员工可以查看 (needs the all data scope)")
    if not permits(owner.scopes, owner.roles, area, write):
        mode = "write" if write else "read"
        raise Forbidden(
            f"令牌无权{'修改' if write else '查看'}「{AREAS[area]}」（需要 {area}:{mode}，且本人角色允许）(token lacks {area}:{mode})"
        )
    return owner.actor


# Path values that name a customer: a route about one customer answers as unknown when the customer is outside the
# caller's data scope (every such route, whatever its area: tags, coupons, RFM, accounts, refunds, the record).
CUSTOMER_PARAMS = ("external_userid", "customer")


async def refuse_out_of_scope_customer(request: web.Request, actor: audit.Actor) -> None:
    names = [n for n in CUSTOMER_PARAMS if n in request.match_info]
    if not names or actor.kind == "admin":
        return
    rt = request.app[RUNTIME]
    scope = await scope_for(rt, actor)
    if scope.everything:
        return
    key = request.match_info[names[0]]
    async with rt.db.read() as conn:
        customer_id = int(key) if key.isdecimal() and len(key) < 19 else None
        for kind in ("external_userid", "openid", "unionid"):
            if customer_id is not None:
                break
            customer_id = await find_customer(conn, kind, key[:128])
    if customer_id is not None and not await customer_in_scope(rt, scope, customer_id):
        raise NotFound("没有这个客户 (no such customer)")


@web.middleware
async def api_auth_middleware(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:  # type: ignore[name-defined]
    if request.path.startswith("/api/v1"):
        actor = await authenticate_api(request)
        audit.set_request_actor(actor)
        await refuse_out_of_scope_customer(request, actor)
    return await handler(request)


# ---- /api/v1/tokens ---------------------------------------------------------------------------------------------
SCOPES_HELP = 'e.g. ["orders:read"]; null or ["*"] = everything the owner\'s roles allow'


class TokenIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "name": "name 必须是 1–64 字的令牌名称，写明用途 (name)",
        "staff": "staff 必须是员工账号的用户名 (staff must be a username)",
        "scopes": "scopes 必须是如 orders:read 的字符串数组 (scopes must be an array of strings)",
        "expires_in_days": f"expires_in_days 必须是 1 到 {MAX_EXPIRY_DAYS} 的整数，或 null 表示永不过期 (expires_in_days)",
    }

    name: Annotated[str, NonBlank, Field(max_length=64)]
    staff: str | None = Field(None, max_length=64, description="the owner's username; only the admin token may name someone else")
    scopes: list[Annotated[str, Field(max_length=40)]] | None = Field(None, description=SCOPES_HELP)
    expires_in_days: int | None = Field(services.DEFAULT_EXPIRY_DAYS, ge=1, le=MAX_EXPIRY_DAYS, description="null = never expires")


class TokenOut(ApiModel):
    id: int
    staff: str
    name: str
    shown_prefix: str = Field(description="the token's first characters, to tell tokens apart")
    scopes: list[str]
    status: str = Field(description="active, expired or revoked")
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself: shown this once, never stored")


class TokenList(ApiModel):
    items: list[TokenOut]


def _acting_owner() -> int | None:
    """The staff id whose tokens this caller may manage, None for the bootstrap admin (everyone's)."""
    actor = audit.current_actor()
    if actor.kind == "admin":
        return None
    if actor.staff_id is None:
        raise Forbidden("只有员工本人或管理员可以管理令牌 (tokens belong to staff accounts)")
    return actor.staff_id


async def list_tokens(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    owner = _acting_owner()
    if owner is None and (name := request.query.get("staff")):
        owner = next((s.id for s in await accounts.list_staff(rt) if s.username == name), -1)
    now = rt.clock.now()
    return web.json_response({"items": [t.to_json(now) for t in await services.list_tokens(rt, staff_id=owner)]})


async def create_token(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, TokenIn)
    owner = _acting_owner()
    if owner is None:
        if not body.staff:
            raise InvalidInput("管理员令牌创建令牌时须指定 staff（员工用户名）(staff is required)", field="staff")
        found = [s for s in await accounts.list_staff(rt) if s.username == body.staff.strip().lower()]
        if not found:
            raise NotFound(f"没有员工账号 {body.staff} (no such staff account)", field="staff")
        owner = found[0].id
    elif body.staff and body.staff.strip().lower() != audit.current_actor().ref:
        raise Forbidden("只能为自己创建令牌 (a token may create tokens only for its own owner)")
    token, secret = await services.create_token(
        rt, staff_id=owner, name=body.name, scopes=body.scopes, expires_in_days=body.expires_in_days
    )
    return web.json_response({**token.to_json(rt.clock.now()), "token": secret}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("令牌编号必须是数字 (token id must be a number)", field="id")
    token = await services.revoke_token(rt, int(raw), owner_id=_acting_owner())
    return web.json_response(token.to_json(rt.clock.now()))


def setup_routes(app: web.Application) -> None:
    add_api_route(
        app,
        "GET",
        "/tokens",
        list_tokens,
        summary="API tokens: yours (a person's token) or everyone's (the admin token; ?staff=username narrows)",
        response=TokenList,
        parameters=[query("staff")],
        errors=(401, 403),
    )
    add_api_route(
        app,
        "POST",
        "/tokens",
        create_token,
        success=201,
        summary="Make a personal API token; the token is in this answer only. Scopes stay within the owner's roles",
        response=TokenCreated,
        request_body=TokenIn,
        errors=(400, 401, 403, 404),
    )
    add_api_route(
        app,
        "DELETE",
        "/tokens/{id}",
        revoke_token,
        summary="Revoke a token: refused (401) from its next request",
        response=TokenOut,
        errors=(400, 401, 403, 404),
        path_pattern={"id": "^[0-9]+$"},
    )
