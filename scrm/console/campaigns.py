"""/console/coupons and /console/campaigns — the marketer's pages: 优惠券 templates (create, edit, issue to a
customer, issue/redeem stats from ``coupon_ledger``; in ``coupon_pages.py``) and 裂变活动 referral campaigns (create, start/pause/end, a
stats page with the funnel as an SVG bar chart and the leaderboard).

Same building blocks as :mod:`scrm.console.web`: routes behind :func:`auth.protected` (marketer or admin, CSRF on
every POST), HTML through :func:`render.t`, every change through a campaigns service, POST → 303 → GET with a
flash. Forms take yuan and Shanghai local times; the services get fen and aware datetimes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from aiohttp import web

from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.referral import queries as referral_queries
from scrm.campaigns.referral import services as referral_services
from scrm.campaigns.referral.domain import can_transition
from scrm.console import auth
from scrm.console.charts import bar_chart
from scrm.console.coupon_pages import (
    count_field,
    coupon_create,
    coupon_detail,
    coupon_issue,
    coupon_list,
    coupon_update,
    local_time,
    local_value,
    words_field,
)
from scrm.console.render import PageContext, Safe, button_form, join, money, post_form, t, table
from scrm.console.web import _act, _ctx, _form, _page, forbidden, path_id
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME

CAMPAIGN_STATUS_ZH = {"draft": "草稿", "running": "进行中", "paused": "已暂停", "ended": "已结束"}
STATUS_ACTIONS = (("running", "启动 / 恢复", "primary"), ("paused", "暂停", ""), ("ended", "结束活动", "danger"))


# ---- referral campaign pages ------------------------------------------------------------------------------
def _campaign_form(ctx: PageContext, templates: list[coupons.CouponTemplate], now: dt.datetime) -> Safe:
    options = join(
        t('<option value="{id}">{name}（{label}）</option>', id=x.id, name=x.name, label=x.rule.label) for x in templates if x.active
    )
    inner = t(
        '<label>活动名称<input name="name" required maxlength="64"></label>'
        '<label>邀请目标（有效好友数）<input name="goal" type="number" min="1" max="1000" required value="3"></label>'
        '<label>奖励优惠券<select name="reward_template_id" required>{options}</select></label>'
        '<label>类型<select name="kind"><option value="contact">好友裂变：每人一个联系我二维码</option>'
        '<option value="group">群裂变：每人一个加入群聊二维码</option></select></label>'
        '<label>承接成员 userid（好友裂变，逗号分隔）<input name="userids" maxlength="2000" placeholder="zhangsan,lisi"></label>'
        '<label>客户群 chat_id（群裂变，最多 5 个，逗号分隔）<input name="chat_ids" maxlength="400" placeholder="wrOgQh…"></label>'
        '<label>留存时长（小时，好友需保持添加）<input name="hold_hours" type="number" min="0" max="720" value="24"></label>'
        '<label>开始<input name="starts_at" type="datetime-local" required value="{start}"></label>'
        '<label>结束<input name="ends_at" type="datetime-local" required value="{end}"></label>'
        '<label>可参与客户（分群表达式，留空为全部）<input name="eligible_segment" maxlength="2000"></label>'
        '<label>海报文案<textarea name="poster_text" rows="3" maxlength="2000"></textarea></label>'
        '<label class="check"><input type="checkbox" name="start_now" value="1"> 创建后立即开始</label>'
        '<button type="submit" class="primary">创建活动</button>',
        options=options,
        start=local_value(now),
        end=local_value(now + dt.timedelta(days=30)),
    )
    return post_form(ctx, "/console/campaigns", inner, cls="stack")


def campaign_id(request: web.Request) -> int:
    return path_id(request, what="编号")


def _receivers(c: referral_services.Campaign) -> str:
    """Where the codes lead: the salespeople of a 联系我 campaign, the groups of a group campaign."""
    return f"入群：{'、'.join(c.chat_ids)}" if c.kind == "group" else f"承接成员 {'、'.join(c.userids)}"


async def campaign_list(request: web.Request) -> web.Response:
    """裂变活动: every campaign with status and window, and the form for a new one."""
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        items = await referral_services.list_campaigns(conn)
    templates = await coupons.list_templates(rt, active=True)
    ctx = _ctx(request, "campaigns")
    rows = [
        (
            t('<a href="/console/campaigns/{id}">{name}</a>', id=c.id, name=c.name),
            CAMPAIGN_STATUS_ZH.get(c.status, c.status),
            c.goal,
            f"{local_value(c.starts_at).replace('T', ' ')} – {local_value(c.ends_at).replace('T', ' ')}",
            _receivers(c),
        )
        for c in items
    ]
    form = (
        _campaign_form(ctx, templates, rt.clock.now())
        if templates
        else Safe('<p class="empty">请先<a href="/console/coupons">新建一个优惠券</a>作为奖励。</p>')
    )
    body = t(
        '{table}<section class="card"><h3>新建裂变活动</h3>{form}</section>',
        table=table(["活动", "状态", "目标", "时间", "承接"], rows, empty="还没有裂变活动"),
        form=form,
    )
    return _page(request, ctx, "裂变活动", body)


async def campaign_create(request: web.Request) -> web.Response:
    form = await _form(request)
    created: list[int] = []

    async def action() -> str:
        data: dict[str, Any] = {
            "name": form.get("name", ""),
            "goal": count_field(form, "goal", "邀请目标", maximum=1000),
            "reward_template_id": count_field(form, "reward_template_id", "奖励优惠券", maximum=2**62),
            "kind": form.get("kind", "contact"),
            "userids": sorted(words_field(form, "userids")),
            "hold_hours": count_field(form, "hold_hours", "留存时长", maximum=720),
            "starts_at": local_time(form.get("starts_at", ""), "starts_at"),
            "ends_at": local_time(form.get("ends_at", ""), "ends_at"),
            "eligible_segment": form.get("eligible_segment", ""),
            "poster_text": form.get("poster_text", ""),
            "status": "running" if form.get("start_now") == "1" else "draft",
        }
        if data["kind"] == "group":
            data["chat_ids"] = sorted(words_field(form, "chat_ids"))
        campaign = await referral_services.create_campaign(request.app[RUNTIME], data)
        created.append(campaign.id)
        return f"已创建裂变活动“{campaign.name}”（{CAMPAIGN_STATUS_ZH.get(campaign.status, campaign.status)}）"

    response = await _act(request, "/console/campaigns", action)
    if created:
        response.headers["Location"] = f"/console/campaigns/{created[0]}"
    return response


async def campaign_detail(request: web.Request) -> web.Response:
    """Stats: the funnel (codes → adds → qualified → rewarded → first orders) as a bar chart, revenue, the
    leaderboard, and the status buttons the current status allows."""
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "campaigns")
    try:
        async with rt.db.read() as conn:
            campaign = await referral_services.get_campaign(conn, campaign_id(request))
            funnel = await referral_queries.funnel(conn, campaign.id)
            leaders = await referral_queries.leaderboard(conn, campaign.id, limit=20)
    except NotFound as exc:
        return _page(request, ctx, "没有找到活动", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    steps = funnel.steps()
    chart = bar_chart([(s.label, s.count) for s in steps], title=f"{campaign.name} 转化漏斗", width=700, height=240)
    step_rows: list[tuple[str, object, str]] = [(s.label, s.count, "—" if s.rate is None else f"{s.rate:.0%}") for s in steps]
    step_rows.append(("好友首单金额", money(funnel.revenue_fen), ""))
    buttons = join(
        button_form(ctx, f"/console/campaigns/{campaign.id}/status?to={to}", label, cls=cls)
        for to, label, cls in STATUS_ACTIONS
        if can_transition(campaign.status, to)
    )
    board = table(
        ["名次", "邀请人", "有效邀请", "待确认", "已获奖励"],
        [
            (
                r["rank"],
                t("#{id} {n}", id=r["inviter_customer_id"], n=r["name"]),
                r["qualified"],
                r["pending"],
                "是" if r["rewarded"] else "",
            )
            for r in leaders
        ],
        empty="还没有人邀请好友",
    )
    body = t(
        '<p><a href="/console/campaigns">← 返回活动列表</a></p>'
        "<p>状态：<strong>{status}</strong> · 目标 {goal} 位好友 · 留存 {hold} 小时 · {users}</p><p>{buttons}</p>"
        '<section class="card chart">{chart}</section><h2>漏斗</h2>{steps}<h2>排行榜</h2>{board}',
        status=CAMPAIGN_STATUS_ZH.get(campaign.status, campaign.status),
        goal=campaign.goal,
        hold=campaign.hold_hours,
        users=_receivers(campaign),
        buttons=buttons,
        chart=chart,
        steps=table(["环节", "人数", "转化率"], step_rows),
        board=board,
    )
    return _page(request, ctx, f"裂变活动：{campaign.name}", body)


async def campaign_status(request: web.Request) -> web.Response:
    cid, target = campaign_id(request), request.query.get("to", "")

    async def action() -> str:
        if target not in CAMPAIGN_STATUS_ZH:
            raise InvalidInput("未知的活动状态 (unknown status)", field="status")
        campaign = await referral_services.update_campaign(request.app[RUNTIME], cid, {"status": target})
        return f"活动“{campaign.name}”{CAMPAIGN_STATUS_ZH[campaign.status]}"

    return await _act(request, f"/console/campaigns/{cid}", action)


# ---- wiring -----------------------------------------------------------------------------------------------
ROUTES = (
    ("GET", "/console/coupons", coupon_list),
    ("POST", "/console/coupons", coupon_create),
    ("GET", "/console/coupons/{id}", coupon_detail),
    ("POST", "/console/coupons/{id}", coupon_update),
    ("POST", "/console/coupons/{id}/issue", coupon_issue),
    ("GET", "/console/campaigns", campaign_list),
    ("POST", "/console/campaigns", campaign_create),
    ("GET", "/console/campaigns/{id}", campaign_detail),
    ("POST", "/console/campaigns/{id}/status", campaign_status),
)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.MARKETING_ROLES) -> None:
    """Mount the marketer's pages behind the console's sign-in (marketer or admin; CSRF on every POST)."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
