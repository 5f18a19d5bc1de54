"""Customer groups (客户群): the group, its members with join/leave scenes, and daily activity."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class Group(Model, table=True):
    """A customer group chat (客户群): name, owner, notice, member count."""

    __tablename__ = "groups"

    chat_id: str = Field(primary_key=True, sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    owner_userid: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    notice: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    member_count: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    created_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())  # when WeCom says the group was created
    dismissed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    synced_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


groups: sa.Table = Group.__table__


class GroupMember(Model, table=True):
    """A member of a customer group (群成员), with how they joined and left."""

    __tablename__ = "group_members"

    chat_id: str = Field(primary_key=True, foreign_key="groups.chat_id", sa_type=sa.String(64))
    member_id: str = Field(primary_key=True, sa_type=sa.String(128))  # userid (type 1) or external_userid (type 2)
    member_type: int = Field(sa_type=sa.SmallInteger())  # 1 member of the corp, 2 external (customer)
    customer_id: int | None = Field(default=None, sa_type=BigId)
    name: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    joined_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    join_scene: int | None = Field(default=None, sa_type=sa.SmallInteger())  # 1 invited directly, 2 via link, 3 via QR code (groupchat/get)
    left_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    quit_scene: int | None = Field(default=None, sa_type=sa.SmallInteger())  # 0 left, 1 removed
    last_active_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})

    __table_args__ = (sa.Index("ix_group_members_customer", "customer_id"),)


group_members: sa.Table = GroupMember.__table__


class GroupDailyStats(Model, table=True):
    """A customer group's activity on one business day (群日统计)."""

    __tablename__ = "group_daily_stats"

    chat_id: str = Field(primary_key=True, sa_type=sa.String(64))
    day: dt.date = Field(primary_key=True, sa_type=sa.Date())  # business day, Asia/Shanghai
    joins: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    leaves: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    messages: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    active_members: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})


group_daily_stats: sa.Table = GroupDailyStats.__table__
