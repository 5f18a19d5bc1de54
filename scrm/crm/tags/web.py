"""/api/v1 routes of tags: the tag catalogue, creating tags (WeCom corp tags or local-only), tagging customers.

Tagging goes through ``set_customer_tag``, so a mirrored tag reaches WeCom (mark_tag) by the outbox.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route
from scrm.crm.customers.services import find_customer
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import TagInfo, create_tag, list_tags, set_customer_tag, tags_of


class TagIn(Body):
    name: Annotated[str, NonBlank, Field(max_length=30)]
    group: Annotated[str, OrEmpty, Field(max_length=30)] = ""
    mirror: bool = Field(True, description="true: a WeCom corp tag (add_corp_tag); false: local-only")


class TagCustomerIn(Body):
    tag_id: int = Field(ge=1)
    by: Annotated[str, OrEmpty, Field(max_length=64, description="who tags (default api)")] = ""


class Tag(ApiModel):
    id: int
    name: str
    group: str
    group_id: int
    mirrored: bool = Field(description="a WeCom corp tag (pushed with mark_tag); false = local-only")
    remote_id: str | None


class TagList(ApiModel):
    items: list[Tag]


class AppliedTag(ApiModel):
    tag_id: int
    name: str
    group: str
    source: str
    evidence: dict[str, Any]
    applied_at: dt.datetime


class CustomerTags(ApiModel):
    changed: bool
    tags: list[AppliedTag]


def tag_json(t: TagInfo) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "group": t.group, "group_id": t.group_id, "mirrored": t.mirrored, "remote_id": t.remote_id}


async def get_tags(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        items = await list_tags(conn)
    return web.json_response({"items": [tag_json(t) for t in items]})


async def post_tag(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, TagIn)
    tag, created = await create_tag(rt, name=body.name, group=body.group, mirror=body.mirror)
    return web.json_response(tag_json(tag), status=201 if created else 200)


async def _customer_id(rt: Any, request: web.Request) -> int:
    external = request.match_info["external_userid"]
    async with rt.db.read() as conn:
        customer_id = await find_customer(conn, "external_userid", external)
    if customer_id is None:
        raise NotFound(f"没有这个客户 {external} (unknown customer)", customer=external)
    return customer_id


async def _answer(rt: Any, customer_id: int, changed: bool) -> web.Response:
    async with rt.db.read() as conn:
        applied = await tags_of(conn, customer_id)
    items = [
        {
            "tag_id": t.tag_id,
            "name": t.name,
            "group": t.group,
            "source": t.source,
            "evidence": t.evidence,
            "applied_at": t.applied_at.isoformat(),
        }
        for t in applied
    ]
    return web.json_response({"changed": changed, "tags": items})


async def tag_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    customer_id = await _customer_id(rt, request)
    body = await read_body(request, TagCustomerIn)
    by = body.by or "api"
    changed = await set_customer_tag(
        rt, customer_id=customer_id, tag_id=body.tag_id, add=True, source=TagSource.MANUAL, evidence={"by": by}, by=by
    )
    return await _answer(rt, customer_id, changed)


async def untag_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    customer_id = await _customer_id(rt, request)
    raw = request.match_info["tag_id"]
    if not raw.isdecimal():
        raise InvalidInput("tag_id 必须是整数 (tag_id must be an integer)", field="tag_id")
    changed = await set_customer_tag(
        rt, customer_id=customer_id, tag_id=int(raw), add=False, source=TagSource.MANUAL, evidence={}, by="api"
    )
    return await _answer(rt, customer_id, changed)


def setup_routes(app: web.Application) -> None:
    add_api_route(
        app, "GET", "/tags", get_tags, summary="Tags: WeCom corp tags (mirrored) and local-only tags", response=TagList, errors=(401,)
    )
    add_api_route(
        app,
        "POST",
        "/tags",
        post_tag,
        success=(200, 201),
        summary="Create a tag: mirror=true makes a WeCom corp tag (add_corp_tag), false a local-only tag; 200 if it exists",
        response=Tag,
        request_body=TagIn,
        errors=(400, 401, 502, 503),
    )
    add_api_route(
        app,
        "POST",
        "/customers/{external_userid}/tags",
        tag_customer,
        summary="Put a tag on a customer (source manual); mirrored tags are pushed to WeCom",
        response=CustomerTags,
        request_body=TagCustomerIn,
    )
    add_api_route(
        app,
        "DELETE",
        "/customers/{external_userid}/tags/{tag_id}",
        untag_customer,
        summary="Remove a tag from a customer; mirrored tags are removed in WeCom too",
        response=CustomerTags,
        path_pattern={"tag_id": "^[0-9]+$"},
    )
