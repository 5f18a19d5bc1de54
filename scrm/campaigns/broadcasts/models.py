"""Tables of broadcasts (群发): the broadcast to a customer segment and each recipient's outcome."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class BroadcastStatus:
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # waits for scheduled_at
    RUNNING = "running"  # planning/sending in batches
    DONE = "done"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FAILED = "failed"  # stopped: its segment cannot be run (an expression stored before they were checked); why in error


class Broadcast(Model, table=True):
    """A broadcast to a customer segment (群发任务): text, optional coupon, schedule and progress."""

    __tablename__ = "broadcasts"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(sa_type=sa.String(64))
    segment_expression: str = Field(sa_type=sa.Text())
    text: str = Field(sa_type=sa.Text())
    coupon_template_id: int | None = Field(default=None, foreign_key="coupon_templates.id", sa_type=BigId)
    # 附带邀请海报: each recipient gets their own code and poster link of this referral campaign
    referral_campaign_id: int | None = Field(default=None, foreign_key="referral_campaigns.id", sa_type=BigId)
    status: str = Field(sa_type=sa.String(16))
    scheduled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    cursor_customer_id: int | None = Field(default=None, sa_type=BigId)  # streaming position: the plan resumes here after a restart
    totals: dict[str, Any] = Field(sa_type=JSON)  # counts per outcome, updated per batch
    error: str | None = Field(default=None, sa_type=sa.Text())  # why it stopped (status failed), in Chinese
    created_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    started_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


broadcasts: sa.Table = Broadcast.__table__


class BroadcastRecipient(Model, table=True):
    """One customer of a broadcast: the channel chosen and what happened (群发对象)."""

    __tablename__ = "broadcast_recipients"

    broadcast_id: int = Field(primary_key=True, foreign_key="broadcasts.id", sa_type=BigId)
    customer_id: int = Field(primary_key=True, sa_type=BigId)
    channel: str = Field(sa_type=sa.String(24))  # kf | mp_template | mp_custom | msg_template | none
    status: str = Field(sa_type=sa.String(24))  # planned | sent | awaiting_confirmation | skipped | failed
    reason: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    salesperson_userid: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    outbound_key: str = Field(sa_type=sa.String(96), sa_column_kwargs={"server_default": ""})
    planned_at: dt.datetime = Field(sa_type=UTCDateTime())
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())

    __table_args__ = (sa.Index("ix_broadcast_recipients_status", "broadcast_id", "status"),)


broadcast_recipients: sa.Table = BroadcastRecipient.__table__
