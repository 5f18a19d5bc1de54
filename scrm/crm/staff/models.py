"""Tables of campaigns: coupon templates and coupons with their ledger, referral campaigns, codes and invites."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

# Staff accounts for the console: password hashes with a real KDF (scrypt), roles per account.
staff_users = sa.Table(
    "staff_users",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(64), nullable=False, server_default=""),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("roles", JSON, nullable=False),  # ["admin"] | ["marketer"] | ["operations"] | ["finance"] …
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("session_version", sa.Integer(), nullable=False, server_default="1"),  # bump to revoke all sessions
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_login_at", UTCDateTime()),
)


# 企业成员: the salespeople (members of the corp) and whom they report to (for churn alerts).
salespeople = sa.Table(
    "salespeople",
    metadata,
    sa.Column("userid", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, server_default=""),
    sa.Column("department", sa.String(128), nullable=False, server_default=""),
    sa.Column("leader_userid", sa.String(64)),  # 直属上级, told when one of this person's customers leaves
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("synced_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
