"""/api/v1 routes of replenishment: suppliers, purchase orders, receiving, reorder suggestions (thin)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from fulfillment.catalog.services import MAX_QTY
from fulfillment.purchasing import services
from fulfillment.purchasing.domain import PURCHASE_STATUS_ZH
from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import get_int, get_str, read_json
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, query, schema

SUPPLIER = schema(
    "Supplier",
    {
        "type": "object",
        "required": ["id", "name", "active"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "contact": {"type": "string"},
            "phone": {"type": "string"},
            "lead_time_days": {"type": "integer"},
            "active": {"type": "boolean"},
        },
    },
)
PURCHASE_ORDER = schema(
    "PurchaseOrder",
    {
        "type": "object",
        "required": ["number", "status", "supplier", "lines", "total_fen"],
        "properties": {
            "number": {"type": "string"},
            "status": {"type": "string", "enum": list(PURCHASE_STATUS_ZH)},
            "supplier": SUPPLIER,
            "total_fen": {"type": "integer"},
            "expected_on": {"type": "string", "format": "date", "nullable": True},
            "lines": {"type": "array", "items": {"type": "object"}},
            "receipts": {"type": "array", "items": {"type": "object"}},
        },
    },
)
PO_LINE = {
    "type": "object",
    "required": ["sku", "qty", "unit_cost_fen"],
    "properties": {
        "sku": {"type": "string"},
        "qty": {"type": "integer", "minimum": 1, "maximum": MAX_QTY},
        "unit_cost_fen": {"type": "integer", "minimum": 0},
    },
}
SUPPLIER_BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "contact": {"type": "string"},
        "phone": {"type": "string"},
        "lead_time_days": {"type": "integer", "minimum": 0, "maximum": 365},
        "active": {"type": "boolean"},
    },
}


def _items(data: dict[str, Any], name: str = "lines") -> list[dict[str, Any]]:
    raw = data.get(name)
    if not isinstance(raw, list) or not raw or not all(isinstance(x, dict) for x in raw):
        raise InvalidInput(f"{name} 必须是非空的对象数组 ({name} must be a non-empty array of objects)", field=name)
    return raw


def _po_lines(data: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [
        (
            get_str(x, "sku", max_len=64),
            get_int(x, "qty", minimum=1, maximum=MAX_QTY),
            get_int(x, "unit_cost_fen", minimum=0, maximum=10**10),
        )
        for x in _items(data)
    ]


def _date(data: dict[str, Any], name: str) -> dt.date | None:
    raw = data.get(name)
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        pass
    raise InvalidInput(f"{name} 必须是日期 YYYY-MM-DD ({name} must be a date)", field=name)


def _supplier_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("供应商编号必须是数字 (supplier id must be a number)", field="id")
    return int(raw)


async def list_suppliers(request: web.Request) -> web.Response:
    found = await services.list_suppliers(request.app[RUNTIME], active_only=request.query.get("active") == "1")
    return web.json_response({"items": [s.to_json() for s in found]})


async def create_supplier(request: web.Request) -> web.Response:
    data = await read_json(request)
    unknown = set(data) - {"name", "contact", "phone", "lead_time_days"}
    if unknown:
        raise InvalidInput(f"未知字段 (unknown fields): {', '.join(sorted(unknown))}")
    supplier = await services.create_supplier(
        request.app[RUNTIME],
        name=get_str(data, "name", max_len=128),
        contact=get_str(data, "contact", required=False, max_len=128),
        phone=get_str(data, "phone", required=False, max_len=32),
        lead_time_days=get_int(data, "lead_time_days", minimum=0, maximum=365) if "lead_time_days" in data else 3,
    )
    return web.json_response(supplier.to_json(), status=201)


async def update_supplier(request: web.Request) -> web.Response:
    data = await read_json(request)
    supplier = await services.update_supplier(request.app[RUNTIME], _supplier_id(request), **data)
    return web.json_response(supplier.to_json())


async def deactivate_supplier(request: web.Request) -> web.Response:
    supplier = await services.deactivate_supplier(request.app[RUNTIME], _supplier_id(request))
    return web.json_response(supplier.to_json())


async def list_purchase_orders(request: web.Request) -> web.Response:
    status = request.query.get("status", "")
    if status and status not in PURCHASE_STATUS_ZH:
        raise InvalidInput(f"未知状态 (unknown status): {status}", field="status")
    found = await services.list_purchase_orders(request.app[RUNTIME], status=status)
    return web.json_response({"items": [p.to_json() for p in found]})


async def create_purchase_order(request: web.Request) -> web.Response:
    data = await read_json(request)
    order = await services.create_purchase_order(
        request.app[RUNTIME],
        supplier_id=get_int(data, "supplier_id", minimum=1),
        lines=_po_lines(data),
        note=get_str(data, "note", required=False, max_len=500),
        expected_on=_date(data, "expected_on"),
    )
    return web.json_response(order.to_json(), status=201)


async def get_purchase_order(request: web.Request) -> web.Response:
    return web.json_response((await services.get_purchase_order(request.app[RUNTIME], request.match_info["number"])).to_json())


async def set_lines(request: web.Request) -> web.Response:
    data = await read_json(request)
    order = await services.set_draft_lines(request.app[RUNTIME], request.match_info["number"], _po_lines(data))
    return web.json_response(order.to_json())


async def place(request: web.Request) -> web.Response:
    data = await read_json(request, allow_empty=True)
    order = await services.place_purchase_order(request.app[RUNTIME], request.match_info["number"], expected_on=_date(data, "expected_on"))
    return web.json_response(order.to_json())


async def cancel(request: web.Request) -> web.Response:
    data = await read_json(request, allow_empty=True)
    reason = get_str(data, "reason", required=False, max_len=200)
    return web.json_response(
        (await services.cancel_purchase_order(request.app[RUNTIME], request.match_info["number"], reason=reason)).to_json()
    )


async def receive(request: web.Request) -> web.Response:
    """{"reference": delivery note, "lines": [{"sku","qty"}] (omit = everything outstanding)}; once per reference."""
    data = await read_json(request)
    lines = None
    if data.get("lines") is not None:
        lines = [(get_str(x, "sku", max_len=64), get_int(x, "qty", minimum=1, maximum=MAX_QTY)) for x in _items(data)]
    result = await services.receive_purchase(
        request.app[RUNTIME], request.match_info["number"], lines, reference=get_str(data, "reference", max_len=64), actor="api"
    )
    body = {
        "purchase_order": result.order.to_json(),
        "received": result.received,
        "backorders_filled": result.backorders_filled,
        "duplicate": result.duplicate,
    }
    return web.json_response(body, status=200 if result.duplicate else 201)


async def suggestions(request: web.Request) -> web.Response:
    groups = await services.suggest_purchases(request.app[RUNTIME])
    return web.json_response(
        {
            "groups": [
                {
                    "supplier": g.supplier.to_json() if g.supplier else None,
                    "total_fen": g.total_fen,
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
                            "unit_cost_fen": s.position.unit_cost_fen,
                        }
                        for s in g.suggestions
                    ],
                }
                for g in groups
            ]
        }
    )


async def draft_from_suggestions(request: web.Request) -> web.Response:
    data = await read_json(request)
    skus = None
    if data.get("skus") is not None:
        raw = data["skus"]
        if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in raw):
            raise InvalidInput("skus 必须是非空的 SKU 数组 (skus must be a non-empty array of strings)", field="skus")
        skus = list(raw)
    order = await services.draft_from_suggestions(request.app[RUNTIME], supplier_id=get_int(data, "supplier_id", minimum=1), skus=skus)
    return web.json_response(order.to_json(), status=201)


def setup_routes(app: web.Application) -> None:
    """Mount the purchasing API under /api/v1 (bearer auth is enforced by the app's middleware)."""
    e = (400, 401, 404, 409)
    add_api_route(
        app,
        "GET",
        "/suppliers",
        list_suppliers,
        summary="Suppliers (active=1: only active)",
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
        response=SUPPLIER,
        request_body=SUPPLIER_BODY,
        errors=e,
    )
    add_api_route(
        app,
        "PATCH",
        "/suppliers/{id}",
        update_supplier,
        summary="Change a supplier",
        response=SUPPLIER,
        request_body=SUPPLIER_BODY,
        errors=e,
    )
    add_api_route(
        app, "POST", "/suppliers/{id}/deactivate", deactivate_supplier, summary="Deactivate a supplier", response=SUPPLIER, errors=e
    )
    add_api_route(
        app,
        "GET",
        "/purchase-orders",
        list_purchase_orders,
        summary="Purchase orders, newest first",
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
        response=PURCHASE_ORDER,
        request_body={
            "type": "object",
            "required": ["supplier_id", "lines"],
            "properties": {
                "supplier_id": {"type": "integer"},
                "lines": {"type": "array", "items": PO_LINE, "minItems": 1},
                "note": {"type": "string"},
                "expected_on": {"type": "string", "format": "date"},
            },
        },
        errors=e,
    )
    add_api_route(app, "GET", "/purchase-orders/{number}", get_purchase_order, summary="One purchase order", response=PURCHASE_ORDER)
    add_api_route(
        app,
        "PUT",
        "/purchase-orders/{number}/lines",
        set_lines,
        summary="Replace a draft's lines",
        response=PURCHASE_ORDER,
        request_body={"type": "object", "required": ["lines"], "properties": {"lines": {"type": "array", "items": PO_LINE}}},
        errors=e,
    )
    add_api_route(
        app,
        "POST",
        "/purchase-orders/{number}/place",
        place,
        summary="Send a draft to the supplier (draft → ordered)",
        response=PURCHASE_ORDER,
        request_body={"type": "object", "properties": {"expected_on": {"type": "string", "format": "date"}}},
        errors=e,
    )
    add_api_route(
        app,
        "POST",
        "/purchase-orders/{number}/receive",
        receive,
        summary="Receive goods (full or partial), once per delivery note reference; releases backorders",
        request_body={
            "type": "object",
            "required": ["reference"],
            "properties": {
                "reference": {"type": "string", "maxLength": 64},
                "lines": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["sku", "qty"],
                        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                    },
                },
            },
        },
        errors=e,
    )
    add_api_route(
        app,
        "POST",
        "/purchase-orders/{number}/cancel",
        cancel,
        summary="Cancel a purchase order nothing of which arrived",
        response=PURCHASE_ORDER,
        request_body={"type": "object", "properties": {"reason": {"type": "string"}}},
        errors=e,
    )
    add_api_route(app, "GET", "/purchase-suggestions", suggestions, summary="Reorder suggestions grouped by last supplier", errors=(401,))
    add_api_route(
        app,
        "POST",
        "/purchase-suggestions/draft",
        draft_from_suggestions,
        success=201,
        summary="Turn suggestions into a draft purchase order",
        response=PURCHASE_ORDER,
        request_body={
            "type": "object",
            "required": ["supplier_id"],
            "properties": {"supplier_id": {"type": "integer"}, "skus": {"type": "array", "items": {"type": "string"}}},
        },
        errors=e,
    )
