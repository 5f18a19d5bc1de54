"""Tables of campaigns: coupon templates and coupons with their ledger, referral campaigns, codes and invites."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata


class BroadcastStatus:
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # waits for scheduled_at
    RUNNING = "running"  # planning/sending in batches
    DONE = "done"
    PAUSED = "paused"
    CANCELLED = "cancelled"


broadcasts = sa.Table(
    "broadcasts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("segment_expression", sa.Text(), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("coupon_template_id", BigId, sa.ForeignKey("coupon_templates.id")),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("scheduled_at", UTCDateTime()),
    sa.Column("cursor_customer_id", BigId),  # streaming position: the plan resumes here after a restart
    sa.Column("totals", JSON, nullable=False),  # counts per outcome, updated per batch
    sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


broadcast_recipients = sa.Table(
    "broadcast_recipients",
    metadata,
    sa.Column("broadcast_id", BigId, sa.ForeignKey("broadcasts.id"), primary_key=True),
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("channel", sa.String(24), nullable=False),  # kf | mp_template | mp_custom | msg_template | none
    sa.Column("status", sa.String(24), nullable=False),  # planned | sent | awaiting_confirmation | skipped | failed
    sa.Column("reason", sa.String(64), nullable=False, server_default=""),
    sa.Column("salesperson_userid", sa.String(64), nullable=False, server_default=""),
    sa.Column("outbound_key", sa.String(96), nullable=False, server_default=""),
    sa.Column("planned_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime()),
    sa.Index("ix_broadcast_recipients_status", "broadcast_id", "status"),
)
