"""Outbound messages and every attempt to deliver them; the 微信客服 48 h / 5-message window per customer."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata


class OutboundStatus:
    PENDING = "pending"  # recorded, not yet attempted (or attempt in flight)
    SENT = "sent"  # the API accepted it
    AWAITING_SALESPERSON = "awaiting_salesperson"  # add_msg_template task created; the salesperson must confirm
    FAILED = "failed"  # given up; error_code / error_message say why
    SKIPPED = "skipped"  # deliberately not sent (no channel may reach the customer, quota); reason recorded


outbound_messages = sa.Table(
    "outbound_messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("channel", sa.String(24), nullable=False),  # kf | mp_custom | mp_template | wecom_app | msg_template | welcome
    sa.Column("purpose", sa.String(24), nullable=False),  # reply | notice | alert | welcome | broadcast
    sa.Column("recipient", sa.String(256), nullable=False),  # external_userid / openid / member userids
    sa.Column("customer_id", BigId),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("status", sa.String(24), nullable=False, server_default=OutboundStatus.PENDING),
    sa.Column("error_code", sa.Integer()),
    sa.Column("error_message", sa.Text()),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("remote_id", sa.String(128)),  # msgid / template msgid returned by the API
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime()),
    sa.Index("ix_outbound_messages_recipient", "recipient", "id"),
    sa.Index("ix_outbound_messages_status", "status"),
)

outbound_attempts = sa.Table(
    "outbound_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", BigId, sa.ForeignKey("outbound_messages.id"), nullable=False, index=True),
    sa.Column("attempted_at", UTCDateTime(), nullable=False),
    sa.Column("api_path", sa.String(96), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # ok | error | timeout | network
    sa.Column("error_code", sa.Integer()),
    sa.Column("error_message", sa.Text()),
    sa.Column("duration_ms", sa.Integer(), nullable=False, server_default="0"),
)

kf_windows = sa.Table(
    "kf_windows",
    metadata,
    sa.Column("open_kfid", sa.String(64), primary_key=True),
    sa.Column("external_userid", sa.String(128), primary_key=True),
    sa.Column("last_customer_msg_at", UTCDateTime(), nullable=False),
    sa.Column("sent_since_customer_msg", sa.Integer(), nullable=False, server_default="0"),
)
