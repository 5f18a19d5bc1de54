"""/console/channels: channel codes (渠道活码) for marketers — each is a WeCom contact way with its own state, so
every customer who adds a salesperson through it is attributed to the channel (展会, 门店, 包裹卡 …), welcomed with
its text and auto-tagged. The list shows adds / still-friends / deletes per code; a code's page shows the QR code,
a 30-day chart of adds and deletes, and the edit and deactivate forms.

Writes go through the channel-code manager (``scrm.crm.channels.services.channel_code_manager``), which creates and
changes the contact way in WeCom in step with the row; its errors (WeCom refused, not configured) become the red
flash with nothing changed. Same building blocks as the other console pages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from scrm.console import auth
from scrm.console.charts import BarChart, bar_geometry
from scrm.console.pages import act, forbidden, page_context, path_id, render, setup_templates
from scrm.core.clock import local
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.runtime import Runtime
from scrm.crm.channels.services import (
    ChannelCode,
    channel_code_manager,
    channel_stats,
    channel_totals,
    get_channel_code,
    list_channel_codes,
)
from scrm.crm.staff.queries import salesperson_choices
from scrm.crm.tags.queries import tag_choices

CHART_DAYS = 30


# ---- view values ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeRow:
    id: int
    name: str
    salespeople: str
    adds: int
    active: int  # still friends
    deletes: int
    enabled: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class CodeFormView:
    """The channel-code form: its values and the checkbox choices (active salespeople, live tags)."""

    name: str
    people: list[tuple[str, str]]
    userids: tuple[str, ...]
    welcome_text: str
    tags: list[tuple[int, str]]
    tag_ids: tuple[int, ...]
    submit: str


@dataclass(frozen=True)
class Fact:
    """One row of a code's facts; ``link`` (the QR code's URL) replaces the value when set."""

    label: str
    value: int | str
    link: str = ""


@dataclass(frozen=True)
class CodeView:
    facts: tuple[Fact, ...]
    days: int
    adds: BarChart
    deletes: BarChart


async def _choices(rt: Runtime) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """Active salespeople (userid, name) and live tags (id, "group / name") for the form's checkboxes."""
    async with rt.db.read() as conn:
        return await salesperson_choices(conn), await tag_choices(conn)


def code_form(code: ChannelCode | None, people: list[tuple[str, str]], tag_rows: list[tuple[int, str]]) -> CodeFormView:
    return CodeFormView(
        name=code.name if code else "",
        people=people,
        userids=tuple(code.userids) if code else (),
        welcome_text=code.welcome_text if code else "",
        tags=tag_rows,
        tag_ids=tuple(code.tag_ids) if code else (),
        submit="保存修改" if code else "生成渠道活码",
    )


async def _fields(request: web.Request) -> dict[str, Any]:
    """The form as the manager's arguments: checkbox lists kept whole (a plain dict would keep one value)."""
    form = await request.post()
    raw_tags = [v for v in form.getall("tag_ids", []) if isinstance(v, str)]
    if not all(v.isdecimal() and len(v) < 19 for v in raw_tags):
        raise InvalidInput("标签选择有误", field="tag_ids")
    return {
        "name": str(form.get("name", "")),
        "userids": [v for v in form.getall("userids", []) if isinstance(v, str)],
        "welcome_text": str(form.get("welcome_text", "")),
        "tag_ids": [int(v) for v in raw_tags],
    }


def code_id(request: web.Request) -> int:
    return path_id(request, what="渠道活码")


# ---- pages ----------------------------------------------------------------------------------------------------
async def channel_list(request: web.Request) -> web.Response:
    """渠道活码: every code with its totals (adds, still friends, deletes) and the form for a new one."""
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        codes = await list_channel_codes(conn)
        totals = await channel_totals(conn, [c.state for c in codes])
    people, tag_rows = await _choices(rt)
    names = dict(people)
    rows = [
        CodeRow(
            id=c.id,
            name=c.name,
            salespeople="、".join(names.get(u, u) for u in c.userids),
            adds=totals[c.state].adds,
            active=totals[c.state].active,
            deletes=totals[c.state].deletes,
            enabled=c.active,
            created_at=c.created_at,
        )
        for c in codes
    ]
    return render(request, "channels/list.html", page_context(request, "channels"), rows=rows, form=code_form(None, people, tag_rows))


async def channel_detail(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = page_context(request, "channels")
    today = local(rt.clock.now()).date()
    since = today - dt.timedelta(days=CHART_DAYS - 1)
    try:
        async with rt.db.read() as conn:
            code = await get_channel_code(conn, code_id(request))
            total = await channel_stats(conn, code.state)
            recent = await channel_stats(conn, code.state, since=since)
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有找到渠道活码", message=exc.message)
    people, tag_rows = await _choices(rt)
    by_day = {d.day: d for d in recent.days}
    days = [since + dt.timedelta(days=k) for k in range(CHART_DAYS)]
    qr = code.qr_code if code.qr_code and code.qr_code.startswith(("https://", "http://")) else ""
    view = CodeView(
        facts=(
            Fact("状态", "启用" if code.active else "已停用（二维码已失效，统计保留）"),
            Fact("state", code.state),
            Fact("二维码", "暂无二维码", link=qr),
            Fact("累计添加", total.total.adds),
            Fact("仍是好友", total.active),
            Fact("客户删除了销售", total.total.deleted_by_customer),
            Fact("销售删除了客户", total.total.deleted_by_salesperson),
            Fact("其他结束（转接等）", total.total.deleted_other),
        ),
        days=CHART_DAYS,
        adds=bar_geometry([(f"{d.month}/{d.day}", by_day[d].adds if d in by_day else 0) for d in days], title="每日新增好友"),
        deletes=bar_geometry(
            [(f"{d.month}/{d.day}", by_day[d].deletes if d in by_day else 0) for d in days], title="每日删除", color="#d93025", height=140
        ),
    )
    return render(request, "channels/detail.html", ctx, code=code, view=view, form=code_form(code, people, tag_rows))


async def channel_create(request: web.Request) -> web.Response:
    created: list[int] = []

    async def action() -> str:
        code = await channel_code_manager(request.app[RUNTIME]).create(request.app[RUNTIME], **await _fields(request))
        created.append(code.id)
        return f"已生成渠道活码“{code.name}”"

    response = await act(request, "/console/channels", action)
    if created:
        response.headers["Location"] = f"/console/channels/{created[0]}"
    return response


async def channel_update(request: web.Request) -> web.Response:
    cid = code_id(request)

    async def action() -> str:
        code = await channel_code_manager(request.app[RUNTIME]).update(request.app[RUNTIME], cid, await _fields(request))
        return f"已保存渠道活码“{code.name}”"

    return await act(request, f"/console/channels/{cid}", action)


async def channel_deactivate(request: web.Request) -> web.Response:
    cid = code_id(request)

    async def action() -> str:
        code = await channel_code_manager(request.app[RUNTIME]).deactivate(request.app[RUNTIME], cid)
        return f"已停用渠道活码“{code.name}”，二维码不再可用"

    return await act(request, f"/console/channels/{cid}", action)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.MARKETING_ROLES) -> None:
    """Mount the channel-code pages behind the console's session + role guard (marketers and admins)."""
    setup_templates(app)
    for method, path, handler in (
        ("GET", "/console/channels", channel_list),
        ("POST", "/console/channels", channel_create),
        ("GET", "/console/channels/{id}", channel_detail),
        ("POST", "/console/channels/{id}", channel_update),
        ("POST", "/console/channels/{id}/deactivate", channel_deactivate),
    ):
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
