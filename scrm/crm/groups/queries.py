"""Read-only listings of customer groups for the console: groups with recent activity, one group's days and members."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.groups.models import group_daily_stats, group_members, groups
from scrm.crm.staff.models import salespeople

CHART_DAYS = 30
MAX_GROUPS = 500
MAX_MEMBERS = 500


@dataclass(frozen=True)
class GroupRow:
    chat_id: str
    name: str
    owner: str
    member_count: int
    created_at: dt.datetime | None
    dismissed_at: dt.datetime | None
    notice: str = ""
    joins: int = 0
    leaves: int = 0
    messages: int = 0


@dataclass(frozen=True)
class DayRow:
    day: dt.date
    joins: int
    leaves: int
    messages: int
    active_members: int


@dataclass(frozen=True)
class MemberRow:
    member_id: str
    name: str | None
    member_type: int
    joined_at: dt.datetime | None
    join_scene: int | None
    last_active_at: dt.datetime | None


def _owner() -> Any:
    return sa.func.coalesce(sa.func.nullif(salespeople.c.name, ""), groups.c.owner_userid).label("owner")


async def group_rows(conn: AsyncConnection, since: dt.date) -> list[GroupRow]:
    """Every group (current first, biggest first) with joins/leaves/messages summed from ``since``."""
    s = group_daily_stats.c
    sums = (
        sa.select(s.chat_id, sa.func.sum(s.joins).label("j"), sa.func.sum(s.leaves).label("l"), sa.func.sum(s.messages).label("m"))
        .where(s.day >= since)
        .group_by(s.chat_id)
        .subquery()
    )
    q = (
        sa.select(groups, _owner(), sums.c.j, sums.c.l, sums.c.m)
        .outerjoin(sums, sums.c.chat_id == groups.c.chat_id)
        .outerjoin(salespeople, salespeople.c.userid == groups.c.owner_userid)
        .order_by(sa.case((groups.c.dismissed_at.is_(None), 0), else_=1), groups.c.member_count.desc(), groups.c.name, groups.c.chat_id)
        .limit(MAX_GROUPS)
    )
    return [
        GroupRow(
            r.chat_id, r.name, r.owner, r.member_count, r.created_at, r.dismissed_at, r.notice, int(r.j or 0), int(r.l or 0), int(r.m or 0)
        )
        for r in await conn.execute(q)
    ]


async def group_detail(conn: AsyncConnection, chat_id: str) -> GroupRow | None:
    q = sa.select(groups, _owner()).outerjoin(salespeople, salespeople.c.userid == groups.c.owner_userid).where(groups.c.chat_id == chat_id)
    r = (await conn.execute(q)).first()
    return GroupRow(r.chat_id, r.name, r.owner, r.member_count, r.created_at, r.dismissed_at, r.notice) if r else None


async def daily_rows(conn: AsyncConnection, chat_id: str, end: dt.date, days: int = CHART_DAYS) -> list[DayRow]:
    """One row per day of the ``days`` ending with ``end``, zeros where nothing happened."""
    start = end - dt.timedelta(days=days - 1)
    s = group_daily_stats.c
    rows = await conn.execute(sa.select(group_daily_stats).where(s.chat_id == chat_id, s.day >= start, s.day <= end))
    found = {r.day: r for r in rows}
    out = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        r = found.get(day)
        out.append(DayRow(day, r.joins, r.leaves, r.messages, r.active_members) if r else DayRow(day, 0, 0, 0, 0))
    return out


async def member_rows(conn: AsyncConnection, chat_id: str) -> list[MemberRow]:
    """The group's current members: staff first (by member type), then by joining time."""
    m = group_members.c
    q = sa.select(group_members).where(m.chat_id == chat_id, m.active.is_(True)).order_by(m.member_type, m.joined_at, m.member_id)
    return [
        MemberRow(r.member_id, r.name, r.member_type, r.joined_at, r.join_scene, r.last_active_at)
        for r in await conn.execute(q.limit(MAX_MEMBERS))
    ]
