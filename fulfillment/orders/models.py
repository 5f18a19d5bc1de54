"""Tables of fulfilment: catalog, stock (counters + append-only ledger), orders, shipments."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import BigId, UTCDateTime, metadata


class OrderStatus:
    PENDING = "pending"  # draft quoted in chat, waiting for 确认; holds no stock
    CONFIRMED = "confirmed"  # customer confirmed; stock allocated (fully, or partly with backorder lines)
    ON_HOLD = "on_hold"  # stopped before fulfilment (credit limit); staff release it
    PARTIALLY_SHIPPED = "partially_shipped"  # at least one shipment, something still outstanding
    SHIPPED = "shipped"  # everything shipped
    COMPLETED = "completed"  # everything delivered
    CANCELLED = "cancelled"  # cancelled before shipping; allocations released
    EXPIRED = "expired"  # a pending draft nobody confirmed in time


orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("customer_id", BigId, nullable=False, index=True),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("source", sa.String(16), nullable=False),  # chat | sidebar | api | console
    sa.Column("channel", sa.String(16), nullable=False, server_default=""),  # kf | mp | wecom (where it was typed)
    sa.Column("salesperson_userid", sa.String(64), nullable=False, server_default=""),
    sa.Column("subtotal_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("discount_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("total_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("note", sa.Text(), nullable=False, server_default=""),
    # What created the order (e.g. "inbound:123" for a chat message): a re-run of the same step finds it.
    sa.Column("source_ref", sa.String(64), unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime()),
    sa.Column("confirmed_at", UTCDateTime()),
    sa.Column("closed_at", UTCDateTime()),
    sa.CheckConstraint("total_fen >= 0", name="total_not_negative"),
    sa.Index("ix_orders_status", "status"),
    sa.Index("ix_orders_customer_confirmed", "customer_id", "confirmed_at"),  # RFM age-out / per-customer re-aggregation
)


order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
    sa.Column("product_id", BigId, sa.ForeignKey("products.id"), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("qty", sa.BigInteger(), nullable=False),
    sa.Column("unit_price_fen", sa.BigInteger(), nullable=False),
    sa.Column("line_total_fen", sa.BigInteger(), nullable=False),
    sa.Column("allocated_qty", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("shipped_qty", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("warehouse_id", BigId, sa.ForeignKey("warehouses.id")),
    sa.CheckConstraint("qty > 0", name="qty_positive"),
    sa.CheckConstraint("shipped_qty <= allocated_qty AND allocated_qty <= qty", name="fulfilment_bounds"),
)


order_history = sa.Table(
    "order_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
    sa.Column("from_status", sa.String(24)),
    sa.Column("to_status", sa.String(24), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),  # created, line_added, confirmed, allocated, shipped, …
    sa.Column("actor", sa.String(64), nullable=False, server_default=""),
    sa.Column("note", sa.Text(), nullable=False, server_default=""),
    sa.Column("ref", sa.String(64)),  # the step that made the change (chat message id …); a change applies once
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("order_id", "ref"),
)


# Shipments (发货单) belong to their order: the order's view shows them and shipping moves the order's status.
class ShipmentStatus:
    SHIPPED = "shipped"  # handed to the carrier; stock left the warehouse
    DELIVERED = "delivered"
    CANCELLED = "cancelled"  # returned to stock


shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("carrier", sa.String(64), nullable=False),
    sa.Column("tracking_no", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("warehouse_id", BigId, sa.ForeignKey("warehouses.id"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime()),
    sa.Column("cancelled_at", UTCDateTime()),
)


shipment_lines = sa.Table(
    "shipment_lines",
    metadata,
    sa.Column("shipment_id", BigId, sa.ForeignKey("shipments.id"), primary_key=True),
    sa.Column("order_line_id", BigId, sa.ForeignKey("order_lines.id"), primary_key=True),
    sa.Column("qty", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("qty > 0", name="ship_qty_positive"),
)
