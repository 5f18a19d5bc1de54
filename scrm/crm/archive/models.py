"""Chat archive (会话内容存档) records, as the official SDK sidecar hands them over, deduplicated on msgid."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

archive_messages = sa.Table(
    "archive_messages",
    metadata,
    sa.Column("msgid", sa.String(128), primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),  # send | recall | switch
    sa.Column("from_id", sa.String(128), nullable=False),
    sa.Column("tolist", JSON, nullable=False),
    sa.Column("roomid", sa.String(64), nullable=False, server_default=""),  # group chat id; empty for 1:1
    sa.Column("msgtime", UTCDateTime(), nullable=False),
    sa.Column("msgtype", sa.String(32), nullable=False),
    sa.Column("content", sa.Text(), nullable=False, server_default=""),  # text.content for text messages
    sa.Column("customer_id", BigId),
    sa.Column("raw", JSON, nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Index("ix_archive_messages_room", "roomid", "msgtime"),
    sa.Index("ix_archive_messages_customer", "customer_id", "msgtime"),
)
