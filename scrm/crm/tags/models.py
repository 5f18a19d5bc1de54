"""Tags: corp tags mirrored with WeCom both ways, plus local-only tags; each applied tag keeps its source."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

tag_groups = sa.Table(
    "tag_groups",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("remote_id", sa.String(64), unique=True),  # WeCom group_id; NULL for a local-only group
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("sort", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("deleted_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("remote_id", sa.String(64), unique=True),  # WeCom tag_id (et…); NULL = local-only (beyond WeCom limits)
    sa.Column("group_id", BigId, sa.ForeignKey("tag_groups.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("sort", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("deleted_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("group_id", "name"),
)


class TagSource:
    MANUAL = "manual"  # a salesperson or marketer put it on
    WECOM = "wecom"  # found on the customer in WeCom (sync or a salesperson in the WeCom client)
    CHANNEL = "channel"  # the channel code the customer came through
    RULE = "rule"  # a tagging rule matched; evidence says which message and words
    CAMPAIGN = "campaign"  # a campaign gave it


customer_tags = sa.Table(
    "customer_tags",
    metadata,
    sa.Column("customer_id", BigId, sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("tag_id", BigId, sa.ForeignKey("tags.id"), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("evidence", JSON, nullable=False),  # {"by": userid} | {"channel": state} | {"message_id", "words", "rule", "score"}
    sa.Column("applied_at", UTCDateTime(), nullable=False),
    sa.Index("ix_customer_tags_tag", "tag_id"),
)
