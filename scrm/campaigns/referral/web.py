"""/api/v1 routes of referral campaigns (裂变): CRUD, personal codes, leaderboard, funnel, invites (thin); and the
public poster image ``/referral/posters/<token>.png`` a customer forwards to friends."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from aiohttp import web
from pydantic import Field

from scrm.campaigns.referral import queries as referral_queries
from scrm.campaigns.referral import services as referral_services
from scrm.campaigns.referral import sharing
from scrm.campaigns.referral.domain import MAX_GOAL, MAX_GROUPS, MAX_HOLD_HOURS, MAX_USERIDS
from scrm.campaigns.referral.models import InviteStatus
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route
from scrm.crm.customers.services import find_customer

MESSAGES = {
    "name": "活动名称需为 1 到 64 个字 (name is 1–64 characters)",
    "goal": "邀请目标需为 1 到 1000 人 (goal: 1–1000)",
    "hold_hours": "留存时长需为 0 到 720 小时 (hold_hours: 0–720)",
    "reward_template_id": "reward_template_id 需为编号 (reward_template_id must be an id)",
    "reward_tag_id": "reward_tag_id 需为编号 (reward_tag_id must be an id)",
    "kind": "kind 只能是 contact（好友裂变）或 group（群裂变）(kind: contact | group)",
    "chat_ids": "群裂变需要选择 1 到 5 个客户群 (chat_ids: 1–5 group chat ids)",
    "userids": "userids 需为 1 到 100 个成员账号 (userids: 1–100 member userids)",
    "poster_text": "poster_text 需为不超过 2000 字的文本 (poster_text: text ≤ 2000)",
    "eligible_segment": "eligible_segment 需为不超过 2000 字的文本 (eligible_segment: text ≤ 2000)",
    "starts_at": "starts_at 需为 ISO 8601 时间 (starts_at must be an ISO 8601 time)",
    "ends_at": "ends_at 需为 ISO 8601 时间 (ends_at must be an ISO 8601 time)",
}
Member = Annotated[str, NonBlank, Field(max_length=64)]
Text2000 = Annotated[str, OrEmpty, Field(max_length=2000)]
# Parsed (ISO 8601 with a timezone) and checked against each other by the campaign rules, which name the field.
When = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class CampaignChange(Body):
    """PATCH: only the fields given change; goal, hold and salespeople are fixed once started. The campaign rules
    (:func:`scrm.campaigns.referral.domain.check_campaign`) check what depends on other fields."""

    messages: ClassVar[dict[str, str]] = MESSAGES

    name: Annotated[str, NonBlank, Field(max_length=64)] = Field(None)
    goal: int = Field(None, ge=1, le=MAX_GOAL, description="qualified invites needed for the reward")
    hold_hours: int = Field(None, ge=0, le=MAX_HOLD_HOURS, description="an invitee must stay this long to count")
    reward_template_id: int | None = Field(None, ge=1, le=2**62)
    reward_tag_id: int | None = Field(None, ge=1, le=2**62)
    kind: Literal["contact", "group"] = Field(None, description="contact: 联系我 codes; group: 加入群聊 codes")
    chat_ids: list[Member] = Field(None, min_length=1, max_length=MAX_GROUPS, description="group campaigns: the groups")
    userids: list[Member] = Field(None, min_length=1, max_length=MAX_USERIDS, description="contact campaigns: the salespeople")
    poster_text: Text2000 = Field(None)
    eligible_segment: Text2000 = Field(None, description="segment expression; empty = every customer")
    starts_at: When = Field(None)
    ends_at: When = Field(None)
    status: Literal["draft", "running", "paused", "ended"] = Field(None, description="draft → running ⇄ paused → ended")


class CampaignIn(CampaignChange):
    """A new campaign: a reward (coupon template and/or tag) is required; userids for contact campaigns, chat_ids
    for group campaigns."""

    name: Annotated[str, NonBlank, Field(max_length=64)]
    goal: int = Field(ge=1, le=MAX_GOAL, description="qualified invites needed for the reward")
    starts_at: When
    ends_at: When


class CodeIn(Body):
    """The inviter by ``inviter`` (external_userid) or ``inviter_customer_id``."""

    messages: ClassVar[dict[str, str]] = {"inviter_customer_id": "inviter_customer_id 必须是整数 (must be an integer)"}

    inviter: Annotated[str, NonBlank, Field(max_length=128, description="external_userid")] = Field(None)
    inviter_customer_id: int = Field(None)


class ReferralCampaign(ApiModel):
    id: int
    name: str
    goal: int
    reward_template_id: int | None
    reward_tag_id: int | None
    eligible_segment: str
    userids: list[str]
    poster_text: str
    hold_hours: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str = Field(description="draft, running, paused or ended")
    kind: str = Field(description="contact or group")
    chat_ids: list[str]


class ReferralCampaignList(ApiModel):
    items: list[ReferralCampaign]


class FunnelStep(ApiModel):
    key: str
    label: str
    count: int
    rate: float | None = Field(description="of the step before; null for the first step or after a zero")


class Funnel(ApiModel):
    codes_issued: int
    adds: int
    qualified: int
    rewarded: int
    first_orders: int
    revenue_fen: int
    steps: list[FunnelStep]


class ReferralCampaignWithFunnel(ReferralCampaign):
    funnel: Funnel


class LeaderboardRow(ApiModel):
    rank: int
    inviter_customer_id: int
    name: str
    qualified: int
    pending: int
    rewarded: bool
    reached_at: dt.datetime | None


class Leaderboard(ApiModel):
    items: list[LeaderboardRow]


class ReferralCode(ApiModel):
    id: int
    campaign_id: int
    inviter_customer_id: int
    state: str = Field(max_length=30)
    config_id: str | None
    qr_code: str | None


class Invite(ApiModel):
    id: int
    inviter_customer_id: int
    inviter_name: str
    invitee_customer_id: int
    invitee_name: str
    userid: str = Field(description="the salesperson added (empty for a group join)")
    chat_id: str | None = Field(description="group campaigns: the group joined")
    status: str = Field(description="pending (within the hold), qualified (counts), revoked (left), rejected (does not count)")
    status_text: str = Field(description="待确认 / 已计入 / 未计入")
    reason_code: str = Field(description="counted, holding, left, self_invite, re_add, merged_identity, campaign_closed or not_confirmed")
    reason: str = Field(description="why it counts or not, in Chinese")
    added_at: dt.datetime
    qualifies_at: dt.datetime = Field(description="when the hold ends")
    decided_at: dt.datetime | None


class InvitePage(ApiModel):
    items: list[Invite]
    total: int
    limit: int
    offset: int
    more: bool


INVITE_STATUSES = (InviteStatus.PENDING, InviteStatus.QUALIFIED, InviteStatus.REVOKED, InviteStatus.REJECTED)


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal():
        raise InvalidInput("id 必须是整数 (id must be an integer)", field="id")
    return int(raw)


async def create_campaign(request: web.Request) -> web.Response:
    body = await read_body(request, CampaignIn)
    campaign = await referral_services.create_campaign(request.app[RUNTIME], body.model_dump(exclude_unset=True))
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
    changes = (await read_body(request, CampaignChange)).model_dump(exclude_unset=True)
    campaign = await referral_services.update_campaign(request.app[RUNTIME], _id(request), changes)
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


def _bounded(request: web.Request, name: str, default: int, low: int, high: int, message: str) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdecimal() or len(raw) > 9 or not low <= int(raw) <= high:
        raise InvalidInput(message, field=name)
    return int(raw)


async def get_invites(request: web.Request) -> web.Response:
    """Each invite with its status and why it counts or not; ``?status=&limit=&offset=``."""
    limit = _bounded(request, "limit", 50, 1, referral_queries.INVITES_PAGE_MAX, "limit 需为 1 到 200 (limit: 1–200)")
    offset = _bounded(request, "offset", 0, 0, 10**8, "offset 需为不小于 0 的整数 (offset: an integer ≥ 0)")
    status = request.query.get("status") or None
    if status is not None and status not in INVITE_STATUSES:
        message = "status 只能是 pending、qualified、revoked 或 rejected (status: pending | qualified | revoked | rejected)"
        raise InvalidInput(message, field="status")
    async with request.app[RUNTIME].db.read() as conn:
        found = await referral_queries.invites(conn, _id(request), limit=limit, offset=offset, status=status)
    items = [Invite.model_validate(r, from_attributes=True).model_dump(mode="json") for r in found.items]
    return web.json_response({"items": items, "total": found.total, "limit": found.limit, "offset": found.offset, "more": found.more})


async def poster(request: web.Request) -> web.Response:
    """The inviter's poster (PNG), public: the link is what customers forward; its token is unguessable."""
    png = await sharing.poster_png(request.app[RUNTIME], request.match_info["token"])
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "public, max-age=300"})


