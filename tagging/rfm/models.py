"""Tables of RFM: per-customer order aggregates kept current, and the RFM scores and segment computed from them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


# Kept up to date on every order/payment event, so RFM ranks these rows instead of re-aggregating all orders.
class CustomerOrderStats(Model, table=True):
    """A customer's order count, spend and first/last order time (订单汇总), kept current."""

    __tablename__ = "customer_order_stats"

    customer_id: int = Field(primary_key=True, sa_type=BigId)
    orders: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    monetary_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    first_order_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_order_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (
        # rescoring one customer counts who ranks below on each axis: index range counts instead of a table scan
        sa.Index("ix_customer_order_stats_orders", "orders"),
        sa.Index("ix_customer_order_stats_monetary_fen", "monetary_fen"),
        sa.Index("ix_customer_order_stats_last_order_at", "last_order_at"),
        sa.Index("ix_customer_order_stats_first_order_at", "first_order_at"),  # the nightly age-out's "who aged"
    )


customer_order_stats: sa.Table = CustomerOrderStats.__table__


class CustomerRfm(Model, table=True):
    """A customer's RFM scores and segment (RFM 客户价值分层) as last computed."""

    __tablename__ = "customer_rfm"

    customer_id: int = Field(primary_key=True, sa_type=BigId)
    recency_days: int = Field(sa_type=sa.Integer())
    frequency: int = Field(sa_type=sa.Integer())
    monetary_fen: int = Field(sa_type=sa.BigInteger())
    r: int = Field(sa_type=sa.SmallInteger())  # 1–5
    f: int = Field(sa_type=sa.SmallInteger())
    m: int = Field(sa_type=sa.SmallInteger())
    segment: str = Field(sa_type=sa.String(16))  # one of the 8 classic segments, e.g. 重要价值客户
    computed_on: dt.date = Field(sa_type=sa.Date())

    __table_args__ = (sa.Index("ix_customer_rfm_segment", "segment"),)


customer_rfm: sa.Table = CustomerRfm.__table__


class RfmCutPoints(Model, table=True):
    """The cut points the last full scoring used (RFM 分界点), one row: the next night re-checks only the customers
    whose figures changed since or lie between these and the new ones (PostgreSQL)."""

    __tablename__ = "rfm_cut_points"

    id: int = Field(primary_key=True, sa_type=sa.Integer())  # always 1
    scored_at: dt.datetime = Field(sa_type=UTCDateTime())  # the clock of that scoring
    method: str = Field(sa_type=sa.String(16))  # quintiles | cuts
    window_days: int = Field(sa_type=sa.Integer())
    high_score: int = Field(sa_type=sa.SmallInteger())
    # a score is 1 + the number of cut points the figure is above; recency's figure is the business day of the last
    # order (days since 1970-01-01, Asia/Shanghai), at most that scoring's day
    last_order_day: list[int] = Field(sa_type=JSON)
    frequency: list[int] = Field(sa_type=JSON)
    monetary_fen: list[int] = Field(sa_type=JSON)


rfm_cut_points: sa.Table = RfmCutPoints.__table__
