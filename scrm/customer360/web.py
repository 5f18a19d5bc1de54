"""/api/v1/customers: the customer directory for scripts — search (free text or a segment expression, paged) and
one customer's full record, by customer id or by an identity (external_userid / openid / unionid)."""

from __future__ import annotations

from aiohttp import web

from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, schema
from scrm.crm.customers.services import find_customer
from scrm.customer360.directory import MAX_EXPRESSION, MAX_QUERY, customer_record, search_customers

CUSTOMER_ROW = schema(
    "CustomerRow",
    {
        "type": "object",
        "required": ["id", "name", "identity", "salespeople", "tags", "orders", "monetary_fen"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "identity": {"type": "string", "description": "first external_userid or openid"},
            "salespeople": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "tags_more": {"type": "integer"},
            "activity": {"type": "string", "nullable": True},
            "rfm_segment": {"type": "string", "nullable": True},
            "orders": {"type": "integer"},
            "monetary_fen": {"type": "integer"},
            "last_seen_at": {"type": "string", "nullable": True},
        },
    },
)
CUSTOMER_PAGE = schema(
    "CustomerPage",
    {
        "type": "object",
        "required": ["items", "page", "more", "total"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/CustomerRow"}},
            "page": {"type": "integer"},
            "more": {"type": "boolean"},
            "total": {"type": "integer"},
        },
    },
)
CUSTOMER_RECORD = schema(
    "CustomerRecord",
    {
        "type": "object",
        "required": ["id", "name", "identities", "follows", "tags", "orders", "balance_due_fen"],
        "properties": {
            "id": {"type": "integer"},
            "merged_from": {"type": "integer", "nullable": True},
            "name": {"type": "string"},
            "identities": {"type": "object"},
            "custom_fields": {"type": "object", "additionalProperties": {"type": "string"}},
            "follows": {"type": "array", "items": {"type": "object"}},
            "tags": {"type": "array", "items": {"type": "object"}},
            "activity": {"type": "string", "nullable": True},
            "rfm": {"type": "object", "nullable": True},
            "orders": {"type": "array", "items": {"type": "object"}},
            "balance_due_fen": {"type": "integer"},
            "overdue_fen": {"type": "integer"},
            "groups": {"type": "array", "items": {"type": "object"}},
            "notes": {"type": "array", "items": {"type": "object"}},
            "timeline": {"type": "array", "items": {"type": "object"}},
        },
    },
)


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
        response=CUSTOMER_PAGE,
        parameters=[
            {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": MAX_QUERY}},
            {"name": "segment", "in": "query", "schema": {"type": "string", "maxLength": MAX_EXPRESSION}},
            {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
        ],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/customers/{customer}",
        get_customer_record,
        summary="One customer's record: by customer id, external_userid, openid or unionid (merged ids answer with the survivor)",
        response=CUSTOMER_RECORD,
    )
