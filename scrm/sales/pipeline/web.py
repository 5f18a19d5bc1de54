"""/api/v1/opportunities: list (filters owner/stage/customer, data-scoped), create, change (thin; rules live in
the services)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aiohttp import web
from pydantic import ConfigDict, Field

from scrm.core import audit
from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.core.runtime import Runtime
from scrm.governance.scopes.services import customer_in_scope, scope_for
from scrm.sales.pipeline import queries, services
from scrm.sales.pipeline.domain import OpportunityNotFound

Sku = Annotated[str, NonBlank, Field(max_length=64)]


class OpportunityIn(Body):
    customer_id: int = Field(ge=1, le=10**15, description="an existing customer's id")
    title: Annotated[str, NonBlank, Field(max_length=100)]
    owner: Annotated[str, OrEmpty, Field(max_length=64, description="WeCom userid; default: the caller's own member")] = ""
    lead_id: int | None = Field(None, ge=1, le=10**15)
    stage: Annotated[str, OrEmpty, Field(max_length=32, description="stage key; default: the first open stage")] = ""
    amount_fen: int = Field(0, ge=0, le=10**13)
    expected_close_on: dt.date | None = None
    probability: int | None = Field(None, ge=0, le=100, description="percent; default: the stage's")
    products: list[Sku] = Field(default_factory=list, max_length=20, description="SKUs of interest")
    reason: Annotated[str, OrEmpty, Field(max_length=300, description="win/loss reason when created closed")] = ""


class OpportunityChange(Body):
    """Only the fields given change. ``probability: null`` goes back to the stage's; a won/lost stage needs ``reason``."""

    model_config = ConfigDict(extra="forbid")

    stage: Annotated[str, NonBlank, Field(max_length=32)] = Field(None)
    reason: Annotated[str, OrEmpty, Field(max_length=300)] = ""
    title: Annotated[str, NonBlank, Field(max_length=100)] = Field(None)
    amount_fen: int = Field(None, ge=0, le=10**13)
    expected_close_on: dt.date | None = None
    probability: int | None = Field(None, ge=0, le=100)
    products: list[Sku] = Field(None, max_length=20)
    version: int = Field(None, ge=1, description="the version you changed; a change made meanwhile is refused (409)")


class HistoryOut(ApiModel):
    event: str = Field(description="created | stage | owner")
    from_: str = Field(alias="from")
    to: str
    actor: str
    note: str
    at: dt.datetime


class Opportunity(ApiModel):
    id: int
    customer_id: int
    lead_id: int | None
    owner: str
    title: str
    stage: str
    stage_name: str
    amount_fen: int
    expected_close_on: dt.date | None
    probability: int
    probability_overridden: bool
    products: list[str]
    reason: str = Field(description="win/loss reason")
    closed_at: dt.datetime | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    history: list[HistoryOut]


class OpportunityList(ApiModel):
    items: list[Opportunity]


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput(f"{name} 需为正整数 ({name} must be a positive integer)", field=name)
    return int(raw)


def opportunity_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise OpportunityNotFound(f"没有这个商机：{raw[:32]} (opportunity not found)")
    return int(raw)


async def list_opportunities(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    filters = queries.Filters(
        owner=request.query.get("owner", "").strip()[:64],
        stage=request.query.get("stage", "").strip()[:32],
        customer_id=_int_query(request, "customer_id"),
        open_only=request.query.get("open") == "1",
    )
    found = await queries.list_opportunities(rt, await scope_for(rt), filters)
    return web.json_response({"items": [o.to_json() for o in found]})


async def get_opportunity(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response((await services.get_opportunity(rt, opportunity_id(request), scope=await scope_for(rt))).to_json())


async def owner_for(rt: Runtime, asked: str) -> str:
    """Whose a new row is: ``asked`` (within the caller's scope) or the caller's own member."""
    scope = await scope_for(rt)
    mine = await services.acting_userid(rt)
    owner = asked or mine
    if not owner:
        raise InvalidInput("请填写负责人 owner（企业微信成员账号）(owner is required)", field="owner")
    if not services.owner_in_scope(scope, owner):
        raise InvalidInput(f"不能为不在您数据范围内的成员 {owner} 新建 (owner outside your data scope)", field="owner")
    return owner


async def check_customer_visible(rt: Runtime, customer_id: int) -> None:
    """A scoped person may only work with customers in their scope (the same answer as no such customer)."""
    if not await customer_in_scope(rt, await scope_for(rt), customer_id):
        raise InvalidInput(f"没有这个客户：#{customer_id} (unknown customer)", field="customer_id")


async def create_opportunity(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, OpportunityIn)
    owner = await owner_for(rt, body.owner)
    await check_customer_visible(rt, body.customer_id)
    made = await services.create_opportunity(
        rt,
        customer_id=body.customer_id,
        owner_userid=owner,
        title=body.title,
        stage=body.stage or None,
        amount_fen=body.amount_fen,
        expected_close_on=body.expected_close_on,
        probability=body.probability,
        products=body.products,
        lead_id=body.lead_id,
        reason=body.reason,
        actor=await actor_label(rt),
    )
    return web.json_response(made.to_json(), status=201)


async def actor_label(rt: Runtime) -> str:
    """Who acts, as history rows record it: their WeCom member, else their account/token reference."""
    who = audit.current_actor()
    return (await services.acting_userid(rt, who)) or who.ref


async def change_opportunity(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, OpportunityChange)
    given = body.model_fields_set
    changes: dict[str, Any] = {k: getattr(body, k) for k in ("stage", "title", "amount_fen", "products", "version") if k in given}
    if "expected_close_on" in given:
        changes["expected_close_on"] = body.expected_close_on
    if "probability" in given:
        changes["probability"] = body.probability
    changed = await services.update_opportunity(
        rt, opportunity_id(request), actor=await actor_label(rt), scope=await scope_for(rt), reason=body.reason, **changes
    )
    return web.json_response(changed.to_json())


def setup_routes(app: web.Application) -> None:
    add_api_route(
        app,
        "GET",
        "/opportunities",
        list_opportunities,
        summary="Opportunities (商机) in your data scope, newest first",
        response=OpportunityList,
        parameters=[query("owner"), query("stage"), query("customer_id", type="integer"), query("open", enum=["0", "1"])],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "POST",
        "/opportunities",
        create_opportunity,
        success=201,
        summary="Create an opportunity for an existing customer",
        response=Opportunity,
        request_body=OpportunityIn,
        errors=(400, 401),
    )
    e = {"id": r"\d+"}
    add_api_route(
        app, "GET", "/opportunities/{id}", get_opportunity, summary="One opportunity with its history", response=Opportunity, path_pattern=e
    )
    add_api_route(
        app,
        "PATCH",
        "/opportunities/{id}",
        change_opportunity,
        summary="Change stage / amount / expected close / probability …; won or lost needs a reason",
        response=Opportunity,
        request_body=OpportunityChange,
        errors=(400, 401, 404, 409),
        path_pattern=e,
    )
