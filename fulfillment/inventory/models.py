"""Tables of fulfilment: catalog, stock (counters + append-only ledger), orders, shipments."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import BigId, UTCDateTime, metadata

warehouses = sa.Table(
    "warehouses",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
)


# Counters derived from the ledger; the CHECK is the last line of defence of "never oversell".
stock_levels = sa.Table(
    "stock_levels",
    metadata,
    sa.Column("product_id", BigId, sa.ForeignKey("products.id"), primary_key=True),
    sa.Column("warehouse_id", BigId, sa.ForeignKey("warehouses.id"), primary_key=True),
    sa.Column("on_hand", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("allocated", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("low_alerted_on", sa.Date()),  # business-local date of the last low-stock alert (once a day)
    sa.CheckConstraint("allocated >= 0 AND on_hand >= 0 AND allocated <= on_hand", name="never_oversold"),
)


class MovementKind:
    RECEIPT = "receipt"  # goods in: on_hand +
    ALLOCATION = "allocation"  # reserved for an order: allocated +
    RELEASE = "release"  # reservation returned (cancel, expiry): allocated -
    SHIPMENT = "shipment"  # goods out: on_hand -, allocated -
    ADJUSTMENT = "adjustment"  # stock count correction: on_hand ±


stock_movements = sa.Table(
    "stock_movements",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("product_id", BigId, sa.ForeignKey("products.id"), nullable=False),
    sa.Column("warehouse_id", BigId, sa.ForeignKey("warehouses.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("on_hand_delta", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("allocated_delta", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("order_id", BigId),
    sa.Column("shipment_id", BigId),
    sa.Column("reference", sa.String(128), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_stock_movements_product", "product_id", "warehouse_id"),
)
