"""Tables of inbound traffic: every callback and synced message, raw and normalised, plus the kf cursors."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

# One row per customer in conversation with the bot: what the bot is waiting for (e.g. which of two products
# was meant) and a short lease so one process answers a customer's messages at a time, in order.
dialog_sessions = sa.Table(
    "dialog_sessions",
    metadata,
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("state", JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("lease_until", UTCDateTime()),
    sa.Column("lease_owner", sa.String(32)),
)
