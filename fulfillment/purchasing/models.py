"""Tables of purchasing: suppliers, purchase orders and their receipts."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class Supplier(Model, table=True):
    """A supplier (供应商) we buy stock from, with its lead time."""

    __tablename__ = "suppliers"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(unique=True, sa_type=sa.String(128))
    contact: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    phone: str = Field(sa_type=sa.String(32), sa_column_kwargs={"server_default": ""})
    lead_time_days: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "3"})
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())


suppliers: sa.Table = Supplier.__table__


class PurchaseStatus:
    DRAFT = "draft"  # suggested or being written; not sent to the supplier
    PENDING_APPROVAL = "pending_approval"  # placed, but an approval rule holds it: sent once approved, a draft again if not
    ORDERED = "ordered"  # sent; goods expected
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"  # everything arrived
    CANCELLED = "cancelled"


class PurchaseOrder(Model, table=True):
    """A purchase order to a supplier (采购单) for one warehouse."""

    __tablename__ = "purchase_orders"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    number: str = Field(unique=True, sa_type=sa.String(32))
    supplier_id: int = Field(foreign_key="suppliers.id", sa_type=BigId)
    status: str = Field(sa_type=sa.String(24))
    warehouse_id: int = Field(foreign_key="warehouses.id", sa_type=BigId)
    note: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    ordered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    expected_on: dt.date | None = Field(default=None, sa_type=sa.Date())
    closed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    version: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})


purchase_orders: sa.Table = PurchaseOrder.__table__


class PurchaseOrderLine(Model, table=True):
    """One line of a purchase order (采购明细): product, quantity ordered and received, cost."""

    __tablename__ = "purchase_order_lines"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    purchase_order_id: int = Field(foreign_key="purchase_orders.id", index=True, sa_type=BigId)
    product_id: int = Field(foreign_key="products.id", sa_type=BigId)
    qty: int = Field(sa_type=sa.BigInteger())
    received_qty: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    unit_cost_fen: int = Field(sa_type=sa.BigInteger())

    __table_args__ = (sa.CheckConstraint("qty > 0 AND received_qty >= 0 AND received_qty <= qty", name="receipt_bounds"),)


purchase_order_lines: sa.Table = PurchaseOrderLine.__table__


class PurchaseReceipt(Model, table=True):
    """Goods received against a purchase order (到货入库), once per delivery note."""

    __tablename__ = "purchase_receipts"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    purchase_order_id: int = Field(foreign_key="purchase_orders.id", index=True, sa_type=BigId)
    reference: str = Field(sa_type=sa.String(64))  # delivery note number; a receipt posts once per reference
    received_at: dt.datetime = Field(sa_type=UTCDateTime())
    received_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})

    __table_args__ = (sa.UniqueConstraint("purchase_order_id", "reference"),)


purchase_receipts: sa.Table = PurchaseReceipt.__table__
