"""Referral campaigns (裂变) — rewards: granted when the goal is really met (a coupon and/or a tag, once per inviter
and campaign), clawed back while unused when revocations drop the inviter below it, and the invitee's first order
attributed to their invite. Part of :mod:`scrm.campaigns.referral`."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.orders.queries import get_order
from scrm.campaigns.coupons.models import CouponStatus, coupons
from scrm.campaigns.coupons.services import issue_coupon, revoke_coupon
from scrm.campaigns.referral import domain as rules
from scrm.campaigns.referral.models import InviteStatus, referral_invites, referral_rewards
from scrm.campaigns.referral.services import (
    Campaign,
    code_row,
    get_campaign,
    lock_code,
    notify_progress,
    qualified_count,
)
from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import resolve_customer
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import CUSTOMER_TAG_CHANGED, apply_tag, remove_tag, tags_of

log = logging.getLogger(__name__)


# ---- reward: grant when the goal is really met, claw back when revocations undo it -----------------------
async def _coupon_ref(conn: AsyncConnection, campaign_id: int, inviter: int, rewarded_at: dt.datetime) -> str:
    """The issue's idempotency key: the first grant's is ``referral:<campaign>:<inviter>``; a grant after a claw-back
    (that coupon revoked) gets its own, fixed by when it was granted."""
    base = f"referral:{campaign_id}:{inviter}"
    first = (await conn.execute(sa.select(coupons.c.status).where(coupons.c.source_ref == base))).scalar()
    return base if first != CouponStatus.REVOKED else f"{base}:{int(rewarded_at.timestamp())}"


async def settle_goal(rt: Runtime, payload: dict[str, Any]) -> None:
    """Bring the inviter's reward in line with their qualified invites: grant it (coupon via
    ``scrm.campaigns.coupons.services.issue_coupon`` with source "referral", and/or the tag) when the goal is met and no
    reward is active; take back an unredeemed coupon when they fell below the goal. Idempotent."""
    campaign_id, inviter = int(payload["campaign_id"]), int(payload["inviter"])
    rw = referral_rewards.c
    now = rt.clock.now()
    async with rt.db.write() as conn:
        code = await code_row(conn, campaign_id, inviter)
        if code is not None:
            await lock_code(conn, rt.db.dialect, int(code.id))
        campaign = await get_campaign(conn, campaign_id)
        qualified = await qualified_count(conn, campaign_id, inviter)
        reward = (
            await conn.execute(sa.select(referral_rewards).where(rw.campaign_id == campaign_id, rw.inviter_customer_id == inviter))
        ).first()
        active = reward is not None and reward.revoked_at is None
        if rules.goal_reached(qualified, campaign.goal) and not active:
            if reward is None:
                await conn.execute(
                    insert_ignore(referral_rewards, rt.db.dialect).values(
                        campaign_id=campaign_id, inviter_customer_id=inviter, rewarded_at=now
                    )
                )
            else:
                await conn.execute(
                    referral_rewards.update().where(rw.id == reward.id).values(revoked_at=None, coupon_id=None, rewarded_at=now)
                )
            if campaign.reward_tag_id is not None:
                await _tag(conn, rt.db.dialect, inviter, campaign, now)
            if campaign.reward_template_id is None:
                await notify_progress(
                    conn, campaign, inviter, qualified, "rewarded", f"referral:{campaign_id}:{inviter}:rewarded:{int(now.timestamp())}", now
                )
        reward = (
            await conn.execute(sa.select(referral_rewards).where(rw.campaign_id == campaign_id, rw.inviter_customer_id == inviter))
        ).first()
        clawback = reward is not None and rules.claws_back(qualified=qualified, goal=campaign.goal, reward_active=reward.revoked_at is None)
        ref = await _coupon_ref(conn, campaign_id, inviter, reward.rewarded_at) if reward is not None else ""
    if reward is None or reward.revoked_at is not None:
        return
    if clawback:
        await _claw_back(rt, campaign, inviter, int(reward.id), reward.coupon_id, qualified)
    elif campaign.reward_template_id is not None and reward.coupon_id is None:
        coupon_id = await _issue(rt, campaign.reward_template_id, inviter, ref)
        async with rt.db.write() as conn:
            done = await conn.execute(
                referral_rewards.update()
                .where(rw.id == reward.id, rw.coupon_id.is_(None), rw.revoked_at.is_(None))
                .values(coupon_id=coupon_id)
            )
            if done.rowcount:
                await notify_progress(
                    conn, campaign, inviter, qualified, "rewarded", f"referral:{campaign_id}:{inviter}:rewarded:{ref}", now
                )


async def _given_by(conn: AsyncConnection, inviter: int, campaign: Campaign) -> bool | None:
    """Whether the inviter carries the reward tag because this campaign put it on (None: no tag at all). A tag
    they had before — put on by a salesperson, a rule, WeCom — is theirs, not the campaign's."""

    for tag in await tags_of(conn, inviter):
        if tag.tag_id == campaign.reward_tag_id:
            return tag.source == TagSource.CAMPAIGN and tag.evidence.get("campaign_id") == campaign.id
    return None


