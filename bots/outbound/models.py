"""Outbound messages and every attempt to deliver them; the 微信客服 48 h / 5-message window per customer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class OutboundStatus:
    PENDING = "pending"  # recorded, not yet attempted (or attempt in flight)
    SENT = "sent"  # the API accepted it
    AWAITING_SALESPERSON = "awaiting_salesperson"  # add_msg_template task created; the salesperson must confirm
    FAILED = "failed"  # given up; error_code / error_message say why
    SKIPPED = "skipped"  # deliberately not sent (no channel may reach the customer, quota); reason recorded


class OutboundMessage(Model, table=True):
    """A message we send (出站消息): channel, recipient, payload and its delivery status."""

    __tablename__ = "outbound_messages"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    idempotency_key: str = Field(unique=True, sa_type=sa.String(64))
    channel: str = Field(sa_type=sa.String(24))  # kf | mp_custom | mp_template | wecom_app | msg_template | welcome
    purpose: str = Field(sa_type=sa.String(24))  # reply | notice | alert | welcome | broadcast
    recipient: str = Field(sa_type=sa.String(256))  # external_userid / openid / member userids
    customer_id: int | None = Field(default=None, sa_type=BigId)
    payload: dict[str, Any] = Field(sa_type=JSON)
    status: str = Field(sa_type=sa.String(24), sa_column_kwargs={"server_default": OutboundStatus.PENDING})
    error_code: int | None = Field(default=None, sa_type=sa.Integer())
    error_message: str | None = Field(default=None, sa_type=sa.Text())
    attempts: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    remote_id: str | None = Field(default=None, sa_type=sa.String(128))  # msgid / template msgid returned by the API
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())

    __table_args__ = (
        sa.Index("ix_outbound_messages_recipient", "recipient", "id"),
        sa.Index("ix_outbound_messages_status", "status"),
    )


outbound_messages: sa.Table = OutboundMessage.__table__


class OutboundAttempt(Model, table=True):
    """One API call trying to deliver an outbound message (发送尝试), with its outcome."""

    __tablename__ = "outbound_attempts"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    message_id: int = Field(foreign_key="outbound_messages.id", index=True, sa_type=BigId)
    attempted_at: dt.datetime = Field(sa_type=UTCDateTime())
    api_path: str = Field(sa_type=sa.String(96))
    outcome: str = Field(sa_type=sa.String(16))  # ok | error | timeout | network
    error_code: int | None = Field(default=None, sa_type=sa.Integer())
    error_message: str | None = Field(default=None, sa_type=sa.Text())
    duration_ms: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})


outbound_attempts: sa.Table = OutboundAttempt.__table__


class KfWindow(Model, table=True):
    """The 微信客服 reply window per customer: 48 h after their last message, at most 5 messages."""

    __tablename__ = "kf_windows"

    open_kfid: str = Field(primary_key=True, sa_type=sa.String(64))
    external_userid: str = Field(primary_key=True, sa_type=sa.String(128))
    last_customer_msg_at: dt.datetime = Field(sa_type=UTCDateTime())
    sent_since_customer_msg: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})


kf_windows: sa.Table = KfWindow.__table__
