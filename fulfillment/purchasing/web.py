"""/api/v1 routes of replenishment: suppliers, purchase orders, receiving, reorder suggestions (thin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from aiohttp import web
from pydantic import ConfigDict, Field

from fulfillment.catalog.services import MAX_QTY
from fulfillment.purchasing import services
from fulfillment.purchasing.domain import PURCHASE_STATUS_ZH, SUPPLIER_FIELDS, PurchaseOrderView
from fulfillment.web import WaitingApproval
from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.governance.approvals.services import waiting_brief
from scrm.governance.fields.services import rules_for

Sku = Annotated[str, NonBlank, Field(max_length=64)]
Qty = Annotated[int, Field(ge=1, le=MAX_QTY)]
LINES_MESSAGE = "lines 必须是非空的对象数组 (lines must be a non-empty array of objects)"


class PurchaseLineIn(Body):
    sku: Sku
    qty: Qty
    unit_cost_fen: int = Field(ge=0, le=10**10)


class ReceiveLineIn(Body):
    sku: Sku
    qty: Qty


class SupplierIn(Body):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, NonBlank, Field(max_length=128)]
    contact: Annotated[str, OrEmpty, Field(max_length=128)] = ""
    phone: Annotated[str, OrEmpty, Field(max_length=32)] = ""
    lead_time_days: int = Field(3, ge=0, le=365)


class SupplierChange(Body):
    """Only the fields given change; any other field is refused."""

    model_config = ConfigDict(extra="forbid")
    messages: ClassVar[dict[str, str]] = {
        **{k: f"供应商{k}必须是不超过 {n} 字的文字 ({k} ≤ {n} chars)" for k, n in SUPPLIER_FIELDS.items()},
        "lead_time_days": "交货周期必须是 0 到 365 天 (lead_time_days must be 0..365)",
        "active": "active 必须是 true/false",
    }

    name: Annotated[str, NonBlank, Field(max_length=128)] = Field(None)
    contact: Annotated[str, Field(max_length=128)] = Field(None)
    phone: Annotated[str, Field(max_length=32)] = Field(None)
    lead_time_days: int = Field(None, ge=0, le=365)
    active: bool = Field(None)


class PurchaseOrderIn(Body):
    messages: ClassVar[dict[str, str]] = {"lines": LINES_MESSAGE}

    supplier_id: int = Field(ge=1)
    lines: list[PurchaseLineIn] = Field(min_length=1)
    note: Annotated[str, OrEmpty, Field(max_length=500)] = ""
    expected_on: dt.date | None = None


class LinesIn(Body):
    messages: ClassVar[dict[str, str]] = {"lines": LINES_MESSAGE}

    lines: list[PurchaseLineIn] = Field(min_length=1)


class PlaceIn(Body):
    expected_on: dt.date | None = None


class PurchaseCancelIn(Body):
    reason: Annotated[str, OrEmpty, Field(max_length=200)] = ""


class ReceiveIn(Body):
    messages: ClassVar[dict[str, str]] = {"lines": LINES_MESSAGE}

    reference: Annotated[str, NonBlank, Field(max_length=64, description="the delivery note: each is posted once")]
    lines: list[ReceiveLineIn] | None = Field(None, min_length=1, description="omit (or null) = everything outstanding")


class DraftIn(Body):
    messages: ClassVar[dict[str, str]] = {"skus": "skus 必须是非空的 SKU 数组 (skus must be a non-empty array of strings)"}

    supplier_id: int = Field(ge=1)
    skus: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(None, min_length=1, description="null = every suggestion")


class Supplier(ApiModel):
    id: int
    name: str
    contact: str
    phone: str
    lead_time_days: int
    active: bool


class SupplierList(ApiModel):
    items: list[Supplier]


COST_HIDDEN = "null when your role may not see purchase prices (字段权限: cost)"


class PurchaseLine(ApiModel):
    sku: str
    name: str
    unit: str
    qty: int
    received_qty: int
    unit_cost_fen: int | None = Field(description=COST_HIDDEN)
    outstanding: int


class PurchaseReceipt(ApiModel):
    reference: str
    received_at: dt.datetime
    received_by: str


class PurchaseOrder(ApiModel):
    number: str
    status: str = Field(description=", ".join(PURCHASE_STATUS_ZH))
    supplier: Supplier
    note: str
    total_fen: int | None = Field(description=COST_HIDDEN)
    created_at: dt.datetime
    ordered_at: dt.datetime | None
    expected_on: dt.date | None
    closed_at: dt.datetime | None
    lines: list[PurchaseLine]
    receipts: list[PurchaseReceipt]
    approval: WaitingApproval | None = Field(None, description="while pending_approval: the approval it waits for")


class PurchaseOrderList(ApiModel):
    items: list[PurchaseOrder]


class Received(ApiModel):
    purchase_order: PurchaseOrder
    received: dict[str, int] = Field(description="units posted by this call per SKU (empty for a duplicate)")
    backorders_filled: dict[str, int] = Field(description="units allocated to waiting orders per SKU")
    duplicate: bool = Field(description="this delivery note was posted before; nothing new was received")


class SuggestionLine(ApiModel):
    sku: str
    name: str
    unit: str
    qty: int
    available: int
    on_order: int
    backordered: int
    reorder_point: int | None
    unit_cost_fen: int | None = Field(description=COST_HIDDEN)


class SuggestionGroup(ApiModel):
    supplier: Supplier | None = Field(description="null: never bought, choose a supplier")
    total_fen: int | None = Field(description=COST_HIDDEN)
    lines: list[SuggestionLine]


class Suggestions(ApiModel):
    groups: list[SuggestionGroup]


def _po_lines(lines: list[PurchaseLineIn]) -> list[tuple[str, int, int]]:
    return [(x.sku, x.qty, x.unit_cost_fen) for x in lines]


def _supplier_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("供应商编号必须是数字 (supplier id must be a number)", field="id")
    return int(raw)


async def list_suppliers(request: web.Request) -> web.Response:
    found = await services.list_suppliers(request.app[RUNTIME], active_only=request.query.get("active") == "1")
    return web.json_response({"items": [s.to_json() for s in found]})


async def create_supplier(request: web.Request) -> web.Response:
    body = await read_body(request, SupplierIn)
    supplier = await services.create_supplier(
        request.app[RUNTIME], name=body.name, contact=body.contact, phone=body.phone, lead_time_days=body.lead_time_days
    )
    return web.json_response(supplier.to_json(), status=201)


async def update_supplier(request: web.Request) -> web.Response:
    changes = (await read_body(request, SupplierChange)).model_dump(exclude_unset=True)
    supplier = await services.update_supplier(request.app[RUNTIME], _supplier_id(request), **changes)
    return web.json_response(supplier.to_json())


async def deactivate_supplier(request: web.Request) -> web.Response:
    supplier = await services.deactivate_supplier(request.app[RUNTIME], _supplier_id(request))
    return web.json_response(supplier.to_json())


async def list_purchase_orders(request: web.Request) -> web.Response:
    status = request.query.get("status", "")
    if status and status not in PURCHASE_STATUS_ZH:
        raise InvalidInput(f"未知状态 (unknown status): {status}", field="status")
    found = await services.list_purchase_orders(request.app[RUNTIME], status=status)
    show = await _show_cost(request)
    return web.json_response({"items": [p.to_json(show_cost=show) for p in found]})


async def create_purchase_order(request: web.Request) -> web.Response:
    body = await read_body(request, PurchaseOrderIn)
    order = await services.create_purchase_order(
        request.app[RUNTIME], supplier_id=body.supplier_id, lines=_po_lines(body.lines), note=body.note, expected_on=body.expected_on
    )
    return web.json_response(await _po_json(request, order), status=201)


async def get_purchase_order(request: web.Request) -> web.Response:
    order = await services.get_purchase_order(request.app[RUNTIME], request.match_info["number"])
    return web.json_response(await _po_json(request, order))


async def set_lines(request: web.Request) -> web.Response:
    body = await read_body(request, LinesIn)
    order = await services.set_draft_lines(request.app[RUNTIME], request.match_info["number"], _po_lines(body.lines))
    return web.json_response(await _po_json(request, order))


async def place(request: web.Request) -> web.Response:
    body = await read_body(request, PlaceIn, allow_empty=True)
    order = await services.place_purchase_order(request.app[RUNTIME], request.match_info["number"], expected_on=body.expected_on)
    return web.json_response(await _po_json(request, order))


async def cancel(request: web.Request) -> web.Response:
    body = await read_body(request, PurchaseCancelIn, allow_empty=True)
    return web.json_response(
        (await services.cancel_purchase_order(request.app[RUNTIME], request.match_info["number"], reason=body.reason)).to_json(
            show_cost=await _show_cost(request)
        )
    )


async def receive(request: web.Request) -> web.Response:
    """{"reference": delivery note, "lines": [{"sku","qty"}] (omit = everything outstanding)}; once per reference."""
    body = await read_body(request, ReceiveIn)
    lines = None if body.lines is None else [(x.sku, x.qty) for x in body.lines]
    result = await services.receive_purchase(
        request.app[RUNTIME], request.match_info["number"], lines, reference=body.reference, actor="api"
    )
    body = {
        "purchase_order": await _po_json(request, result.order),
        "received": result.received,
        "backorders_filled": result.backorders_filled,
        "duplicate": result.duplicate,
    }
    return web.json_response(body, status=200 if result.duplicate else 201)


async def _po_json(request: web.Request, order: PurchaseOrderView) -> dict[str, Any]:
    """A purchase order as the API answers it: prices per the caller's field rules; a waiting one names its approval."""
    out = order.to_json(show_cost=await _show_cost(request))
    if order.status == "pending_approval":
        out["approval"] = await waiting_brief(request.app[RUNTIME], "purchase_order", order.number)
    return out


