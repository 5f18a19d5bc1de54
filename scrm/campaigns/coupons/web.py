"""/api/v1 routes of coupons (thin): templates CRUD, issuing to a customer or a segment, a customer's wallet."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aiohttp import web
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from scrm.campaigns.coupons import queries as coupon_queries
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms, Validity
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.core.ids import short_id
from scrm.crm.customers.services import find_customer


def _blank_as_none(value: Any) -> Any:
    return None if value == "" else value


Fen = Annotated[int | None, Field(ge=0)]
When = Annotated[dt.datetime | None, BeforeValidator(_blank_as_none)]
Names = Annotated[list[Annotated[str, NonBlank, Field(max_length=64)]], Field(description="[] = every one")]
TemplateName = Annotated[str, NonBlank, Field(max_length=64)]
Kind = Annotated[str, NonBlank, Field(max_length=16, description="fixed = 满减; percent = 折扣 (needs max_off_fen)")]


class TemplateChange(Body):
    """PATCH: fields left out keep their value; null clears a limit."""

    name: TemplateName = Field(None)
    kind: Kind = Field(None)
    amount_off_fen: Fen = Field(None)
    percent_off: Fen = Field(None, description="1–99")
    max_off_fen: Fen = Field(None, description="a percent coupon's cap")
    threshold_fen: Fen = Field(None)
    skus: Names = Field(None)
    categories: Names = Field(None)
    stackable: bool = Field(None, description="combines with other stackable coupons; default one coupon per order")
    budget_count: Fen = Field(None)
    budget_fen: Fen = Field(None, description="face value of all issued coupons (a percent coupon's cap)")
    per_customer_limit: Fen = Field(None, description="≥ 1")
    valid_from: When = Field(None, description="with a timezone")
    valid_until: When = Field(None, description="with a timezone")
    valid_days: Fen = Field(None, description="usable N days after issue (the earlier of this and valid_until)")
    active: bool = Field(None)

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            name = info.field_name
            raise ValueError(f"{name} 必须带时区 ({name} needs a timezone, e.g. +08:00)")
        return value


class TemplateIn(TemplateChange):
    name: TemplateName
    kind: Kind


class IssueIn(Body):
    """Exactly one of ``customer`` and ``segment``."""

    template_id: int = Field(ge=1)
    customer: Annotated[str, NonBlank, Field(max_length=64, description="external_userid")] = Field(None)
    segment: Annotated[str, NonBlank, Field(max_length=2000, description="segment expression")] = Field(None)
    source_ref: Annotated[str, OrEmpty, Field(max_length=80, description="idempotency key")] = ""
    notify: bool = Field(True, description="同时通知客户: each customer who gets a coupon is told in chat (default true)")


class CouponTemplate(ApiModel):
    id: int
    label: str
    name: str
    kind: str
    amount_off_fen: int
    percent_off: int
    max_off_fen: int | None
    threshold_fen: int
    skus: list[str]
    categories: list[str]
    stackable: bool
    budget_count: int | None
    budget_fen: int | None
    per_customer_limit: int
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    valid_days: int | None
    issued_count: int
    issued_fen: int
    active: bool


class CouponTemplateList(ApiModel):
    items: list[CouponTemplate]


class Coupon(ApiModel):
    code: str
    template_id: int
    name: str
    label: str = Field(description="e.g. 满100减10")
    status: str = Field(description="issued, reserved, redeemed, expired or revoked")
    source: str
    issued_at: dt.datetime
    expires_at: dt.datetime | None
    order_id: int | None
    discount_fen: int


class CouponList(ApiModel):
    items: list[Coupon]


class IssueQueued(ApiModel):
    queued: bool
    run_ref: str
    run_id: int = Field(description="the distribution's record (coupon_issue_runs)")
    status: str = Field(description="queued; then running, done, partial or failed — read it at status_url")
    status_url: str = Field(description="GET: the distribution with its counts and why it failed")


class IssueRun(ApiModel):
    """One distribution of a template to a segment (按客群发券批次) and what came of it."""

    id: int
    template_id: int
    run_ref: str
    segment: str
    requested_by: str
    status: str = Field(description="queued, running, done, partial (some customers failed) or failed (stopped; why in error)")
    matched: int = Field(description="segment members seen")
    issued: int
    already: int = Field(description="had this run's coupon already (a re-run)")
    skipped_limit: int = Field(description="per-customer limit reached")
    skipped_budget: int = Field(description="not tried: the budget had run out")
    failed: int = Field(description="customers whose coupon failed; the first reasons in failures")
    failures: list[str] = Field(description='"#customer id: why", the first 20')
    error: str | None = Field(description="why the run stopped (status failed), in Chinese")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class IssueRunList(ApiModel):
    items: list[IssueRun]


def terms_from_body(body: TemplateChange, base: coupon_queries.CouponTemplate | None = None) -> tuple[TemplateTerms, bool]:
    """Template terms from a body; with ``base`` (PATCH) fields left out keep their current value."""
    given = body.model_fields_set
    r = base.rule if base else CouponRule("")
    b, v = (base.budget, base.validity) if base else (None, Validity())

    def pick(name: str, current: Any) -> Any:
        return getattr(body, name) if name in given else current

    rule = CouponRule(
        pick("kind", r.kind),
        pick("amount_off_fen", r.amount_off_fen) or 0,
        pick("percent_off", r.percent_off) or 0,
        pick("max_off_fen", r.max_off_fen),
        pick("threshold_fen", r.threshold_fen) or 0,
        frozenset(pick("skus", r.skus)),
        frozenset(pick("categories", r.categories)),
        pick("stackable", r.stackable),
    )
    terms = TemplateTerms(
        name=pick("name", base.name if base else ""),
        rule=rule,
        budget_count=pick("budget_count", b.budget_count if b else None),
        budget_fen=pick("budget_fen", b.budget_fen if b else None),
        per_customer_limit=pick("per_customer_limit", base.per_customer_limit if base else 1) or 0,
        validity=Validity(pick("valid_from", v.valid_from), pick("valid_until", v.valid_until), pick("valid_days", v.valid_days)),
    )
    return terms, pick("active", base.active if base else True)


def _template_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not raw.isdecimal():
        raise InvalidInput(f"{name} 必须是整数 ({name} must be an integer)", field=name)
    return int(raw)


async def create_template(request: web.Request) -> web.Response:
    terms, active = terms_from_body(await read_body(request, TemplateIn))
    tpl = await coupons.create_template(request.app[RUNTIME], terms, active=active)
    return web.json_response(tpl.to_json(), status=201)


async def list_templates(request: web.Request) -> web.Response:
    active = {"true": True, "false": False}.get(request.query.get("active", ""))
    items = await coupons.list_templates(request.app[RUNTIME], active=active)
    return web.json_response({"items": [t.to_json() for t in items]})


async def get_template(request: web.Request) -> web.Response:
    return web.json_response((await coupons.get_template(request.app[RUNTIME], _template_id(request))).to_json())


async def patch_template(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    current = await coupons.get_template(rt, _template_id(request))
    terms, active = terms_from_body(await read_body(request, TemplateChange), current)
    return web.json_response((await coupons.update_template(rt, current.id, terms, active=active)).to_json())


async def deactivate_template(request: web.Request) -> web.Response:
    """Stop issuing; coupons already out stay usable until they expire."""
    rt = request.app[RUNTIME]
    current = await coupons.get_template(rt, _template_id(request))
    terms, _ = terms_from_body(TemplateChange(), current)
    return web.json_response((await coupons.update_template(rt, current.id, terms, active=False)).to_json())


async def _customer(rt: Any, external_userid: str) -> int:
    async with rt.db.read() as conn:
        customer_id = await find_customer(conn, "external_userid", external_userid)
    if customer_id is None:
        raise NotFound(f"没有这个客户 {external_userid} (unknown customer)", customer=external_userid)
    return customer_id


async def issue(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, IssueIn)
    template_id, ref = body.template_id, body.source_ref or None
    if ("customer" in body.model_fields_set) == ("segment" in body.model_fields_set):
        raise InvalidInput("请指定 customer 或 segment 其中之一 (give exactly one of customer, segment)", field="customer")
    if "segment" in body.model_fields_set:
        run_ref = ref or short_id(12)
        run = await coupons.queue_issue_to_segment(
            rt, template_id, body.segment, run_ref=run_ref, requested_by="api", notify=body.notify
        )  # 404 / 400 now
        status_url = f"/api/v1/coupon-templates/{template_id}/issue-runs/{run.id}"
        return web.json_response(
            {"queued": True, "run_ref": run_ref, "run_id": run.id, "status": run.status, "status_url": status_url}, status=202
        )
    customer_id = await _customer(rt, body.customer)
    coupon = await coupons.issue_coupon(
        rt, template_id, customer_id, source="api", source_ref=f"api:{ref}" if ref else None, actor="api", notify=body.notify
    )
    return web.json_response(coupon.to_json(), status=201)


async def list_issue_runs(request: web.Request) -> web.Response:
    items = await coupons.list_issue_runs(request.app[RUNTIME], _template_id(request))
    return web.json_response({"items": [r.to_json() for r in items]})


async def get_issue_run(request: web.Request) -> web.Response:
    run = await coupons.get_issue_run(request.app[RUNTIME], _template_id(request), _template_id(request, "run_id"))
    return web.json_response(run.to_json())


async def customer_coupons(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    customer_id = await _customer(rt, request.match_info["external_userid"])
    usable = request.query.get("usable", "") == "true"
    items = await coupons.coupons_of_customer(rt, customer_id, usable_only=usable)
    return web.json_response({"items": [c.to_json() for c in items]})


def setup_routes(app: web.Application) -> None:
    route = "/coupon-templates/{id}"
    decimal = {"id": "^[0-9]+$"}
    add_api_route(
        app,
        "POST",
        "/coupon-templates",
        create_template,
        success=201,
        summary="Create a coupon template (满减 / 折扣 with a cap; SKUs/categories; budget; per-customer limit; validity)",
        response=CouponTemplate,
        request_body=TemplateIn,
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/coupon-templates",
        list_templates,
        summary="Coupon templates, newest first",
        response=CouponTemplateList,
        parameters=[query("active", enum=["true", "false"])],
    )
    add_api_route(
        app,
        "GET",
        route,
        get_template,
        summary="One coupon template with what it has issued",
        response=CouponTemplate,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "PATCH",
        route,
        patch_template,
        summary="Change a template; its discount terms are fixed once coupons are issued",
        response=CouponTemplate,
        request_body=TemplateChange,
        errors=(400, 401, 404, 409),
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "DELETE",
        route,
        deactivate_template,
        summary="Deactivate a template (issued coupons stay usable)",
        response=CouponTemplate,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "POST",
        "/coupons/issue",
        issue,
        success=(201, 202),
        summary="Issue a coupon to a customer (201, the coupon) or to a segment (202, queued; re-running a run_ref skips who has one)",
        response={201: Coupon, 202: IssueQueued},
        request_body=IssueIn,
        errors=(400, 401, 404, 409),
    )
    add_api_route(
        app,
        "GET",
        route + "/issue-runs",
        list_issue_runs,
        summary="A template's distributions to segments, newest first (the last 20): status, counts, why one failed",
        response=IssueRunList,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "GET",
        route + "/issue-runs/{run_id}",
        get_issue_run,
        summary="One distribution to a segment: queued, running, done, partial or failed, with its counts",
        response=IssueRun,
        path_pattern={**decimal, "run_id": "^[0-9]+$"},
    )
    add_api_route(
        app,
        "GET",
        "/customers/{external_userid}/coupons",
        customer_coupons,
        summary="A customer's coupons, newest first (?usable=true: only those usable now)",
        parameters=[query("usable", enum=["true", "false"])],
        response=CouponList,
    )
