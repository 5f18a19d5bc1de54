"""Tables of campaigns: coupon templates and coupons with their ledger, referral campaigns, codes and invites."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata


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
