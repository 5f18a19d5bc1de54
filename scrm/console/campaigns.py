"""/console/coupons and /console/campaigns — the marketer's pages: 优惠券 templates (create, edit, issue to a
customer or a segment, issue/redeem stats from ``coupon_ledger``; in ``coupon_pages.py``) and 裂变活动 referral campaigns
(create, edit, start/pause/end, a stats page with the funnel as an SVG bar chart and the leaderboard). The edit form
offers what the campaign may still change: everything while a draft; once started only name, poster, end, eligible
segment and reward (the codes already out carry the rest). A refused edit comes back in the form, as typed, with the
reason (400).

Same building blocks as every console page: routes behind :func:`auth.protected` (marketer or admin, CSRF on
every POST), typed values into ``templates/coupons/`` and ``templates/campaigns/`` (:mod:`scrm.console.pages`), every
change through a campaigns service, POST → 303 → GET with a flash. Forms take yuan and Shanghai local times; the
services get fen and aware datetimes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Mapping
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
    coupon_issue_segment,
    coupon_list,
    coupon_update,
    local_time,
    local_value,
)
from scrm.console.pages import SECURITY_HEADERS, act, forbidden, money, page_context, path_id, read_form, render, setup_templates
from scrm.console.segments import SegmentPreview, segment_preview
from scrm.core.clock import local
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.crm.groups.queries import group_rows
from scrm.crm.staff.queries import salesperson_choices

# The detail page runs static/segments.js (the live count of the eligible segment); everything else stays as strict.
CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'none'", "script-src 'self'")
CAMPAIGN_STATUS_ZH = {"draft": "草稿", "running": "进行中", "paused": "已暂停", "ended": "已结束"}
STATUS_ACTIONS = (("running", "启动 / 恢复", "primary"), ("paused", "暂停", ""), ("ended", "结束活动", "danger"))
INVITES_PER_PAGE = 50


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
    invites: list[referral_queries.InviteRow]
    invites_total: int
    page: int
    prev: str
    next: str


@dataclass(frozen=True)
class CampaignEditForm:
    """The edit form's values — the campaign's own, or what was typed when it comes back refused — and which
    fields it offers (``draft``: all of them; else only those a started campaign may change)."""

    draft: bool
    kind: str
    name: str
    poster_text: str
    starts_at: str
    ends_at: str
    eligible_segment: str
    reward_template_id: str
    templates: tuple[tuple[str, str], ...]  # (id, "name（label）"): active templates and the current reward
    goal: str
    hold_hours: str
    userids: tuple[str, ...]  # ticked salespeople
    chat_ids: tuple[str, ...]  # ticked groups
    preview: SegmentPreview | None
    people: tuple[tuple[str, str], ...] = ()  # (userid, name) to pick from; a ticked one no longer listed is kept
    groups: tuple[tuple[str, str], ...] = ()  # (chat_id, name) to pick from


def edit_form(
    c: referral_services.Campaign,
    templates: list[coupons.CouponTemplate],
    typed: Mapping[str, str] | None,
    preview: SegmentPreview | None,
    names: Choices | None = None,
    picked: Mapping[str, tuple[str, ...]] | None = None,
) -> CampaignEditForm:
    """``picked``: the ticked salespeople / groups of a refused form (else the campaign's own)."""
    own = {
        "name": c.name, "poster_text": c.poster_text, "starts_at": local_value(c.starts_at), "ends_at": local_value(c.ends_at),
        "eligible_segment": c.eligible_segment, "reward_template_id": str(c.reward_template_id or ""), "goal": str(c.goal),
        "hold_hours": str(c.hold_hours),
    }  # fmt: skip
    values = {k: (typed.get(k, v) if typed is not None else v) for k, v in own.items()}
    choices = tuple((str(x.id), f"{x.name}（{x.rule.label}）") for x in templates if x.active or x.id == c.reward_template_id)
    userids = (picked or {}).get("userids", tuple(c.userids))
    chat_ids = (picked or {}).get("chat_ids", c.chat_ids)
    names = names or Choices([], [])
    # a salesperson or group the campaign names but the lists lack (left, dismissed) stays pickable, shown by id
    people = tuple(names.people) + tuple((u, u) for u in userids if u not in dict(names.people))
    groups = tuple(names.groups) + tuple((g, g) for g in chat_ids if g not in dict(names.groups))
    return CampaignEditForm(
        draft=c.status == "draft", kind=c.kind, templates=choices, preview=preview, userids=tuple(userids), chat_ids=tuple(chat_ids),
        people=people, groups=groups, **values,
    )  # fmt: skip


def campaign_id(request: web.Request) -> int:
    return path_id(request, what="编号")


@dataclass(frozen=True)
class Choices:
    """What the campaign form offers to pick by name: active salespeople (userid, name) and live customer groups
    (chat_id, name)."""

    people: list[tuple[str, str]]
    groups: list[tuple[str, str]]

    def person(self, userid: str) -> str:
        return dict(self.people).get(userid, userid)

    def group(self, chat_id: str) -> str:
        return dict(self.groups).get(chat_id, chat_id)


async def _choices(request: web.Request) -> Choices:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        people = await salesperson_choices(conn)
        groups = [(g.chat_id, g.name or g.chat_id) for g in await group_rows(conn, local(rt.clock.now()).date()) if g.dismissed_at is None]
    return Choices(people, groups)


async def _ticked(request: web.Request) -> dict[str, tuple[str, ...]]:
    """The pickers' ticked salespeople and groups (every value: a plain form dict keeps one), sorted, blanks out."""
    posted = await request.post()
    return {
        key: tuple(sorted({v.strip() for v in posted.getall(key, []) if isinstance(v, str) and v.strip()}))
        for key in ("userids", "chat_ids")
    }


def _receivers(c: referral_services.Campaign, names: Choices) -> str:
    """Where the codes lead: the salespeople of a 联系我 campaign, the groups of a group campaign (by name)."""
    if c.kind == "group":
        return f"入群：{'、'.join(names.group(x) for x in c.chat_ids)}"
    return f"承接成员 {'、'.join(names.person(u) for u in c.userids)}"


# ---- referral campaign pages ------------------------------------------------------------------------------
async def campaign_list(request: web.Request) -> web.Response:
    """裂变活动: every campaign with status and window, and the form for a new one."""
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        items = await referral_services.list_campaigns(conn)
    templates = await coupons.list_templates(rt, active=True)
    choices = await _choices(request)
    rows = [
        CampaignRow(
            c.id,
            c.name,
            CAMPAIGN_STATUS_ZH.get(c.status, c.status),
            c.goal,
            f"{local_value(c.starts_at).replace('T', ' ')} – {local_value(c.ends_at).replace('T', ' ')}",
            _receivers(c, choices),
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
        choices=choices,
        starts=local_value(now),
        ends=local_value(now + dt.timedelta(days=30)),
    )


async def campaign_create(request: web.Request) -> web.Response:
    form = await read_form(request)
    picked = await _ticked(request)
    created: list[int] = []

    async def action() -> str:
        data: dict[str, Any] = {
            "name": form.get("name", ""),
            "goal": count_field(form, "goal", "邀请目标", maximum=1000),
            "reward_template_id": count_field(form, "reward_template_id", "奖励优惠券", maximum=2**62),
            "kind": form.get("kind", "contact"),
            "userids": list(picked["userids"]),
            "hold_hours": count_field(form, "hold_hours", "留存时长", maximum=720),
            "starts_at": local_time(form.get("starts_at", ""), "starts_at"),
            "ends_at": local_time(form.get("ends_at", ""), "ends_at"),
            "eligible_segment": form.get("eligible_segment", ""),
            "poster_text": form.get("poster_text", ""),
            "status": "running" if form.get("start_now") == "1" else "draft",
        }
        if data["kind"] == "group":
            data["chat_ids"] = list(picked["chat_ids"])
        elif not data["userids"]:
            raise InvalidInput("请至少选择一位承接成员", field="userids")
        campaign = await referral_services.create_campaign(request.app[RUNTIME], data)
        created.append(campaign.id)
        return f"已创建裂变活动“{campaign.name}”（{CAMPAIGN_STATUS_ZH.get(campaign.status, campaign.status)}）"

    response = await act(request, "/console/campaigns", action)
    if created:
        response.headers["Location"] = f"/console/campaigns/{created[0]}"
    return response


async def campaign_detail(request: web.Request) -> web.Response:
    """Stats: the funnel (codes → adds → qualified → rewarded → first orders) as a bar chart, revenue, the
    leaderboard, each invite with why it counts or not (``?page=``), the status buttons the current status allows,
    and the edit form."""
    return await _detail_page(request, None, None)


async def _detail_page(
    request: web.Request,
    typed: Mapping[str, str] | None,
    preview: SegmentPreview | None,
    *,
    status: int = 200,
    error: str = "",
    picked: Mapping[str, tuple[str, ...]] | None = None,
) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = page_context(request, "campaigns")
    raw_page = request.query.get("page", "1")
    page = int(raw_page) if raw_page.isdecimal() and 0 < len(raw_page) < 6 and int(raw_page) > 0 else 1
    try:
        async with rt.db.read() as conn:
            campaign = await referral_services.get_campaign(conn, campaign_id(request))
            funnel = await referral_queries.funnel(conn, campaign.id)
            leaders = await referral_queries.leaderboard(conn, campaign.id, limit=20)
            invites = await referral_queries.invites(conn, campaign.id, limit=INVITES_PER_PAGE, offset=(page - 1) * INVITES_PER_PAGE)
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有找到活动", message=exc.message)
    if error:
        ctx = dataclasses.replace(ctx, flash=("err", error))
    templates = await coupons.list_templates(rt)
    steps = funnel.steps()
    step_rows: list[tuple[object, ...]] = [(s.label, s.count, "—" if s.rate is None else f"{s.rate:.0%}") for s in steps]
    step_rows.append(("好友首单金额", money(funnel.revenue_fen), ""))
    names = await _choices(request)
    view = CampaignView(
        status=CAMPAIGN_STATUS_ZH.get(campaign.status, campaign.status),
        receivers=_receivers(campaign, names),
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
        invites=invites.items,
        invites_total=invites.total,
        page=page,
        prev=f"/console/campaigns/{campaign.id}?page={page - 1}#invites" if page > 1 else "",
        next=f"/console/campaigns/{campaign.id}?page={page + 1}#invites" if invites.more else "",
    )
    return render(
        request,
        "campaigns/detail.html",
        ctx,
        http_status=status,
        http_headers={"Content-Security-Policy": CSP},
        campaign=campaign,
        view=view,
        form=edit_form(campaign, templates, typed, preview, names, picked),
    )


async def campaign_edit(request: web.Request) -> web.Response:
    """Save the edit form through ``update_campaign`` — only the fields the form offered (a started campaign's form
    offers name, poster, end, eligible segment and reward: what ``update_campaign`` lets a live one change).
    预览人数 shows how many customers the eligible segment picks, the form kept."""
    rt = request.app[RUNTIME]
    form = await read_form(request)
    ticked = await _ticked(request)
    cid = campaign_id(request)
    preview = await segment_preview(rt, form.get("eligible_segment", ""))
    if form.get("action") == "preview":
        return await _detail_page(request, form, preview, picked=ticked)
    try:
        async with rt.db.read() as conn:
            current = await referral_services.get_campaign(conn, cid)
        draft = current.status == "draft"
        changes: dict[str, Any] = {
            "name": form.get("name", ""),
            "poster_text": form.get("poster_text", ""),
            "ends_at": local_time(form.get("ends_at", ""), "ends_at"),
            "eligible_segment": form.get("eligible_segment", ""),
            "reward_template_id": count_field(form, "reward_template_id", "奖励优惠券", maximum=2**62),
        }
        if draft:
            changes |= {
                "goal": count_field(form, "goal", "邀请目标", maximum=1000),
                "hold_hours": count_field(form, "hold_hours", "留存时长", maximum=720),
                "starts_at": local_time(form.get("starts_at", ""), "starts_at"),
            }
            key = "chat_ids" if current.kind == "group" else "userids"
            changes[key] = list(ticked[key])
        if changes["reward_template_id"] is None and current.reward_tag_id is None:
            raise InvalidInput("请选择奖励优惠券", field="reward_template_id")
        if changes["reward_template_id"] is None:
            del changes["reward_template_id"]
        campaign = await referral_services.update_campaign(rt, cid, changes)
    except DomainError as exc:
        # A bad segment is said once, beside its field: the preview box under it already shows the error and where.
        shown_by_preview = preview is not None and bool(preview.error) and exc.details.get("field") == "eligible_segment"
        return await _detail_page(request, form, preview, status=400, error="" if shown_by_preview else exc.message, picked=ticked)
    response = web.Response(status=303, headers={"Location": f"/console/campaigns/{cid}"})
    auth.set_flash(request, response, "ok", f"已保存裂变活动“{campaign.name}”")
    return response


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
    ("POST", "/console/coupons/{id}/issue-segment", coupon_issue_segment),
    ("GET", "/console/campaigns", campaign_list),
    ("POST", "/console/campaigns", campaign_create),
    ("GET", "/console/campaigns/{id}", campaign_detail),
    ("POST", "/console/campaigns/{id}/status", campaign_status),
    ("POST", "/console/campaigns/{id}/edit", campaign_edit),
)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.MARKETING_ROLES) -> None:
    """Mount the marketer's pages behind the console's sign-in (marketer or admin; CSRF on every POST)."""
    setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
