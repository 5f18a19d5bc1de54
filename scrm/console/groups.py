"""/console/groups — 客户群: every customer group with its size and the last days' activity, and a page per group with
a 30-day chart (server-side SVG from ``templates/groups/``, no script) and its current members.

Reads go through :mod:`scrm.crm.groups.queries`; this module computes the chart's geometry and renders templates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.pages import page_context, render
from scrm.core.http.keys import RUNTIME
from scrm.crm.groups import queries as group_queries
from scrm.crm.groups.domain import EXTERNAL, SCENE_ZH, business_day
from scrm.crm.groups.queries import DayRow

LIST_DAYS = 7
JOIN_COLOR, LEAVE_COLOR, MESSAGE_COLOR = "#07c160", "#d93025", "#0b65c2"


# ---- the activity chart's geometry (templates/groups/macros.html draws it) ---------------------------------------
@dataclass(frozen=True)
class LegendItem:
    x: int
    color: str
    label: str


@dataclass(frozen=True)
class GridLine:
    y: str
    text_y: str
    left_value: str  # joins / leaves axis
    right_value: str  # messages axis


@dataclass(frozen=True)
class ActivityBar:
    x: str
    y: str
    width: str
    height: str
    color: str
    what: str  # 入群 / 退群
    value: int


@dataclass(frozen=True)
class ActivityDay:
    label: str  # MM-DD
    x: str  # the slot's centre: the message dot and the axis label
    y: str  # the message dot
    messages: int
    active_members: int
    bars: tuple[ActivityBar, ...]
    axis: bool  # labelled on the x axis


@dataclass(frozen=True)
class ActivityChart:
    title: str
    width: int
    height: int
    left: int
    right: int  # x of the plot's right edge
    axis_y: int
    message_color: str
    legend: tuple[LegendItem, ...]
    grid: tuple[GridLine, ...]
    days: tuple[ActivityDay, ...]
    points: str  # the messages polyline


def _nice_max(value: int) -> int:
    """The axis top: the smallest 1/2/5×10ⁿ at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def activity_geometry(days: list[DayRow]) -> ActivityChart:
    """Bars of joins (green) and leaves (red) on the left axis, a line of messages (blue) on the right axis."""
    width, height, left, right, top, bottom = 760, 260, 44, 48, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.36, 1.0)
    y_max = _nice_max(max([d.joins for d in days] + [d.leaves for d in days] + [1]))
    m_max = _nice_max(max([d.messages for d in days] + [1]))

    def y(v: int, top_value: int) -> float:
        return top + plot_h - plot_h * v / top_value

    grid = tuple(
        GridLine(f"{y(0, 1) - plot_h * frac:.1f}", f"{y(0, 1) - plot_h * frac + 4:.1f}", f"{y_max * frac:g}", f"{m_max * frac:g}")
        for frac in (0, 0.5, 1)
    )
    shown = []
    for i, d in enumerate(days):
        x0 = left + i * slot + (slot - 2 * bar_w) / 2
        bars = tuple(
            ActivityBar(f"{x0 + offset:.1f}", f"{y(value, y_max):.1f}", f"{bar_w:.1f}", f"{plot_h * value / y_max:.1f}", color, what, value)
            for offset, value, color, what in ((0, d.joins, JOIN_COLOR, "入群"), (bar_w, d.leaves, LEAVE_COLOR, "退群"))
            if value
        )
        cx = left + (i + 0.5) * slot
        axis = i % 5 == 0 or i == len(days) - 1
        shown.append(
            ActivityDay(d.day.strftime("%m-%d"), f"{cx:.1f}", f"{y(d.messages, m_max):.1f}", d.messages, d.active_members, bars, axis)
        )
    legend = (
        LegendItem(left, JOIN_COLOR, "入群"),
        LegendItem(left + 60, LEAVE_COLOR, "退群"),
        LegendItem(left + 120, MESSAGE_COLOR, "消息（右轴）"),
    )
    return ActivityChart(
        title=f"近{len(days)}天每日入群、退群和消息数",
        width=width,
        height=height,
        left=left,
        right=width - right,
        axis_y=height - bottom + 16,
        message_color=MESSAGE_COLOR,
        legend=legend,
        grid=grid,
        days=tuple(shown),
        points=" ".join(f"{d.x},{d.y}" for d in shown),
    )


# ---- routes ---------------------------------------------------------------------------------------------------
async def groups_list(request: web.Request) -> web.Response:
    """客户群列表: members now and the last 7 days' joins, leaves and messages."""
    rt = request.app[RUNTIME]
    today = business_day(rt.clock.now())
    async with rt.db.read() as conn:
        rows = await group_queries.group_rows(conn, today - dt.timedelta(days=LIST_DAYS - 1))
    row_classes = ["inactive" if r.dismissed_at else "" for r in rows]
    return render(request, "groups/list.html", page_context(request, "groups"), rows=rows, row_classes=row_classes, list_days=LIST_DAYS)


async def group_view(request: web.Request) -> web.Response:
    """客户群详情: summary, the 30-day chart with its numbers, and the current members."""
    rt = request.app[RUNTIME]
    ctx = page_context(request, "groups")
    chat_id = request.match_info["chat_id"]
    async with rt.db.read() as conn:
        row = await group_queries.group_detail(conn, chat_id)
        if row is None:
            return render(request, "not_found.html", ctx, http_status=404, title="没有找到客户群", message=f"没有这个客户群：{chat_id}")
        days = await group_queries.daily_rows(conn, chat_id, business_day(rt.clock.now()))
        members = await group_queries.member_rows(conn, chat_id)
    return render(
        request,
        "groups/detail.html",
        ctx,
        row=row,
        days=days,
        busy=[d for d in reversed(days) if d.joins or d.leaves or d.messages or d.active_members],
        members=members,
        chart=activity_geometry(days),
        external=EXTERNAL,
        scene_zh=SCENE_ZH,
    )


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.OPERATIONS_ROLES) -> None:
    """Mount the group pages behind the console's session + role guard."""
    pages.setup_templates(app)
    for path, handler in (("/console/groups", groups_list), ("/console/groups/{chat_id}", group_view)):
        app.router.add_route("GET", path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