async def _tag(conn: AsyncConnection, dialect: str, inviter: int, campaign: Campaign, now: dt.datetime) -> None:
    """Put the reward tag on (mirrored to WeCom through the tag service's outbox topic) — unless the inviter has it
    already from elsewhere: then it stays as it was, and a claw-back will leave it alone."""

    assert campaign.reward_tag_id is not None
    if await _given_by(conn, inviter, campaign) is False:
        return
    evidence = {"campaign_id": campaign.id, "campaign": campaign.name}
    if await apply_tag(
        conn, dialect, customer_id=inviter, tag_id=campaign.reward_tag_id, source=TagSource.CAMPAIGN, evidence=evidence, now=now
    ):
        await outbox.add(conn, CUSTOMER_TAG_CHANGED, {"customer_id": inviter, "tag_id": campaign.reward_tag_id, "add": True, "by": ""}, now)


async def _untag(conn: AsyncConnection, dialect: str, inviter: int, campaign: Campaign, now: dt.datetime) -> None:
    """Take the reward tag off again (claw-back) when this campaign put it on; the tag service mirrors the removal
    to WeCom (mark_tag remove_tag on each follow) through its outbox topic, in this same transaction."""

    if campaign.reward_tag_id is None or not await _given_by(conn, inviter, campaign):
        return
    if await remove_tag(conn, dialect, customer_id=inviter, tag_id=campaign.reward_tag_id, now=now, by=f"referral:{campaign.id}"):
        payload = {"customer_id": inviter, "tag_id": campaign.reward_tag_id, "add": False, "by": f"referral:{campaign.id}"}
        await outbox.add(conn, CUSTOMER_TAG_CHANGED, payload, now)


async def _issue(rt: Runtime, template_id: int, inviter: int, ref: str) -> int:
    coupon = await issue_coupon(rt, template_id, inviter, source="referral", source_ref=ref, actor="referral")
    return coupon.id


async def _claw_back(rt: Runtime, campaign: Campaign, inviter: int, reward_id: int, coupon_id: int | None, qualified: int) -> None:
    """Revoke the reward: its coupon only while unused (a redeemed or reserved one is the customer's: the reward
    then stands — tag included — and this is logged), and the reward tag this campaign put on."""
    if coupon_id is not None:
        async with rt.db.read() as conn:
            status = (await conn.execute(sa.select(coupons.c.status).where(coupons.c.id == coupon_id))).scalar_one()
        if status == CouponStatus.ISSUED:
            await revoke_coupon(rt, coupon_id, actor=f"referral:{campaign.id}")
            async with rt.db.read() as conn:
                status = (await conn.execute(sa.select(coupons.c.status).where(coupons.c.id == coupon_id))).scalar_one()
        if status not in (CouponStatus.REVOKED, CouponStatus.EXPIRED):
            log.info("referral reward kept: its coupon is already used", extra={"reward_id": reward_id, "coupon_status": status})
            return
    now = rt.clock.now()
    async with rt.db.write() as conn:
        rw = referral_rewards.c
        done = await conn.execute(referral_rewards.update().where(rw.id == reward_id, rw.revoked_at.is_(None)).values(revoked_at=now))
        if done.rowcount:
            await _untag(conn, rt.db.dialect, inviter, campaign, now)
            await notify_progress(
                conn, campaign, inviter, qualified, "clawed_back", f"referral:reward:{reward_id}:clawed:{int(now.timestamp())}", now
            )


# ---- first-order attribution ------------------------------------------------------------------------------------
async def attribute_first_order(rt: Runtime, payload: dict[str, Any]) -> None:
    """The invitee's first confirmed order is recorded on their (still counting) invite; idempotent, and the
    earliest order wins whatever order the events arrive in."""

    order = await get_order(rt, int(payload["order_id"]))
    i = referral_invites.c
    async with rt.db.read() as conn:  # most orders are no invitee's: no write transaction for them
        invitee = await resolve_customer(conn, order.customer_id)
        if (await conn.execute(sa.select(i.id).where(i.invitee_customer_id == invitee).limit(1))).first() is None:
            return
    async with rt.db.write() as conn:
        await conn.execute(
            referral_invites.update()
            .where(
                i.invitee_customer_id == invitee,
                i.status.in_((InviteStatus.PENDING, InviteStatus.QUALIFIED)),
                sa.or_(i.first_order_id.is_(None), i.first_order_id > order.id),
            )
            .values(first_order_id=order.id, first_order_fen=order.total_fen)
        )
