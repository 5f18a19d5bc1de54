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
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns import referral_domain as rules
from scrm.campaigns.coupons import issue_coupon, revoke_coupon
from scrm.campaigns.models import (
    CouponStatus,
    InviteStatus,
    coupons,
    referral_campaigns,
    referral_codes,
    referral_invites,
    referral_rewards,
)
from scrm.campaigns.referral_domain import CampaignStatus
from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.errors import Conflict, NotFound, ServiceUnavailable
from scrm.core.ids import short_id
from scrm.core.jobs import JobContext, cron
from scrm.core.runtime import Runtime
from scrm.customers.models import follows
from scrm.customers.services import MERGED_TOPIC, resolve_customer

log = logging.getLogger(__name__)

PROGRESS_TOPIC = "referral.progress"  # {"customer_id", "campaign_id", "text", "key"}: tell the inviter
GOAL_TOPIC = "referral.goal_check"  # {"campaign_id", "inviter"}: grant or claw back the reward
CAMPAIGN_COLUMNS = ("name", "goal", "reward_template_id", "reward_tag_id", "eligible_segment", "userids", "poster_text", "hold_hours")
EDITABLE_WHILE_LIVE = {"name", "poster_text", "ends_at", "eligible_segment", "reward_template_id", "reward_tag_id"}


# ---- the WeCom side registers how contact ways are made (scrm/ does not import bots/) ------------------
class ContactWayMaker(Protocol):
    async def create(self, rt: Runtime, *, state: str, userids: list[str], remark: str) -> tuple[str, str]: ...
    async def delete(self, rt: Runtime, config_id: str) -> None: ...


_maker: list[ContactWayMaker] = []


def provide_contact_way_maker(maker: ContactWayMaker) -> None:
    _maker[:] = [maker]


def contact_way_maker() -> ContactWayMaker:
    if not _maker:
        raise ServiceUnavailable("未连接企业微信，无法生成邀请码 (WeCom is not configured)")
    return _maker[0]


# ---- campaigns ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    goal: int
    reward_template_id: int | None
    reward_tag_id: int | None
    eligible_segment: str
    userids: list[str]
    poster_text: str
    hold_hours: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat()}


def _campaign(r: Any) -> Campaign:
    return Campaign(
        int(r.id),
        r.name,
        int(r.goal),
        r.reward_template_id,
        r.reward_tag_id,
        r.eligible_segment,
        list(r.userids),
        r.poster_text,
        int(r.hold_hours),
        r.starts_at,
        r.ends_at,
        r.status,
    )


async def get_campaign(conn: AsyncConnection, campaign_id: int) -> Campaign:
    row = (await conn.execute(sa.select(referral_campaigns).where(referral_campaigns.c.id == campaign_id))).first()
    if row is None:
        raise NotFound("没有这个裂变活动 (no such referral campaign)", id=campaign_id)
    return _campaign(row)


async def list_campaigns(conn: AsyncConnection) -> list[Campaign]:
    return [_campaign(r) for r in await conn.execute(sa.select(referral_campaigns).order_by(referral_campaigns.c.id.desc()))]


async def _check_reward(conn: AsyncConnection, values: dict[str, Any]) -> None:
    from scrm.campaigns.models import coupon_templates
    from scrm.tags.services import get_tag

    if values.get("reward_template_id") is not None:
        q = sa.select(coupon_templates.c.id).where(coupon_templates.c.id == values["reward_template_id"])
        if (await conn.execute(q)).first() is None:
            raise NotFound("没有这个优惠券模板 (no such coupon template)", field="reward_template_id")
    if values.get("reward_tag_id") is not None:
        await get_tag(conn, values["reward_tag_id"])


async def create_campaign(rt: Runtime, data: dict[str, Any]) -> Campaign:
    """Create a campaign (status draft, or running when ``data["status"] == "running"``). Raises InvalidInput /
    NotFound (reward template or tag)."""
    values = rules.check_campaign(data)
    rules.check_window(values["starts_at"], values["ends_at"])
    status = CampaignStatus.RUNNING if data.get("status") == CampaignStatus.RUNNING else CampaignStatus.DRAFT
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await _check_reward(conn, values)
        new_id = (
            await conn.execute(
                referral_campaigns.insert()
                .values(**values, status=status, created_at=now, updated_at=now)
                .returning(referral_campaigns.c.id)
            )
        ).scalar_one()
        return await get_campaign(conn, int(new_id))


