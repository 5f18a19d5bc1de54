"""One ordered stream per customer: messages, events, orders, payments, tags, coupons, notes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class TimelineEntry(Model, table=True):
    """One item of a customer's timeline (客户动态): message, event, order, payment, tag, coupon, note."""

    __tablename__ = "timeline"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    customer_id: int = Field(sa_type=BigId)
    at: dt.datetime = Field(sa_type=UTCDateTime())
    kind: str = Field(sa_type=sa.String(24))  # message | event | order | payment | tag | coupon | note | group
    title: str = Field(sa_type=sa.String(200))
    body: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    ref: str = Field(sa_type=sa.String(96))  # what it is about, unique per customer: "inbound:12", "order:SO100001:shipped"
    data: dict[str, Any] = Field(sa_type=JSON)

    __table_args__ = (
        sa.UniqueConstraint("customer_id", "ref"),
        sa.Index("ix_timeline_customer_at", "customer_id", "at"),
    )


timeline: sa.Table = TimelineEntry.__table__
