"""Tables of referral campaigns (老带新): campaigns, personal invite codes, invites and rewards."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class ReferralKind:
    CONTACT = "contact"  # personal 联系我 codes (add_contact_way): a friend adds a salesperson
    GROUP = "group"  # personal 加入群聊 codes (groupchat/add_join_way): a friend joins a customer group


class ReferralCampaign(Model, table=True):
    """A referral campaign (老带新活动): goal, reward, and who carries the invite codes."""

    __tablename__ = "referral_campaigns"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(sa_type=sa.String(64))
    goal: int = Field(sa_type=sa.Integer())  # successful invites needed for the reward
    reward_template_id: int | None = Field(default=None, foreign_key="coupon_templates.id", sa_type=BigId)
    reward_tag_id: int | None = Field(default=None, sa_type=BigId)
    eligible_segment: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})  # segment expression; empty = everyone
    userids: list[str] = Field(sa_type=JSON)  # salespeople whose contact ways carry the codes ([] for a group campaign)
    kind: str = Field(sa_type=sa.String(16), sa_column_kwargs={"server_default": "contact"})  # contact | group (see ReferralKind)
    # group campaign: the customer groups (1–5) the personal join codes lead into
    chat_ids: list[str] | None = Field(default=None, sa_type=JSON)
    poster_text: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    hold_hours: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "24"})  # an invitee must stay this long
    starts_at: dt.datetime = Field(sa_type=UTCDateTime())
    ends_at: dt.datetime = Field(sa_type=UTCDateTime())
    status: str = Field(sa_type=sa.String(16))  # draft | running | paused | ended
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


referral_campaigns: sa.Table = ReferralCampaign.__table__


class ReferralCode(Model, table=True):
    """A customer's personal invite code in a referral campaign (专属邀请码)."""

    __tablename__ = "referral_codes"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    campaign_id: int = Field(foreign_key="referral_campaigns.id", sa_type=BigId)
    inviter_customer_id: int = Field(sa_type=BigId)
    state: str = Field(unique=True, sa_type=sa.String(30))  # "rf:<short id>" on the contact way
    config_id: str | None = Field(default=None, sa_type=sa.String(64))
    qr_code: str | None = Field(default=None, sa_type=sa.String(512))
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("campaign_id", "inviter_customer_id"),)


referral_codes: sa.Table = ReferralCode.__table__


class InviteStatus:
    PENDING = "pending"  # added via the code, within the hold period
    QUALIFIED = "qualified"  # stayed long enough and is genuinely new: counts toward the goal
    REVOKED = "revoked"  # left (del_follow_user) inside the window
    REJECTED = "rejected"  # not new (re-add, merge of an existing identity) or self-invite


class ReferralInvite(Model, table=True):
    """A friend brought in by a referral code (邀请记录) and whether it counts."""

    __tablename__ = "referral_invites"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    campaign_id: int = Field(foreign_key="referral_campaigns.id", sa_type=BigId)
    code_id: int = Field(foreign_key="referral_codes.id", sa_type=BigId)
    inviter_customer_id: int = Field(index=True, sa_type=BigId)
    invitee_customer_id: int = Field(sa_type=BigId)
    userid: str = Field(sa_type=sa.String(64))  # the salesperson added ("" for a group join)
    # group campaign: the group joined (membership there is what must hold)
    chat_id: str | None = Field(default=None, sa_type=sa.String(64))
    status: str = Field(sa_type=sa.String(16))
    reason: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    added_at: dt.datetime = Field(sa_type=UTCDateTime())
    qualifies_at: dt.datetime = Field(sa_type=UTCDateTime())
    decided_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    first_order_id: int | None = Field(default=None, sa_type=BigId)
    first_order_fen: int | None = Field(default=None, sa_type=sa.BigInteger())

    __table_args__ = (sa.UniqueConstraint("campaign_id", "invitee_customer_id"),)


referral_invites: sa.Table = ReferralInvite.__table__


class ReferralReward(Model, table=True):
    """The reward given to an inviter who reached a campaign's goal (邀请奖励)."""

    __tablename__ = "referral_rewards"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    campaign_id: int = Field(foreign_key="referral_campaigns.id", sa_type=BigId)
    inviter_customer_id: int = Field(sa_type=BigId)
    coupon_id: int | None = Field(default=None, foreign_key="coupons.id", sa_type=BigId)
    rewarded_at: dt.datetime = Field(sa_type=UTCDateTime())
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("campaign_id", "inviter_customer_id"),)


referral_rewards: sa.Table = ReferralReward.__table__
