"""Table of customer activity: each customer's activity segment (new, active, silent, churn risk, lost)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class CustomerActivity(Model, table=True):
    """A customer's activity segment (活跃度分层) as last computed."""

    __tablename__ = "customer_activity"

    customer_id: int = Field(primary_key=True, sa_type=BigId)
    segment: str = Field(sa_type=sa.String(16))  # new | active | silent | churn_risk | lost
    last_message_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_order_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    computed_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.Index("ix_customer_activity_segment", "segment"),)


customer_activity: sa.Table = CustomerActivity.__table__
