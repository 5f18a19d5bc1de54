"""Referral campaigns (裂变) — stats: the leaderboard and the funnel (codes → adds → qualified → rewarded → first
orders → revenue). Read-only. Part of :mod:`scrm.campaigns.referral`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns.referral import domain as rules
from scrm.campaigns.referral.models import InviteStatus, ReferralKind, referral_codes, referral_invites, referral_rewards
from scrm.campaigns.referral.services import Campaign, get_campaign
from scrm.crm.customers.queries import names_of
from scrm.crm.customers.services import get_customer

INVITES_PAGE_MAX = 200


# ---- stats: leaderboard and funnel ---------------------------------------------------------------------------
async def leaderboard(conn: AsyncConnection, campaign_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """Inviters ranked by qualified invites (ties: who got there first); with pending and rewarded."""

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


# ---- invites: each friend brought in, and why it counts or not ----------------------------------------------------
@dataclass(frozen=True)
class InviteRow:
    id: int
    inviter_customer_id: int
    inviter_name: str
    invitee_customer_id: int
    invitee_name: str
    userid: str  # the salesperson added ("" for a group join)
    chat_id: str | None  # group campaign: the group joined
    status: str  # pending | qualified | revoked | rejected (InviteStatus)
    status_text: str  # 待确认 / 已计入 / 未计入
    reason_code: str  # counted | holding | left | self_invite | re_add | merged_identity | campaign_closed | not_confirmed
    reason: str  # the reason in Chinese
    added_at: dt.datetime
    qualifies_at: dt.datetime
    decided_at: dt.datetime | None


@dataclass(frozen=True)
class InvitePage:
    items: list[InviteRow]
    total: int
    limit: int
    offset: int

    @property
    def more(self) -> bool:
        return self.offset + len(self.items) < self.total


def _invite_rows(campaign: Campaign, rows: list[Any], names: dict[int, str]) -> list[InviteRow]:
    out = []
    for r in rows:
        code, text = rules.explain_invite(
            status=r.status, reason=r.reason, group=campaign.kind == ReferralKind.GROUP, hold_hours=campaign.hold_hours
        )
        out.append(
            InviteRow(
                int(r.id),
                int(r.inviter_customer_id),
                names.get(int(r.inviter_customer_id)) or "",
                int(r.invitee_customer_id),
                names.get(int(r.invitee_customer_id)) or "",
                r.userid,
                r.chat_id,
                r.status,
                rules.INVITE_STATUS_TEXT.get(r.status, r.status),
                code,
                text,
                r.added_at,
                r.qualifies_at,
                r.decided_at,
            )
        )
    return out


async def invites(
    conn: AsyncConnection, campaign_id: int, *, limit: int = 50, offset: int = 0, status: str | None = None, inviter: int | None = None
) -> InvitePage:
    """A campaign's invites, newest add first, each with its status and the reason it counts or not (code and
    Chinese). ``status`` / ``inviter`` narrow the list. Raises NotFound for an unknown campaign."""
    campaign = await get_campaign(conn, campaign_id)
    i = referral_invites.c
    where = [i.campaign_id == campaign_id]
    if status is not None:
        where.append(i.status == status)
    if inviter is not None:
        where.append(i.inviter_customer_id == inviter)
    total = int((await conn.execute(sa.select(sa.func.count()).where(*where))).scalar_one())
    q = sa.select(referral_invites).where(*where).order_by(i.added_at.desc(), i.id.desc()).limit(limit).offset(offset)
    rows = list(await conn.execute(q))
    names = await names_of(conn, {int(r.inviter_customer_id) for r in rows} | {int(r.invitee_customer_id) for r in rows})
    return InvitePage(_invite_rows(campaign, rows, names), total, limit, offset)


@dataclass(frozen=True)
class Progress:
    """An inviter's standing in one campaign: what counts, what waits for the hold, what does not count and why."""

    campaign: Campaign
    qualified: int
    pending: int
    not_counted: list[InviteRow]
    rewarded: bool

    @property
    def still_needed(self) -> int:
        return rules.still_needed(self.qualified, self.campaign.goal)


async def inviter_progress(conn: AsyncConnection, campaign: Campaign, inviter: int) -> Progress:
    """The inviter's counts in ``campaign`` and their invites that did not count (newest first, at most 10)."""
    i, rw = referral_invites.c, referral_rewards.c
    counts = dict(
        (r.status, int(r.n))
        for r in await conn.execute(
            sa.select(i.status, sa.func.count().label("n"))
            .where(i.campaign_id == campaign.id, i.inviter_customer_id == inviter)
            .group_by(i.status)
        )
    )
    failed = (
        sa.select(referral_invites)
        .where(
            i.campaign_id == campaign.id,
            i.inviter_customer_id == inviter,
            i.status.in_((InviteStatus.REVOKED, InviteStatus.REJECTED)),
        )
        .order_by(i.added_at.desc(), i.id.desc())
        .limit(10)
    )
    rows = list(await conn.execute(failed))
    names = await names_of(conn, {int(r.invitee_customer_id) for r in rows})
    rewarded = (
        await conn.execute(
            sa.select(rw.id).where(rw.campaign_id == campaign.id, rw.inviter_customer_id == inviter, rw.revoked_at.is_(None))
        )
    ).first() is not None
    return Progress(
        campaign,
        counts.get(InviteStatus.QUALIFIED, 0),
        counts.get(InviteStatus.PENDING, 0),
        _invite_rows(campaign, rows, names),
        rewarded,
    )
