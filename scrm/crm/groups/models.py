"""Customer groups (客户群): the group, its members with join/leave scenes, and daily activity."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import BigId, UTCDateTime, metadata

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("chat_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, server_default=""),
    sa.Column("owner_userid", sa.String(64), nullable=False, server_default=""),
    sa.Column("notice", sa.Text(), nullable=False, server_default=""),
    sa.Column("member_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime()),  # when WeCom says the group was created
    sa.Column("dismissed_at", UTCDateTime()),
    sa.Column("synced_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column("chat_id", sa.String(64), sa.ForeignKey("groups.chat_id"), primary_key=True),
    sa.Column("member_id", sa.String(128), primary_key=True),  # userid (type 1) or external_userid (type 2)
    sa.Column("member_type", sa.SmallInteger(), nullable=False),  # 1 member of the corp, 2 external (customer)
    sa.Column("customer_id", BigId),
    sa.Column("name", sa.String(128), nullable=False, server_default=""),
    sa.Column("joined_at", UTCDateTime()),
    sa.Column("join_scene", sa.SmallInteger()),  # 1 invited directly, 2 via link, 3 via QR code (groupchat/get)
    sa.Column("left_at", UTCDateTime()),
    sa.Column("quit_scene", sa.SmallInteger()),  # 0 left, 1 removed
    sa.Column("last_active_at", UTCDateTime()),
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Index("ix_group_members_customer", "customer_id"),
)

group_daily_stats = sa.Table(
    "group_daily_stats",
    metadata,
    sa.Column("chat_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),  # business day, Asia/Shanghai
    sa.Column("joins", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("leaves", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("messages", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("active_members", sa.Integer(), nullable=False, server_default="0"),
)
