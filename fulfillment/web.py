"""/api/v1 routes of fulfilment: orders, shipments, products and stock (thin; rules live in the services)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from aiohttp import web
from pydantic import ConfigDict, Field

from fulfillment.catalog import services as catalog
from fulfillment.catalog.services import MAX_QTY
from fulfillment.inventory import services as inventory
from fulfillment.orders import backorders as orders_backorders
from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from fulfillment.orders import shipments as shipments
from fulfillment.orders.domain import OrderNotFound
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.crm.customers.services import find_customer
from scrm.governance.approvals.services import waiting_brief
from scrm.governance.scopes.services import order_in_scope, scope_for

Sku = Annotated[str, NonBlank, Field(max_length=64)]
Qty = Annotated[int, Field(ge=1, le=MAX_QTY)]


# ---- request bodies -------------------------------------------------------------------------------------
class LineIn(Body):
    sku: Sku
    qty: Qty


class OrderIn(Body):
    messages: ClassVar[dict[str, str]] = {"lines": 'lines 必须是非空数组 [{"sku","qty"}] (lines must be a non-empty array)'}

    customer: Annotated[str, NonBlank, Field(max_length=128, description="external_userid")]
    lines: list[LineIn] = Field(min_length=1)
    confirm: bool = True
    salesperson: Annotated[str, OrEmpty, Field(max_length=64)] = ""


class OrderCancelIn(Body):
    reason: Annotated[str, OrEmpty, Field(max_length=200)] = ""


class ShipmentIn(Body):
    messages: ClassVar[dict[str, str]] = {"lines": 'lines 必须是非空数组 [{"sku","qty"}] (lines must be a non-empty array)'}

    carrier: Annotated[str, NonBlank, Field(max_length=64)]
    tracking_no: Annotated[str, NonBlank, Field(max_length=64)]
    lines: list[LineIn] | None = Field(None, min_length=1, description="omit (or null) = everything outstanding")


class ProductChange(Body):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, NonBlank, Field(max_length=128)] = Field(None)
    unit: Annotated[str, NonBlank, Field(max_length=16)] = Field(None)
    category: Annotated[str, OrEmpty, Field(max_length=64)] = Field(None)
    price_fen: int = Field(None, ge=0, le=10**12)
    reorder_point: int | None = Field(None, ge=0, le=MAX_QTY, description="null = no reorder point")
    active: bool = Field(None)


class StockChange(Body):
    """Exactly one of ``receive`` (a receipt) and ``set_on_hand`` (a stock count); receive wins when both are given."""

    receive: int = Field(None, ge=1, le=MAX_QTY)
    set_on_hand: int = Field(None, ge=0, le=MAX_QTY)
    reference: Annotated[str, OrEmpty, Field(max_length=128)] = ""


# ---- response bodies ------------------------------------------------------------------------------------
class OrderLine(ApiModel):
    sku: str
    name: str
    unit: str
    qty: int
    unit_price_fen: int
    line_total_fen: int
    allocated_qty: int
    shipped_qty: int
    backordered_qty: int


class OrderShipment(ApiModel):
    number: str
    carrier: str
    tracking_no: str
    status: str
    created_at: dt.datetime


class WaitingApproval(ApiModel):
    id: int
    rule: str = Field(description="the approval rule that matched")
    waiting_for: list[str] = Field(description="who must decide now")


class Order(ApiModel):
    number: str
    status: str = Field(
        description="pending, pending_approval, on_hold, confirmed, partially_shipped, shipped, completed, cancelled, expired"
    )
    approval: WaitingApproval | None = Field(None, description="while pending_approval: the approval it waits for")
    total_fen: int
    subtotal_fen: int
    discount_fen: int
    customer_id: int
    source: str
    created_at: dt.datetime
    confirmed_at: dt.datetime | None
    lines: list[OrderLine]
    shipments: list[OrderShipment]


class OrderList(ApiModel):
    items: list[Order]


class ShipmentCreated(ApiModel):
    shipment: str = Field(description="the shipment number")
    order: Order


class ProductStock(ApiModel):
    sku: str
    name: str
    unit: str
    price_fen: int
    aliases: list[str]
    category: str
    reorder_point: int | None
    active: bool
    on_hand: int
    allocated: int
    available: int


class PendingPrice(ApiModel):
    price_fen: int = Field(description="the price asked for; the product keeps its price until this is approved")
    approval: WaitingApproval | None


class ProductChanged(ProductStock):
    pending_price: PendingPrice | None = Field(None, description="when an approval rule holds the price change")


class ProductList(ApiModel):
    items: list[ProductStock]


class StockCounters(ApiModel):
    on_hand: int
    allocated: int


class StockDrift(ApiModel):
    product_id: int
    warehouse_id: int
    counters: StockCounters
    ledger: StockCounters


class StockReconcile(ApiModel):
    drift: list[StockDrift]


def _lines(lines: list[LineIn] | None) -> list[tuple[str, int]] | None:
    return None if lines is None else [(ln.sku, ln.qty) for ln in lines]


async def _order_id(request: web.Request) -> int:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        order_id = await orders_queries.order_id_by_number(conn, request.match_info["number"])
    order = await orders.get_order(rt, order_id)
    if not await order_in_scope(rt, await scope_for(rt), order.customer_id, order.salesperson_userid):
        raise OrderNotFound("没有找到这张订单 (order not found)", number=request.match_info["number"])  # someone else's
    return order_id


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
    scope = await scope_for(rt)
    if not scope.everything:  # someone else's customer: only the orders the scope's own members placed
        found = [o for o in found if await order_in_scope(rt, scope, o.customer_id, o.salesperson_userid)]
    return web.json_response({"items": [await order_json(rt, o) for o in found]})


async def get_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response(await order_json(rt, await orders.get_order(rt, await _order_id(request))))


async def order_json(rt: Any, order: orders.OrderView) -> dict[str, Any]:
    """An order as the API answers it: a waiting order names its approval (rule and who must decide)."""
    out = order.to_json()
    if order.status == "pending_approval":
        out["approval"] = await waiting_brief(rt, "order", order.number)
    return out


async def create_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, OrderIn)
    external = body.customer
    async with rt.db.read() as conn:
        customer_id = await find_customer(conn, "external_userid", external)
    if customer_id is None:
        raise NotFound(f"没有这个客户 {external} (unknown customer)", customer=external)
    order = await orders.create_order(
        rt,
        customer_id=customer_id,
        items=_lines(body.lines) or [],
        source="api",
        salesperson_userid=body.salesperson,
        actor="api",
        confirm=body.confirm,
    )
    return web.json_response(await order_json(rt, order), status=201)


async def confirm_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response(await order_json(rt, await orders.confirm_order(rt, await _order_id(request), actor="api")))


async def cancel_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, OrderCancelIn, allow_empty=True)
    return web.json_response((await orders.cancel_order(rt, await _order_id(request), actor="api", reason=body.reason)).to_json())


async def ship_order(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, ShipmentIn)
    order, number = await shipments.create_shipment(
        rt,
        await _order_id(request),
        carrier=body.carrier,
        tracking_no=body.tracking_no,
        lines=_lines(body.lines),
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
    changes: dict[str, Any] = (await read_body(request, ProductChange)).model_dump(exclude_unset=True)
    async with rt.db.write() as conn:
        changed = await catalog.update_product(conn, request.match_info["sku"], rt.clock.now(), **changes)
    out = await _product_json(rt, request.match_info["sku"])
    if changed.pending_price_fen is not None:  # an approval rule holds the new price: the old one applies meanwhile
        out["pending_price"] = {"price_fen": changed.pending_price_fen, "approval": await waiting_brief(rt, "price_change", changed.sku)}
    return web.json_response(out)


async def change_stock(request: web.Request) -> web.Response:
    """{"receive": n} adds a receipt; {"set_on_hand": n} records a stock count (adjustment)."""
    rt = request.app[RUNTIME]
    body = await read_body(request, StockChange)
    sku = request.match_info["sku"]
    async with rt.db.write() as conn:
        p = await catalog.get_product(conn, sku)
        wh = await inventory.default_warehouse(conn, rt.db.dialect)
        if "receive" in body.model_fields_set:
            await inventory.receive(conn, rt.db.dialect, p.id, wh, body.receive, rt.clock.now(), reference=body.reference)
        elif "set_on_hand" in body.model_fields_set:
            await inventory.set_on_hand(conn, rt.db.dialect, p.id, wh, body.set_on_hand, rt.clock.now(), reference=body.reference)
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
    add_api_route(
        app,
        "GET",
        "/orders",
        list_orders,
        summary="A customer's orders",
        response=OrderList,
        parameters=[query("customer", required=True), query("drafts", enum=["0", "1"])],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "POST",
        "/orders",
        create_order,
        success=201,
        summary="Place an order for a customer (confirmed unless confirm=false)",
        response=Order,
        request_body=OrderIn,
        errors=(400, 401, 404, 409),
    )
    add_api_route(app, "GET", "/orders/{number}", get_order, summary="One order", response=Order)
    e = (400, 401, 404, 409)
    add_api_route(app, "POST", "/orders/{number}/confirm", confirm_order, summary="Confirm a pending order", response=Order, errors=e)
    add_api_route(
        app,
        "POST",
        "/orders/{number}/cancel",
        cancel_order,
        summary="Cancel an order nothing of which shipped",
        response=Order,
        request_body=OrderCancelIn,
        errors=e,
    )
    add_api_route(
        app,
        "POST",
        "/orders/{number}/shipments",
        ship_order,
        success=201,
        summary="Ship allocated goods (no lines = everything outstanding)",
        response=ShipmentCreated,
        request_body=ShipmentIn,
        errors=e,
    )
    add_api_route(
        app, "POST", "/shipments/{number}/deliver", deliver_shipment, summary="Mark a shipment delivered", response=Order, errors=e
    )
    add_api_route(
        app,
        "POST",
        "/shipments/{number}/cancel",
        cancel_shipment,
        summary="Cancel a shipment (goods back to stock)",
        response=Order,
        errors=e,
    )
    add_api_route(app, "GET", "/products", list_products, summary="Products with stock", response=ProductList, errors=(401,))
    add_api_route(app, "GET", "/products/{sku}", get_product, summary="A product and its stock", response=ProductStock)
    add_api_route(
        app,
        "PATCH",
        "/products/{sku}",
        update_product,
        summary="Change a product (price, reorder point, active …); a price change a price_change approval rule holds "
        "waits (pending_price) and the old price applies until it is approved",
        response=ProductChanged,
        request_body=ProductChange,
        errors=(400, 401, 404),
    )
    add_api_route(
        app,
        "POST",
        "/products/{sku}/stock",
        change_stock,
        summary="Receive stock or record a stock count",
        response=ProductStock,
        request_body=StockChange,
        errors=e,
    )
    add_api_route(
        app, "GET", "/stock/reconcile", reconcile, summary="Counters vs the ledger: every drift", response=StockReconcile, errors=(401,)
    )
