"""Chat archive (会话内容存档) records, as the official SDK sidecar hands them over, deduplicated on msgid."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class ArchiveMessage(Model, table=True):
    """One chat archive record (会话内容存档), deduplicated on msgid."""

    __tablename__ = "archive_messages"

    msgid: str = Field(primary_key=True, sa_type=sa.String(128))
    action: str = Field(sa_type=sa.String(16))  # send | recall | switch
    from_id: str = Field(sa_type=sa.String(128))
    tolist: list[str] = Field(sa_type=JSON)
    roomid: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})  # group chat id; empty for 1:1
    msgtime: dt.datetime = Field(sa_type=UTCDateTime())
    msgtype: str = Field(sa_type=sa.String(32))
    content: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})  # text.content for text messages
    customer_id: int | None = Field(default=None, sa_type=BigId)
    raw: dict[str, Any] = Field(sa_type=JSON)
    received_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (
        sa.Index("ix_archive_messages_room", "roomid", "msgtime"),
        sa.Index("ix_archive_messages_customer", "customer_id", "msgtime"),
    )


archive_messages: sa.Table = ArchiveMessage.__table__
