"""Tags: corp tags mirrored with WeCom both ways, plus local-only tags; each applied tag keeps its source."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class TagGroup(Model, table=True):
    """A group of tags (标签组), mirrored with WeCom or local-only."""

    __tablename__ = "tag_groups"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    remote_id: str | None = Field(default=None, unique=True, sa_type=sa.String(64))  # WeCom group_id; NULL for a local-only group
    name: str = Field(sa_type=sa.String(64))
    sort: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    deleted_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


tag_groups: sa.Table = TagGroup.__table__


class Tag(Model, table=True):
    """A tag (标签), mirrored with WeCom or local-only."""

    __tablename__ = "tags"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    # WeCom tag_id (et…); NULL = local-only (beyond WeCom limits)
    remote_id: str | None = Field(default=None, unique=True, sa_type=sa.String(64))
    group_id: int = Field(foreign_key="tag_groups.id", sa_type=BigId)
    name: str = Field(sa_type=sa.String(64))
    sort: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    deleted_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("group_id", "name"),)


tags: sa.Table = Tag.__table__


class TagSource:
    MANUAL = "manual"  # a salesperson or marketer put it on
    WECOM = "wecom"  # found on the customer in WeCom (sync or a salesperson in the WeCom client)
    CHANNEL = "channel"  # the channel code the customer came through
    RULE = "rule"  # a tagging rule matched; evidence says which message and words
    CAMPAIGN = "campaign"  # a campaign gave it


class CustomerTag(Model, table=True):
    """A tag on a customer (客户标签) with where it came from and the evidence."""

    __tablename__ = "customer_tags"

    customer_id: int = Field(primary_key=True, foreign_key="customers.id", sa_type=BigId)
    tag_id: int = Field(primary_key=True, foreign_key="tags.id", sa_type=BigId)
    source: str = Field(sa_type=sa.String(16))
    evidence: dict[str, Any] = Field(sa_type=JSON)  # {"by": userid} | {"channel": state} | {"message_id", "words", "rule", "score"}
    applied_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.Index("ix_customer_tags_tag", "tag_id"),)


customer_tags: sa.Table = CustomerTag.__table__
