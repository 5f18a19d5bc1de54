"""Tables of purchasing: suppliers, purchase orders and their receipts."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import BigId, UTCDateTime, metadata

suppliers = sa.Table(
    "suppliers",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("contact", sa.String(128), nullable=False, server_default=""),
    sa.Column("phone", sa.String(32), nullable=False, server_default=""),
    sa.Column("lead_time_days", sa.Integer(), nullable=False, server_default="3"),
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)


class PurchaseStatus:
    DRAFT = "draft"  # suggested or being written; not sent to the supplier
    ORDERED = "ordered"  # sent; goods expected
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"  # everything arrived
    CANCELLED = "cancelled"


purchase_orders = sa.Table(
    "purchase_orders",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("supplier_id", BigId, sa.ForeignKey("suppliers.id"), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("warehouse_id", BigId, sa.ForeignKey("warehouses.id"), nullable=False),
    sa.Column("note", sa.Text(), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("ordered_at", UTCDateTime()),
    sa.Column("expected_on", sa.Date()),
    sa.Column("closed_at", UTCDateTime()),
    sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
)

purchase_order_lines = sa.Table(
    "purchase_order_lines",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("purchase_order_id", BigId, sa.ForeignKey("purchase_orders.id"), nullable=False, index=True),
    sa.Column("product_id", BigId, sa.ForeignKey("products.id"), nullable=False),
    sa.Column("qty", sa.BigInteger(), nullable=False),
    sa.Column("received_qty", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("unit_cost_fen", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("qty > 0 AND received_qty >= 0 AND received_qty <= qty", name="receipt_bounds"),
)

purchase_receipts = sa.Table(
    "purchase_receipts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("purchase_order_id", BigId, sa.ForeignKey("purchase_orders.id"), nullable=False, index=True),
    sa.Column("reference", sa.String(64), nullable=False),  # delivery note number; a receipt posts once per reference
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("received_by", sa.String(64), nullable=False, server_default=""),
    sa.UniqueConstraint("purchase_order_id", "reference"),
)
