"""Tables of campaigns: coupon templates and coupons with their ledger, referral campaigns, codes and invites."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, UTCDateTime, metadata

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


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


class ReferralKind:
    CONTACT = "contact"  # personal 联系我 codes (add_contact_way): a friend adds a salesperson
    GROUP = "group"  # personal 加入群聊 codes (groupchat/add_join_way): a friend joins a customer group


referral_campaigns = sa.Table(
    "referral_campaigns",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("goal", sa.Integer(), nullable=False),  # successful invites needed for the reward
    sa.Column("reward_template_id", BigId, sa.ForeignKey("coupon_templates.id")),
    sa.Column("reward_tag_id", BigId),
    sa.Column("eligible_segment", sa.Text(), nullable=False, server_default=""),  # segment expression; empty = everyone
    sa.Column("userids", JSON, nullable=False),  # salespeople whose contact ways carry the codes ([] for a group campaign)
    sa.Column("kind", sa.String(16), nullable=False, server_default="contact"),  # contact | group (see ReferralKind)
    sa.Column("chat_ids", JSON),  # group campaign: the customer groups (1–5) the personal join codes lead into
    sa.Column("poster_text", sa.Text(), nullable=False, server_default=""),
    sa.Column("hold_hours", sa.Integer(), nullable=False, server_default="24"),  # an invitee must stay this long
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # draft | running | paused | ended
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

referral_codes = sa.Table(
    "referral_codes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", BigId, sa.ForeignKey("referral_campaigns.id"), nullable=False),
    sa.Column("inviter_customer_id", BigId, nullable=False),
    sa.Column("state", sa.String(30), nullable=False, unique=True),  # "rf:<short id>" on the contact way
    sa.Column("config_id", sa.String(64)),
    sa.Column("qr_code", sa.String(512)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime()),
    sa.UniqueConstraint("campaign_id", "inviter_customer_id"),
)


class InviteStatus:
    PENDING = "pending"  # added via the code, within the hold period
    QUALIFIED = "qualified"  # stayed long enough and is genuinely new: counts toward the goal
    REVOKED = "revoked"  # left (del_follow_user) inside the window
    REJECTED = "rejected"  # not new (re-add, merge of an existing identity) or self-invite


referral_invites = sa.Table(
    "referral_invites",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", BigId, sa.ForeignKey("referral_campaigns.id"), nullable=False),
    sa.Column("code_id", BigId, sa.ForeignKey("referral_codes.id"), nullable=False),
    sa.Column("inviter_customer_id", BigId, nullable=False, index=True),
    sa.Column("invitee_customer_id", BigId, nullable=False),
    sa.Column("userid", sa.String(64), nullable=False),  # the salesperson added ("" for a group join)
    sa.Column("chat_id", sa.String(64)),  # group campaign: the group joined (membership there is what must hold)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, server_default=""),
    sa.Column("added_at", UTCDateTime(), nullable=False),
    sa.Column("qualifies_at", UTCDateTime(), nullable=False),
    sa.Column("decided_at", UTCDateTime()),
    sa.Column("first_order_id", BigId),
    sa.Column("first_order_fen", sa.BigInteger()),
    sa.UniqueConstraint("campaign_id", "invitee_customer_id"),
)

referral_rewards = sa.Table(
    "referral_rewards",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", BigId, sa.ForeignKey("referral_campaigns.id"), nullable=False),
    sa.Column("inviter_customer_id", BigId, nullable=False),
    sa.Column("coupon_id", BigId, sa.ForeignKey("coupons.id")),
    sa.Column("rewarded_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    sa.UniqueConstraint("campaign_id", "inviter_customer_id"),
)


class BroadcastStatus:
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # waits for scheduled_at
    RUNNING = "running"  # planning/sending in batches
    DONE = "done"
    PAUSED = "paused"
    CANCELLED = "cancelled"


broadcasts = sa.Table(
    "broadcasts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("segment_expression", sa.Text(), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("coupon_template_id", BigId, sa.ForeignKey("coupon_templates.id")),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("scheduled_at", UTCDateTime()),
    sa.Column("cursor_customer_id", BigId),  # streaming position: the plan resumes here after a restart
    sa.Column("totals", JSON, nullable=False),  # counts per outcome, updated per batch
    sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

broadcast_recipients = sa.Table(
    "broadcast_recipients",
    metadata,
    sa.Column("broadcast_id", BigId, sa.ForeignKey("broadcasts.id"), primary_key=True),
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("channel", sa.String(24), nullable=False),  # kf | mp_template | mp_custom | msg_template | none
    sa.Column("status", sa.String(24), nullable=False),  # planned | sent | awaiting_confirmation | skipped | failed
    sa.Column("reason", sa.String(64), nullable=False, server_default=""),
    sa.Column("salesperson_userid", sa.String(64), nullable=False, server_default=""),
    sa.Column("outbound_key", sa.String(96), nullable=False, server_default=""),
    sa.Column("planned_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime()),
    sa.Index("ix_broadcast_recipients_status", "broadcast_id", "status"),
)

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
