"""/api/v1/customers: the customer directory for scripts — search (free text or a segment expression, paged) and
one customer's full record, by customer id or by an identity (external_userid / openid / unionid)."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field

from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route
from scrm.crm.customers.services import find_customer
from scrm.customer360.directory import MAX_EXPRESSION, MAX_QUERY, CustomerRecord, customer_record, search_customers


class CustomerRow(ApiModel):
    id: int
    name: str
    identity: str = Field(description="first external_userid or openid")
    salespeople: list[str]
    tags: list[str]
    tags_more: int
    activity: str | None
    rfm_segment: str | None
    orders: int
    monetary_fen: int
    last_seen_at: dt.datetime | None


class CustomerPage(ApiModel):
    items: list[CustomerRow]
    page: int
    more: bool
    total: int


async def list_customers(request: web.Request) -> web.Response:
    raw_page = request.query.get("page", "1")
    if not raw_page.isdecimal() or len(raw_page) > 5:
        raise InvalidInput("page 必须是正整数 (page must be a positive integer)", field="page")
    result = await search_customers(
        request.app[RUNTIME], q=request.query.get("q", ""), expression=request.query.get("segment", ""), page=int(raw_page)
    )
    return web.json_response({"items": [r.to_json() for r in result.rows], "page": result.page, "more": result.more, "total": result.total})


async def get_customer_record(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    key = request.match_info["customer"]
    customer_id: int | None = int(key) if key.isdecimal() and len(key) < 19 else None
    if customer_id is None and len(key) <= 128:
        async with rt.db.read() as conn:
            for kind in ("external_userid", "openid", "unionid"):
                customer_id = await find_customer(conn, kind, key)
                if customer_id is not None:
                    break
    if customer_id is None:
        raise NotFound("没有这个客户 (no such customer)")
    return web.json_response(await customer_record(rt, customer_id))


def setup_routes(app: web.Application) -> None:
    add_api_route(
        app,
        "GET",
        "/customers",
        list_customers,
        summary="Search customers by name / identity / #id and a segment expression, most recently seen first",
        response=CustomerPage,
        parameters=[
            Query("q", max_length=MAX_QUERY),
            Query("segment", max_length=MAX_EXPRESSION),
            Query("page", type="integer", minimum=1, maximum=10000),
        ],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/customers/{customer}",
        get_customer_record,
        summary="One customer's record: by customer id, external_userid, openid or unionid (merged ids answer with the survivor)",
        response=CustomerRecord,
    )
