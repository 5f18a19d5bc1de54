"""/api/v1/quotes: create (from an opportunity or for a customer), list, one, accept (→ the order, exactly as
``POST /api/v1/orders`` answers it), cancel (thin; rules live in the services)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from aiohttp import web
from pydantic import Field

from fulfillment.catalog.services import MAX_QTY
from fulfillment.web import Order, WaitingApproval, order_json
from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.core.runtime import Runtime
from scrm.governance.approvals.services import waiting_brief
from scrm.governance.scopes.services import scope_for
from scrm.sales.pipeline.services import get_opportunity
from scrm.sales.pipeline.web import actor_label, check_customer_visible, owner_for
from scrm.sales.quotes import services
from scrm.sales.quotes.domain import MAX_LINES, LineRequest, QuoteNotFound
from scrm.sales.quotes.models import QuoteStatus


class QuoteLineIn(Body):
    sku: Annotated[str, NonBlank, Field(max_length=64)]
    qty: int = Field(ge=1, le=MAX_QTY)
    discount_pct: float | None = Field(None, description="0–100 (%) off the list price")
    unit_price_fen: int | None = Field(None, description="the agreed unit price instead of a discount")


class QuoteIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "lines": f'lines 必须是 1 到 {MAX_LINES} 行 [{{"sku","qty","discount_pct" 或 "unit_price_fen"}}] (lines: 1–{MAX_LINES} objects)'
    }

    opportunity_id: int | None = Field(None, ge=1, le=10**15)
    customer_id: int | None = Field(None, ge=1, le=10**15, description="when not from an opportunity")
    lines: list[QuoteLineIn] = Field(min_length=1, max_length=MAX_LINES)
    valid_until: dt.date | None = Field(None, description="last day it may be accepted (default: 15 days)")
    note: Annotated[str, OrEmpty, Field(max_length=500)] = ""
    owner: Annotated[str, OrEmpty, Field(max_length=64, description="WeCom userid; default: the opportunity's owner or yours")] = ""


class QuoteLineOut(ApiModel):
    sku: str
    name: str
    unit: str
    qty: int
    list_price_fen: int
    unit_price_fen: int
    discount_pct: float
    line_total_fen: int


class Quote(ApiModel):
    id: int
    number: str
    customer_id: int
    opportunity_id: int | None
    owner: str
    status: str = Field(description="pending_approval, open, accepted, rejected, cancelled")
    expired: bool
    valid_until: dt.date
    subtotal_fen: int
    discount_fen: int
    total_fen: int
    max_discount_pct: float
    note: str
    order_number: str | None
    accepted_at: dt.datetime | None
    created_at: dt.datetime
    lines: list[QuoteLineOut]
    approval: WaitingApproval | None = Field(None, description="while pending_approval: the approval it waits for")
    share_url: str | None = Field(None, description="the customer's page (send it into the chat) once sendable")


class QuoteList(ApiModel):
    items: list[Quote]


def quote_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise QuoteNotFound(f"没有这张报价单：{raw[:32]} (quote not found)")
    return int(raw)


async def quote_json(rt: Runtime, found: services.QuoteView) -> dict[str, Any]:
    out = found.to_json()
    out["approval"] = await waiting_brief(rt, "quote", found.number) if found.status == QuoteStatus.PENDING_APPROVAL else None
    out["share_url"] = services.share_url(rt, found) if found.sendable else None
    return out


async def create_quote(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, QuoteIn)
    scope = await scope_for(rt)
    asked = body.owner
    if body.opportunity_id is not None:
        opp = await get_opportunity(rt, body.opportunity_id, scope=scope)  # someone else's: not found
        asked = asked or opp.owner
    elif body.customer_id is not None:
        await check_customer_visible(rt, body.customer_id)
    else:
        raise InvalidInput("需要 opportunity_id 或 customer_id (give an opportunity or a customer)", field="customer_id")
    owner = await owner_for(rt, asked)
    made = await services.create_quote(
        rt,
        lines=[LineRequest(ln.sku, ln.qty, ln.discount_pct, ln.unit_price_fen) for ln in body.lines],
        owner_userid=owner,
        customer_id=body.customer_id,
        opportunity_id=body.opportunity_id,
        valid_until=body.valid_until,
        note=body.note,
        actor=await actor_label(rt),
    )
    return web.json_response(await quote_json(rt, made), status=201)


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput(f"{name} 需为正整数 ({name} must be a positive integer)", field=name)
    return int(raw)


async def list_quotes(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    found = await services.list_quotes(
        rt,
        await scope_for(rt),
        customer_id=_int_query(request, "customer_id"),
        opportunity_id=_int_query(request, "opportunity_id"),
        status=request.query.get("status", "").strip()[:16],
        owner=request.query.get("owner", "").strip()[:64],
    )
    return web.json_response({"items": [await quote_json(rt, q) for q in found]})


async def get_quote(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response(await quote_json(rt, await services.get_quote(rt, quote_id(request), scope=await scope_for(rt))))


async def accept_quote(request: web.Request) -> web.Response:
    """The order, as ``POST /api/v1/orders`` answers it: 201 when placed now, 200 for a quote accepted before."""
    rt = request.app[RUNTIME]
    order, created = await services.accept_quote(rt, quote_id(request), actor=await actor_label(rt), scope=await scope_for(rt))
    return web.json_response(await order_json(rt, order), status=201 if created else 200)


async def cancel_quote(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    found = await services.cancel_quote(rt, quote_id(request), actor=await actor_label(rt), scope=await scope_for(rt))
    return web.json_response(await quote_json(rt, found))


def setup_routes(app: web.Application) -> None:
    statuses = ["pending_approval", "open", "accepted", "rejected", "cancelled"]
    add_api_route(
        app,
        "GET",
        "/quotes",
        list_quotes,
        summary="Quotes (报价单) in your data scope, newest first",
        response=QuoteList,
        parameters=[
            query("customer_id", type="integer"),
            query("opportunity_id", type="integer"),
            query("status", enum=statuses),
            query("owner"),
        ],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "POST",
        "/quotes",
        create_quote,
        success=201,
        summary="Create a quote from an opportunity or for a customer (waits pending_approval when an approval rule matches)",
        response=Quote,
        request_body=QuoteIn,
        errors=(400, 401, 404),
    )
    e = {"id": r"\d+"}
    add_api_route(app, "GET", "/quotes/{id}", get_quote, summary="One quote", response=Quote, path_pattern=e)
    add_api_route(
        app,
        "POST",
        "/quotes/{id}/accept",
        accept_quote,
        success=(200, 201),
        summary="Accept a quote: a confirmed order through the same service as POST /orders (answered as POST /orders "
        "answers; 200 when it was accepted before); the opportunity is won",
        response=Order,
        errors=(400, 401, 404, 409),
        path_pattern=e,
    )
    add_api_route(
        app,
        "POST",
        "/quotes/{id}/cancel",
        cancel_quote,
        summary="Withdraw an open or waiting quote",
        response=Quote,
        errors=(401, 404, 409),
        path_pattern=e,
    )
