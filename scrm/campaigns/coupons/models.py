"""Tables of campaigns: coupon templates and coupons with their ledger, referral campaigns, codes and invites."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata


class CouponKind:
    FIXED = "fixed"  # 满减: amount_off_fen when the eligible subtotal reaches threshold_fen
    PERCENT = "percent"  # 折扣: percent_off of the eligible subtotal, capped by max_off_fen


coupon_templates = sa.Table(
    "coupon_templates",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount_off_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("percent_off", sa.Integer(), nullable=False, server_default="0"),  # 1–99
    sa.Column("max_off_fen", sa.BigInteger()),
    sa.Column("threshold_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("skus", JSON, nullable=False),  # [] = every product
    sa.Column("categories", JSON, nullable=False),  # [] = every category
    sa.Column("budget_count", sa.Integer()),  # NULL = unlimited
    sa.Column("budget_fen", sa.BigInteger()),  # NULL = unlimited; counts the face value of issued coupons
    sa.Column("issued_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("issued_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("per_customer_limit", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("valid_from", UTCDateTime()),
    sa.Column("valid_until", UTCDateTime()),
    sa.Column("valid_days", sa.Integer()),  # validity counted from issue (else valid_until)
    sa.Column("stackable", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(
        "(budget_count IS NULL OR issued_count <= budget_count) AND (budget_fen IS NULL OR issued_fen <= budget_fen)", name="within_budget"
    ),
)


class CouponStatus:
    ISSUED = "issued"  # in the customer's wallet
    RESERVED = "reserved"  # held by an order not yet confirmed/paid
    REDEEMED = "redeemed"  # used by a confirmed order
    EXPIRED = "expired"
    REVOKED = "revoked"  # taken back (e.g. a referral reward whose invitee left)


coupons = sa.Table(
    "coupons",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(32), nullable=False, unique=True),
    sa.Column("template_id", BigId, sa.ForeignKey("coupon_templates.id"), nullable=False),
    sa.Column("customer_id", BigId, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # segment | referral | sidebar | console | api
    sa.Column("source_ref", sa.String(96)),  # idempotency: issuing the same thing twice gives one coupon
    sa.Column("issued_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime()),
    sa.Column("order_id", BigId),
    sa.Column("discount_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source_ref"),
)


coupon_ledger = sa.Table(
    "coupon_ledger",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("coupon_id", BigId, sa.ForeignKey("coupons.id"), nullable=False, index=True),
    sa.Column("event", sa.String(16), nullable=False),  # issue | reserve | redeem | release | expire | revoke
    sa.Column("order_id", BigId),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False, server_default=""),
)