async def _show_cost(request: web.Request) -> bool:
    """字段权限: whether the person asking may see purchase prices (else they answer null)."""
    return (await rules_for(request.app[RUNTIME])).cost_visible


async def suggestions(request: web.Request) -> web.Response:
    groups = await services.suggest_purchases(request.app[RUNTIME])
    show = await _show_cost(request)
    return web.json_response(
        {
            "groups": [
                {
                    "supplier": g.supplier.to_json() if g.supplier else None,
                    "total_fen": g.total_fen if show else None,
                    "lines": [
                        {
                            "sku": s.sku,
                            "name": s.position.name,
                            "unit": s.position.unit,
                            "qty": s.qty,
                            "available": s.position.available,
                            "on_order": s.position.on_order,
                            "backordered": s.position.backordered,
                            "reorder_point": s.position.reorder_point,
                            "unit_cost_fen": s.position.unit_cost_fen if show else None,
                        }
                        for s in g.suggestions
                    ],
                }
                for g in groups
            ]
        }
    )


async def draft_from_suggestions(request: web.Request) -> web.Response:
    body = await read_body(request, DraftIn)
    order = await services.draft_from_suggestions(request.app[RUNTIME], supplier_id=body.supplier_id, skus=body.skus)
    return web.json_response(await _po_json(request, order), status=201)


