"""/api/v1/audit: search the audit trail (thin; who may read it is the token's ``audit`` scope)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import Field

from scrm.core.clock import SHANGHAI
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route, query
from scrm.governance.audit import queries


class AuditRow(ApiModel):
    id: int
    at: dt.datetime
    actor_kind: str = Field(description="admin, staff, token, sidebar or system")
    actor: str = Field(description="username, WeCom userid, admin or system")
    actor_name: str
    token_id: int | None
    ip: str
    action: str = Field(description="create, update, delete, sign_in, sign_in_failed, export, revoke, approve … or the route's verb")
    entity: str
    entity_id: str
    summary: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    route: str


class AuditPage(ApiModel):
    items: list[AuditRow]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page; null at the end")


def parse_when(raw: str, name: str, *, end: bool = False) -> dt.datetime:
    """An ISO date (a business-time day; ``until`` includes it) or an ISO date-time (naive = business time)."""
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw) + dt.timedelta(days=1 if end else 0)
            return dt.datetime.combine(day, dt.time(), SHANGHAI)
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} 须为日期 2026-12-01 或时间 2026-12-01T08:00:00+08:00 ({name} must be ISO 8601)", field=name) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=SHANGHAI)


def filter_from(params: Any) -> queries.AuditFilter:
    before = params.get("before_id", "")
    if before and (not before.isdecimal() or len(before) > 18):
        raise InvalidInput("before_id 须为数字 (before_id must be a number)", field="before_id")
    return queries.AuditFilter(
        entity=params.get("entity", "").strip()[:64],
        entity_id=params.get("id", "").strip()[:128],
        actor=params.get("actor", "").strip()[:64],
        action=params.get("action", "").strip()[:32],
        since=parse_when(s, "since") if (s := params.get("since", "").strip()) else None,
        until=parse_when(u, "until", end=True) if (u := params.get("until", "").strip()) else None,
        before_id=int(before) if before else None,
    )


async def list_audit(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    if not raw.isdecimal() or not 1 <= int(raw) <= queries.MAX_PAGE:
        raise InvalidInput(f"limit 须为 1 到 {queries.MAX_PAGE} 的整数 (limit)", field="limit")
    rows = await queries.search(request.app[RUNTIME], filter_from(request.query), limit=int(raw))
    nxt = int(rows[-1].id) if len(rows) == int(raw) else None
    return web.json_response({"items": [queries.entry_json(r) for r in rows], "next_before_id": nxt})


def setup_routes(app: web.Application) -> None:
    add_api_route(
        app,
        "GET",
        "/audit",
        list_audit,
        summary="The audit trail, newest first: who did what, when, from where, before → after",
        response=AuditPage,
        parameters=[
            query("entity"),
            query("id"),
            query("actor"),
            query("action"),
            Query("since", format="date-time"),
            Query("until", format="date-time"),
            Query("before_id", type="integer", minimum=1),
            Query("limit", type="integer", minimum=1, maximum=queries.MAX_PAGE),
        ],
        errors=(400, 401, 403),
    )
