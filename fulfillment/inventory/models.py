"""Tables of stock: warehouses, stock levels (counters) and the append-only stock ledger they derive from."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class Warehouse(Model, table=True):
    """A warehouse (仓库) stock is held in; one is the default."""

    __tablename__ = "warehouses"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    code: str = Field(unique=True, sa_type=sa.String(32))
    name: str = Field(sa_type=sa.String(64))
    is_default: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.false()})


warehouses: sa.Table = Warehouse.__table__


# Counters derived from the ledger; the CHECK is the last line of defence of "never oversell".
class StockLevel(Model, table=True):
    """On-hand and allocated quantity of a product in a warehouse (库存)."""

    __tablename__ = "stock_levels"

    product_id: int = Field(primary_key=True, foreign_key="products.id", sa_type=BigId)
    warehouse_id: int = Field(primary_key=True, foreign_key="warehouses.id", sa_type=BigId)
    on_hand: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    allocated: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    low_alerted_on: dt.date | None = Field(default=None, sa_type=sa.Date())  # business-local date of the last low-stock alert (once a day)

    __table_args__ = (sa.CheckConstraint("allocated >= 0 AND on_hand >= 0 AND allocated <= on_hand", name="never_oversold"),)


stock_levels: sa.Table = StockLevel.__table__


class MovementKind:
    RECEIPT = "receipt"  # goods in: on_hand +
    ALLOCATION = "allocation"  # reserved for an order: allocated +
    RELEASE = "release"  # reservation returned (cancel, expiry): allocated -
    SHIPMENT = "shipment"  # goods out: on_hand -, allocated -
    ADJUSTMENT = "adjustment"  # stock count correction: on_hand ±


class StockMovement(Model, table=True):
    """One entry of the append-only stock ledger (库存流水): receipt, allocation, release, shipment."""

    __tablename__ = "stock_movements"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    product_id: int = Field(foreign_key="products.id", sa_type=BigId)
    warehouse_id: int = Field(foreign_key="warehouses.id", sa_type=BigId)
    kind: str = Field(sa_type=sa.String(16))
    on_hand_delta: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    allocated_delta: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    order_id: int | None = Field(default=None, sa_type=BigId)
    shipment_id: int | None = Field(default=None, sa_type=BigId)
    reference: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.Index("ix_stock_movements_product", "product_id", "warehouse_id"),)


stock_movements: sa.Table = StockMovement.__table__
