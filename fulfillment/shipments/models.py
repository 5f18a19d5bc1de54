"""Tables of shipments: a shipment of an order and the quantity of each order line in it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


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
