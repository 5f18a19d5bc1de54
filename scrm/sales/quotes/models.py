"""Tables of quotes (报价单): the quote and its lines, priced from the catalog with a discount per line."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class QuoteStatus:
    PENDING_APPROVAL = "pending_approval"  # an approval rule matched (a deep discount): not sendable, not acceptable yet
    OPEN = "open"  # sendable: the customer may accept it until valid_until
    ACCEPTED = "accepted"  # turned into an order (order_number)
    REJECTED = "rejected"  # its approval was rejected (or withdrawn)
    CANCELLED = "cancelled"  # withdrawn by the salesperson


class Quote(Model, table=True):
    """报价单: lines from the catalog with discounts, valid until a business-local date; accepted = an order."""

    __tablename__ = "quotes"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    number: str = Field(sa_type=sa.String(32), unique=True)  # QT100001
    customer_id: int = Field(sa_type=BigId, index=True)
    opportunity_id: int | None = Field(default=None, sa_type=BigId, index=True)
    owner_userid: str = Field(sa_type=sa.String(64), index=True)  # the salesperson (WeCom userid)
    status: str = Field(sa_type=sa.String(16))
    valid_until: dt.date = Field(sa_type=sa.Date())  # last business-local day it may be accepted
    subtotal_fen: int = Field(sa_type=sa.BigInteger())  # at list prices
    total_fen: int = Field(sa_type=sa.BigInteger())  # at the quoted prices
    max_discount_bp: int = Field(sa_type=sa.Integer())  # the deepest line discount, in 0.01 % (what approval rules see)
    note: str = Field(sa_type=sa.String(500), sa_column_kwargs={"server_default": ""})
    order_number: str | None = Field(default=None, sa_type=sa.String(32))  # once accepted
    accepted_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    accepted_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    version: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    created_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


quotes: sa.Table = Quote.__table__


class QuoteLine(Model, table=True):
    """One line: a catalog product (name and unit as quoted), its list price and the quoted unit price."""

    __tablename__ = "quote_lines"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    quote_id: int = Field(sa_type=BigId, index=True)
    position: int = Field(sa_type=sa.Integer())
    sku: str = Field(sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(128))
    unit: str = Field(sa_type=sa.String(16))
    qty: int = Field(sa_type=sa.Integer())
    list_price_fen: int = Field(sa_type=sa.BigInteger())
    unit_price_fen: int = Field(sa_type=sa.BigInteger())
    discount_bp: int = Field(sa_type=sa.Integer())  # 0..10000 = 0..100 %
    line_total_fen: int = Field(sa_type=sa.BigInteger())


quote_lines: sa.Table = QuoteLine.__table__
