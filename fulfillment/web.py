"""/api/v1 routes of fulfilment: orders, shipments, products and stock (thin; rules live in the services)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fulfillment.catalog import services as catalog
from fulfillment.catalog.services import MAX_QTY
from fulfillment.inventory import services as inventory
from fulfillment.orders import backorders as orders_backorders
from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders import shipments as shipments
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import get_int, get_str, read_json
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, query, schema
from scrm.crm.customers.services import find_customer

LINE = {
    "type": "object",
    "required": ["sku", "qty"],
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1, "maximum": MAX_QTY}},
}
ORDER = schema(
    "Order",
    {
        "type": "object",
        "required": ["number", "status", "total_fen", "lines"],
        "properties": {
            "number": {"type": "string"},
            "status": {"type": "string"},
            "total_fen": {"type": "integer"},
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sku", "qty"],
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                },
            },
            "shipments": {"type": "array", "items": {"type": "object"}},
        },
    },
)
ORDER_LIST = schema("OrderList", {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": ORDER}}})
PRODUCT = schema(
    "ProductStock",
    {
        "type": "object",
        "required": ["sku", "name", "on_hand", "allocated", "available"],
        "properties": {
            k: {"type": "integer" if k in ("on_hand", "allocated", "available", "price_fen") else "string"}
            for k in ("sku", "name", "unit", "price_fen", "on_hand", "allocated", "available")
        },
    },
)


def _lines(data: dict[str, Any], *, required: bool) -> list[tuple[str, int]] | None:
    raw = data.get("lines")
    if raw is None and not required:
        return None
    if not isinstance(raw, list) or not raw:
        raise InvalidInput('lines 必须是非空数组 [{"sku","qty"}] (lines must be a non-empty array)', field="lines")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidInput(f"lines[{i}] 必须是对象 (must be an object)", field="lines")
        out.append((get_str(item, "sku", max_len=64), get_int(item, "qty", minimum=1, maximum=MAX_QTY)))
    return out


async def _order_id(request: web.Request) -> int:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        return await orders_queries.order_id_by_number(conn, request.match_info["number"])


async def list_orders(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    external = request.query.get("customer", "").strip()
    if not external:
        raise InvalidInput("需要参数 customer=<external_userid> (customer query parameter is required)", field="customer")
    async with rt.db.read() as conn:
        customer_id = await find_customer(conn, "external_userid", external)
    if customer_id is None:
        return web.json_response({"items": []})
    found = await orders_queries.orders_of_customer(rt, customer_id, limit=100, include_drafts=request.query.get("drafts") == "1")
    return web.json_response({"items": [o.to_json() for o in found]})


async def get_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response((await orders.get_order(rt, await _order_id(request))).to_json())


async def create_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    data = await read_json(request)
    external = get_str(data, "customer", max_len=128)
    async with rt.db.read() as conn:
        customer_id = await find_customer(conn, "external_userid", external)
    if customer_id is None:
        raise NotFound(f"没有这个客户 {external} (unknown customer)", customer=external)
    confirm = data.get("confirm", True)
    if not isinstance(confirm, bool):
        raise InvalidInput("confirm 必须是 true/false", field="confirm")
    order = await orders.create_order(
        rt,
        customer_id=customer_id,
        items=_lines(data, required=True) or [],
        source="api",
        salesperson_userid=get_str(data, "salesperson", required=False, max_len=64),
        actor="api",
        confirm=confirm,
    )
    return web.json_response(order.to_json(), status=201)


async def confirm_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response((await orders.confirm_order(rt, await _order_id(request), actor="api")).to_json())


async def cancel_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    data = await read_json(request, allow_empty=True)
    reason = get_str(data, "reason", required=False, max_len=200)
    return web.json_response((await orders.cancel_order(rt, await _order_id(request), actor="api", reason=reason)).to_json())


async def ship_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    data = await read_json(request)
    order, number = await shipments.create_shipment(
        rt,
        await _order_id(request),
        carrier=get_str(data, "carrier", max_len=64),
        tracking_no=get_str(data, "tracking_no", max_len=64),
        lines=_lines(data, required=False),
        actor="api",
    )
    return web.json_response({"shipment": number, "order": order.to_json()}, status=201)


async def deliver_shipment(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response((await shipments.mark_delivered(rt, request.match_info["number"], actor="api")).to_json())


async def cancel_shipment(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response((await shipments.cancel_shipment(rt, request.match_info["number"], actor="api")).to_json())


async def _product_json(rt: Any, sku: str) -> dict[str, Any]:
    async with rt.db.read() as conn:
        p = await catalog.get_product(conn, sku)
        lvl = await inventory.level(conn, rt.db.dialect, p.id)
    return {
        "sku": p.sku,
        "name": p.name,
        "unit": p.unit,
        "price_fen": p.price_fen,
        "aliases": list(p.aliases),
        "category": p.category,
        "reorder_point": p.reorder_point,
        "active": p.active,
        "on_hand": lvl.on_hand,
        "allocated": lvl.allocated,
        "available": lvl.available,
    }


async def get_product(request: web.Request) -> web.Response:
    return web.json_response(await _product_json(request.app[RUNTIME], request.match_info["sku"]))


async def list_products(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        skus = [p.sku for p in await catalog.list_products(conn, active_only=False)]
    return web.json_response({"items": [await _product_json(rt, s) for s in skus]})


async def update_product(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    data = await read_json(request)
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = get_str(data, "name", max_len=128)
    if "unit" in data:
        changes["unit"] = get_str(data, "unit", max_len=16)
    if "category" in data:
        changes["category"] = get_str(data, "category", required=False, max_len=64)
    if "price_fen" in data:
        changes["price_fen"] = get_int(data, "price_fen", minimum=0, maximum=10**12)
    if "reorder_point" in data:
        changes["reorder_point"] = None if data["reorder_point"] is None else get_int(data, "reorder_point", minimum=0, maximum=MAX_QTY)
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise InvalidInput("active 必须是 true/false", field="active")
        changes["active"] = data["active"]
    unknown = set(data) - {"name", "unit", "category", "price_fen", "reorder_point", "active"}
    if unknown:
        raise InvalidInput(f"未知字段 (unknown fields): {', '.join(sorted(unknown))}")
    async with rt.db.write() as conn:
        await catalog.update_product(conn, request.match_info["sku"], rt.clock.now(), **changes)
    return web.json_response(await _product_json(rt, request.match_info["sku"]))


async def change_stock(request: web.Request) -> web.Response:
    """{"receive": n} adds a receipt; {"set_on_hand": n} records a stock count (adjustment)."""
    rt = request.app[RUNTIME]
    data = await read_json(request)
    sku = request.match_info["sku"]
    async with rt.db.write() as conn:
        p = await catalog.get_product(conn, sku)
        wh = await inventory.default_warehouse(conn, rt.db.dialect)
        if "receive" in data:
            await inventory.receive(
                conn,
                rt.db.dialect,
                p.id,
                wh,
                get_int(data, "receive", minimum=1, maximum=MAX_QTY),
                rt.clock.now(),
                reference=get_str(data, "reference", required=False, max_len=128),
            )
        elif "set_on_hand" in data:
            await inventory.set_on_hand(
                conn,
                rt.db.dialect,
                p.id,
                wh,
                get_int(data, "set_on_hand", minimum=0, maximum=MAX_QTY),
                rt.clock.now(),
                reference=get_str(data, "reference", required=False, max_len=128),
            )
        else:
            raise InvalidInput("需要 receive 或 set_on_hand (give receive or set_on_hand)")
    await orders_backorders.fill_backorders(rt, p.id)
    return web.json_response(await _product_json(rt, sku))


async def reconcile(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        drifts = await inventory.reconcile(conn)
    return web.json_response(
        {
            "drift": [
                {"product_id": d.product_id, "warehouse_id": d.warehouse_id, "counters": d.counters.__dict__, "ledger": d.ledger.__dict__}
                for d in drifts
            ]
        }
    )


def setup_routes(app: web.Application) -> None:
    q_customer = {"name": "customer", "in": "query", "required": True, "schema": {"type": "string"}}
    add_api_route(
        app,
        "GET",
        "/orders",
        list_orders,
        summary="A customer's orders",
        response=ORDER_LIST,
        parameters=[q_customer, query("drafts", enum=["0", "1"])],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "POST",
        "/orders",
        create_order,
        success=201,
        summary="Place an order for a customer (confirmed unless confirm=false)",
        response=ORDER,
        request_body={
            "type": "object",
            "required": ["customer", "lines"],
            "properties": {
                "customer": {"type": "string"},
                "lines": {"type": "array", "items": LINE, "minItems": 1},
                "confirm": {"type": "boolean"},
                "salesperson": {"type": "string"},
            },
        },
        errors=(400, 401, 404, 409),
    )
    add_api_route(app, "GET", "/orders/{number}", get_order, summary="One order", response=ORDER)
    add_api_route(
        app,
        "POST",
        "/orders/{number}/confirm",
        confirm_order,
        summary="Confirm a pending order",
        response=ORDER,
        errors=(400, 401, 404, 409),
    )
    add_api_route(
        app,
        "POST",
        "/orders/{number}/cancel",
        cancel_order,
        summary="Cancel an order nothing of which shipped",
        response=ORDER,
        request_body={"type": "object", "properties": {"reason": {"type": "string"}}},
        errors=(400, 401, 404, 409),
    )
    add_api_route(
        app,
        "POST",
        "/orders/{number}/shipments",
        ship_order,
        success=201,
        summary="Ship allocated goods (no lines = everything outstanding)",
        request_body={
            "type": "object",
            "required": ["carrier", "tracking_no"],
            "properties": {"carrier": {"type": "string"}, "tracking_no": {"type": "string"}, "lines": {"type": "array", "items": LINE}},
        },
        errors=(400, 401, 404, 409),
    )
    add_api_route(
        app,
        "POST",
        "/shipments/{number}/deliver",
        deliver_shipment,
        summary="Mark a shipment delivered",
        response=ORDER,
        errors=(400, 401, 404, 409),
    )
    add_api_route(
        app,
        "POST",
        "/shipments/{number}/cancel",
        cancel_shipment,
        summary="Cancel a shipment (goods back to stock)",
        response=ORDER,
        errors=(400, 401, 404, 409),
    )
    add_api_route(app, "GET", "/products", list_products, summary="Products with stock", errors=(401,))
    add_api_route(app, "GET", "/products/{sku}", get_product, summary="A product and its stock", response=PRODUCT)
    add_api_route(
        app,
        "PATCH",
        "/products/{sku}",
        update_product,
        summary="Change a product (price, reorder point, active …)",
        response=PRODUCT,
        request_body={
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "unit": {"type": "string"},
                "category": {"type": "string"},
                "price_fen": {"type": "integer", "minimum": 0},
                "reorder_point": {"type": "integer", "minimum": 0, "nullable": True},
                "active": {"type": "boolean"},
            },
        },
        errors=(400, 401, 404),
    )
    add_api_route(
        app,
        "POST",
        "/products/{sku}/stock",
        change_stock,
        summary="Receive stock or record a stock count",
        response=PRODUCT,
        request_body={
            "type": "object",
            "properties": {
                "receive": {"type": "integer", "minimum": 1},
                "set_on_hand": {"type": "integer", "minimum": 0},
                "reference": {"type": "string"},
            },
        },
        errors=(400, 401, 404, 409),
    )
    add_api_route(app, "GET", "/stock/reconcile", reconcile, summary="Counters vs the ledger: every drift", errors=(401,))
