"""Table of saved customer segments: named filter expressions over customers."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class Segment(Model, table=True):
    """A saved customer segment (客户分群): a named filter expression."""

    __tablename__ = "segments"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(unique=True, sa_type=sa.String(64))
    expression: str = Field(sa_type=sa.Text())
    description: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    created_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


segments: sa.Table = Segment.__table__
