"""/api/v1/follow-ups: record a follow-up on a lead or customer, a history, the caller's to-dos, mark one done (thin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

from aiohttp import web
from pydantic import Field

from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import Body, NonBlank, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.crm.customers.queries import customer_by_identity
from scrm.governance.scopes.services import customer_in_scope
from scrm.sales.followups import queries, services
from scrm.sales.followups.domain import KIND_NAMES_ZH
from scrm.sales.leads.services import acting_person, visible_lead


class FollowUpIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "kind": f"kind 须为 {'、'.join(KIND_NAMES_ZH)} 之一 (kind)",
        "body": "body 为跟进内容，1–2000 字 (body)",
        "next_contact_on": "next_contact_on 为日期 YYYY-MM-DD (next_contact_on)",
    }
    kind: Annotated[str, Field(max_length=16, description=", ".join(f"{k} ({v})" for k, v in KIND_NAMES_ZH.items()))] = "note"
    body: Annotated[str, NonBlank, Field(max_length=2000)]
    lead_id: int | None = Field(None, description="a lead (线索) — or a customer:")
    customer_id: int | None = Field(None, description="a customer by id — or by an identity:")
    customer: Annotated[str, Field(max_length=128, description="a customer's external_userid / openid / unionid")] | None = None
    opportunity_id: int | None = None
    next_contact_on: dt.date | None = Field(None, description="when to contact them next (reminded that day)")


class FollowUpOut(ApiModel):
    id: int
    lead_id: int | None
    customer_id: int | None
    opportunity_id: int | None
    owner: str
    author: str
    kind: str
    body: str
    next_contact_on: dt.date | None
    next_done_at: dt.datetime | None
    reminded_on: dt.date | None
    created_at: dt.datetime


class FollowUpList(ApiModel):
    items: list[FollowUpOut]


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput(f"{name} 必须是数字 ({name})", field=name)
    return int(raw)


async def create(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, FollowUpIn)
    customer_id = body.customer_id
    if body.customer:
        async with rt.db.read() as conn:
            customer_id = await customer_by_identity(conn, body.customer)
        if customer_id is None:
            raise NotFound(f"客户 {body.customer} 不存在")
    new = services.NewFollowUp(
        kind=body.kind,
        body=body.body,
        lead_id=body.lead_id,
        customer_id=customer_id,
        opportunity_id=body.opportunity_id,
        next_contact_on=body.next_contact_on,
    )
    return web.json_response((await services.record_follow_up(rt, new)).to_json(), status=201)


async def list_follow_ups(request: web.Request) -> web.Response:
    """?lead_id= or ?customer_id=: that history (in the caller's scope); else ?due=today|week: the caller's to-dos."""
    rt = request.app[RUNTIME]
    lead_id, customer_id = _int(request, "lead_id"), _int(request, "customer_id")
    person = await acting_person(rt)
    if lead_id is not None:
        await visible_lead(rt, lead_id)
        async with rt.db.read() as conn:
            found = await queries.history(conn, lead_id=lead_id)
        return web.json_response({"items": [f.to_json() for f in found]})
    if customer_id is not None:
        if not await customer_in_scope(rt, person.scope, customer_id):
            raise NotFound(f"客户 {customer_id} 不存在")
        async with rt.db.read() as conn:
            found = await queries.history(conn, customer_id=customer_id)
        return web.json_response({"items": [f.to_json() for f in found]})
    due = request.query.get("due", "today")
    if due not in ("today", "week"):
        raise InvalidInput("due 须为 today 或 week (due)", field="due")
    today = services.business_day(rt.clock.now())
    async with rt.db.read() as conn:
        items = await queries.todos(conn, person.scope, today, until=today + dt.timedelta(days=6 if due == "week" else 0))
    return web.json_response({"items": [t.follow_up.to_json() for t in items]})


async def done(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("编号必须是数字 (id must be a number)", field="id")
    return web.json_response((await services.complete_follow_up(request.app[RUNTIME], int(raw))).to_json())


def setup_routes(app: web.Application) -> None:
    add_api_route(
        app,
        "POST",
        "/follow-ups",
        create,
        success=201,
        summary="Record a follow-up (跟进记录) on a lead or a customer, with the next contact date (reminded that day)",
        response=FollowUpOut,
        request_body=FollowUpIn,
        errors=(400, 401, 404),
    )
    add_api_route(
        app,
        "GET",
        "/follow-ups",
        list_follow_ups,
        summary="A lead's or customer's follow-ups (?lead_id= / ?customer_id=), else the caller's open next contacts due "
        "today or overdue (?due=today) or within a week (?due=week)",
        response=FollowUpList,
        parameters=[query("lead_id"), query("customer_id"), query("due", enum=["today", "week"])],
        errors=(400, 401, 404),
    )
    add_api_route(
        app,
        "POST",
        "/follow-ups/{id}/done",
        done,
        summary="Mark a next contact done without a new follow-up",
        response=FollowUpOut,
        errors=(400, 401, 404),
        path_pattern={"id": "^[0-9]+$"},
    )
