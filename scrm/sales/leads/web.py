"""/api/v1/leads (arrive, list, claim, release, assign, invalidate, convert), /api/v1/lead-rules (assignment rules)
and /api/v1/lead-pool (the pool's settings) — thin; the rules are in services and domain."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

from aiohttp import web
from pydantic import Field

from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.core.runtime import Runtime
from scrm.governance.fields.services import rules_for
from scrm.sales.leads import domain, ownership, queries, rules, services
from scrm.sales.leads.domain import AssignMethod, LeadSource

Short = Annotated[str, OrEmpty, Field(max_length=128)]


class LeadIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "name": "name 为姓名，最多 64 字 (name)",
        "phone": "phone 为电话号码 (phone)",
        "source": f"source 须为 {'、'.join(domain.SOURCE_NAMES_ZH)} 之一 (source)",
        "owner": "owner 为负责人的企业微信成员账号 (owner)",
    }

    name: Annotated[str, OrEmpty, Field(max_length=64)] = ""
    phone: Annotated[str, OrEmpty, Field(max_length=32)] = ""
    corp_name: Short = ""
    region: Annotated[str, OrEmpty, Field(max_length=32)] = ""
    remark: Annotated[str, OrEmpty, Field(max_length=2000)] = ""
    source: Annotated[str, Field(max_length=16, description="form (default), manual, import …")] = LeadSource.FORM
    source_ref: Short = Field("", description="which form, campaign or page it came from")
    external_userid: Annotated[str, Field(max_length=128)] | None = None
    unionid: Annotated[str, Field(max_length=128)] | None = None
    owner: Annotated[str, NonBlank, Field(max_length=64)] | None = Field(None, description="give it to this member (else the rules decide)")


class LeadReasonIn(Body):
    messages: ClassVar[dict[str, str]] = {"reason": "reason 为原因，1–200 字 (reason)"}
    reason: Annotated[str, OrEmpty, Field(max_length=200)] = ""


class LeadAssignIn(Body):
    messages: ClassVar[dict[str, str]] = {"to": "to 为接收人的企业微信成员账号 (to)"}
    to: Annotated[str, NonBlank, Field(max_length=64)]
    reason: Annotated[str, OrEmpty, Field(max_length=200)] = ""


class OpportunityDraftIn(Body):
    messages: ClassVar[dict[str, str]] = {"title": "title 为商机名称 (title)", "amount_fen": "amount_fen 为预计金额（分）(amount_fen)"}
    title: Annotated[str, NonBlank, Field(max_length=64)]
    amount_fen: int = Field(0, ge=0)
    expected_close_on: dt.date | None = None


class LeadConvertIn(Body):
    opportunity: OpportunityDraftIn | None = Field(None, description="also open an opportunity (商机) at the first stage")


class LeadOut(ApiModel):
    id: int
    status: str = Field(description=", ".join(domain.STATUS_NAMES_ZH))
    owner: str | None = Field(description="the salesperson's WeCom userid; null in the pool")
    name: str
    phone: str = Field(description="as the caller's field permissions allow (masked or hidden)")
    corp_name: str
    region: str
    remark: str
    source: str
    source_ref: str
    customer_id: int | None
    assigned_at: dt.datetime | None
    last_activity_at: dt.datetime
    pooled_from: str | None
    pooled_at: dt.datetime | None
    closed_reason: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    customer_name: str = Field("", description="the linked customer's name (a scanned lead has no name of its own)")
    duplicate: bool = Field(False, description="true: this person already had an open lead, which is returned (status 200)")


class LeadConverted(LeadOut):
    opportunity_id: int | None = Field(description="the opportunity opened with the conversion, if one was asked for")


class LeadList(ApiModel):
    items: list[LeadOut]
    next_before: int | None = Field(description="pass as ?before= for the next page")


class LeadMoveOut(ApiModel):
    action: str
    from_owner: str | None
    to_owner: str | None
    actor: str
    reason: str
    at: dt.datetime


class LeadDetail(LeadOut):
    moves: list[LeadMoveOut]


class LeadRuleIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "name": "name 为规则名称，1–64 字 (name)",
        "members": "members 为接收线索的企业微信成员账号数组 (members)",
        "method": "method 须为 round_robin 或 load (method)",
    }
    name: Annotated[str, NonBlank, Field(max_length=64)]
    members: list[Annotated[str, NonBlank, Field(max_length=64)]] = Field(min_length=1, max_length=200)
    method: Annotated[str, Field(max_length=16)] = AssignMethod.ROUND_ROBIN
    priority: int = Field(100, ge=0, le=10_000)
    active: bool = True
    sources: list[Annotated[str, Field(max_length=16)]] = Field(default_factory=list, max_length=10)
    regions: list[Annotated[str, Field(max_length=32)]] = Field(default_factory=list, max_length=50)
    tag_ids: list[int] = Field(default_factory=list, max_length=50)
    daily_cap: int = Field(0, ge=0, le=10_000, description="new leads per member per day; 0 = no cap")
    return_after_days: int | None = Field(None, ge=1, le=3650, description="this rule's pool return period (null: the pool's)")


class LeadRuleOut(ApiModel):
    id: int
    name: str
    priority: int
    active: bool
    sources: list[str]
    regions: list[str]
    tag_ids: list[int]
    members: list[str]
    method: str
    daily_cap: int
    return_after_days: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


class LeadRuleList(ApiModel):
    items: list[LeadRuleOut]


class LeadPoolIn(Body):
    return_after_days: int = Field(ge=0, le=3650, description="no follow-up for this many days → back to the pool (0 = never)")
    claim_daily_cap: int = Field(ge=0, le=10_000, description="claims per salesperson per day (0 = no cap)")
    reclaim_block_days: int = Field(ge=0, le=3650, description="the previous owner may not claim it back for this many days")
    customer_return_after_days: int = Field(
        0,
        ge=0,
        le=3650,
        description="a customer their salesperson has not followed up (no follow-up, no order) this long goes to the pool (0 = never)",
    )


class LeadPoolOut(ApiModel):
    return_after_days: int
    claim_daily_cap: int
    reclaim_block_days: int
    customer_return_after_days: int
    updated_at: dt.datetime
    updated_by: str


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("编号必须是数字 (id must be a number)", field="id")
    return int(raw)


async def _out(rt: Runtime, lead: services.LeadView, **more: object) -> dict[str, object]:
    fields = await rules_for(rt)
    return {**lead.to_json(), "phone": fields.phone(lead.phone) or "", **more}


async def create_lead(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, LeadIn)
    arrived = await services.add_lead(rt, services.NewLead(**body.model_dump()))
    return web.json_response(await _out(rt, arrived.lead, duplicate=arrived.duplicate), status=200 if arrived.duplicate else 201)


async def list_leads(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    status = request.query.get("status", "")
    if status and status not in domain.STATUS_NAMES_ZH:
        raise InvalidInput(f"status 须为 {'、'.join(domain.STATUS_NAMES_ZH)} 之一 (status)", field="status")
    before = request.query.get("before", "")
    if before and not before.isdecimal():
        raise InvalidInput("before 必须是数字 (before)", field="before")
    person = await services.acting_person(rt)
    async with rt.db.read() as conn:
        page = await queries.list_leads(
            conn,
            person.scope,
            status=status or None,
            owner=request.query.get("owner") or None,
            source=request.query.get("source") or None,
            q=request.query.get("q", ""),
            before=int(before) if before else None,
        )
    return web.json_response({"items": [await _out(rt, lead) for lead in page.items], "next_before": page.next_before})


async def get_lead(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    lead = await services.visible_lead(rt, _id(request))
    async with rt.db.read() as conn:
        moves = await queries.moves_of(conn, lead.id)
    return web.json_response(await _out(rt, lead, moves=[m.to_json() for m in moves]))


async def claim(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response(await _out(rt, await ownership.claim_lead(rt, _id(request))))


async def release(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, LeadReasonIn, allow_empty=True)
    return web.json_response(await _out(rt, await ownership.release_lead(rt, _id(request), body.reason)))


async def assign(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, LeadAssignIn)
    return web.json_response(await _out(rt, await ownership.assign_lead(rt, _id(request), body.to, body.reason)))


async def invalidate(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, LeadReasonIn, allow_empty=True)
    return web.json_response(await _out(rt, await ownership.invalidate_lead(rt, _id(request), body.reason)))


async def convert(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, LeadConvertIn, allow_empty=True)
    draft = ownership.OpportunityDraft(**body.opportunity.model_dump()) if body.opportunity is not None else None
    done = await ownership.convert_lead(rt, _id(request), draft)
    return web.json_response(await _out(rt, done.lead, opportunity_id=done.opportunity_id))


async def list_rules(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].db.read() as conn:
        found = await rules.list_rules(conn)
    return web.json_response({"items": [r.to_json() for r in found]})


async def create_rule(request: web.Request) -> web.Response:
    body = await read_body(request, LeadRuleIn)
    rule = await rules.save_rule(request.app[RUNTIME], None, **body.model_dump())
    return web.json_response(rule.to_json(), status=201)


async def put_rule(request: web.Request) -> web.Response:
    body = await read_body(request, LeadRuleIn)
    rule = await rules.save_rule(request.app[RUNTIME], _id(request), **body.model_dump())
    return web.json_response(rule.to_json())


async def delete_rule(request: web.Request) -> web.Response:
    return web.json_response((await rules.delete_rule(request.app[RUNTIME], _id(request))).to_json())


async def get_pool(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].db.read() as conn:
        return web.json_response((await services.get_pool_settings(conn)).to_json())


async def put_pool(request: web.Request) -> web.Response:
    body = await read_body(request, LeadPoolIn)
    return web.json_response((await services.set_pool_settings(request.app[RUNTIME], **body.model_dump())).to_json())


def setup_routes(app: web.Application) -> None:
    decimal = {"id": "^[0-9]+$"}
    statuses = list(domain.STATUS_NAMES_ZH)
    add_api_route(
        app,
        "POST",
        "/leads",
        create_lead,
        success=(201, 200),
        summary="A lead arrives (线索: a form post, another system): de-duplicated against customers and open leads "
        "(200 with duplicate=true), given to the salesperson already serving the customer or by the assignment rules, "
        "else into the public pool",
        response=LeadOut,
        request_body=LeadIn,
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/leads",
        list_leads,
        summary="Leads in the caller's data scope (their own and the pool), newest first",
        response=LeadList,
        parameters=[
            query("status", enum=statuses),
            query("owner"),
            query("source", enum=list(domain.SOURCE_NAMES_ZH)),
            query("q"),
            query("before"),
        ],
        errors=(400, 401),
    )
    add_api_route(app, "GET", "/leads/{id}", get_lead, summary="A lead with every move", response=LeadDetail, path_pattern=decimal)
    for verb, handler, summary, body in (
        ("claim", claim, "Claim a lead from the pool (领取: daily cap; the previous owner waits)", None),
        ("release", release, "Give a lead back to the pool (退回公海), with the reason", LeadReasonIn),
        ("assign", assign, "Give a lead to a member (分配): a manager, within their scope", LeadAssignIn),
        ("invalidate", invalidate, "Mark a lead invalid (无效), with the reason", LeadReasonIn),
    ):
        add_api_route(
            app,
            "POST",
            f"/leads/{{id}}/{verb}",
            handler,
            summary=summary,
            response=LeadOut,
            request_body=body,
            errors=(400, 401, 404, 409),
            path_pattern=decimal,
        )
    add_api_route(
        app,
        "POST",
        "/leads/{id}/convert",
        convert,
        summary="Convert a lead into a customer (转为客户), and optionally open an opportunity (商机) for its owner",
        response=LeadConverted,
        request_body=LeadConvertIn,
        errors=(400, 401, 404, 409),
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "GET",
        "/lead-rules",
        list_rules,
        summary="Lead assignment rules (线索分配规则), by priority",
        response=LeadRuleList,
        errors=(401,),
    )
    add_api_route(
        app,
        "POST",
        "/lead-rules",
        create_rule,
        success=201,
        summary="Add an assignment rule",
        response=LeadRuleOut,
        request_body=LeadRuleIn,
        errors=(400, 401),
    )
    add_api_route(
        app,
        "PUT",
        "/lead-rules/{id}",
        put_rule,
        summary="Replace an assignment rule",
        response=LeadRuleOut,
        request_body=LeadRuleIn,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "DELETE",
        "/lead-rules/{id}",
        delete_rule,
        summary="Delete an assignment rule (its leads keep their owners)",
        response=LeadRuleOut,
        path_pattern=decimal,
    )
    add_api_route(app, "GET", "/lead-pool", get_pool, summary="The public pool's rules (公海规则)", response=LeadPoolOut, errors=(401,))
    add_api_route(
        app,
        "PUT",
        "/lead-pool",
        put_pool,
        summary="Change the public pool's rules",
        response=LeadPoolOut,
        request_body=LeadPoolIn,
        errors=(400, 401),
    )
