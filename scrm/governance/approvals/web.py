"""/api/v1/approvals (the inbox, decisions) and /api/v1/approval-rules (thin; rules in services and domain)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from aiohttp import web
from pydantic import Field

from scrm.core import audit
from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route, query
from scrm.governance.approvals import services
from scrm.governance.approvals.domain import DOC_TYPES, MODES
from scrm.governance.approvals.models import ApprovalStatus


class ConditionIn(Body):
    field: Annotated[str, Field(max_length=32)]
    op: Annotated[str, Field(max_length=16)]
    value: Any


class RuleIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "name": "name 必须是 1–64 字的规则名称 (name)",
        "doc_type": f"doc_type 须为 {'、'.join(DOC_TYPES)} 之一 (doc_type)",
        "conditions": 'conditions 必须是条件对象数组，如 [{"field": "amount_fen", "op": ">=", "value": 10000000}] (conditions)',
        "steps": 'steps 必须是审批人数组，如 [{"role": "finance"}, {"lead": true}, {"member": "zhangsan"}] (steps)',
    }

    name: Annotated[str, NonBlank, Field(max_length=64)]
    doc_type: Annotated[str, Field(max_length=32)]
    conditions: list[ConditionIn] = Field(default_factory=list, max_length=10)
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=5)
    mode: Annotated[str, Field(max_length=16, description="sequential (依次) or any (任一人)")] = "sequential"
    priority: int = Field(100, ge=0, le=10_000, description="lower is checked first; the first matching rule applies")


class RuleChange(Body):
    active: bool


class DecisionIn(Body):
    comment: Annotated[str, OrEmpty, Field(max_length=500)] = ""


class RuleOut(ApiModel):
    id: int
    name: str
    doc_type: str
    conditions: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    mode: str
    priority: int
    active: bool
    description: str = Field(description="the rule as a sentence")


class RuleList(ApiModel):
    items: list[RuleOut]


class StepOut(ApiModel):
    label: str
    names: list[str]
    decision: str | None
    decided_by: str | None
    comment: str | None
    at: str | None


class ApprovalOut(ApiModel):
    id: int
    doc_type: str
    doc_ref: str
    summary: str
    rule: str
    rule_id: int
    mode: str
    status: str = Field(description=", ".join(ApprovalStatus))
    waiting_for: list[str]
    steps: list[StepOut]
    requester: str
    notes: list[str] = Field(description="what the requester was told (an approver replaced by their lead …)")
    sp_no: str | None = Field(description="the WeCom 审批单号 when submitted to WeCom's 审批 app")
    created_at: dt.datetime
    decided_at: dt.datetime | None
    comment: str


class ApprovalList(ApiModel):
    items: list[ApprovalOut]


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("编号必须是数字 (id must be a number)", field="id")
    return int(raw)


async def list_approvals(request: web.Request) -> web.Response:
    actor = audit.current_actor()
    status = request.query.get("status", "")
    if status and status not in set(ApprovalStatus):
        raise InvalidInput(f"status 须为 {'、'.join(ApprovalStatus)} 之一 (status)", field="status")
    doc_type = request.query.get("doc_type", "")
    everyone = actor.kind == "admin" and request.query.get("inbox") != "1"
    found = await services.list_approvals(
        request.app[RUNTIME], status=status or None, doc_type=doc_type or None, for_actor=None if everyone else actor
    )
    return web.json_response({"items": [a.to_json() for a in found]})


async def get_approval(request: web.Request) -> web.Response:
    return web.json_response((await services.get_approval(request.app[RUNTIME], _id(request))).to_json())


async def _decide(request: web.Request, *, approve: bool) -> web.Response:
    body = await read_body(request, DecisionIn, allow_empty=True)
    if not approve and not body.comment.strip():
        raise InvalidInput("驳回时请写明原因，申请人会看到 (comment is required to reject)", field="comment")
    decided = await services.decide(request.app[RUNTIME], _id(request), approve=approve, comment=body.comment)
    return web.json_response(decided.to_json())


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, approve=True)


async def reject(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


async def list_rules(request: web.Request) -> web.Response:
    rules = await services.list_rules(request.app[RUNTIME], doc_type=request.query.get("doc_type") or None)
    return web.json_response({"items": [r.to_json() for r in rules]})


async def create_rule(request: web.Request) -> web.Response:
    body = await read_body(request, RuleIn)
    rule = await services.create_rule(
        request.app[RUNTIME],
        name=body.name,
        doc_type=body.doc_type,
        conditions=[c.model_dump() for c in body.conditions],
        steps=body.steps,
        mode=body.mode,
        priority=body.priority,
    )
    return web.json_response(rule.to_json(), status=201)


async def change_rule(request: web.Request) -> web.Response:
    body = await read_body(request, RuleChange)
    return web.json_response((await services.set_rule_active(request.app[RUNTIME], _id(request), body.active)).to_json())


def setup_routes(app: web.Application) -> None:
    decimal = {"id": "^[0-9]+$"}
    add_api_route(
        app,
        "GET",
        "/approvals",
        list_approvals,
        summary="审批 inbox: what you may decide now and what you asked for (the admin token: everyone's; inbox=1 narrows)",
        response=ApprovalList,
        parameters=[query("status", enum=list(ApprovalStatus)), query("doc_type", enum=list(DOC_TYPES)), query("inbox", enum=["1"])],
        errors=(400, 401, 403),
    )
    add_api_route(app, "GET", "/approvals/{id}", get_approval, summary="One approval with its steps", response=ApprovalOut,
                  errors=(400, 401, 403, 404), path_pattern=decimal)  # fmt: skip
    for verb, handler, what in (("approve", approve, "Approve"), ("reject", reject, "Reject (a comment is required)")):
        add_api_route(
            app,
            "POST",
            f"/approvals/{{id}}/{verb}",
            handler,
            summary=f"{what} the step you may decide; the document moves on (or back) once the approval is decided",
            response=ApprovalOut,
            request_body=DecisionIn,
            errors=(400, 401, 403, 404, 409),
            path_pattern=decimal,
        )
    add_api_route(
        app,
        "GET",
        "/approval-rules",
        list_rules,
        summary="Approval rules, by document type and priority",
        response=RuleList,
        parameters=[Query("doc_type", enum=tuple(DOC_TYPES))],
        errors=(401, 403),
    )
    add_api_route(
        app,
        "POST",
        "/approval-rules",
        create_rule,
        success=201,
        summary=f"A rule: document type, conditions (all must hold), approver steps, mode ({', '.join(MODES)}); a rule no document "
        "could meet is refused with the reason",
        response=RuleOut,
        request_body=RuleIn,
        errors=(400, 401, 403),
    )
    add_api_route(app, "PATCH", "/approval-rules/{id}", change_rule, summary="Switch a rule on or off", response=RuleOut,
                  request_body=RuleChange, errors=(400, 401, 403, 404), path_pattern=decimal)  # fmt: skip
