"""/api/v1 routes of segments and RFM: live preview of an expression, saved segments, a customer's RFM.

Thin: parsing, counting and storing live in :mod:`tagging.segments.services`; a syntax error leaves as 400
``{"error": {"code": "segment_syntax", "message", "details": {"column": N}}}`` through the app's error middleware.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

import sqlalchemy as sa
from aiohttp import web
from pydantic import Field, StringConstraints

from scrm.core.clock import local
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import Body, NonBlank, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route
from scrm.crm.customers.models import customers
from scrm.crm.customers.services import find_customer
from tagging.activity import services as activity
from tagging.rfm import services as rfm
from tagging.rfm.models import customer_order_stats
from tagging.segments import services as segments
from tagging.segments.syntax import MAX_LENGTH

PAGE_MAX = 5000

EXPRESSION_MESSAGE = "字段 expression 必须是字符串 (expression must be a string)"
# Kept as written (a syntax error's column counts from the first character); the parser checks the length.
Expression = Annotated[str, StringConstraints(strip_whitespace=False), Field(json_schema_extra={"maxLength": MAX_LENGTH})]
SegmentName = Annotated[str, NonBlank, Field(max_length=64)]
Description = Annotated[str, Field(max_length=500)]


class SegmentPreviewIn(Body):
    messages: ClassVar[dict[str, str]] = {"expression": EXPRESSION_MESSAGE}

    expression: Expression


class SegmentIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "expression": EXPRESSION_MESSAGE,
        "name": "客群名称需为 1 到 64 个字 (name: 1–64 characters)",
        "description": "说明不超过 500 字 (description ≤ 500 characters)",
    }

    name: SegmentName
    expression: Expression
    description: Description = ""


class SegmentChange(Body):
    """PUT: fields left out keep their value."""

    messages: ClassVar[dict[str, str]] = SegmentIn.messages

    name: SegmentName = Field(None)
    expression: Expression = Field(None)
    description: Description = Field(None)


class SampleCustomer(ApiModel):
    id: int
    name: str


class SegmentPreview(ApiModel):
    count: int
    sample: list[SampleCustomer] = Field(description="the first 10 customers")


class Segment(ApiModel):
    id: int
    name: str
    expression: str
    description: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentWithCount(Segment):
    count: int = Field(description="customers picked now")


class SegmentList(ApiModel):
    items: list[Segment]


class Deleted(ApiModel):
    deleted: bool


class SegmentCustomers(ApiModel):
    items: list[int] = Field(description="customer ids, ascending")
    next_after: int | None = Field(description="pass as ?after= for the next page; null on the last page")


class OrderStats(ApiModel):
    orders: int
    monetary_fen: int
    first_order_at: dt.datetime | None
    last_order_at: dt.datetime | None
    window_days: int


class Rfm(ApiModel):
    customer_id: int
    recency_days: int
    frequency: int
    monetary_fen: int
    r: int
    f: int
    m: int
    segment: str
    computed_on: dt.date


class Activity(ApiModel):
    segment: str
    segment_zh: str
    last_message_at: dt.datetime | None
    last_order_at: dt.datetime | None
    computed_at: dt.datetime | None


class CustomerRfm(ApiModel):
    customer_id: int
    rfm: Rfm | None
    activity: Activity | None
    order_stats: OrderStats | None


async def preview(request: web.Request) -> web.Response:
    """Count of customers an expression picks now, and the first 10 of them."""
    rt = request.app[RUNTIME]
    expression = (await read_body(request, SegmentPreviewIn)).expression
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
    body = await read_body(request, SegmentIn)
    made = await segments.save_segment(
        request.app[RUNTIME],
        name=body.name,
        expression=body.expression,
        description=body.description,
        created_by="api",
    )
    return web.json_response(made.to_json(), status=201)


async def get_segment(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        found = await segments.get_segment(conn, _segment_id(request))
    return web.json_response({**found.to_json(), "count": await segments.count_segment(rt, found.expression)})


async def update_segment(request: web.Request) -> web.Response:
    body = await read_body(request, SegmentChange)
    given = body.model_fields_set
    rt = request.app[RUNTIME]
    segment_id = _segment_id(request)
    async with rt.db.read() as conn:
        current = await segments.get_segment(conn, segment_id)
    changed = await segments.save_segment(
        rt,
        segment_id=segment_id,
        name=body.name if "name" in given else current.name,
        expression=body.expression if "expression" in given else current.expression,
        description=body.description if "description" in given else current.description,
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
    add_api_route(
        app,
        "POST",
        "/segments/preview",
        preview,
        summary="Count and sample of a segment expression",
        response=SegmentPreview,
        request_body=SegmentPreviewIn,
    )
    add_api_route(app, "GET", "/segments", list_segments, summary="Saved segments", response=SegmentList, errors=(401,))
    add_api_route(
        app,
        "POST",
        "/segments",
        create_segment,
        success=201,
        summary="Save a segment",
        response=Segment,
        request_body=SegmentIn,
        errors=(400, 401, 409),
    )
    add_api_route(app, "GET", "/segments/{id}", get_segment, summary="A saved segment with its count now", response=SegmentWithCount)
    add_api_route(
        app,
        "PUT",
        "/segments/{id}",
        update_segment,
        summary="Change a saved segment",
        response=Segment,
        request_body=SegmentChange,
        errors=(400, 401, 404, 409),
    )
    add_api_route(app, "DELETE", "/segments/{id}", delete_segment, summary="Delete a saved segment", response=Deleted)
    add_api_route(
        app,
        "GET",
        "/segments/{id}/customers",
        segment_customers,
        summary="Customer ids of a saved segment, page by page",
        response=SegmentCustomers,
        parameters=[Query("after", type="integer", minimum=0), Query("limit", type="integer", minimum=1, maximum=PAGE_MAX)],
    )
    add_api_route(
        app,
        "GET",
        "/customers/{external_userid}/rfm",
        customer_rfm,
        summary="A customer's RFM, activity and order aggregates",
        response=CustomerRfm,
    )