def setup_routes(app: web.Application) -> None:
    """Mount the purchasing API under /api/v1 (bearer auth is enforced by the app's middleware)."""
    e = (400, 401, 404, 409)
    decimal = {"id": "^[0-9]+$"}
    add_api_route(
        app,
        "GET",
        "/suppliers",
        list_suppliers,
        summary="Suppliers (active=1: only active)",
        response=SupplierList,
        parameters=[query("active", enum=["0", "1"])],
        errors=(401,),
    )
    add_api_route(
        app,
        "POST",
        "/suppliers",
        create_supplier,
        success=201,
        summary="Add a supplier",
        response=Supplier,
        request_body=SupplierIn,
        errors=e,
    )
    add_api_route(
        app,
        "PATCH",
        "/suppliers/{id}",
        update_supplier,
        summary="Change a supplier",
        response=Supplier,
        request_body=SupplierChange,
        errors=e,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "POST",
        "/suppliers/{id}/deactivate",
        deactivate_supplier,
        summary="Deactivate a supplier",
        response=Supplier,
        errors=e,
        path_pattern=decimal,
    )
    add_api_route(
        app,
        "GET",
        "/purchase-orders",
        list_purchase_orders,
        summary="Purchase orders, newest first",
        response=PurchaseOrderList,
        parameters=[query("status", enum=sorted(PURCHASE_STATUS_ZH))],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "POST",
        "/purchase-orders",
        create_purchase_order,
        success=201,
        summary="Write a draft purchase order by hand",
        response=PurchaseOrder,
        request_body=PurchaseOrderIn,
        errors=e,
    )
    add_api_route(app, "GET", "/purchase-orders/{number}", get_purchase_order, summary="One purchase order", response=PurchaseOrder)
    add_api_route(
        app,
        "PUT",
        "/purchase-orders/{number}/lines",
        set_lines,
        summary="Replace a draft's lines",
        response=PurchaseOrder,
        request_body=LinesIn,
        errors=e,
    )
    add_api_route(
        app,
        "POST",
        "/purchase-orders/{number}/place",
        place,
        summary="Send a draft to the supplier (draft → ordered)",
        response=PurchaseOrder,
        request_body=PlaceIn,
        errors=e,
    )
    add_api_route(
        app,
        "POST",
        "/purchase-orders/{number}/receive",
        receive,
        success=(200, 201),
        summary="Receive goods (full or partial), once per delivery note reference (200: posted before); releases backorders",
        response=Received,
        request_body=ReceiveIn,
        errors=e,
    )
    add_api_route(
        app,
        "POST",
        "/purchase-orders/{number}/cancel",
        cancel,
        summary="Cancel a purchase order nothing of which arrived",
        response=PurchaseOrder,
        request_body=PurchaseCancelIn,
        errors=e,
    )
    add_api_route(
        app,
        "GET",
        "/purchase-suggestions",
        suggestions,
        summary="Reorder suggestions grouped by last supplier",
        response=Suggestions,
        errors=(401,),
    )
    add_api_route(
        app,
        "POST",
        "/purchase-suggestions/draft",
        draft_from_suggestions,
        success=201,
        summary="Turn suggestions into a draft purchase order",
        response=PurchaseOrder,
        request_body=DraftIn,
        errors=e,
    )
