"""Channel codes (渠道活码): a contact way with a state, the salespeople behind it, a welcome text, auto-tags."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

channel_codes = sa.Table(
    "channel_codes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("state", sa.String(30), nullable=False, unique=True),  # WeCom limits state to 30 characters
    sa.Column("config_id", sa.String(64)),
    sa.Column("qr_code", sa.String(512)),
    sa.Column("userids", JSON, nullable=False),
    sa.Column("welcome_text", sa.Text(), nullable=False, server_default=""),
    sa.Column("tag_ids", JSON, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, server_default="channel"),  # channel | referral (campaigns)
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
