"""Tables of orders: the order, its lines, its history of status changes, and its shipments (发货单)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class OrderStatus:
    PENDING = "pending"  # draft quoted in chat, waiting for 确认; holds no stock
    CONFIRMED = "confirmed"  # customer confirmed; stock allocated (fully, or partly with backorder lines)
    ON_HOLD = "on_hold"  # stopped before fulfilment (credit limit); staff release it
    PENDING_APPROVAL = "pending_approval"  # an approval rule matched: nothing allocated until it is approved
    PARTIALLY_SHIPPED = "partially_shipped"  # at least one shipment, something still outstanding
    SHIPPED = "shipped"  # everything shipped
    COMPLETED = "completed"  # everything delivered
    CANCELLED = "cancelled"  # cancelled before shipping; allocations released
    EXPIRED = "expired"  # a pending draft nobody confirmed in time


class Order(Model, table=True):
    """A sales order (订单): customer, status, totals, and what created it."""

    __tablename__ = "orders"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    number: str = Field(unique=True, sa_type=sa.String(32))
    customer_id: int = Field(index=True, sa_type=BigId)
    status: str = Field(sa_type=sa.String(24))
    version: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})
    source: str = Field(sa_type=sa.String(16))  # chat | sidebar | api | console
    channel: str = Field(sa_type=sa.String(16), sa_column_kwargs={"server_default": ""})  # kf | mp | wecom (where it was typed)
    salesperson_userid: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    subtotal_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    discount_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    total_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    note: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    # What created the order (e.g. "inbound:123" for a chat message): a re-run of the same step finds it.
    source_ref: str | None = Field(default=None, unique=True, sa_type=sa.String(64))
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())
    expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    confirmed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    closed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())

    __table_args__ = (
        sa.CheckConstraint("total_fen >= 0", name="total_not_negative"),
        sa.Index("ix_orders_status", "status"),
        sa.Index("ix_orders_customer_confirmed", "customer_id", "confirmed_at"),  # RFM age-out / per-customer re-aggregation
    )


orders: sa.Table = Order.__table__


class OrderLine(Model, table=True):
    """One line of an order (订单明细): product, quantity, price, allocated and shipped quantities."""

    __tablename__ = "order_lines"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    order_id: int = Field(foreign_key="orders.id", index=True, sa_type=BigId)
    product_id: int = Field(foreign_key="products.id", sa_type=BigId)
    sku: str = Field(sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(128))
    unit: str = Field(sa_type=sa.String(16))
    qty: int = Field(sa_type=sa.BigInteger())
    unit_price_fen: int = Field(sa_type=sa.BigInteger())
    line_total_fen: int = Field(sa_type=sa.BigInteger())
    allocated_qty: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    shipped_qty: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    warehouse_id: int | None = Field(default=None, foreign_key="warehouses.id", sa_type=BigId)

    __table_args__ = (
        sa.CheckConstraint("qty > 0", name="qty_positive"),
        sa.CheckConstraint("shipped_qty <= allocated_qty AND allocated_qty <= qty", name="fulfilment_bounds"),
    )


order_lines: sa.Table = OrderLine.__table__


class OrderHistoryEntry(Model, table=True):
    """One status change or event of an order (订单日志), applied once per ref."""

    __tablename__ = "order_history"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    order_id: int = Field(foreign_key="orders.id", index=True, sa_type=BigId)
    from_status: str | None = Field(default=None, sa_type=sa.String(24))
    to_status: str = Field(sa_type=sa.String(24))
    event: str = Field(sa_type=sa.String(32))  # created, line_added, confirmed, allocated, shipped, …
    actor: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    note: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    ref: str | None = Field(default=None, sa_type=sa.String(64))  # the step that made the change (chat message id …); a change applies once
    at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("order_id", "ref"),)


order_history: sa.Table = OrderHistoryEntry.__table__


class ShipmentStatus:
    SHIPPED = "shipped"  # handed to the carrier; stock left the warehouse
    DELIVERED = "delivered"
    CANCELLED = "cancelled"  # returned to stock


class Shipment(Model, table=True):
    """A shipment of an order (发货单) from a warehouse with a carrier and tracking number."""

    __tablename__ = "shipments"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    order_id: int = Field(foreign_key="orders.id", index=True, sa_type=BigId)
    number: str = Field(unique=True, sa_type=sa.String(32))
    carrier: str = Field(sa_type=sa.String(64))
    tracking_no: str = Field(sa_type=sa.String(64))
    status: str = Field(sa_type=sa.String(16))
    warehouse_id: int = Field(foreign_key="warehouses.id", sa_type=BigId)
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    delivered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    cancelled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())


shipments: sa.Table = Shipment.__table__


class ShipmentLine(Model, table=True):
    """The quantity of one order line in a shipment (发货明细)."""

    __tablename__ = "shipment_lines"

    shipment_id: int = Field(primary_key=True, foreign_key="shipments.id", sa_type=BigId)
    order_line_id: int = Field(primary_key=True, foreign_key="order_lines.id", sa_type=BigId)
    qty: int = Field(sa_type=sa.BigInteger())

    __table_args__ = (sa.CheckConstraint("qty > 0", name="ship_qty_positive"),)


shipment_lines: sa.Table = ShipmentLine.__table__
