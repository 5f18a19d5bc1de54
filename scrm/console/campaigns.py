"""/console/coupons and /console/campaigns — the marketer's pages: 优惠券 templates (create, edit, issue to a
customer, issue/redeem stats from ``coupon_ledger``; in ``coupon_pages.py``) and 裂变活动 referral campaigns (create, start/pause/end, a
stats page with the funnel as an SVG bar chart and the leaderboard).

Same building blocks as every console page: routes behind :func:`auth.protected` (marketer or admin, CSRF on
every POST), typed values into ``templates/coupons/`` and ``templates/campaigns/`` (:mod:`scrm.console.pages`), every
change through a campaigns service, POST → 303 → GET with a flash. Forms take yuan and Shanghai local times; the
services get fen and aware datetimes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.referral import queries as referral_queries
from scrm.campaigns.referral import services as referral_services
from scrm.campaigns.referral.domain import can_transition
from scrm.console import auth
from scrm.console.charts import BarChart, bar_geometry
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
from scrm.console.pages import act, forbidden, money, page_context, path_id, read_form, render, setup_templates
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME

CAMPAIGN_STATUS_ZH = {"draft": "草稿", "running": "进行中", "paused": "已暂停", "ended": "已结束"}
STATUS_ACTIONS = (("running", "启动 / 恢复", "primary"), ("paused", "暂停", ""), ("ended", "结束活动", "danger"))


# ---- view values ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    status: str
    goal: int
    window: str
    receivers: str


@dataclass(frozen=True)
class CampaignView:
    """A campaign's stats page: its status in Chinese, where its codes lead, the status buttons it allows
    ``(to, label, css class)``, the funnel chart and table, and the leaderboard rows."""

    status: str
    receivers: str
    actions: tuple[tuple[str, str, str], ...]
    chart: BarChart
    steps: list[tuple[object, ...]]
    leaders: list[tuple[object, ...]]


def campaign_id(request: web.Request) -> int:
    return path_id(request, what="编号")


def _receivers(c: referral_services.Campaign) -> str:
    """Where the codes lead: the salespeople of a 联系我 campaign, the groups of a group campaign."""
    return f"入群：{'、'.join(c.chat_ids)}" if c.kind == "group" else f"承接成员 {'、'.join(c.userids)}"


# ---- referral campaign pages ------------------------------------------------------------------------------
async def campaign_list(request: web.Request) -> web.Response:
    """裂变活动: every campaign with status and window, and the form for a new one."""
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        items = await referral_services.list_campaigns(conn)
    templates = await coupons.list_templates(rt, active=True)
    rows = [
        CampaignRow(
            c.id,
            c.name,
            CAMPAIGN_STATUS_ZH.get(c.status, c.status),
            c.goal,
            f"{local_value(c.starts_at).replace('T', ' ')} – {local_value(c.ends_at).replace('T', ' ')}",
            _receivers(c),
        )
        for c in items
    ]
    now = rt.clock.now()
    return render(
        request,
        "campaigns/list.html",
        page_context(request, "campaigns"),
        rows=rows,
        templates=[x for x in templates if x.active],
        starts=local_value(now),
        ends=local_value(now + dt.timedelta(days=30)),
    )


async def campaign_create(request: web.Request) -> web.Response:
    form = await read_form(request)
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

    response = await act(request, "/console/campaigns", action)
    if created:
        response.headers["Location"] = f"/console/campaigns/{created[0]}"
    return response


async def campaign_detail(request: web.Request) -> web.Response:
    """Stats: the funnel (codes → adds → qualified → rewarded → first orders) as a bar chart, revenue, the
    leaderboard, and the status buttons the current status allows."""
    rt = request.app[RUNTIME]
    ctx = page_context(request, "campaigns")
    try:
        async with rt.db.read() as conn:
            campaign = await referral_services.get_campaign(conn, campaign_id(request))
            funnel = await referral_queries.funnel(conn, campaign.id)
            leaders = await referral_queries.leaderboard(conn, campaign.id, limit=20)
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有找到活动", message=exc.message)
    steps = funnel.steps()
    step_rows: list[tuple[object, ...]] = [(s.label, s.count, "—" if s.rate is None else f"{s.rate:.0%}") for s in steps]
    step_rows.append(("好友首单金额", money(funnel.revenue_fen), ""))
    view = CampaignView(
        status=CAMPAIGN_STATUS_ZH.get(campaign.status, campaign.status),
        receivers=_receivers(campaign),
        actions=tuple(a for a in STATUS_ACTIONS if can_transition(campaign.status, a[0])),
        chart=bar_geometry([(s.label, s.count) for s in steps], title=f"{campaign.name} 转化漏斗", width=700, height=240),
        steps=step_rows,
        leaders=[
            (
                r["rank"],
                f"#{r['inviter_customer_id']} {r['name'] or ''}",
                r["qualified"],
                r["pending"],
                "是" if r["rewarded"] else "",
            )
            for r in leaders
        ],
    )
    return render(request, "campaigns/detail.html", ctx, campaign=campaign, view=view)


async def campaign_status(request: web.Request) -> web.Response:
    cid, target = campaign_id(request), request.query.get("to", "")

    async def action() -> str:
        if target not in CAMPAIGN_STATUS_ZH:
            raise InvalidInput("未知的活动状态", field="status")
        campaign = await referral_services.update_campaign(request.app[RUNTIME], cid, {"status": target})
        return f"活动“{campaign.name}”{CAMPAIGN_STATUS_ZH[campaign.status]}"

    return await act(request, f"/console/campaigns/{cid}", action)


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
    setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
