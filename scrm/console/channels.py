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
from typing import Any

from aiohttp import web

from scrm.console import auth
from scrm.console.charts import bar_chart
from scrm.console.render import PageContext, Safe, button_form, join, post_form, t, table, when
from scrm.console.web import _act, _ctx, _page, forbidden, path_id
from scrm.core.clock import local
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
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


async def _choices(rt: Any) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """Active salespeople (userid, name) and live tags (id, "group / name") for the form's checkboxes."""
    async with rt.db.read() as conn:
        return await salesperson_choices(conn), await tag_choices(conn)


def _checkboxes(name: str, options: list[tuple[Any, str]], chosen: Collection[Any], empty: str) -> Safe:
    if not options:
        return t('<p class="hint">{e}</p>', e=empty)
    return join(
        t(
            '<label class="check"><input type="checkbox" name="{n}" value="{v}"{c}> {label}</label>',
            n=name,
            v=value,
            label=label,
            c=Safe(" checked") if value in chosen else "",
        )
        for value, label in options
    )


def _code_form(
    ctx: PageContext, action: str, code: ChannelCode | None, people: list[tuple[str, str]], tag_rows: list[tuple[int, str]]
) -> Safe:
    inner = t(
        '<label>渠道名称<input name="name" required maxlength="64" value="{name}" placeholder="如：2026 春季展会"></label>'
        "<fieldset><legend>接待销售（扫码后添加谁，可多选）</legend>{people}</fieldset>"
        "<label>欢迎语（客户添加后 20 秒内自动发送，留空则不发）"
        '<textarea name="welcome_text" maxlength="1000" rows="3">{welcome}</textarea></label>'
        "<fieldset><legend>自动标签</legend>{tags}</fieldset>"
        '<button type="submit" class="primary">{submit}</button>',
        name=code.name if code else "",
        people=_checkboxes("userids", people, code.userids if code else (), "还没有同步企业成员：先运行 python run.py sync"),
        welcome=code.welcome_text if code else "",
        tags=_checkboxes("tag_ids", tag_rows, code.tag_ids if code else (), "还没有标签"),
        submit="保存修改" if code else "生成渠道活码",
    )
    return post_form(ctx, action, inner, cls="stack")


async def _fields(request: web.Request) -> dict[str, Any]:
    """The form as the manager's arguments: checkbox lists kept whole (a plain dict would keep one value)."""
    form = await request.post()
    raw_tags = [v for v in form.getall("tag_ids", []) if isinstance(v, str)]
    if not all(v.isdecimal() and len(v) < 19 for v in raw_tags):
        raise InvalidInput("标签选择有误 (tag_ids must be tag ids)", field="tag_ids")
    return {
        "name": str(form.get("name", "")),
        "userids": [v for v in form.getall("userids", []) if isinstance(v, str)],
        "welcome_text": str(form.get("welcome_text", "")),
        "tag_ids": [int(v) for v in raw_tags],
    }


def _id(request: web.Request) -> int:
    return path_id(request, what="渠道活码")


# ---- pages ----------------------------------------------------------------------------------------------------
async def channel_list(request: web.Request) -> web.Response:
    """渠道活码: every code with its totals (adds, still friends, deletes) and the form for a new one."""
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "channels")
    async with rt.db.read() as conn:
        codes = await list_channel_codes(conn)
        totals = await channel_totals(conn, [c.state for c in codes])
    people, tag_rows = await _choices(rt)
    names = dict(people)
    rows = [
        (
            t('<a href="/console/channels/{id}">{name}</a>', id=c.id, name=c.name),
            "、".join(names.get(u, u) for u in c.userids),
            totals[c.state].adds,
            totals[c.state].active,
            totals[c.state].deletes,
            "启用" if c.active else "已停用",
            when(c.created_at),
        )
        for c in codes
    ]
    body = t(
        '{table}<section class="card"><h3>新建渠道活码</h3>{form}</section>',
        table=table(
            ["渠道", "接待销售", "累计添加", "仍是好友", "已删除", "状态", "创建时间"], rows, empty="还没有渠道活码，先在下面新建一个"
        ),
        form=_code_form(ctx, "/console/channels", None, people, tag_rows),
    )
    return _page(request, ctx, "渠道活码", body)


