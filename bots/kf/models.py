"""Table of the 微信客服 (kf) sync: per open_kfid the cursor, the callbacks still to cover and the sync lease."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import Model, UTCDateTime


# 微信客服 sync state per open_kfid. The lease makes one process sync at a time; requested_at makes a callback
# that arrives while a sync runs trigger another pass instead of being lost.
class KfCursor(Model, table=True):
    """Sync position of one 微信客服 account (open_kfid) and the lease of the process syncing it."""

    __tablename__ = "kf_cursors"

    open_kfid: str = Field(primary_key=True, sa_type=sa.String(64))
    cursor: str = Field(sa_type=sa.String(256), sa_column_kwargs={"server_default": ""})
    callback_token: str = Field(sa_type=sa.String(256), sa_column_kwargs={"server_default": ""})
    request_seq: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # bumped by each callback
    synced_seq: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # request_seq a finished sync covered
    requested_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    synced_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    lease_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    lease_owner: str | None = Field(default=None, sa_type=sa.String(64))


kf_cursors: sa.Table = KfCursor.__table__


# When each 微信客服 customer's nickname and avatar were last fetched (kf/customer/batchget): a customer is
# fetched when first seen and again once the refresh interval has passed, never on every message.
class KfProfileFetch(Model, table=True):
    """The last kf/customer/batchget of one 微信客服 customer (external_userid) and what it found."""

    __tablename__ = "kf_profile_fetches"

    external_userid: str = Field(primary_key=True, sa_type=sa.String(64))
    fetched_at: dt.datetime = Field(sa_type=UTCDateTime())
    found: bool = Field(sa_type=sa.Boolean())  # False: WeCom listed the id as invalid (not a kf customer of ours)


kf_profile_fetches: sa.Table = KfProfileFetch.__table__
