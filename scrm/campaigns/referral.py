"""Referral campaigns (裂变) — use cases: campaigns, personal codes, invites, qualification, rewards, attribution.

Flow: an inviter asks for their code (:func:`code_for`: one WeCom contact way per inviter and campaign, state
``rf:<short id>``, made lazily and reused) → a friend adds the salesperson through it → the add's processor
calls :func:`record_add` *in its own transaction*, having looked up before the add whether the friend was
already a customer → the invite is PENDING for ``hold_hours`` (or REJECTED with a reason) → the cron
:func:`qualify_due_invites` makes it QUALIFIED if the friend still follows → the outbox topic
``referral.goal_check`` grants the reward when the goal is really met (once per inviter and campaign) or claws an
unredeemed one back when revocations drop the inviter below it. The friend's first confirmed order is attributed
to the invite. Progress notices to the inviter go out through the outbox topic ``referral.progress`` (bots/).

Per (campaign, inviter) the code row is the lock: every transaction that changes invites or the reward of an
inviter locks it first (PostgreSQL ``FOR UPDATE``; SQLite writers are serialised by ``BEGIN IMMEDIATE``).

Layout: campaigns and codes in :mod:`~scrm.campaigns.referral_campaigns`, invites and qualification in
:mod:`~scrm.campaigns.referral_invites`, rewards and first orders in :mod:`~scrm.campaigns.referral_rewards`,
leaderboard and funnel in :mod:`~scrm.campaigns.referral_stats`; this module re-exports them (the import path).
"""

from __future__ import annotations

from scrm.campaigns.referral_campaigns import (
    CAMPAIGN_COLUMNS,
    EDITABLE_WHILE_LIVE,
    GOAL_TOPIC,
    PROGRESS_TOPIC,
    Campaign,
    Code,
    ContactWayMaker,
    JoinWayMaker,
    code_for,
    contact_way_maker,
    create_campaign,
    get_campaign,
    join_way_maker,
    list_campaigns,
    pause_campaign,
    provide_contact_way_maker,
    provide_join_way_maker,
    update_campaign,
)
from scrm.campaigns.referral_invites import (
    AddOutcome,
    end_due_campaigns,
    on_customer_merged,
    qualify_cron,
    qualify_due_invites,
    record_add,
    record_follow_ended,
    record_group_left,
)
from scrm.campaigns.referral_rewards import attribute_first_order, settle_goal
from scrm.campaigns.referral_stats import funnel, leaderboard

__all__ = [
    "CAMPAIGN_COLUMNS",
    "EDITABLE_WHILE_LIVE",
    "GOAL_TOPIC",
    "PROGRESS_TOPIC",
    "AddOutcome",
    "Campaign",
    "Code",
    "ContactWayMaker",
    "JoinWayMaker",
    "attribute_first_order",
    "code_for",
    "contact_way_maker",
    "create_campaign",
    "end_due_campaigns",
    "funnel",
    "get_campaign",
    "join_way_maker",
    "leaderboard",
    "list_campaigns",
    "on_customer_merged",
    "pause_campaign",
    "provide_contact_way_maker",
    "provide_join_way_maker",
    "qualify_cron",
    "qualify_due_invites",
    "record_add",
    "record_follow_ended",
    "record_group_left",
    "settle_goal",
    "update_campaign",
]  # fmt: skip
