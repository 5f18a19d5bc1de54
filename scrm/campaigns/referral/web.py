"""/api/v1 routes of referral campaigns (裂变): CRUD, personal codes, leaderboard, funnel (thin)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scrm.campaigns.referral import queries as referral_queries
from scrm.campaigns.referral import services as referral_services
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import get_str, read_json
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, schema
from scrm.crm.customers.services import find_customer

CAMPAIGN = schema(
    "ReferralCampaign",
    {
        "type": "object",
        "required": ["id", "name", "goal", "status", "starts_at", "ends_at"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "goal": {"type": "integer", "description": "qualified invites needed for the reward"},
            "reward_template_id": {"type": "integer", "nullable": True},
            "reward_tag_id": {"type": "integer", "nullable": True},
            "eligible_segment": {"type": "string", "description": "segment expression; empty = every customer"},
            "userids": {"type": "array", "items": {"type": "string"}},
            "kind": {"type": "string", "enum": ["contact", "group"], "description": "contact: 联系我 codes; group: 加入群聊 codes"},
            "chat_ids": {"type": "array", "items": {"type": "string"}, "description": "group campaign: the groups (1–5)"},
            "poster_text": {"type": "string"},
            "hold_hours": {"type": "integer", "description": "an invitee must stay this long to count"},
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
            "status": {"type": "string", "enum": ["draft", "running", "paused", "ended"]},
        },
    },
)
BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 64},
        "goal": {"type": "integer", "minimum": 1, "maximum": 1000},
        "reward_template_id": {"type": "integer", "nullable": True},
        "reward_tag_id": {"type": "integer", "nullable": True},
        "eligible_segment": {"type": "string"},
        "userids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100, "description": "contact campaigns"},
        "kind": {"type": "string", "enum": ["contact", "group"], "default": "contact"},
        "chat_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5, "description": "group campaigns"},
        "poster_text": {"type": "string", "maxLength": 2000},
        "hold_hours": {"type": "integer", "minimum": 0, "maximum": 720},
        "starts_at": {"type": "string", "format": "date-time"},
        "ends_at": {"type": "string", "format": "date-time"},
        "status": {"type": "string", "enum": ["draft", "running", "paused", "ended"]},
    },
}
CODE = schema(
    "ReferralCode",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "campaign_id": {"type": "integer"},
            "inviter_customer_id": {"type": "integer"},
            "state": {"type": "string", "maxLength": 30},
            "config_id": {"type": "string", "nullable": True},
            "qr_code": {"type": "string", "nullable": True},
        },
    },
)


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal():
        raise InvalidInput("id 必须是整数 (id must be an integer)", field="id")
    return int(raw)


async def create_campaign(request: web.Request) -> web.Response:
    campaign = await referral_services.create_campaign(request.app[RUNTIME], await read_json(request))
    return web.json_response(campaign.to_json(), status=201)


async def list_campaigns(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].db.read() as conn:
        items = await referral_services.list_campaigns(conn)
    return web.json_response({"items": [c.to_json() for c in items]})


async def get_campaign(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].db.read() as conn:
        campaign = await referral_services.get_campaign(conn, _id(request))
        funnel = await referral_queries.funnel(conn, campaign.id)
    return web.json_response({**campaign.to_json(), "funnel": funnel.to_json()})


async def patch_campaign(request: web.Request) -> web.Response:
    data: dict[str, Any] = await read_json(request)
    campaign = await referral_services.update_campaign(request.app[RUNTIME], _id(request), data)
    return web.json_response(campaign.to_json())


async def get_leaderboard(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "50")
    if not raw.isdecimal() or not 0 < int(raw) <= 200:
        raise InvalidInput("limit 需为 1 到 200 (limit: 1–200)", field="limit")
    async with request.app[RUNTIME].db.read() as conn:
        rows = await referral_queries.leaderboard(conn, _id(request), int(raw))
    return web.json_response({"items": rows})


async def get_funnel(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].db.read() as conn:
        funnel = await referral_queries.funnel(conn, _id(request))
    return web.json_response(funnel.to_json())


async def issue_code(request: web.Request) -> web.Response:
    """{"inviter": external_userid} (or {"inviter_customer_id": id}) → the inviter's code and QR code."""
    rt = request.app[RUNTIME]
    data = await read_json(request)
    if "inviter_customer_id" in data:
        value = data["inviter_customer_id"]
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput("inviter_customer_id 必须是整数 (must be an integer)", field="inviter_customer_id")
        inviter = value
    else:
        ext = get_str(data, "inviter", max_len=128)
        async with rt.db.read() as conn:
            found = await find_customer(conn, "external_userid", ext)
        if found is None:
            raise NotFound("没有这个客户 (no customer with this external_userid)", field="inviter")
        inviter = found
    code = await referral_services.code_for(rt, _id(request), inviter)
    return web.json_response(code.to_json())


def setup_routes(app: web.Application) -> None:
    base = "/referral-campaigns"
    add_api_route(
        app,
        "POST",
        base,
        create_campaign,
        success=201,
        summary="Create a referral campaign (裂变): goal, reward (coupon template and/or tag), window, hold, salespeople",
        response=CAMPAIGN,
        request_body={**BODY, "required": ["name", "goal", "userids", "starts_at", "ends_at"]},
    )
    add_api_route(app, "GET", base, list_campaigns, summary="List referral campaigns, newest first")
    add_api_route(app, "GET", base + "/{id}", get_campaign, summary="A referral campaign with its funnel", response=CAMPAIGN)
    add_api_route(
        app,
        "PATCH",
        base + "/{id}",
        patch_campaign,
        summary="Change a referral campaign or its status (draft → running ⇄ paused → ended); goal/hold/salespeople fixed once started",
        response=CAMPAIGN,
        request_body=BODY,
        errors=(400, 401, 404, 409),
    )
    add_api_route(
        app,
        "GET",
        base + "/{id}/leaderboard",
        get_leaderboard,
        summary="Inviters ranked by qualified invites",
        parameters=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}],
    )
    add_api_route(
        app, "GET", base + "/{id}/funnel", get_funnel, summary="Codes issued → adds → qualified → rewarded → first orders → revenue"
    )
    add_api_route(
        app,
        "POST",
        base + "/{id}/codes",
        issue_code,
        summary="The inviter's personal referral code (a WeCom contact way with state rf:…), made once and reused",
        response=CODE,
        request_body={
            "type": "object",
            "properties": {"inviter": {"type": "string", "description": "external_userid"}, "inviter_customer_id": {"type": "integer"}},
        },
        errors=(400, 401, 404, 409, 502, 503),
    )
