"""/api/v1 routes of coupons (thin): templates CRUD, issuing to a customer or a segment, a customer's wallet."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms, Validity
from scrm.campaigns.coupons.queries import CouponTemplate
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import get_int, get_str, read_json
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, query, schema
from scrm.core.ids import short_id
from scrm.crm.customers.services import find_customer

_NULLABLE_INT = {"type": "integer", "nullable": True}
TEMPLATE_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 64},
    "kind": {"type": "string", "enum": ["fixed", "percent"], "description": "fixed = 满减; percent = 折扣 (needs max_off_fen)"},
    "amount_off_fen": {"type": "integer"},
    "percent_off": {"type": "integer", "minimum": 1, "maximum": 99},
    "max_off_fen": _NULLABLE_INT,
    "threshold_fen": {"type": "integer", "minimum": 0},
    "skus": {"type": "array", "items": {"type": "string"}, "description": "[] = every product"},
    "categories": {"type": "array", "items": {"type": "string"}, "description": "[] = every category"},
    "stackable": {"type": "boolean", "description": "combines with other stackable coupons; default one coupon per order"},
    "budget_count": _NULLABLE_INT,
    "budget_fen": {**_NULLABLE_INT, "description": "face value of all issued coupons (a percent coupon's cap)"},
    "per_customer_limit": {"type": "integer", "minimum": 1},
    "valid_from": {"type": "string", "format": "date-time", "nullable": True},
    "valid_until": {"type": "string", "format": "date-time", "nullable": True},
    "valid_days": {**_NULLABLE_INT, "description": "usable N days after issue (the earlier of this and valid_until)"},
    "active": {"type": "boolean"},
}
TEMPLATE = schema(
    "CouponTemplate",
    {
        "type": "object",
        "required": ["id", "name", "kind", "label", "issued_count", "issued_fen", "active"],
        "properties": {"id": {"type": "integer"}, "label": {"type": "string"}, "issued_count": {"type": "integer"}, **TEMPLATE_FIELDS},
    },
)
COUPON = schema(
    "Coupon",
    {
        "type": "object",
        "required": ["code", "template_id", "status"],
        "properties": {
            "code": {"type": "string"},
            "template_id": {"type": "integer"},
            "name": {"type": "string"},
            "label": {"type": "string", "description": "e.g. 满100减10"},
            "status": {"type": "string", "enum": ["issued", "reserved", "redeemed", "expired", "revoked"]},
            "source": {"type": "string"},
            "issued_at": {"type": "string"},
            "expires_at": {"type": "string", "nullable": True},
            "order_id": _NULLABLE_INT,
            "discount_fen": {"type": "integer"},
        },
    },
)


def _time(data: dict[str, Any], name: str, default: dt.datetime | None) -> dt.datetime | None:
    if name not in data:
        return default
    raw = data[name]
    if raw is None or raw == "":
        return None
    try:
        value = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        raise InvalidInput(f"{name} 需为 ISO 8601 时间 ({name} must be an ISO 8601 date-time)", field=name) from None
    if value.tzinfo is None:
        raise InvalidInput(f"{name} 必须带时区 ({name} needs a timezone, e.g. +08:00)", field=name)
    return value


def _opt_int(data: dict[str, Any], name: str, default: int | None) -> int | None:
    if name not in data:
        return default
    return None if data[name] is None else get_int(data, name, minimum=0)


def _strings(data: dict[str, Any], name: str, default: frozenset[str]) -> frozenset[str]:
    if name not in data:
        return default
    value = data[name]
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value):
        raise InvalidInput(f"{name} 必须是字符串数组 ({name} must be a list of strings)", field=name)
    return frozenset(v.strip() for v in value)


def terms_from_json(data: dict[str, Any], base: CouponTemplate | None = None) -> tuple[TemplateTerms, bool]:
    """Template terms from a JSON body; with ``base`` (PATCH) absent fields keep their current value."""
    r = base.rule if base else CouponRule("")
    b, v = (base.budget, base.validity) if base else (None, Validity())
    kind = get_str(data, "kind", max_len=16) if "kind" in data or base is None else r.kind
    flag = data.get("stackable", r.stackable)
    active = data.get("active", base.active if base else True)
    if not isinstance(flag, bool) or not isinstance(active, bool):
        raise InvalidInput("stackable/active 必须是 true/false", field="stackable")
    rule = CouponRule(
        kind,
        _opt_int(data, "amount_off_fen", r.amount_off_fen) or 0,
        _opt_int(data, "percent_off", r.percent_off) or 0,
        _opt_int(data, "max_off_fen", r.max_off_fen),
        _opt_int(data, "threshold_fen", r.threshold_fen) or 0,
        _strings(data, "skus", r.skus),
        _strings(data, "categories", r.categories),
        flag,
    )
    terms = TemplateTerms(
        name=get_str(data, "name", max_len=64) if "name" in data or base is None else base.name,
        rule=rule,
        budget_count=_opt_int(data, "budget_count", b.budget_count if b else None),
        budget_fen=_opt_int(data, "budget_fen", b.budget_fen if b else None),
        per_customer_limit=_opt_int(data, "per_customer_limit", base.per_customer_limit if base else 1) or 0,
        validity=Validity(
            _time(data, "valid_from", v.valid_from), _time(data, "valid_until", v.valid_until), _opt_int(data, "valid_days", v.valid_days)
        ),
    )
    return terms, active


def _template_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal():
        raise InvalidInput("id 必须是整数 (id must be an integer)", field="id")
    return int(raw)


async def create_template(request: web.Request) -> web.Response:
    terms, active = terms_from_json(await read_json(request))
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
    terms, active = terms_from_json(await read_json(request), current)
    return web.json_response((await coupons.update_template(rt, current.id, terms, active=active)).to_json())


async def deactivate_template(request: web.Request) -> web.Response:
    """Stop issuing; coupons already out stay usable until they expire."""
    rt = request.app[RUNTIME]
    current = await coupons.get_template(rt, _template_id(request))
    terms, _ = terms_from_json({}, current)
    return web.json_response((await coupons.update_template(rt, current.id, terms, active=False)).to_json())


async def _customer(rt: Any, external_userid: str) -> int:
    async with rt.db.read() as conn:
        customer_id = await find_customer(conn, "external_userid", external_userid)
    if customer_id is None:
        raise NotFound(f"没有这个客户 {external_userid} (unknown customer)", customer=external_userid)
    return customer_id


async def issue(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    data = await read_json(request)
    template_id = get_int(data, "template_id", minimum=1)
    ref = get_str(data, "source_ref", required=False, max_len=80) or None
    if ("customer" in data) == ("segment" in data):
        raise InvalidInput("请指定 customer 或 segment 其中之一 (give exactly one of customer, segment)", field="customer")
    if "segment" in data:
        expr = get_str(data, "segment", max_len=2000)
        await coupons.get_template(rt, template_id)  # 404 now rather than in the job
        run_ref = ref or short_id(12)
        await rt.jobs.enqueue("coupons.issue_to_segment", template_id, expr, run_ref, job_id=f"coupons.segment:{template_id}:{run_ref}")
        return web.json_response({"queued": True, "run_ref": run_ref}, status=202)
    customer_id = await _customer(rt, get_str(data, "customer", max_len=64))
    coupon = await coupons.issue_coupon(rt, template_id, customer_id, source="api", source_ref=f"api:{ref}" if ref else None, actor="api")
    return web.json_response(coupon.to_json(), status=201)


async def customer_coupons(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    customer_id = await _customer(rt, request.match_info["external_userid"])
    usable = request.query.get("usable", "") == "true"
    items = await coupons.coupons_of_customer(rt, customer_id, usable_only=usable)
    return web.json_response({"items": [c.to_json() for c in items]})


def setup_routes(app: web.Application) -> None:
    listing = schema("CouponTemplateList", {"type": "object", "properties": {"items": {"type": "array", "items": TEMPLATE}}})
    body = {"type": "object", "properties": TEMPLATE_FIELDS}
    route = "/coupon-templates/{id}"
    add_api_route(
        app,
        "POST",
        "/coupon-templates",
        create_template,
        success=201,
        summary="Create a coupon template (满减 / 折扣 with a cap; SKUs/categories; budget; per-customer limit; validity)",
        response=TEMPLATE,
        request_body={**body, "required": ["name", "kind"]},
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/coupon-templates",
        list_templates,
        summary="Coupon templates, newest first",
        response=listing,
        parameters=[query("active", enum=["true", "false"])],
    )
    add_api_route(app, "GET", route, get_template, summary="One coupon template with what it has issued", response=TEMPLATE)
    add_api_route(
        app,
        "PATCH",
        route,
        patch_template,
        summary="Change a template; its discount terms are fixed once coupons are issued",
        response=TEMPLATE,
        request_body=body,
        errors=(400, 401, 404, 409),
    )
    add_api_route(
        app, "DELETE", route, deactivate_template, summary="Deactivate a template (issued coupons stay usable)", response=TEMPLATE
    )
    add_api_route(
        app,
        "POST",
        "/coupons/issue",
        issue,
        success=(201, 202),
        summary="Issue a coupon to a customer (201, the coupon) or to a segment (202, queued; re-running a run_ref skips who has one)",
        response=COUPON,
        request_body={
            "type": "object",
            "required": ["template_id"],
            "properties": {
                "template_id": {"type": "integer"},
                "customer": {"type": "string", "description": "external_userid"},
                "segment": {"type": "string", "description": "segment expression"},
                "source_ref": {"type": "string", "description": "idempotency key"},
            },
        },
        errors=(400, 401, 404, 409),
    )
    add_api_route(
        app,
        "GET",
        "/customers/{external_userid}/coupons",
        customer_coupons,
        summary="A customer's coupons, newest first (?usable=true: only those usable now)",
        parameters=[query("usable", enum=["true", "false"])],
        response=schema("CouponList", {"type": "object", "properties": {"items": {"type": "array", "items": COUPON}}}),
    )
