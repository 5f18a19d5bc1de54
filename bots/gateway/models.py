"""Table of inbound traffic: every callback and synced message, raw and normalised, deduplicated per channel."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class InboundEvent(Model, table=True):
    """One inbound callback or synced message (入站事件), raw and normalised, deduplicated per channel."""

    __tablename__ = "inbound_events"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    channel: str = Field(sa_type=sa.String(16))  # wecom | kf | mp
    kind: str = Field(sa_type=sa.String(96))  # normalised kind, e.g. text, change_external_contact.add_external_contact
    dedupe_key: str = Field(sa_type=sa.String(128))
    msg_type: str = Field(sa_type=sa.String(32), sa_column_kwargs={"server_default": ""})
    event: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    change_type: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    from_user: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})  # member userid / openid / sys
    external_userid: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    user_id: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})  # the member (salesperson) involved
    chat_id: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    open_kfid: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    content: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    payload: dict[str, Any] = Field(sa_type=JSON)  # every field of the message, normalised to a flat-ish dict
    raw: str = Field(sa_type=sa.Text())  # the decrypted XML (or the kf JSON) exactly as received
    occurred_at: dt.datetime = Field(sa_type=UTCDateTime())
    received_at: dt.datetime = Field(sa_type=UTCDateTime())
    status: str = Field(sa_type=sa.String(16), sa_column_kwargs={"server_default": "pending"})  # pending|processed|unknown|failed
    processed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    note: str | None = Field(default=None, sa_type=sa.Text())

    __table_args__ = (
        sa.UniqueConstraint("channel", "dedupe_key"),
        sa.Index("ix_inbound_events_external_userid", "external_userid", "id"),
        sa.Index("ix_inbound_events_kind", "kind"),
    )


inbound_events: sa.Table = InboundEvent.__table__