async def update_campaign(rt: Runtime, campaign_id: int, changes: dict[str, Any]) -> Campaign:
    """Change a campaign. Goal, hold and salespeople are fixed once it has started (codes carry them); a status
    in ``changes`` moves it (draft → running ⇄ paused → ended). Raises InvalidInput / NotFound / Conflict."""
    status = changes.get("status")
    values = rules.check_campaign({k: v for k, v in changes.items() if k != "status"}, partial=True)
    async with rt.db.write() as conn:
        q = sa.select(referral_campaigns).where(referral_campaigns.c.id == campaign_id)
        row = (await conn.execute(q.with_for_update() if rt.db.dialect == "postgresql" else q)).first()
        if row is None:
            raise NotFound("没有这个裂变活动 (no such referral campaign)", id=campaign_id)
        fixed = set(values) - EDITABLE_WHILE_LIVE
        if row.status != CampaignStatus.DRAFT and fixed:
            raise Conflict(f"活动已开始，不能修改 {', '.join(sorted(fixed))} (fixed once started)", field=sorted(fixed)[0])
        rules.check_window(values.get("starts_at", row.starts_at), values.get("ends_at", row.ends_at))
        await _check_reward(conn, values)
        if status is not None and status != row.status:
            if not rules.can_transition(row.status, status):
                raise Conflict(f"活动不能从 {row.status} 变为 {status} (status change not allowed)", field="status")
            values["status"] = status
        if values:
            await conn.execute(
                referral_campaigns.update().where(referral_campaigns.c.id == campaign_id).values(**values, updated_at=rt.clock.now())
            )
        return await get_campaign(conn, campaign_id)


async def pause_campaign(rt: Runtime, campaign_id: int) -> Campaign:
    return await update_campaign(rt, campaign_id, {"status": CampaignStatus.PAUSED})


# ---- personal codes -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Code:
    id: int
    campaign_id: int
    inviter_customer_id: int
    state: str
    config_id: str | None
    qr_code: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _code(r: Any) -> Code:
    return Code(int(r.id), int(r.campaign_id), int(r.inviter_customer_id), r.state, r.config_id, r.qr_code)


async def _code_row(conn: AsyncConnection, campaign_id: int, inviter: int) -> Any:
    q = sa.select(referral_codes).where(referral_codes.c.campaign_id == campaign_id, referral_codes.c.inviter_customer_id == inviter)
    return (await conn.execute(q)).first()


async def _is_eligible(rt: Runtime, expression: str, customer_id: int) -> bool:
    if not expression.strip():
        return True
    try:
        from tagging.segments import iter_segment  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ServiceUnavailable("客户分群尚不可用，无法判断参与资格 (segments are not available)") from exc
    async for item in iter_segment(rt, expression, 1000):  # streamed: ids, or batches of ids
        if customer_id in (item if isinstance(item, list | tuple) else (item,)):
            return True
    return False


async def code_for(rt: Runtime, campaign_id: int, inviter_customer_id: int) -> Code:
    """The inviter's personal code for the campaign: made on first request (a WeCom contact way with the
    campaign's salespeople and state ``rf:<short id>``), the same one afterwards. Raises NotFound, Conflict
    (campaign not running; inviter not eligible), ServiceUnavailable / the maker's errors (WeCom)."""
    async with rt.db.read() as conn:
        campaign = await get_campaign(conn, campaign_id)
        inviter = await resolve_customer(conn, inviter_customer_id)
        row = await _code_row(conn, campaign_id, inviter)
    if row is not None and row.config_id:
        return _code(row)
    if campaign.status != CampaignStatus.RUNNING or not campaign.starts_at <= rt.clock.now() < campaign.ends_at:
        raise Conflict("活动未在进行中，不能发放邀请码 (the campaign is not running)", status=campaign.status)
    if row is None:
        if not await _is_eligible(rt, campaign.eligible_segment, inviter):
            raise Conflict("该客户不在活动的参与人群中 (the customer is not eligible)", customer_id=inviter)
        async with rt.db.write() as conn:
            await conn.execute(
                insert_ignore(referral_codes, rt.db.dialect).values(
                    campaign_id=campaign_id,
                    inviter_customer_id=inviter,
                    state=rules.STATE_PREFIX + short_id(12),
                    created_at=rt.clock.now(),
                    expires_at=campaign.ends_at,
                )
            )
            row = await _code_row(conn, campaign_id, inviter)
        if row.config_id:
            return _code(row)
    maker = contact_way_maker()
    config_id, qr_code = await maker.create(rt, state=row.state, userids=campaign.userids, remark=f"裂变{campaign_id}-{inviter}")
    async with rt.db.write() as conn:
        won = await conn.execute(
            referral_codes.update()
            .where(referral_codes.c.id == row.id, referral_codes.c.config_id.is_(None))
            .values(config_id=config_id, qr_code=qr_code)
        )
        row = await _code_row(conn, campaign_id, inviter)
    if won.rowcount == 0:  # a concurrent request made the contact way first: ours is surplus
        await maker.delete(rt, config_id)
    return _code(row)


