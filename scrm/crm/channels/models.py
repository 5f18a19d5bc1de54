"""Channel codes (渠道活码): a contact way with a state, the salespeople behind it, a welcome text, auto-tags."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class ChannelCode(Model, table=True):
    """A channel code (渠道活码): contact way, salespeople, welcome text and auto-tags."""

    __tablename__ = "channel_codes"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(sa_type=sa.String(64))
    state: str = Field(unique=True, sa_type=sa.String(30))  # WeCom limits state to 30 characters
    config_id: str | None = Field(default=None, sa_type=sa.String(64))
    qr_code: str | None = Field(default=None, sa_type=sa.String(512))
    userids: list[str] = Field(sa_type=JSON)
    welcome_text: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    tag_ids: list[int] = Field(sa_type=JSON)
    kind: str = Field(sa_type=sa.String(16), sa_column_kwargs={"server_default": "channel"})  # channel | referral (campaigns)
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


channel_codes: sa.Table = ChannelCode.__table__
