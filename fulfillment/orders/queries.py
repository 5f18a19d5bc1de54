"""What an order looks like to the rest of the product (chat replies, sidebar, console, API, notices): the view
dataclasses and the read-only queries. Writes live in :mod:`fulfillment.orders.services`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.orders.domain import SHIPPABLE, OrderNotFound
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import order_history, order_lines, orders, shipments
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers
from scrm.governance.scopes.services import DataScope


@dataclass
class LineView:
    id: int
    product_id: int
    sku: str
    name: str
    unit: str
    qty: int
    unit_price_fen: int
    line_total_fen: int
    allocated_qty: int
    shipped_qty: int

    @property
    def backordered_qty(self) -> int:
        return self.qty - self.allocated_qty


@dataclass
class ShipmentView:
    number: str
    carrier: str
    tracking_no: str
    status: str
    created_at: dt.datetime


@dataclass
class OrderView:
    id: int
    number: str
    customer_id: int
    status: str
    version: int
    source: str
    channel: str
    salesperson_userid: str
    subtotal_fen: int
    discount_fen: int
    total_fen: int
    created_at: dt.datetime
    expires_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    lines: list[LineView] = field(default_factory=list)
    shipments: list[ShipmentView] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "status": self.status,
            "total_fen": self.total_fen,
            "subtotal_fen": self.subtotal_fen,
            "discount_fen": self.discount_fen,
            "customer_id": self.customer_id,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "lines": [
                {
                    "sku": ln.sku,
                    "name": ln.name,
                    "unit": ln.unit,
                    "qty": ln.qty,
                    "unit_price_fen": ln.unit_price_fen,
                    "line_total_fen": ln.line_total_fen,
                    "allocated_qty": ln.allocated_qty,
                    "shipped_qty": ln.shipped_qty,
                    "backordered_qty": ln.backordered_qty,
                }
                for ln in self.lines
            ],
            "shipments": [
                {
                    "number": s.number,
                    "carrier": s.carrier,
                    "tracking_no": s.tracking_no,
                    "status": s.status,
                    "created_at": s.created_at.isoformat(),
                }
                for s in self.shipments
            ],
        }


# ---- queries --------------------------------------------------------------------------------------------
async def load_view(conn: AsyncConnection, order_id: int) -> OrderView:
    row = (await conn.execute(sa.select(orders).where(orders.c.id == order_id))).first()
    if row is None:
        raise OrderNotFound("没有找到这张订单 (order not found)", order_id=order_id)
    lines = (await conn.execute(sa.select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.id))).all()
    ships = (await conn.execute(sa.select(shipments).where(shipments.c.order_id == order_id).order_by(shipments.c.id))).all()
    return OrderView(
        id=int(row.id),
        number=row.number,
        customer_id=int(row.customer_id),
        status=row.status,
        version=int(row.version),
        source=row.source,
        channel=row.channel,
        salesperson_userid=row.salesperson_userid,
        subtotal_fen=int(row.subtotal_fen),
        discount_fen=int(row.discount_fen),
        total_fen=int(row.total_fen),
        created_at=row.created_at,
        expires_at=row.expires_at,
        confirmed_at=row.confirmed_at,
        lines=[
            LineView(
                int(ln.id),
                int(ln.product_id),
                ln.sku,
                ln.name,
                ln.unit,
                int(ln.qty),
                int(ln.unit_price_fen),
                int(ln.line_total_fen),
                int(ln.allocated_qty),
                int(ln.shipped_qty),
            )
            for ln in lines
        ],
        shipments=[ShipmentView(s.number, s.carrier, s.tracking_no, s.status, s.created_at) for s in ships],
    )


async def get_order(rt: Runtime, order_id: int) -> OrderView:
    async with rt.db.read() as conn:
        return await load_view(conn, order_id)


async def order_id_by_number(conn: AsyncConnection, number: str) -> int:
    row = (await conn.execute(sa.select(orders.c.id).where(orders.c.number == number.strip().upper()))).first()
    if row is None:
        raise OrderNotFound(f"没有找到订单 {number} (order not found)", number=number)
    return int(row.id)


async def get_order_by_number(rt: Runtime, number: str) -> OrderView:
    async with rt.db.read() as conn:
        return await load_view(conn, await order_id_by_number(conn, number))


async def orders_of_customer(rt: Runtime, customer_id: int, *, limit: int = 20, include_drafts: bool = False) -> list[OrderView]:
    async with rt.db.read() as conn:
        q = sa.select(orders.c.id).where(orders.c.customer_id == customer_id).order_by(orders.c.id.desc()).limit(limit)
        if not include_drafts:
            q = q.where(orders.c.status.not_in([S.PENDING, S.EXPIRED]))
        ids = [int(r.id) for r in await conn.execute(q)]
        return [await load_view(conn, i) for i in ids]


async def open_draft(rt: Runtime, customer_id: int) -> OrderView | None:
    """The customer's current pending draft from chat, if any (unexpired)."""
    now = rt.clock.now()
    async with rt.db.read() as conn:
        row = (
            await conn.execute(
                sa.select(orders.c.id)
                .where(
                    orders.c.customer_id == customer_id, orders.c.status == S.PENDING, orders.c.source == "chat", orders.c.expires_at > now
                )
                .order_by(orders.c.id.desc())
                .limit(1)
            )
        ).first()
        return await load_view(conn, int(row.id)) if row else None


