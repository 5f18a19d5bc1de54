"""/console/groups: customer groups (客户群) and their activity — the list with the last 7 days, and per group a
server-rendered SVG chart of the last 30 days (joins, leaves, messages). No JavaScript, nothing from a CDN; the
chart uses SVG presentation attributes, which the console's CSP (no inline style or script) allows.

Read-only, same building blocks as :mod:`scrm.console.web`: routes behind :func:`auth.protected`, HTML through
:func:`render.t` (every value escaped), the shared layout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.console import auth
from scrm.console.render import Safe, join, t, table, when
from scrm.console.web import _ctx, _page, forbidden
from scrm.core.http.keys import RUNTIME
from scrm.crm.groups.domain import EXTERNAL, SCENE_ZH, business_day
from scrm.crm.groups.models import group_daily_stats, group_members, groups
from scrm.crm.staff.models import salespeople

LIST_DAYS = 7
CHART_DAYS = 30
MAX_GROUPS = 500
MAX_MEMBERS = 500
JOIN_COLOR, LEAVE_COLOR, MESSAGE_COLOR = "#07c160", "#d93025", "#0b65c2"


# ---- queries --------------------------------------------------------------------------------------------------
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


async def member_rows(conn: AsyncConnection, chat_id: str) -> list[Any]:
    m = group_members.c
    q = sa.select(group_members).where(m.chat_id == chat_id, m.active.is_(True)).order_by(m.member_type, m.joined_at, m.member_id)
    return list((await conn.execute(q.limit(MAX_MEMBERS))).all())


# ---- rendering ------------------------------------------------------------------------------------------------
def group_url(chat_id: str) -> str:
    return "/console/groups/" + quote(chat_id, safe="")


def _status(row: GroupRow) -> Safe:
    if row.dismissed_at is not None:
        return t('<span class="badge st-cancelled">已解散 {w}</span>', w=when(row.dismissed_at))
    return t('<span class="badge st-completed">正常</span>')


def groups_page(rows: list[GroupRow]) -> Safe:
    """客户群列表: members now and the last 7 days' joins, leaves and messages."""
    cells = [
        (
            t('<a href="{href}">{name}</a>', href=group_url(r.chat_id), name=r.name or r.chat_id),
            r.owner,
            r.member_count,
            r.joins,
            r.leaves,
            r.messages,
            _status(r),
        )
        for r in rows
    ]
    body = table(
        ["群名称", "群主", "成员数", f"近{LIST_DAYS}天入群", f"近{LIST_DAYS}天退群", f"近{LIST_DAYS}天消息", "状态"],
        cells,
        empty="还没有客户群。创建客户群或运行同步后会显示在这里。",
        row_cls=["inactive" if r.dismissed_at else "" for r in rows],
    )
    return t('{body}<p class="hint">消息数来自会话内容存档；未开通存档时为 0。</p>', body=body)


