"""Customers and the identities that point at them (external_userid, openid, unionid)."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, server_default=""),
    sa.Column("avatar", sa.String(512), nullable=False, server_default=""),
    sa.Column("gender", sa.SmallInteger(), nullable=False, server_default="0"),  # 0 unknown, 1 male, 2 female
    sa.Column("corp_name", sa.String(128), nullable=False, server_default=""),
    sa.Column("unionid", sa.String(128)),
    sa.Column("custom_fields", JSON, nullable=False, server_default="{}"),
    sa.Column("merged_into", BigId, sa.ForeignKey("customers.id")),  # set when identities merged into another
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


customer_identities = sa.Table(
    "customer_identities",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", BigId, sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(24), nullable=False),  # external_userid | openid | unionid
    sa.Column("value", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("kind", "value"),
)


customer_notes = sa.Table(
    "customer_notes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", BigId, sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)


class FollowStatus:
    ACTIVE = "active"  # the customer is in this salesperson's contacts
    HALF = "half"  # add_half_external_contact: added without the customer's confirmation yet
    ENDED = "ended"  # one side deleted the other (ended_by says who)


# 客户关系: customer ↔ salesperson, with how it began (add_way, channel state) and how it ended.
follows = sa.Table(
    "follows",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", BigId, sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("userid", sa.String(64), nullable=False),
    sa.Column("external_userid", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("remark", sa.String(128), nullable=False, server_default=""),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("add_way", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("state", sa.String(64), nullable=False, server_default=""),  # the contact way's state (channel code)
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime()),
    sa.Column("ended_by", sa.String(16)),  # customer (del_follow_user) | salesperson (del_external_contact) | transfer
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("userid", "external_userid"),
    sa.Index("ix_follows_state", "state"),
)
