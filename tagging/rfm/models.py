"""Tables of tagging: rule scores with decay, per-customer order aggregates, RFM, activity, saved segments."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import BigId, UTCDateTime, metadata

# Kept up to date on every order/payment event, so RFM ranks these rows instead of re-aggregating all orders.
customer_order_stats = sa.Table(
    "customer_order_stats",
    metadata,
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("orders", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("monetary_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("first_order_at", UTCDateTime()),
    sa.Column("last_order_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # rescoring one customer counts who ranks below on each axis: index range counts instead of a table scan
    sa.Index("ix_customer_order_stats_orders", "orders"),
    sa.Index("ix_customer_order_stats_monetary_fen", "monetary_fen"),
    sa.Index("ix_customer_order_stats_last_order_at", "last_order_at"),
    sa.Index("ix_customer_order_stats_first_order_at", "first_order_at"),  # the nightly age-out's "who aged"
)


customer_rfm = sa.Table(
    "customer_rfm",
    metadata,
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("recency_days", sa.Integer(), nullable=False),
    sa.Column("frequency", sa.Integer(), nullable=False),
    sa.Column("monetary_fen", sa.BigInteger(), nullable=False),
    sa.Column("r", sa.SmallInteger(), nullable=False),  # 1–5
    sa.Column("f", sa.SmallInteger(), nullable=False),
    sa.Column("m", sa.SmallInteger(), nullable=False),
    sa.Column("segment", sa.String(16), nullable=False),  # one of the 8 classic segments, e.g. 重要价值客户
    sa.Column("computed_on", sa.Date(), nullable=False),
    sa.Index("ix_customer_rfm_segment", "segment"),
)