async def _lock_code(conn: AsyncConnection, dialect: str, code_id: int) -> None:
    if dialect == "postgresql":
        await conn.execute(sa.select(referral_codes.c.id).where(referral_codes.c.id == code_id).with_for_update())


async def _qualified_count(conn: AsyncConnection, campaign_id: int, inviter: int) -> int:
    i = referral_invites.c
    q = sa.select(sa.func.count()).where(i.campaign_id == campaign_id, i.inviter_customer_id == inviter, i.status == InviteStatus.QUALIFIED)
    return int((await conn.execute(q)).scalar_one())


async def _progress(conn: AsyncConnection, c: Campaign, inviter: int, qualified: int, event: str, key: str, now: dt.datetime) -> None:
    text = rules.progress_text(campaign=c.name, qualified=qualified, goal=c.goal, event=event)
    await outbox.add(conn, PROGRESS_TOPIC, {"customer_id": inviter, "campaign_id": c.id, "text": text, "key": key}, now)


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
) -> AddOutcome | None:
    """In the add's own transaction: attribute the invitee to the code's inviter — PENDING until the hold has
    passed, or REJECTED (self-invite, re-add, campaign not running). ``was_new``: no customer held the
    external_userid before this add. None when ``state`` is no referral code. Idempotent: an invitee is
    attributed once per campaign (the first decision stands)."""
    code = (await conn.execute(sa.select(referral_codes).where(referral_codes.c.state == state))).first()
    if code is None:
        return None
    campaign = await get_campaign(conn, int(code.campaign_id))
    await _lock_code(conn, dialect, int(code.id))
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


async def _decide(conn: AsyncConnection, invite_id: int, frm: tuple[str, ...], to: str, reason: str, now: dt.datetime) -> bool:
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
    counting = (InviteStatus.PENDING, InviteStatus.QUALIFIED)
    async with rt.db.read() as conn:
        q = sa.select(i.id, i.code_id).where(i.invitee_customer_id == invitee_customer_id, i.userid == userid, i.status.in_(counting))
        found = list(await conn.execute(q))
    revoked = 0
    for invite_id, code_id in found:
        async with rt.db.write() as conn:
            await _lock_code(conn, rt.db.dialect, int(code_id))
            inv = (await conn.execute(sa.select(referral_invites).where(i.id == invite_id))).one()
            campaign = await get_campaign(conn, int(inv.campaign_id))
            if not rules.revokes(status=inv.status, left_at=left_at, qualifies_at=inv.qualifies_at, campaign_ends_at=campaign.ends_at):
                continue
            if not await _decide(conn, int(invite_id), counting, InviteStatus.REVOKED, "left", rt.clock.now()):
                continue
            revoked += 1
            if inv.status == InviteStatus.QUALIFIED:
                inviter = int(inv.inviter_customer_id)
                qualified = await _qualified_count(conn, campaign.id, inviter)
                await _progress(conn, campaign, inviter, qualified, "revoked", f"referral:invite:{invite_id}:revoked", rt.clock.now())
                await outbox.add(conn, GOAL_TOPIC, {"campaign_id": campaign.id, "inviter": inviter}, rt.clock.now())
    return revoked


@outbox.handles(MERGED_TOPIC)
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
            await _lock_code(conn, rt.db.dialect, int(code_id))
            inv = (await conn.execute(sa.select(referral_invites).where(i.id == invite_id))).one()
            inviter = await resolve_customer(conn, int(inv.inviter_customer_id))
            reason = rules.judge_merge(status=inv.status, survivor_id=into, inviter_id=inviter)
            if reason is None or not await _decide(conn, int(invite_id), (inv.status,), InviteStatus.REJECTED, reason, now):
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
async def qualify_due_invites(rt: Runtime, limit: int = 500) -> int:
    """Decide pending invites whose hold has passed: QUALIFIED when the invitee still follows the salesperson
    (then the inviter hears their progress and the goal is checked), REVOKED when the relation ended, REJECTED when
    the invitee was merged into an existing customer. Safe to run in several workers at once; returns how many
    were decided."""
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
        async with rt.db.write() as conn:
            await _lock_code(conn, rt.db.dialect, int(code_id))
            inv = (await conn.execute(sa.select(referral_invites).where(i.id == invite_id))).one()
            if inv.status != InviteStatus.PENDING:
                continue
            campaign = await get_campaign(conn, int(inv.campaign_id))
            invitee = await resolve_customer(conn, int(inv.invitee_customer_id))
            f = follows.c
            follow_status = (await conn.execute(sa.select(f.status).where(f.customer_id == invitee, f.userid == inv.userid))).scalar()
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
            if verdict == rules.Qualify.WAIT or not await _decide(conn, int(invite_id), (InviteStatus.PENDING,), target, reason, now):
                continue
            decided += 1
            if target == InviteStatus.QUALIFIED:
                inviter = int(inv.inviter_customer_id)
                qualified = await _qualified_count(conn, campaign.id, inviter)
                await _progress(conn, campaign, inviter, qualified, "qualified", f"referral:invite:{invite_id}:qualified", now)
                await outbox.add(conn, GOAL_TOPIC, {"campaign_id": campaign.id, "inviter": inviter}, now)
    return decided


