"""One ordered stream per customer: messages, events, orders, payments, tags, coupons, notes."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

timeline = sa.Table(
    "timeline",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", BigId, nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),  # message | event | order | payment | tag | coupon | note | group
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("body", sa.Text(), nullable=False, server_default=""),
    sa.Column("ref", sa.String(96), nullable=False),  # what it is about, unique per customer: "inbound:12", "order:SO100001:shipped"
    sa.Column("data", JSON, nullable=False),
    sa.UniqueConstraint("customer_id", "ref"),
    sa.Index("ix_timeline_customer_at", "customer_id", "at"),
)