# ---- listings for the staff console ---------------------------------------------------------------------------
PER_PAGE = 50


@dataclass(frozen=True)
class OrderRow:
    number: str
    status: str
    total_fen: int
    customer_id: int
    customer_name: str
    created_at: dt.datetime


@dataclass(frozen=True)
class HistoryRow:
    at: dt.datetime
    event: str
    from_status: str | None
    to_status: str
    actor: str
    note: str


@dataclass(frozen=True)
class PickRow:
    order_number: str
    customer_id: int
    customer_name: str
    confirmed_at: dt.datetime | None
    sku: str
    name: str
    unit: str
    to_pick: int  # allocated and not yet shipped


async def list_orders(
    conn: AsyncConnection,
    *,
    status: str = "",
    number: str = "",
    page: int = 1,
    per_page: int = PER_PAGE,
    scope: DataScope | None = None,
) -> tuple[list[OrderRow], bool]:
    """Orders newest first, optionally of one status and/or whose number contains ``number``, and only those in
    ``scope`` (a person's data scope). Returns one page and whether another page follows."""
    q = (
        sa.select(orders.c.number, orders.c.status, orders.c.total_fen, orders.c.customer_id, customers.c.name, orders.c.created_at)
        .select_from(orders.outerjoin(customers, customers.c.id == orders.c.customer_id))
        .order_by(orders.c.created_at.desc(), orders.c.id.desc())
        .limit(per_page + 1)
        .offset((page - 1) * per_page)
    )
    if status:
        q = q.where(orders.c.status == status)
    if number:
        q = q.where(orders.c.number.contains(number.strip().upper(), autoescape=True))
    if scope is not None:
        q = q.where(scope.orders(orders.c.customer_id, orders.c.salesperson_userid))
    rows = (await conn.execute(q)).all()
    items = [OrderRow(r.number, r.status, int(r.total_fen), int(r.customer_id), r.name or "", r.created_at) for r in rows[:per_page]]
    return items, len(rows) > per_page


async def history_of(conn: AsyncConnection, order_id: int) -> list[HistoryRow]:
    """An order's history, oldest first."""
    rows = await conn.execute(
        sa.select(order_history).where(order_history.c.order_id == order_id).order_by(order_history.c.at, order_history.c.id)
    )
    return [HistoryRow(r.at, r.event, r.from_status, r.to_status, r.actor, r.note) for r in rows]


