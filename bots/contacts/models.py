"""Customers and the identities that point at them (external_userid, openid, unionid)."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, UTCDateTime, metadata

# Where a long sync (run.py sync) got to, so an interrupted run resumes instead of starting over.
sync_checkpoints = sa.Table(
    "sync_checkpoints",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),  # e.g. "contacts", "groups", "tags"
    sa.Column("state", JSON, nullable=False),  # cursor / position of the step in progress
    sa.Column("status", sa.String(16), nullable=False),  # running | done | failed
    sa.Column("done", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("total", sa.Integer()),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("error", sa.Text()),
)
