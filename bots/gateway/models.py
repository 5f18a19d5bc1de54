"""Tables of inbound traffic: every callback and synced message, raw and normalised, plus the kf cursors."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

inbound_events = sa.Table(
    "inbound_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),  # wecom | kf | mp
    sa.Column("kind", sa.String(96), nullable=False),  # normalised kind, e.g. text, change_external_contact.add_external_contact
    sa.Column("dedupe_key", sa.String(128), nullable=False),
    sa.Column("msg_type", sa.String(32), nullable=False, server_default=""),
    sa.Column("event", sa.String(64), nullable=False, server_default=""),
    sa.Column("change_type", sa.String(64), nullable=False, server_default=""),
    sa.Column("from_user", sa.String(128), nullable=False, server_default=""),  # member userid / openid / sys
    sa.Column("external_userid", sa.String(128), nullable=False, server_default=""),
    sa.Column("user_id", sa.String(128), nullable=False, server_default=""),  # the member (salesperson) involved
    sa.Column("chat_id", sa.String(128), nullable=False, server_default=""),
    sa.Column("open_kfid", sa.String(64), nullable=False, server_default=""),
    sa.Column("content", sa.Text(), nullable=False, server_default=""),
    sa.Column("payload", JSON, nullable=False),  # every field of the message, normalised to a flat-ish dict
    sa.Column("raw", sa.Text(), nullable=False),  # the decrypted XML (or the kf JSON) exactly as received
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),  # pending|processed|unknown|failed
    sa.Column("processed_at", UTCDateTime()),
    sa.Column("note", sa.Text()),
    sa.UniqueConstraint("channel", "dedupe_key"),
    sa.Index("ix_inbound_events_external_userid", "external_userid", "id"),
    sa.Index("ix_inbound_events_kind", "kind"),
)
