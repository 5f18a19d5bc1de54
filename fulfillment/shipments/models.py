"""Tables of fulfilment: catalog, stock (counters + append-only ledger), orders, shipments."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import BigId, UTCDateTime, metadata


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
