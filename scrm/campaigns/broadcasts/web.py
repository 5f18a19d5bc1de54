"""/api/v1 routes of segment broadcasts (群发): create, preview count, start / pause / cancel, progress, results."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from aiohttp import web
from pydantic import ConfigDict, Field

from scrm.campaigns.broadcasts import queries as broadcasts_queries
from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.broadcasts.domain import RecipientStatus
from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import Body, NonBlank, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route
from tagging.segments import services as segments

STATUSES = [
    RecipientStatus.PLANNED,
    RecipientStatus.SENT,
    RecipientStatus.AWAITING_CONFIRMATION,
    RecipientStatus.SKIPPED,
    RecipientStatus.FAILED,
]
BroadcastText = Annotated[str, NonBlank, Field(max_length=broadcasts.TEXT_MAX)]
Name = Annotated[str, NonBlank, Field(max_length=64)]
Segment = Annotated[str, NonBlank, Field(max_length=4000, description="segment expression")]
# Parsed by the service (ISO 8601 with a timezone; it names the field).
When = Annotated[str | None, Field(json_schema_extra={"format": "date-time"})]


class BroadcastChange(Body):
    """PATCH (before it started): only the fields given change; any other field is refused."""

    model_config = ConfigDict(extra="forbid")
    messages: ClassVar[dict[str, str]] = {
        "name": "name 须为 1–64 个字符 (required text)",
        "segment": "segment 须为 1–4000 个字符 (required text)",
        "text": f"text 须为 1–{broadcasts.TEXT_MAX} 个字符 (required text)",
        "coupon_template_id": "coupon_template_id 必须是整数 (must be an integer)",
        "referral_campaign_id": "referral_campaign_id 必须是整数 (must be an integer)",
    }

    name: Name = Field(None)
    segment: Segment = Field(None)
    text: BroadcastText = Field(None)
    coupon_template_id: int | None = Field(None)
    referral_campaign_id: int | None = Field(
        None, description="附带邀请海报: each recipient gets their own code and poster link of this referral campaign"
    )
    scheduled_at: When = Field(None, description="null = a draft, started by hand")


class BroadcastIn(BroadcastChange):
    model_config = ConfigDict(extra="ignore")

    name: Name
    segment: Segment
    text: BroadcastText


class BroadcastPreviewIn(Body):
    segment: Annotated[str, NonBlank, Field(max_length=4000)]


class Broadcast(ApiModel):
    id: int
    name: str
    segment: str = Field(description="segment expression")
    text: str
    coupon_template_id: int | None
    status: str = Field(description="draft, scheduled, running, paused, done, cancelled or failed")
    scheduled_at: dt.datetime | None
    cursor_customer_id: int | None = Field(description="planning resumes after this customer")
    totals: dict[str, Any] = Field(description="plan totals: recipients, per channel, skipped per reason")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None = Field(None, description="why it stopped (status failed), in Chinese")
    referral_campaign_id: int | None = Field(description="附带邀请海报: the referral campaign whose poster each recipient gets")


class Progress(ApiModel):
    status: str
    recipients: int
    by_status: dict[str, int]
    by_channel: dict[str, dict[str, int]]
    coupon_not_issued: dict[str, int] = Field(
        description="reached recipients whose coupon could not be issued, per refusal (per_customer_limit, budget, inactive, expired)"
    )


class BroadcastWithProgress(Broadcast):
    progress: Progress = Field(description="live counts by status and by channel")


class Recipient(ApiModel):
    customer_id: int
    channel: str
    status: str
    reason: str
    salesperson_userid: str
    outbound_key: str
    planned_at: dt.datetime
    sent_at: dt.datetime | None


class RecipientPage(ApiModel):
    items: list[Recipient]
    next_after: int | None


class SegmentCount(ApiModel):
    segment: str
    count: int


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
    body = await read_body(request, BroadcastIn)
    view = await broadcasts.create_broadcast(request.app[RUNTIME], body.model_dump(exclude_unset=True), actor="api")
    return web.json_response(view.to_json(), status=201)


async def get_one(request: web.Request) -> web.Response:
    return web.json_response(await _with_progress(request, _id(request)))


async def patch(request: web.Request) -> web.Response:
    changes = (await read_body(request, BroadcastChange)).model_dump(exclude_unset=True)
    view = await broadcasts.update_broadcast(request.app[RUNTIME], _id(request), changes)
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
    expr = (await read_body(request, BroadcastPreviewIn)).segment
    return web.json_response({"segment": expr, "count": int(await segments.count_segment(request.app[RUNTIME], expr))})


def setup_routes(app: web.Application) -> None:
    base = "/broadcasts"
    decimal = {"id": "^[0-9]+$"}
    add_api_route(
        app,
        "POST",
        base,
        create,
        success=201,
        summary="Create a segment broadcast (群发): draft, or scheduled with scheduled_at",
        response=Broadcast,
        request_body=BroadcastIn,
        errors=(400, 401, 404),
    )
    add_api_route(
        app,
        "POST",
        base + "/preview",
        preview,
        summary="How many customers a segment holds now",
        response=SegmentCount,
        request_body=BroadcastPreviewIn,
    )
    add_api_route(
        app,
        "GET",
        base + "/{id}",
        get_one,
        summary="A broadcast with plan totals and live progress",
        response=BroadcastWithProgress,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "PATCH",
        base + "/{id}",
        patch,
        summary="Edit a broadcast not yet started",
        response=Broadcast,
        request_body=BroadcastChange,
        errors=(400, 401, 404, 409),
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "GET",
        base + "/{id}/recipients",
        recipients,
        summary="Per-recipient results (keyset paging by customer_id)",
        response=RecipientPage,
        parameters=[
            Query("status", enum=tuple(STATUSES)),
            Query("after", type="integer", minimum=0),
            Query("limit", type="integer", minimum=1, maximum=1000),
        ],
        path_pattern=decimal,
    )
    for action, handler, what in (
        ("start", start, "Run now, or resume a paused broadcast from its cursor"),
        ("pause", pause, "Stop planning; chunks not yet sent wait"),
        ("cancel", cancel, "Stop for good; recipients not yet sent become skipped"),
    ):
        add_api_route(
            app,
            "POST",
            f"{base}/{{id}}/{action}",
            handler,
            summary=what,
            response=BroadcastWithProgress,
            errors=(400, 401, 404, 409),
            path_pattern=decimal,
        )
