"""/api/v1 routes of segment broadcasts (群发): create, preview count, start / pause / cancel, progress, results."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scrm.campaigns.broadcasts import queries as broadcasts_queries
from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.broadcasts.domain import RecipientStatus
from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import get_str, read_json
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, schema
from tagging.segments import services as segments

STATUSES = [
    RecipientStatus.PLANNED,
    RecipientStatus.SENT,
    RecipientStatus.AWAITING_CONFIRMATION,
    RecipientStatus.SKIPPED,
    RecipientStatus.FAILED,
]
BROADCAST = schema(
    "Broadcast",
    {
        "type": "object",
        "required": ["id", "name", "segment", "text", "status", "totals"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "segment": {"type": "string", "description": "segment expression"},
            "text": {"type": "string"},
            "coupon_template_id": {"type": "integer", "nullable": True},
            "status": {"type": "string", "enum": ["draft", "scheduled", "running", "paused", "done", "cancelled"]},
            "scheduled_at": {"type": "string", "format": "date-time", "nullable": True},
            "cursor_customer_id": {"type": "integer", "nullable": True, "description": "planning resumes after this customer"},
            "totals": {"type": "object", "description": "plan totals: recipients, per channel, skipped per reason"},
            "progress": {"type": "object", "description": "live counts by status and by channel"},
        },
    },
)
BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 64},
        "segment": {"type": "string"},
        "text": {"type": "string", "maxLength": broadcasts.TEXT_MAX},
        "coupon_template_id": {"type": "integer", "nullable": True},
        "scheduled_at": {"type": "string", "format": "date-time", "nullable": True},
    },
}


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal():
        raise InvalidInput("id 必须是整数 (id must be an integer)", field="id")
    return int(raw)


async def _with_progress(request: web.Request, broadcast_id: int) -> dict[str, Any]:
    async with request.app[RUNTIME].db.read() as conn:
        view = await broadcasts_queries.get_broadcast(conn, broadcast_id)
        return {**view.to_json(), "progress": await broadcasts_queries.progress(conn, broadcast_id)}


async def create(request: web.Request) -> web.Response:
    view = await broadcasts.create_broadcast(request.app[RUNTIME], await read_json(request), actor="api")
    return web.json_response(view.to_json(), status=201)


async def get_one(request: web.Request) -> web.Response:
    return web.json_response(await _with_progress(request, _id(request)))


async def patch(request: web.Request) -> web.Response:
    view = await broadcasts.update_broadcast(request.app[RUNTIME], _id(request), await read_json(request))
    return web.json_response(view.to_json())


async def recipients(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status 只能是 {'/'.join(STATUSES)}", field="status")
    after, limit = request.query.get("after", "0"), request.query.get("limit", "100")
    if not after.isdecimal() or not limit.isdecimal() or not 0 < int(limit) <= 1000:
        raise InvalidInput("after 须为整数，limit 须为 1–1000 (bad paging)", field="limit")
    async with request.app[RUNTIME].db.read() as conn:
        items = await broadcasts_queries.list_recipients(conn, _id(request), status=status, after=int(after), limit=int(limit))
    return web.json_response({"items": items, "next_after": items[-1]["customer_id"] if len(items) == int(limit) else None})


async def start(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    view = await broadcasts.start_broadcast(rt, _id(request))
    await rt.jobs.enqueue("broadcasts.plan", view.id, job_id=f"broadcast-plan:{view.id}:{rt.clock.now():%Y%m%d%H%M}")
    return web.json_response(await _with_progress(request, view.id))


async def pause(request: web.Request) -> web.Response:
    view = await broadcasts.pause_broadcast(request.app[RUNTIME], _id(request))
    return web.json_response(await _with_progress(request, view.id))


async def cancel(request: web.Request) -> web.Response:
    view = await broadcasts.cancel_broadcast(request.app[RUNTIME], _id(request))
    return web.json_response(await _with_progress(request, view.id))


async def preview(request: web.Request) -> web.Response:

    expr = get_str(await read_json(request), "segment", max_len=4000)
    return web.json_response({"segment": expr, "count": int(await segments.count_segment(request.app[RUNTIME], expr))})


def setup_routes(app: web.Application) -> None:
    base = "/broadcasts"
    add_api_route(
        app, "POST", base, create, success=201, summary="Create a segment broadcast (群发): draft, or scheduled with scheduled_at",
        response=BROADCAST, request_body={**BODY, "required": ["name", "segment", "text"]}, errors=(400, 401, 404),
    )  # fmt: skip
    add_api_route(
        app, "POST", base + "/preview", preview, summary="How many customers a segment holds now",
        request_body={"type": "object", "required": ["segment"], "properties": {"segment": {"type": "string"}}},
    )  # fmt: skip
    add_api_route(app, "GET", base + "/{id}", get_one, summary="A broadcast with plan totals and live progress", response=BROADCAST)
    add_api_route(
        app, "PATCH", base + "/{id}", patch, summary="Edit a broadcast not yet started", response=BROADCAST,
        request_body=BODY, errors=(400, 401, 404, 409),
    )  # fmt: skip
    add_api_route(
        app, "GET", base + "/{id}/recipients", recipients, summary="Per-recipient results (keyset paging by customer_id)",
        parameters=[
            {"name": "status", "in": "query", "schema": {"type": "string", "enum": STATUSES}},
            {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
        ],
    )  # fmt: skip
    for action, handler, what in (
        ("start", start, "Run now, or resume a paused broadcast from its cursor"),
        ("pause", pause, "Stop planning; chunks not yet sent wait"),
        ("cancel", cancel, "Stop for good; recipients not yet sent become skipped"),
    ):
        add_api_route(app, "POST", f"{base}/{{id}}/{action}", handler, summary=what, response=BROADCAST, errors=(400, 401, 404, 409))
