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
