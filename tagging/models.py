"""Tables of tagging: rule scores with decay, per-customer order aggregates, RFM, activity, saved segments."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, UTCDateTime, metadata

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# A rule's accumulated score on a customer. Each match adds the rule's weight; the score decays with time
# (half-life in the rules file); thresholds decide when the tag is applied and when it is removed again.
tag_scores = sa.Table(
    "tag_scores",
    metadata,
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("rule", sa.String(64), primary_key=True),  # the rule's id in the rules file
    sa.Column("score", sa.Float(), nullable=False),  # score as of scored_at (decay is applied on read and update)
    sa.Column("scored_at", UTCDateTime(), nullable=False),
    sa.Column("last_message_ref", sa.String(96), nullable=False, server_default=""),  # evidence: the message
    sa.Column("last_words", JSON, nullable=False),  # evidence: the matched words
    sa.Column("matches", sa.Integer(), nullable=False, server_default="0"),
)

# Which messages were already scored (a message tagged twice must not count twice).
tagged_messages = sa.Table(
    "tagged_messages",
    metadata,
    sa.Column("ref", sa.String(96), primary_key=True),  # "inbound:123" / "archive:<msgid>"
    sa.Column("customer_id", BigId, nullable=False),
    sa.Column("rules_version", sa.String(64), nullable=False),
    sa.Column("tagged_at", UTCDateTime(), nullable=False),
)

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

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("expression", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