async def issue_code(request: web.Request) -> web.Response:
    """{"inviter": external_userid} (or {"inviter_customer_id": id}) → the inviter's code and QR code."""
    rt = request.app[RUNTIME]
    body = await read_body(request, CodeIn)
    if "inviter_customer_id" in body.model_fields_set:
        inviter = body.inviter_customer_id
    else:
        if "inviter" not in body.model_fields_set:
            raise InvalidInput("缺少字段 inviter (inviter is required)", field="inviter")
        async with rt.db.read() as conn:
            found = await find_customer(conn, "external_userid", body.inviter)
        if found is None:
            raise NotFound("没有这个客户 (no customer with this external_userid)", field="inviter")
        inviter = found
    code = await referral_services.code_for(rt, _id(request), inviter)
    return web.json_response(code.to_json())


def setup_routes(app: web.Application) -> None:
    base = "/referral-campaigns"
    decimal = {"id": "^[0-9]+$"}
    add_api_route(
        app,
        "POST",
        base,
        create_campaign,
        success=201,
        summary="Create a referral campaign (裂变): goal, reward (coupon template and/or tag), window, hold, salespeople",
        response=ReferralCampaign,
        request_body=CampaignIn,
    )
    add_api_route(app, "GET", base, list_campaigns, summary="List referral campaigns, newest first", response=ReferralCampaignList)
    add_api_route(
        app,
        "GET",
        base + "/{id}",
        get_campaign,
        summary="A referral campaign with its funnel",
        response=ReferralCampaignWithFunnel,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "PATCH",
        base + "/{id}",
        patch_campaign,
        summary="Change a referral campaign or its status (draft → running ⇄ paused → ended); goal/hold/salespeople fixed once started",
        response=ReferralCampaign,
        request_body=CampaignChange,
        errors=(400, 401, 404, 409),
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "GET",
        base + "/{id}/leaderboard",
        get_leaderboard,
        summary="Inviters ranked by qualified invites",
        response=Leaderboard,
        parameters=[Query("limit", type="integer", minimum=1, maximum=200)],
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "GET",
        base + "/{id}/funnel",
        get_funnel,
        summary="Codes issued → adds → qualified → rewarded → first orders → revenue",
        response=Funnel,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "GET",
        base + "/{id}/invites",
        get_invites,
        summary="Each invite (friend brought in) with its status and why it counts or not (reason code and Chinese), newest first",
        response=InvitePage,
        parameters=[
            Query("status", enum=INVITE_STATUSES),
            Query("limit", type="integer", minimum=1, maximum=200),
            Query("offset", type="integer", minimum=0),
        ],
        path_pattern=decimal,
    )
    app.router.add_get(sharing.POSTER_PATH.replace("{token}", "{token:[0-9A-Za-z]+}"), poster)
    add_api_route(
        app,
        "POST",
        base + "/{id}/codes",
        issue_code,
        summary="The inviter's personal referral code (a WeCom contact way with state rf:…), made once and reused",
        response=ReferralCode,
        request_body=CodeIn,
        errors=(400, 401, 404, 409, 502, 503),
        path_pattern=decimal,
    )
