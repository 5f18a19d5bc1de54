"""Read-only listings behind the console pages (SQLAlchemy Core). Nothing here writes: changes go through the
fulfilment services, which own the rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.models import products
from fulfillment.inventory.models import stock_levels
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import order_history, order_lines, orders
from scrm.crm.customers.models import customers

PER_PAGE = 50
PICKABLE = (S.CONFIRMED, S.PARTIALLY_SHIPPED)


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


@dataclass(frozen=True)
class StockRow:
    product_id: int
    sku: str
    name: str
    unit: str
    active: bool
    reorder_point: int | None
    on_hand: int
    allocated: int

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated

    @property
    def low(self) -> bool:
        """At or below the reorder point — the same rule as the low-stock alert."""
        return self.reorder_point is not None and self.available <= self.reorder_point


async def list_orders(
    conn: AsyncConnection, *, status: str = "", number: str = "", page: int = 1, per_page: int = PER_PAGE
) -> tuple[list[OrderRow], bool]:
    """Orders newest first, optionally of one status and/or whose number contains ``number``.
    Returns one page and whether another page follows."""
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
    rows = (await conn.execute(q)).all()
    items = [OrderRow(r.number, r.status, int(r.total_fen), int(r.customer_id), r.name or "", r.created_at) for r in rows[:per_page]]
    return items, len(rows) > per_page


async def customer_name(conn: AsyncConnection, customer_id: int) -> str:
    row = (await conn.execute(sa.select(customers.c.name).where(customers.c.id == customer_id))).first()
    return row.name if row is not None and row.name else ""


async def history_of(conn: AsyncConnection, order_id: int) -> list[HistoryRow]:
    """An order's history, oldest first."""
    rows = await conn.execute(
        sa.select(order_history).where(order_history.c.order_id == order_id).order_by(order_history.c.at, order_history.c.id)
    )
    return [HistoryRow(r.at, r.event, r.from_status, r.to_status, r.actor, r.note) for r in rows]


async def picking_list(conn: AsyncConnection) -> list[PickRow]:
    """Every allocated-but-unshipped line of confirmed or partially shipped orders, oldest confirmation first."""
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
        .where(orders.c.status.in_(PICKABLE), order_lines.c.allocated_qty > order_lines.c.shipped_qty)
        .order_by(orders.c.confirmed_at, orders.c.id, order_lines.c.id)
    )
    return [
        PickRow(r.number, int(r.customer_id), r.customer_name or "", r.confirmed_at, r.sku, r.name, r.unit, int(r.to_pick))
        for r in await conn.execute(q)
    ]


async def stock_rows(conn: AsyncConnection) -> list[StockRow]:
    """Every product (active first, by SKU) with its counters summed over warehouses."""
    levels = (
        sa.select(
            stock_levels.c.product_id,
            sa.func.sum(stock_levels.c.on_hand).label("on_hand"),
            sa.func.sum(stock_levels.c.allocated).label("allocated"),
        )
        .group_by(stock_levels.c.product_id)
        .subquery()
    )
    q = (
        sa.select(products, levels.c.on_hand, levels.c.allocated)
        .select_from(products.outerjoin(levels, levels.c.product_id == products.c.id))
        .order_by(products.c.active.desc(), products.c.sku)
    )
    return [
        StockRow(int(r.id), r.sku, r.name, r.unit, bool(r.active), r.reorder_point, int(r.on_hand or 0), int(r.allocated or 0))
        for r in await conn.execute(q)
    ]