async def picking_list(conn: AsyncConnection, *, scope: DataScope | None = None) -> list[PickRow]:
    """Every allocated-but-unshipped line of confirmed or partially shipped orders (those in ``scope``), oldest
    confirmation first."""
    q = (
        sa.select(
            orders.c.number,
            orders.c.customer_id,
            customers.c.name.label("customer_name"),
            orders.c.confirmed_at,
            order_lines.c.sku,
            order_lines.c.name,
            order_lines.c.unit,
            (order_lines.c.allocated_qty - order_lines.c.shipped_qty).label("to_pick"),
        )
        .select_from(
            orders.join(order_lines, order_lines.c.order_id == orders.c.id).outerjoin(customers, customers.c.id == orders.c.customer_id)
        )
        .where(orders.c.status.in_(SHIPPABLE), order_lines.c.allocated_qty > order_lines.c.shipped_qty)
        .order_by(orders.c.confirmed_at, orders.c.id, order_lines.c.id)
    )
    if scope is not None:
        q = q.where(scope.orders(orders.c.customer_id, orders.c.salesperson_userid))
    return [
        PickRow(r.number, int(r.customer_id), r.customer_name or "", r.confirmed_at, r.sku, r.name, r.unit, int(r.to_pick))
        for r in await conn.execute(q)
    ]


# ---- purchase history (repurchase prediction) -----------------------------------------------------------------
# An order in one of these states is a purchase: confirmed by the customer, whatever happened to shipping since.
PURCHASED = (S.CONFIRMED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.COMPLETED)


@dataclass(frozen=True)
class Purchase:
    """One line of a purchased order: who bought which SKU when (the confirmation), and who sold it."""

    customer_id: int
    sku: str
    name: str
    confirmed_at: dt.datetime
    order_number: str
    salesperson_userid: str


async def purchases(conn: AsyncConnection, *, customer_ids: Collection[int] | None = None) -> list[Purchase]:
    """Every purchased order line (:data:`PURCHASED`), of ``customer_ids`` or of everyone, by customer then time."""
    q = (
        sa.select(
            orders.c.customer_id, order_lines.c.sku, order_lines.c.name, orders.c.confirmed_at, orders.c.number, orders.c.salesperson_userid
        )
        .select_from(orders.join(order_lines, order_lines.c.order_id == orders.c.id))
        .where(orders.c.status.in_(PURCHASED), orders.c.confirmed_at.is_not(None))
        .order_by(orders.c.customer_id, orders.c.confirmed_at, orders.c.id)
    )
    if customer_ids is not None:
        q = q.where(orders.c.customer_id.in_(sorted(set(customer_ids))))
    rows = await conn.execute(q)
    return [Purchase(int(r.customer_id), r.sku, r.name, r.confirmed_at, r.number, r.salesperson_userid or "") for r in rows]


async def customers_with_purchases(conn: AsyncConnection) -> list[int]:
    """The ids of every customer with at least one purchased order (:data:`PURCHASED`), ascending."""
    q = sa.select(orders.c.customer_id).where(orders.c.status.in_(PURCHASED), orders.c.confirmed_at.is_not(None)).distinct()
    return sorted(int(cid) for cid in (await conn.execute(q)).scalars())


async def sold_since(conn: AsyncConnection, pairs: Collection[tuple[int, str]], since: dt.datetime) -> set[tuple[int, str]]:
    """Of these ``(customer id, salesperson)`` pairs, those with an order the salesperson placed since ``since``."""
    if not pairs:
        return set()
    customer_ids = sorted({c for c, _ in pairs})
    rows = await conn.execute(
        sa.select(orders.c.customer_id, orders.c.salesperson_userid)
        .where(orders.c.customer_id.in_(customer_ids), orders.c.created_at >= since)
        .distinct()
    )
    found = {(int(r.customer_id), r.salesperson_userid) for r in rows}
    return found & set(pairs)
