"""Table of the WeCom sync: where each step of a long ``run.py sync`` (contacts, groups, tags) got to."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, Model, UTCDateTime


# Where a long sync (run.py sync) got to, so an interrupted run resumes instead of starting over.
class SyncCheckpoint(Model, table=True):
    """Progress of one step of a long contact/group/tag sync (同步断点), so an interrupted run resumes."""

    __tablename__ = "sync_checkpoints"

    name: str = Field(primary_key=True, sa_type=sa.String(64))  # e.g. "contacts", "groups", "tags"
    state: dict[str, Any] = Field(sa_type=JSON)  # cursor / position of the step in progress
    status: str = Field(sa_type=sa.String(16))  # running | done | failed
    done: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    total: int | None = Field(default=None, sa_type=sa.Integer())
    started_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    error: str | None = Field(default=None, sa_type=sa.Text())


sync_checkpoints: sa.Table = SyncCheckpoint.__table__
