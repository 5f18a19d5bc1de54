"""Tables of tagging: rule scores with decay, per-customer order aggregates, RFM, activity, saved segments."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import BigId, UTCDateTime, metadata

customer_activity = sa.Table(
    "customer_activity",
    metadata,
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("segment", sa.String(16), nullable=False),  # new | active | silent | churn_risk | lost
    sa.Column("last_message_at", UTCDateTime()),
    sa.Column("last_order_at", UTCDateTime()),
    sa.Column("computed_at", UTCDateTime(), nullable=False),
    sa.Index("ix_customer_activity_segment", "segment"),
)
