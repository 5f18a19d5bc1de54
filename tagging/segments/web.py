"""/api/v1 routes of segments and RFM: live preview of an expression, saved segments, a customer's RFM.

Thin: parsing, counting and storing live in :mod:`tagging.segments.services`; a syntax error leaves as 400
``{"error": {"code": "segment_syntax", "message", "details": {"column": N}}}`` through the app's error middleware.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from scrm.core.clock import local
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import read_json
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, schema
from scrm.crm.customers.models import customers
from scrm.crm.customers.services import find_customer
from tagging.activity import services as activity
from tagging.rfm import services as rfm
from tagging.rfm.models import customer_order_stats
from tagging.segments import services as segments
from tagging.segments.syntax import MAX_LENGTH

PAGE_MAX = 5000

PREVIEW = schema(
    "SegmentPreview",
    {
        "type": "object",
        "required": ["count", "sample"],
        "properties": {
            "count": {"type": "integer"},
            "sample": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}},
        },
    },
)
SEGMENT = schema(
    "Segment",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "expression": {"type": "string"},
            "description": {"type": "string"},
            "created_by": {"type": "string"},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
            "count": {"type": "integer", "description": "customers picked now"},
        },
    },
)
SEGMENT_BODY = {
    "type": "object",
    "required": ["name", "expression"],
    "properties": {"name": {"type": "string", "maxLength": 64}, "expression": {"type": "string"}, "description": {"type": "string"}},
}


def _expression(data: dict[str, Any]) -> str:
    value = data.get("expression")
    if not isinstance(value, str):
        raise InvalidInput("字段 expression 必须是字符串 (expression must be a string)", field="expression")
    return value


async def preview(request: web.Request) -> web.Response:
    """Count of customers an expression picks now, and the first 10 of them."""
    rt = request.app[RUNTIME]
    expression = _expression(await read_json(request))
    count = await segments.count_segment(rt, expression)
    return web.json_response({"count": count, "sample": await segments.sample_segment(rt, expression)})


def _segment_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise NotFound("没有这个客群 (no such segment)")
    return int(raw)


async def list_segments(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].db.read() as conn:
        items = await segments.list_segments(conn)
    return web.json_response({"items": [s.to_json() for s in items]})


async def create_segment(request: web.Request) -> web.Response:
    data = await read_json(request)
    made = await segments.save_segment(
        request.app[RUNTIME],
        name=data.get("name"),  # type: ignore[arg-type]  # validated by save_segment
        expression=_expression(data),
        description=data.get("description", ""),
        created_by="api",
    )
    return web.json_response(made.to_json(), status=201)


async def get_segment(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        found = await segments.get_segment(conn, _segment_id(request))
    return web.json_response({**found.to_json(), "count": await segments.count_segment(rt, found.expression)})


async def update_segment(request: web.Request) -> web.Response:
    data = await read_json(request)
    rt = request.app[RUNTIME]
    segment_id = _segment_id(request)
    async with rt.db.read() as conn:
        current = await segments.get_segment(conn, segment_id)
    changed = await segments.save_segment(
        rt,
        segment_id=segment_id,
        name=data.get("name", current.name),
        expression=_expression(data) if "expression" in data else current.expression,
        description=data.get("description", current.description),
    )
    return web.json_response(changed.to_json())


async def delete_segment(request: web.Request) -> web.Response:
    await segments.delete_segment(request.app[RUNTIME], _segment_id(request))
    return web.json_response({"deleted": True})


async def segment_customers(request: web.Request) -> web.Response:
    """Customer ids of a saved segment, ascending, a page at a time: ``?after=<last id>&limit=`` (≤ 5000)."""
    rt = request.app[RUNTIME]
    after, limit = request.query.get("after", "0"), request.query.get("limit", "1000")
    if not after.isdecimal() or len(after) > 18 or not limit.isdecimal() or not 1 <= int(limit) <= PAGE_MAX:
        raise InvalidInput(f"after 为客户 id，limit 为 1 到 {PAGE_MAX} (after: an id, limit: 1–{PAGE_MAX})", field="limit")
    async with rt.db.read() as conn:
        found = await segments.get_segment(conn, _segment_id(request))
        q = segments.segment_select(segments.parse(found.expression), rt.clock.now())
        ids = [int(i) for (i,) in await conn.execute(q.where(customers.c.id > int(after)).limit(int(limit)))]
    return web.json_response({"items": ids, "next_after": ids[-1] if len(ids) == int(limit) else None})


async def customer_rfm(request: web.Request) -> web.Response:
    """A customer's RFM scores and segment (recency as of today), activity segment and order aggregates."""
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        customer_id = await find_customer(conn, "external_userid", request.match_info["external_userid"])
        if customer_id is None:
            raise NotFound("没有这个客户 (no such customer)")
        view = await rfm.rfm_of(conn, customer_id, local(rt.clock.now()).date())
        act = await activity.activity_of(conn, customer_id)
        stats = (await conn.execute(sa.select(customer_order_stats).where(customer_order_stats.c.customer_id == customer_id))).first()
    order_stats = None
    if stats is not None:
        order_stats = {
            "orders": int(stats.orders),
            "monetary_fen": int(stats.monetary_fen),
            "first_order_at": stats.first_order_at.isoformat() if stats.first_order_at else None,
            "last_order_at": stats.last_order_at.isoformat() if stats.last_order_at else None,
            "window_days": rfm.rfm_config(rt).window_days,
        }
    return web.json_response(
        {"customer_id": customer_id, "rfm": view.to_json() if view else None, "activity": act, "order_stats": order_stats}
    )


def setup_routes(app: web.Application) -> None:
    """Mount the segment and RFM API (bearer-token auth comes from the app's /api/v1 middleware)."""
    body = {"type": "object", "required": ["expression"], "properties": {"expression": {"type": "string", "maxLength": MAX_LENGTH}}}
    listing = schema("SegmentList", {"type": "object", "properties": {"items": {"type": "array", "items": SEGMENT}}})
    add_api_route(
        app, "POST", "/segments/preview", preview, summary="Count and sample of a segment expression", response=PREVIEW, request_body=body
    )
    add_api_route(app, "GET", "/segments", list_segments, summary="Saved segments", response=listing, errors=(401,))
    add_api_route(
        app,
        "POST",
        "/segments",
        create_segment,
        success=201,
        summary="Save a segment",
        response=SEGMENT,
        request_body=SEGMENT_BODY,
        errors=(400, 401, 409),
    )
    add_api_route(app, "GET", "/segments/{id}", get_segment, summary="A saved segment with its count now", response=SEGMENT)
    add_api_route(
        app, "PUT", "/segments/{id}", update_segment, summary="Change a saved segment", response=SEGMENT, request_body=SEGMENT_BODY,
        errors=(400, 401, 404, 409),
    )  # fmt: skip
    add_api_route(app, "DELETE", "/segments/{id}", delete_segment, summary="Delete a saved segment")
    page = [
        {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_MAX}},
    ]
    add_api_route(
        app, "GET", "/segments/{id}/customers", segment_customers, summary="Customer ids of a saved segment, page by page", parameters=page
    )
    add_api_route(app, "GET", "/customers/{external_userid}/rfm", customer_rfm, summary="A customer's RFM, activity and order aggregates")
