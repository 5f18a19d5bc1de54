"""/api/v1 routes of channel codes (渠道活码): create, list, read with stats, change, deactivate (thin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

from aiohttp import web
from pydantic import ConfigDict, Field

from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import Body, NonBlank, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route, query
from scrm.crm.channels.services import MAX_USERS, channel_code_manager, channel_stats, get_channel_code, list_channel_codes

MESSAGES = {
    "name": "渠道名称需为 1 到 64 个字 (name is 1–64 characters)",
    "userids": f"userids 需为 1 到 {MAX_USERS} 个成员账号 (userids: 1–{MAX_USERS} member userids)",
    "welcome_text": "欢迎语不能超过 1000 字 (welcome_text ≤ 1000 characters)",
    "tag_ids": "tag_ids 需为标签编号数组 (tag_ids must be a list of tag ids)",
}
Name = Annotated[str, NonBlank, Field(max_length=64)]
UserIds = Annotated[list[Annotated[str, NonBlank, Field(max_length=64)]], Field(min_length=1, max_length=MAX_USERS)]
WelcomeText = Annotated[str, Field(max_length=1000)]
TagIds = Annotated[list[int], Field(max_length=50, description="auto-tags (existing tag ids)")]


class ChannelCodeIn(Body):
    messages: ClassVar[dict[str, str]] = MESSAGES

    name: Name
    userids: UserIds
    welcome_text: WelcomeText = ""
    tag_ids: TagIds = Field(default_factory=list)


class ChannelCodeChange(Body):
    """Only the fields given change; any other field is refused."""

    model_config = ConfigDict(extra="forbid")
    messages: ClassVar[dict[str, str]] = MESSAGES

    name: Name = Field(None)
    userids: UserIds = Field(None)
    welcome_text: WelcomeText = Field(None)
    tag_ids: TagIds = Field(None)


class ChannelCode(ApiModel):
    id: int
    name: str
    state: str = Field(max_length=30)
    config_id: str | None
    qr_code: str | None
    userids: list[str]
    welcome_text: str
    tag_ids: list[int]
    kind: str
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class ChannelCodeList(ApiModel):
    items: list[ChannelCode]


class ChannelDayStats(ApiModel):
    day: dt.date
    adds: int
    deletes: int
    deleted_by_customer: int
    deleted_by_salesperson: int
    deleted_other: int
    net: int


class ChannelStats(ApiModel):
    adds: int
    deletes: int
    deleted_by_customer: int
    deleted_by_salesperson: int
    deleted_other: int
    net: int
    active: int = Field(description="follows from this channel still in place")
    days: list[ChannelDayStats]


class ChannelCodeWithStats(ChannelCode):
    stats: ChannelStats


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
    body = await read_body(request, ChannelCodeIn)
    code = await channel_code_manager(rt).create(
        rt, name=body.name, userids=body.userids, welcome_text=body.welcome_text, tag_ids=body.tag_ids
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
    changes = (await read_body(request, ChannelCodeChange)).model_dump(exclude_unset=True)
    code = await channel_code_manager(rt).update(rt, _code_id(request), changes)
    return web.json_response(code.to_json())


async def deactivate_code(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    code = await channel_code_manager(rt).deactivate(rt, _code_id(request))
    return web.json_response(code.to_json())


def setup_routes(app: web.Application) -> None:
    decimal = {"id": "^[0-9]+$"}
    add_api_route(
        app,
        "POST",
        "/channel-codes",
        create_code,
        success=201,
        summary="Create a channel code (渠道活码): a WeCom contact way with its own state, QR code, welcome text, auto-tags",
        response=ChannelCode,
        request_body=ChannelCodeIn,
        errors=(400, 401, 404, 502, 503),
    )
    add_api_route(
        app,
        "GET",
        "/channel-codes",
        list_codes,
        summary="Channel codes, newest first (?active=true|false)",
        response=ChannelCodeList,
        parameters=[query("active", enum=["true", "false"])],
        errors=(401,),
    )
    add_api_route(
        app,
        "GET",
        "/channel-codes/{id}",
        get_code,
        summary="A channel code with its add/delete stats by day",
        response=ChannelCodeWithStats,
        parameters=[Query("since", format="date"), Query("until", format="date")],
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "PATCH",
        "/channel-codes/{id}",
        patch_code,
        summary="Change name, welcome text, auto-tags or salespeople (the contact way follows)",
        response=ChannelCode,
        request_body=ChannelCodeChange,
        errors=(400, 401, 404, 502, 503),
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "POST",
        "/channel-codes/{id}/deactivate",
        deactivate_code,
        summary="Deactivate: the contact way is deleted in WeCom, the QR code stops working; stats stay",
        response=ChannelCode,
        errors=(401, 404, 502, 503),
        path_pattern=decimal,
    )
