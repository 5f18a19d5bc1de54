"""Tables of the catalog: products and the other names customers use for them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class Product(Model, table=True):
    """A product in the catalog (商品): SKU, unit, price, reorder settings."""

    __tablename__ = "products"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    sku: str = Field(unique=True, sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(128))
    unit: str = Field(sa_type=sa.String(16))  # 箱 包 瓶 件 …
    price_fen: int = Field(sa_type=sa.BigInteger())
    category: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})
    reorder_point: int | None = Field(default=None, sa_type=sa.Integer())  # low-stock alert at or below this available quantity
    # how much a purchase suggestion orders (default: up to twice the point)
    reorder_qty: int | None = Field(default=None, sa_type=sa.Integer())
    cost_fen: int | None = Field(default=None, sa_type=sa.BigInteger())  # last purchase cost; stock value at cost on the dashboard
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.CheckConstraint("price_fen >= 0", name="price_not_negative"),)


products: sa.Table = Product.__table__


class ProductAlias(Model, table=True):
    """Another name customers use for a product (商品别名), matched in chat orders."""

    __tablename__ = "product_aliases"

    product_id: int = Field(primary_key=True, foreign_key="products.id", ondelete="CASCADE", sa_type=BigId)
    alias: str = Field(primary_key=True, sa_type=sa.String(64))

    __table_args__ = (sa.Index("ix_product_aliases_alias", "alias"),)


product_aliases: sa.Table = ProductAlias.__table__
