"""Referral campaigns (裂变) — stats: the leaderboard and the funnel (codes → adds → qualified → rewarded → first
orders → revenue). Read-only. Part of :mod:`scrm.campaigns.referral`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns.referral import domain as rules
from scrm.campaigns.referral.models import InviteStatus, referral_codes, referral_invites, referral_rewards
from scrm.campaigns.referral.services import get_campaign
from scrm.crm.customers.services import get_customer


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
