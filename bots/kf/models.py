"""Tables of inbound traffic: every callback and synced message, raw and normalised, plus the kf cursors."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import UTCDateTime, metadata

# 微信客服 sync state per open_kfid. The lease makes one process sync at a time; requested_at makes a callback
# that arrives while a sync runs trigger another pass instead of being lost.
kf_cursors = sa.Table(
    "kf_cursors",
    metadata,
    sa.Column("open_kfid", sa.String(64), primary_key=True),
    sa.Column("cursor", sa.String(256), nullable=False, server_default=""),
    sa.Column("callback_token", sa.String(256), nullable=False, server_default=""),
    sa.Column("request_seq", sa.Integer(), nullable=False, server_default="0"),  # bumped by each callback
    sa.Column("synced_seq", sa.Integer(), nullable=False, server_default="0"),  # request_seq a finished sync covered
    sa.Column("requested_at", UTCDateTime()),
    sa.Column("synced_at", UTCDateTime()),
    sa.Column("lease_until", UTCDateTime()),
    sa.Column("lease_owner", sa.String(64)),
)