def _nice_max(value: int) -> int:
    """The axis top: the smallest 1/2/5×10ⁿ at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def activity_chart(days: list[DayRow]) -> Safe:
    """Bars of joins (green) and leaves (red) on the left axis, a line of messages (blue) on the right axis."""
    width, height, left, right, top, bottom = 760, 260, 44, 48, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.36, 1.0)
    y_max = _nice_max(max([d.joins for d in days] + [d.leaves for d in days] + [1]))
    m_max = _nice_max(max([d.messages for d in days] + [1]))

    def y(v: int, top_value: int) -> float:
        return top + plot_h - plot_h * v / top_value

    parts: list[Safe] = []
    for frac in (0, 0.5, 1):
        gy = y(0, 1) - plot_h * frac
        parts.append(t('<line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="#e5e7eb"/>', a=left, b=width - right, y=f"{gy:.1f}"))
        parts.append(
            t(
                '<text x="{x}" y="{y}" text-anchor="end" font-size="11" fill="#6b7280">{v}</text>',
                x=left - 6,
                y=f"{gy + 4:.1f}",
                v=f"{y_max * frac:g}",
            )
        )
        parts.append(
            t(
                '<text x="{x}" y="{y}" font-size="11" fill="{c}">{v}</text>',
                x=width - right + 6,
                y=f"{gy + 4:.1f}",
                c=MESSAGE_COLOR,
                v=f"{m_max * frac:g}",
            )
        )
    points = []
    for i, d in enumerate(days):
        x0 = left + i * slot + (slot - 2 * bar_w) / 2
        label = d.day.strftime("%m-%d")
        for offset, value, color, what in ((0, d.joins, JOIN_COLOR, "入群"), (bar_w, d.leaves, LEAVE_COLOR, "退群")):
            if value:
                parts.append(
                    t(
                        '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{c}"><title>{label} {what} {v}</title></rect>',
                        x=f"{x0 + offset:.1f}",
                        y=f"{y(value, y_max):.1f}",
                        w=f"{bar_w:.1f}",
                        h=f"{plot_h * value / y_max:.1f}",
                        c=color,
                        label=label,
                        what=what,
                        v=value,
                    )
                )
        cx = left + (i + 0.5) * slot
        points.append(f"{cx:.1f},{y(d.messages, m_max):.1f}")
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(
                t(
                    '<text x="{x}" y="{y}" text-anchor="middle" font-size="11" fill="#6b7280">{l}</text>',
                    x=f"{cx:.1f}",
                    y=height - bottom + 16,
                    l=label,
                )
            )
        parts.append(
            t(
                '<circle cx="{x}" cy="{y}" r="2.5" fill="{c}"><title>{l} 消息 {v}，发言 {a} 人</title></circle>',
                x=f"{cx:.1f}",
                y=f"{y(d.messages, m_max):.1f}",
                c=MESSAGE_COLOR,
                l=label,
                v=d.messages,
                a=d.active_members,
            )
        )
    parts.append(t('<polyline points="{p}" fill="none" stroke="{c}" stroke-width="2"/>', p=" ".join(points), c=MESSAGE_COLOR))
    legend = join(
        t(
            '<rect x="{x}" y="8" width="10" height="10" fill="{c}"/><text x="{tx}" y="17" font-size="12" fill="#1f2328">{l}</text>',
            x=x,
            tx=x + 14,
            c=c,
            l=label,
        )
        for x, c, label in ((left, JOIN_COLOR, "入群"), (left + 60, LEAVE_COLOR, "退群"), (left + 120, MESSAGE_COLOR, "消息（右轴）"))
    )
    return t(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{aria}">'
        "<title>{aria}</title>{legend}{parts}</svg>",
        w=width,
        h=height,
        aria=f"近{len(days)}天每日入群、退群和消息数",
        legend=legend,
        parts=join(parts),
    )


def group_page(row: GroupRow, days: list[DayRow], members: list[Any]) -> Safe:
    """客户群详情: summary, the 30-day chart with its numbers, and the current members."""
    summary = t(
        '<dl class="summary">{items}</dl>',
        items=join(
            t("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v)
            for k, v in (
                ("状态", _status(row)),
                ("群主", row.owner or "—"),
                ("成员数", row.member_count),
                ("创建时间", when(row.created_at)),
                (f"近{CHART_DAYS}天入群", sum(d.joins for d in days)),
                (f"近{CHART_DAYS}天退群", sum(d.leaves for d in days)),
                (f"近{CHART_DAYS}天消息", sum(d.messages for d in days)),
                ("群公告", row.notice or "—"),
            )
        ),
    )
    busy = [d for d in reversed(days) if d.joins or d.leaves or d.messages or d.active_members]
    numbers = table(
        ["日期", "入群", "退群", "消息", "发言人数"],
        [(d.day.isoformat(), d.joins, d.leaves, d.messages, d.active_members) for d in busy],
        empty=f"近{CHART_DAYS}天没有活动",
    )
    people = table(
        ["成员", "类型", "入群时间", "入群方式", "最近发言"],
        [
            (
                m.name or m.member_id,
                "客户" if m.member_type == EXTERNAL else "企业成员",
                when(m.joined_at),
                SCENE_ZH.get(m.join_scene or 0, "—"),
                when(m.last_active_at),
            )
            for m in members
        ],
        empty="当前没有成员",
    )
    return t(
        '{summary}<h2>近{n}天活动</h2><div class="card">{chart}</div>{numbers}<h2>当前成员</h2>{people}'
        '<p><a href="/console/groups">返回客户群列表</a></p>',
        summary=summary,
        n=CHART_DAYS,
        chart=activity_chart(days),
        numbers=numbers,
        people=people,
    )


# ---- routes ---------------------------------------------------------------------------------------------------
async def groups_list(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    today = business_day(rt.clock.now())
    async with rt.db.read() as conn:
        rows = await group_rows(conn, today - dt.timedelta(days=LIST_DAYS - 1))
    return _page(request, _ctx(request, "groups"), "客户群", groups_page(rows))


async def group_view(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "groups")
    chat_id = request.match_info["chat_id"]
    async with rt.db.read() as conn:
        row = await group_detail(conn, chat_id)
        if row is None:
            return _page(request, ctx, "没有找到客户群", t('<p class="empty">没有这个客户群：{c}</p>', c=chat_id), status=404)
        days = await daily_rows(conn, chat_id, business_day(rt.clock.now()))
        members = await member_rows(conn, chat_id)
    return _page(request, ctx, f"客户群 {row.name or row.chat_id}", group_page(row, days, members))


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.OPERATIONS_ROLES) -> None:
    """Mount the group pages behind the console's session + role guard."""
    for path, handler in (("/console/groups", groups_list), ("/console/groups/{chat_id}", group_view)):
        app.router.add_route("GET", path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