async def end_due_campaigns(rt: Runtime, limit: int = 200) -> int:
    """Campaigns past their end become ENDED and their codes' contact ways are deleted in WeCom (the quota of
    contact ways is finite); the code rows stay, so late adds are still recognised (and rejected). Returns how
    many contact ways were deleted. Idempotent; a failed deletion is retried on the next run."""
    now = rt.clock.now()
    rc, ca = referral_codes.c, referral_campaigns.c
    async with rt.db.write() as conn:
        live = (CampaignStatus.DRAFT, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
        await conn.execute(
            referral_campaigns.update().where(ca.status.in_(live), ca.ends_at <= now).values(status=CampaignStatus.ENDED, updated_at=now)
        )
        ended = sa.select(ca.id).where(ca.status == CampaignStatus.ENDED).scalar_subquery()
        due = list(
            await conn.execute(sa.select(rc.id, rc.config_id).where(rc.campaign_id.in_(ended), rc.config_id.is_not(None)).limit(limit))
        )
    for code_id, config_id in due:
        await contact_way_maker().delete(rt, config_id)
        async with rt.db.write() as conn:
            await conn.execute(referral_codes.update().where(rc.id == code_id).values(config_id=None, qr_code=None, expires_at=now))
    return len(due)


@cron("referral_qualify", second=45)
async def qualify_cron(ctx: JobContext) -> None:
    decided = await qualify_due_invites(ctx.rt)
    expired = await end_due_campaigns(ctx.rt)
    if decided or expired:
        log.info("referral invites decided", extra={"count": decided, "contact_ways_deleted": expired})


# ---- reward: grant when the goal is really met, claw back when revocations undo it -----------------------
async def _coupon_ref(conn: AsyncConnection, campaign_id: int, inviter: int, rewarded_at: dt.datetime) -> str:
    """The issue's idempotency key: the first grant's is ``referral:<campaign>:<inviter>``; a grant after a claw-back
    (that coupon revoked) gets its own, fixed by when it was granted."""
    base = f"referral:{campaign_id}:{inviter}"
    first = (await conn.execute(sa.select(coupons.c.status).where(coupons.c.source_ref == base))).scalar()
    return base if first != CouponStatus.REVOKED else f"{base}:{int(rewarded_at.timestamp())}"


@outbox.handles(GOAL_TOPIC)
async def settle_goal(rt: Runtime, payload: dict[str, Any]) -> None:
    """Bring the inviter's reward in line with their qualified invites: grant it (coupon via
    ``scrm.campaigns.coupons.issue_coupon`` with source "referral", and/or the tag) when the goal is met and no
    reward is active; take back an unredeemed coupon when they fell below the goal. Idempotent."""
    campaign_id, inviter = int(payload["campaign_id"]), int(payload["inviter"])
    rw = referral_rewards.c
    now = rt.clock.now()
    async with rt.db.write() as conn:
        code = await _code_row(conn, campaign_id, inviter)
        if code is not None:
            await _lock_code(conn, rt.db.dialect, int(code.id))
        campaign = await get_campaign(conn, campaign_id)
        qualified = await _qualified_count(conn, campaign_id, inviter)
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
                await _progress(
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
                await _progress(conn, campaign, inviter, qualified, "rewarded", f"referral:{campaign_id}:{inviter}:rewarded:{ref}", now)


async def _tag(conn: AsyncConnection, dialect: str, inviter: int, campaign: Campaign, now: dt.datetime) -> None:
    from scrm.tags.models import TagSource
    from scrm.tags.services import CUSTOMER_TAG_CHANGED, apply_tag

    assert campaign.reward_tag_id is not None
    evidence = {"campaign_id": campaign.id, "campaign": campaign.name}
    if await apply_tag(
        conn, dialect, customer_id=inviter, tag_id=campaign.reward_tag_id, source=TagSource.CAMPAIGN, evidence=evidence, now=now
    ):
        await outbox.add(conn, CUSTOMER_TAG_CHANGED, {"customer_id": inviter, "tag_id": campaign.reward_tag_id, "add": True, "by": ""}, now)


async def _issue(rt: Runtime, template_id: int, inviter: int, ref: str) -> int:
    coupon = await issue_coupon(rt, template_id, inviter, source="referral", source_ref=ref, actor="referral")
    return coupon.id


async def _claw_back(rt: Runtime, campaign: Campaign, inviter: int, reward_id: int, coupon_id: int | None, qualified: int) -> None:
    """Revoke the reward; its coupon only while unused (a redeemed or reserved one is the customer's: the reward
    then stands and this is logged)."""
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
            await _progress(
                conn, campaign, inviter, qualified, "clawed_back", f"referral:reward:{reward_id}:clawed:{int(now.timestamp())}", now
            )


# ---- first-order attribution ------------------------------------------------------------------------------------
@outbox.handles("order.confirmed")
async def attribute_first_order(rt: Runtime, payload: dict[str, Any]) -> None:
    """The invitee's first confirmed order is recorded on their (still counting) invite; idempotent, and the
    earliest order wins whatever order the events arrive in."""
    from fulfillment.orders import get_order

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


# ---- stats: leaderboard and funnel ---------------------------------------------------------------------------
async def leaderboard(conn: AsyncConnection, campaign_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """Inviters ranked by qualified invites (ties: who got there first); with pending and rewarded."""
    from scrm.customers.services import get_customer

    await get_campaign(conn, campaign_id)
    i, rw = referral_invites.c, referral_rewards.c
    qualified = i.status == InviteStatus.QUALIFIED
    q = (
        sa.select(
            i.inviter_customer_id,
            sa.func.sum(sa.case((qualified, 1), else_=0)).label("qualified"),
            sa.func.sum(sa.case((i.status == InviteStatus.PENDING, 1), else_=0)).label("pending"),
            sa.func.max(sa.case((qualified, i.decided_at), else_=None)).label("reached_at"),
        )
        .where(i.campaign_id == campaign_id)
        .group_by(i.inviter_customer_id)
    )
    counts = list(await conn.execute(q))
    rewarded = {
        int(r.inviter_customer_id)
        for r in await conn.execute(sa.select(rw.inviter_customer_id).where(rw.campaign_id == campaign_id, rw.revoked_at.is_(None)))
    }
    rows = [
        rules.LeaderRow(
            int(r.inviter_customer_id), int(r.qualified or 0), int(r.pending or 0), r.reached_at, int(r.inviter_customer_id) in rewarded
        )
        for r in counts
    ]
    out = []
    for ranked in rules.rank_leaderboard(rows, limit):
        row = ranked.row
        name = (await get_customer(conn, row.inviter_id)).name
        out.append(
            {
                "rank": ranked.rank,
                "inviter_customer_id": row.inviter_id,
                "name": name,
                "qualified": row.qualified,
                "pending": row.pending,
                "rewarded": row.rewarded,
                "reached_at": row.reached_at.isoformat() if row.reached_at else None,
            }
        )
    return out


async def funnel(conn: AsyncConnection, campaign_id: int) -> rules.Funnel:
    """Codes issued → adds → qualified → rewarded → first orders → revenue (first orders' totals, fen)."""
    await get_campaign(conn, campaign_id)
    i, c, rw = referral_invites.c, referral_codes.c, referral_rewards.c
    codes = (await conn.execute(sa.select(sa.func.count()).where(c.campaign_id == campaign_id))).scalar_one()
    inv = (
        await conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.sum(sa.case((i.status == InviteStatus.QUALIFIED, 1), else_=0)),
                sa.func.sum(sa.case((sa.and_(i.status == InviteStatus.QUALIFIED, i.first_order_id.is_not(None)), 1), else_=0)),
                sa.func.sum(sa.case((i.status == InviteStatus.QUALIFIED, i.first_order_fen), else_=0)),
            ).where(i.campaign_id == campaign_id)
        )
    ).one()
    rewarded = (await conn.execute(sa.select(sa.func.count()).where(rw.campaign_id == campaign_id, rw.revoked_at.is_(None)))).scalar_one()
    return rules.Funnel(int(codes), int(inv[0]), int(inv[1] or 0), int(rewarded), int(inv[2] or 0), int(inv[3] or 0))
