"""/api/v1 routes of channel codes (渠道活码): create, list, read with stats, change, deactivate (thin)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import get_str, read_json
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, schema
from scrm.crm.channels.services import channel_code_manager, channel_stats, get_channel_code, list_channel_codes

CODE = schema(
    "ChannelCode",
    {
        "type": "object",
        "required": ["id", "name", "state", "userids", "active"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "state": {"type": "string", "maxLength": 30},
            "config_id": {"type": "string", "nullable": True},
            "qr_code": {"type": "string", "nullable": True},
            "userids": {"type": "array", "items": {"type": "string"}},
            "welcome_text": {"type": "string"},
            "tag_ids": {"type": "array", "items": {"type": "integer"}},
            "active": {"type": "boolean"},
            "stats": {"type": "object", "description": "adds, deletes (by customer / salesperson / other), net, active, days[]"},
        },
    },
)
BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 64},
        "userids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100},
        "welcome_text": {"type": "string", "maxLength": 1000},
        "tag_ids": {"type": "array", "items": {"type": "integer"}},
    },
}


def _code_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal():
        raise InvalidInput("id 必须是整数 (id must be an integer)", field="id")
    return int(raw)


def _day(request: web.Request, name: str) -> dt.date | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} 需为日期 YYYY-MM-DD ({name} must be a date)", field=name) from None


async def create_code(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    data = await read_json(request)
    code = await channel_code_manager(rt).create(
        rt,
        name=get_str(data, "name", max_len=64),
        userids=data.get("userids"),
        welcome_text=data.get("welcome_text", ""),
        tag_ids=data.get("tag_ids", []),
    )
    return web.json_response(code.to_json(), status=201)


async def list_codes(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    active = {"true": True, "false": False, "": None}.get(request.query.get("active", ""), None)
    async with rt.db.read() as conn:
        codes = await list_channel_codes(conn, active=active)
    return web.json_response({"items": [c.to_json() for c in codes]})


async def get_code(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        code = await get_channel_code(conn, _code_id(request))
        stats = await channel_stats(conn, code.state, since=_day(request, "since"), until=_day(request, "until"))
    return web.json_response({**code.to_json(), "stats": stats.to_json()})


async def patch_code(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    data: dict[str, Any] = await read_json(request)
    code = await channel_code_manager(rt).update(rt, _code_id(request), data)
    return web.json_response(code.to_json())


async def deactivate_code(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    code = await channel_code_manager(rt).deactivate(rt, _code_id(request))
    return web.json_response(code.to_json())


def setup_routes(app: web.Application) -> None:
    add_api_route(
        app,
        "POST",
        "/channel-codes",
        create_code,
        success=201,
        summary="Create a channel code (渠道活码): a WeCom contact way with its own state, QR code, welcome text, auto-tags",
        response=CODE,
        request_body={**BODY, "required": ["name", "userids"]},
        errors=(400, 401, 404, 502, 503),
    )
    add_api_route(
        app,
        "GET",
        "/channel-codes",
        list_codes,
        summary="Channel codes, newest first (?active=true|false)",
        response=schema("ChannelCodeList", {"type": "object", "properties": {"items": {"type": "array", "items": CODE}}}),
        parameters=[{"name": "active", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}}],
        errors=(401,),
    )
    days = [{"name": n, "in": "query", "schema": {"type": "string", "format": "date"}} for n in ("since", "until")]
    add_api_route(
        app,
        "GET",
        "/channel-codes/{id}",
        get_code,
        summary="A channel code with its add/delete stats by day",
        response=CODE,
        parameters=days,
    )
    add_api_route(
        app,
        "PATCH",
        "/channel-codes/{id}",
        patch_code,
        summary="Change name, welcome text, auto-tags or salespeople (the contact way follows)",
        response=CODE,
        request_body=BODY,
        errors=(400, 401, 404, 502, 503),
    )
    add_api_route(
        app,
        "POST",
        "/channel-codes/{id}/deactivate",
        deactivate_code,
        summary="Deactivate: the contact way is deleted in WeCom, the QR code stops working; stats stay",
        response=CODE,
        errors=(401, 404, 502, 503),
    )
