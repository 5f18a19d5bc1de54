"""Tables of fulfilment: catalog, stock (counters + append-only ledger), orders, shipments."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import BigId, UTCDateTime, metadata

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("sku", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("unit", sa.String(16), nullable=False),  # 箱 包 瓶 件 …
    sa.Column("price_fen", sa.BigInteger(), nullable=False),
    sa.Column("category", sa.String(64), nullable=False, server_default=""),
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("reorder_point", sa.Integer()),  # low-stock alert at or below this available quantity
    sa.Column("reorder_qty", sa.Integer()),  # how much a purchase suggestion orders (default: up to twice the point)
    sa.Column("cost_fen", sa.BigInteger()),  # last purchase cost; stock value at cost on the dashboard
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("price_fen >= 0", name="price_not_negative"),
)


product_aliases = sa.Table(
    "product_aliases",
    metadata,
    sa.Column("product_id", BigId, sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Index("ix_product_aliases_alias", "alias"),
)
