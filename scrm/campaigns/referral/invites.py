"""Referral campaigns (裂变) — invites: attribution of an add (or a group join) to the code's inviter, leaving
(del_follow_user / leaving the group) and merges revoking or rejecting, and the cron that qualifies invites whose
hold has passed and ends campaigns past their end. Part of :mod:`scrm.campaigns.referral`."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns.referral import domain as rules
from scrm.campaigns.referral.domain import CampaignStatus
from scrm.campaigns.referral.models import InviteStatus, referral_campaigns, referral_codes, referral_invites, referral_rewards
from scrm.campaigns.referral.services import (
    GOAL_TOPIC,
    delete_code_way,
    get_campaign,
    lock_code,
    notify_progress,
    qualified_count,
)
from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.errors import DomainError
from scrm.core.jobs import JobContext
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, follows
from scrm.crm.customers.services import resolve_customer
from scrm.crm.groups.services import memberships_of

log = logging.getLogger(__name__)


# ---- invites -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddOutcome:
    invite_id: int
    campaign_id: int
    inviter_customer_id: int
    status: str
    reason: str


async def record_add(
    conn: AsyncConnection,
    dialect: str,
    *,
    state: str,
    invitee_customer_id: int,
    userid: str,
    added_at: dt.datetime,
    was_new: bool,
    now: dt.datetime,
    chat_id: str | None = None,
) -> AddOutcome | None:
    """In the add's own transaction: attribute the invitee to the code's inviter — PENDING until the hold has
    passed, or REJECTED (self-invite, re-add, campaign not running). ``was_new``: no customer held the
    external_userid before this add. For a group campaign the add is a group join: ``chat_id`` is the group
    (``userid`` then ""). None when ``state`` is no referral code. Idempotent: an invitee is attributed once per
    campaign (the first decision stands)."""
    code = (await conn.execute(sa.select(referral_codes).where(referral_codes.c.state == state))).first()
    if code is None:
        return None
    campaign = await get_campaign(conn, int(code.campaign_id))
    await lock_code(conn, dialect, int(code.id))
    inviter = await resolve_customer(conn, int(code.inviter_customer_id))
    decision = rules.judge_add(
        inviter_id=inviter,
        invitee_id=invitee_customer_id,
        was_new=was_new,
        campaign_status=campaign.status,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        added_at=added_at,
        hold_hours=campaign.hold_hours,
    )
    await conn.execute(
        insert_ignore(referral_invites, dialect).values(
            campaign_id=campaign.id,
            code_id=int(code.id),
            inviter_customer_id=inviter,
            invitee_customer_id=invitee_customer_id,
            userid=userid,
            chat_id=chat_id,
            status=decision.status,
            reason=decision.reason,
            added_at=added_at,
            qualifies_at=decision.qualifies_at,
            decided_at=now if decision.status == InviteStatus.REJECTED else None,
        )
    )
    i = referral_invites.c
    row = (
        await conn.execute(sa.select(referral_invites).where(i.campaign_id == campaign.id, i.invitee_customer_id == invitee_customer_id))
    ).one()
    return AddOutcome(int(row.id), campaign.id, int(row.inviter_customer_id), row.status, row.reason)


async def decide(conn: AsyncConnection, invite_id: int, frm: tuple[str, ...], to: str, reason: str, now: dt.datetime) -> bool:
    i = referral_invites.c
    done = await conn.execute(
        referral_invites.update().where(i.id == invite_id, i.status.in_(frm)).values(status=to, reason=reason, decided_at=now)
    )
    return done.rowcount == 1


async def record_follow_ended(rt: Runtime, *, invitee_customer_id: int, userid: str, left_at: dt.datetime) -> int:
    """The invitee deleted the code's salesperson (del_follow_user): revoke pending invites, and qualified ones
    while the campaign runs; a revoked qualified invite re-checks the inviter's reward. Returns how many were
    revoked. Idempotent."""
    i = referral_invites.c
    where = (i.invitee_customer_id == invitee_customer_id, i.userid == userid, i.chat_id.is_(None))
    return await _revoke_leavers(rt, where, left_at)


async def record_group_left(rt: Runtime, *, invitee_customer_id: int, chat_id: str, left_at: dt.datetime) -> int:
    """The invitee left (or was removed from) the group their join code led into (change_external_chat
    del_member): the same revocation as :func:`record_follow_ended`, for group-campaign invites of that group."""
    i = referral_invites.c
    return await _revoke_leavers(rt, (i.invitee_customer_id == invitee_customer_id, i.chat_id == chat_id), left_at)


async def _revoke_leavers(rt: Runtime, where: tuple[Any, ...], left_at: dt.datetime) -> int:
    i = referral_invites.c
    counting = (InviteStatus.PENDING, InviteStatus.QUALIFIED)
    async with rt.db.read() as conn:
        found = list(await conn.execute(sa.select(i.id, i.code_id).where(*where, i.status.in_(counting))))
    revoked = 0
    for invite_id, code_id in found:
        async with rt.db.write() as conn:
            await lock_code(conn, rt.db.dialect, int(code_id))
            inv = (await conn.execute(sa.select(referral_invites).where(i.id == invite_id))).one()
            campaign = await get_campaign(conn, int(inv.campaign_id))
            if not rules.revokes(status=inv.status, left_at=left_at, qualifies_at=inv.qualifies_at, campaign_ends_at=campaign.ends_at):
                continue
            if not await decide(conn, int(invite_id), counting, InviteStatus.REVOKED, "left", rt.clock.now()):
                continue
            revoked += 1
            if inv.status == InviteStatus.QUALIFIED:
                inviter = int(inv.inviter_customer_id)
                qualified = await qualified_count(conn, campaign.id, inviter)
                await notify_progress(conn, campaign, inviter, qualified, "revoked", f"referral:invite:{invite_id}:revoked", rt.clock.now())
                await outbox.add(conn, GOAL_TOPIC, {"campaign_id": campaign.id, "inviter": inviter}, rt.clock.now())
    return revoked


async def on_customer_merged(rt: Runtime, payload: dict[str, Any]) -> None:
    """A merge moved a customer into an older one. As invitee: they were not new after all — reject (self-invite
    when the older one is the inviter). As inviter: their invites, codes and reward follow the survivor."""
    frm, into = int(payload["from"]), int(payload["into"])
    i = referral_invites.c
    now = rt.clock.now()
    async with rt.db.read() as conn:
        found = list(await conn.execute(sa.select(i.id, i.code_id).where(i.invitee_customer_id == frm)))
    for invite_id, code_id in found:
        async with rt.db.write() as conn:
            await lock_code(conn, rt.db.dialect, int(code_id))
            inv = (await conn.execute(sa.select(referral_invites).where(i.id == invite_id))).one()
            inviter = await resolve_customer(conn, int(inv.inviter_customer_id))
            reason = rules.judge_merge(status=inv.status, survivor_id=into, inviter_id=inviter)
            if reason is None or not await decide(conn, int(invite_id), (inv.status,), InviteStatus.REJECTED, reason, now):
                continue
            if inv.status == InviteStatus.QUALIFIED:
                await outbox.add(conn, GOAL_TOPIC, {"campaign_id": int(inv.campaign_id), "inviter": inviter}, now)
    async with rt.db.write() as conn:
        await conn.execute(referral_invites.update().where(i.inviter_customer_id == frm).values(inviter_customer_id=into))
        for table in (referral_codes, referral_rewards):  # one per (campaign, inviter): move where the survivor has none
            taken = sa.select(table.c.campaign_id).where(table.c.inviter_customer_id == into).scalar_subquery()
            await conn.execute(
                table.update().where(table.c.inviter_customer_id == frm, table.c.campaign_id.not_in(taken)).values(inviter_customer_id=into)
            )


# ---- qualification (cron) -------------------------------------------------------------------------------------
async def _still_there(conn: AsyncConnection, invitee: int, inv: Any) -> str | None:
    """The relation the invite depends on, as a follow status: the follow of the code's salesperson, or for a
    group invite the membership of the group joined ("active" while a member, "ended" once gone)."""
    if inv.chat_id is not None:
        here = [m for m in await memberships_of(conn, invitee) if m.chat_id == inv.chat_id]
        return FollowStatus.ACTIVE if here and here[0].active and not here[0].dismissed else FollowStatus.ENDED
    f = follows.c
    return (await conn.execute(sa.select(f.status).where(f.customer_id == invitee, f.userid == inv.userid))).scalar()


async def qualify_due_invites(rt: Runtime, limit: int = 500) -> int:
    """Decide pending invites whose hold has passed: QUALIFIED when the invitee still follows the salesperson (for
    a group campaign: is still in the group; then the inviter hears their progress and the goal is checked),
    REVOKED when the relation ended, REJECTED when the invitee was merged into an existing customer. Safe to run
    in several workers at once; returns how many were decided."""
    now = rt.clock.now()
    i = referral_invites.c
    async with rt.db.read() as conn:
        q = (
            sa.select(i.id, i.code_id)
            .where(i.status == InviteStatus.PENDING, i.qualifies_at <= now)
            .order_by(i.qualifies_at, i.id)
            .limit(limit)
        )
        due = list(await conn.execute(q))
    decided = 0
    for invite_id, code_id in due:
        try:
            decided += int(await _decide_invite(rt, int(invite_id), int(code_id), now))
        except DomainError:  # one invite's bad data (e.g. its campaign gone) must not stop the others; it stays pending
            log.exception("referral invite not decided", extra={"invite_id": int(invite_id)})
    return decided


async def _decide_invite(rt: Runtime, invite_id: int, code_id: int, now: dt.datetime) -> bool:
    """Decide one due invite in its own transaction (see :func:`qualify_due_invites`); False when it waits or was
    decided already."""
    i = referral_invites.c
    async with rt.db.write() as conn:
        await lock_code(conn, rt.db.dialect, code_id)
        inv = (await conn.execute(sa.select(referral_invites).where(i.id == invite_id))).one()
        if inv.status != InviteStatus.PENDING:
            return False
        campaign = await get_campaign(conn, int(inv.campaign_id))
        invitee = await resolve_customer(conn, int(inv.invitee_customer_id))
        follow_status = await _still_there(conn, invitee, inv)
        verdict, reason = rules.judge_qualification(
            now=now,
            qualifies_at=inv.qualifies_at,
            follow_status=follow_status,
            merged_away=invitee != int(inv.invitee_customer_id),
            campaign_ends_at=campaign.ends_at,
        )
        target = {rules.Qualify.QUALIFY: InviteStatus.QUALIFIED, rules.Qualify.REVOKE: InviteStatus.REVOKED}.get(
            verdict, InviteStatus.REJECTED
        )
        if verdict == rules.Qualify.WAIT or not await decide(conn, invite_id, (InviteStatus.PENDING,), target, reason, now):
            return False
        if target == InviteStatus.QUALIFIED:
            inviter = int(inv.inviter_customer_id)
            qualified = await qualified_count(conn, campaign.id, inviter)
            await notify_progress(conn, campaign, inviter, qualified, "qualified", f"referral:invite:{invite_id}:qualified", now)
            await outbox.add(conn, GOAL_TOPIC, {"campaign_id": campaign.id, "inviter": inviter}, now)
        return True


async def end_due_campaigns(rt: Runtime, limit: int = 200) -> int:
    """Campaigns past their end become ENDED and their codes' contact ways (join ways for group campaigns) are
    deleted in WeCom (the quota is finite); the code rows stay, so late adds are still recognised (and rejected). Returns how
    many contact ways were deleted. Idempotent; a failed deletion (one code's) is logged, the others go on, and it is
    retried on the next run."""
    now = rt.clock.now()
    rc, ca = referral_codes.c, referral_campaigns.c
    async with rt.db.write() as conn:
        live = (CampaignStatus.DRAFT, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
        await conn.execute(
            referral_campaigns.update().where(ca.status.in_(live), ca.ends_at <= now).values(status=CampaignStatus.ENDED, updated_at=now)
        )
        due = list(
            await conn.execute(
                sa.select(rc.id, rc.config_id, ca.kind)
                .join(referral_campaigns, ca.id == rc.campaign_id)
                .where(ca.status == CampaignStatus.ENDED, rc.config_id.is_not(None))
                .limit(limit)
            )
        )
    deleted = 0
    for code_id, config_id, kind in due:
        try:
            await delete_code_way(rt, kind, config_id)
        except Exception:  # WeCom refused or is away for this code: the others still go; this one is retried next run
            log.exception("referral contact way not deleted", extra={"code_id": int(code_id)})
            continue
        async with rt.db.write() as conn:
            await conn.execute(referral_codes.update().where(rc.id == code_id).values(config_id=None, qr_code=None, expires_at=now))
        deleted += 1
    return deleted


async def qualify_cron(ctx: JobContext) -> None:
    decided = await qualify_due_invites(ctx.rt)
    expired = await end_due_campaigns(ctx.rt)
    if decided or expired:
        log.info("referral invites decided", extra={"count": decided, "contact_ways_deleted": expired})