async def channel_detail(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "channels")
    today = local(rt.clock.now()).date()
    since = today - dt.timedelta(days=CHART_DAYS - 1)
    try:
        async with rt.db.read() as conn:
            code = await get_channel_code(conn, _id(request))
            total = await channel_stats(conn, code.state)
            recent = await channel_stats(conn, code.state, since=since)
    except NotFound as exc:
        return _page(request, ctx, "没有找到渠道活码", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    people, tag_rows = await _choices(rt)
    by_day = {d.day: d for d in recent.days}
    days = [since + dt.timedelta(days=k) for k in range(CHART_DAYS)]
    adds = bar_chart([(f"{d.month}/{d.day}", by_day[d].adds if d in by_day else 0) for d in days], title="每日新增好友")
    deletes = bar_chart(
        [(f"{d.month}/{d.day}", by_day[d].deletes if d in by_day else 0) for d in days], title="每日删除", color="#d93025", height=140
    )
    qr = (
        t('<a href="{u}" rel="noopener" target="_blank">打开二维码图片</a>（可下载后印在展架、包裹卡上）', u=code.qr_code)
        if code.qr_code and code.qr_code.startswith(("https://", "http://"))
        else Safe("暂无二维码")
    )
    facts = table(
        ["项目", "数值"],
        [
            ("状态", "启用" if code.active else "已停用（二维码已失效，统计保留）"),
            ("state", code.state),
            ("二维码", qr),
            ("累计添加", total.total.adds),
            ("仍是好友", total.active),
            ("客户删除了销售", total.total.deleted_by_customer),
            ("销售删除了客户", total.total.deleted_by_salesperson),
            ("其他结束（转接等）", total.total.deleted_other),
        ],
    )
    manage = (
        t(
            '<div class="grid"><section class="card"><h3>修改</h3>{edit}</section><section class="card"><h3>停用</h3>'
            '<p class="hint">停用后企业微信中的联系方式被删除，二维码不再可用；历史统计保留。</p>{off}</section></div>',
            edit=_code_form(ctx, f"/console/channels/{code.id}", code, people, tag_rows),
            off=button_form(ctx, f"/console/channels/{code.id}/deactivate", "停用此渠道活码", cls="danger"),
        )
        if code.active
        else Safe("")
    )
    body = t(
        '<p><a href="/console/channels">← 返回渠道活码列表</a></p>{facts}<h2>近{n}天新增</h2><div class="card">{adds}</div>'
        '<h2>近{n}天删除</h2><div class="card">{deletes}</div>{manage}',
        facts=facts,
        n=CHART_DAYS,
        adds=adds,
        deletes=deletes,
        manage=manage,
    )
    return _page(request, ctx, f"渠道活码：{code.name}", body)


async def channel_create(request: web.Request) -> web.Response:
    created: list[int] = []

    async def action() -> str:
        code = await channel_code_manager().create(request.app[RUNTIME], **await _fields(request))
        created.append(code.id)
        return f"已生成渠道活码“{code.name}”"

    response = await _act(request, "/console/channels", action)
    if created:
        response.headers["Location"] = f"/console/channels/{created[0]}"
    return response


async def channel_update(request: web.Request) -> web.Response:
    code_id = _id(request)

    async def action() -> str:
        code = await channel_code_manager().update(request.app[RUNTIME], code_id, await _fields(request))
        return f"已保存渠道活码“{code.name}”"

    return await _act(request, f"/console/channels/{code_id}", action)


async def channel_deactivate(request: web.Request) -> web.Response:
    code_id = _id(request)

    async def action() -> str:
        code = await channel_code_manager().deactivate(request.app[RUNTIME], code_id)
        return f"已停用渠道活码“{code.name}”，二维码不再可用"

    return await _act(request, f"/console/channels/{code_id}", action)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.MARKETING_ROLES) -> None:
    """Mount the channel-code pages behind the console's session + role guard (marketers and admins)."""
    for method, path, handler in (
        ("GET", "/console/channels", channel_list),
        ("POST", "/console/channels", channel_create),
        ("GET", "/console/channels/{id}", channel_detail),
        ("POST", "/console/channels/{id}", channel_update),
        ("POST", "/console/channels/{id}/deactivate", channel_deactivate),
    ):
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
