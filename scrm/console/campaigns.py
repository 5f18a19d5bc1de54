"""/console/coupons and /console/campaigns — the marketer's pages: 优惠券 templates (create, edit, issue to a
customer, issue/redeem stats from ``coupon_ledger``) and 裂变活动 referral campaigns (create, start/pause/end, a
stats page with the funnel as an SVG bar chart and the leaderboard).

Same building blocks as :mod:`scrm.console.web`: routes behind :func:`auth.protected` (marketer or admin, CSRF on
every POST), HTML through :func:`render.t`, every change through a campaigns service, POST → 303 → GET with a
flash. Forms take yuan and Shanghai local times; the services get fen and aware datetimes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from scrm.campaigns import coupons, referral
from scrm.campaigns.coupon_domain import CouponRule, TemplateTerms, Validity, yuan_text
from scrm.campaigns.models import CouponKind, coupon_ledger
from scrm.campaigns.models import coupons as coupon_rows
from scrm.campaigns.referral_domain import can_transition
from scrm.console import auth
from scrm.console.charts import bar_chart
from scrm.console.render import PageContext, Safe, button_form, join, money, post_form, t, table
from scrm.console.web import _act, _actor, _ctx, _form, _page, forbidden
from scrm.core.clock import SHANGHAI
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.money import parse_yuan
from scrm.web.keys import RUNTIME

LEDGER_EVENTS = (("issue", "发放"), ("reserve", "占用"), ("redeem", "核销"), ("release", "退回"), ("expire", "过期"), ("revoke", "收回"))
CAMPAIGN_STATUS_ZH = {"draft": "草稿", "running": "进行中", "paused": "已暂停", "ended": "已结束"}
STATUS_ACTIONS = (("running", "启动 / 恢复", "primary"), ("paused", "暂停", ""), ("ended", "结束活动", "danger"))


# ---- form parsing -----------------------------------------------------------------------------------------
def _yuan(form: dict[str, str], name: str, label: str) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        fen = parse_yuan(raw)
    except ValueError:
        raise InvalidInput(f"{label}需为金额，如 10 或 9.90 ({name} must be an amount in yuan)", field=name) from None
    if fen < 0:
        raise InvalidInput(f"{label}不能为负数 ({name} must not be negative)", field=name)
    return fen


def _count(form: dict[str, str], name: str, label: str, *, maximum: int = 10_000_000) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdecimal() or int(raw) > maximum:
        raise InvalidInput(f"{label}需为 0 到 {maximum} 的整数 ({name} must be a whole number)", field=name)
    return int(raw)


def _words(form: dict[str, str], name: str) -> frozenset[str]:
    return frozenset(w for w in form.get(name, "").replace("，", ",").replace(" ", ",").split(",") if w.strip())


def _local_time(raw: str, name: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """``2026-12-31`` or ``2026-12-31T18:00`` in Shanghai time → aware UTC; a bare date at the day's end if asked."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} 需为日期时间，如 2026-12-31 ({name} must be a date)", field=name) from None
    if end_of_day and len(raw) == 10:
        value = value.replace(hour=23, minute=59, second=59)
    return (value if value.tzinfo else value.replace(tzinfo=SHANGHAI)).astimezone(dt.UTC)


def terms_from_form(form: dict[str, str]) -> TemplateTerms:
    """Template terms from the coupon form (amounts in yuan)."""
    kind = form.get("kind", CouponKind.FIXED)
    rule = CouponRule(
        kind,
        _yuan(form, "amount_off", "减免金额") or 0,
        _count(form, "percent_off", "折扣", maximum=99) or 0,
        _yuan(form, "max_off", "最高减免"),
        _yuan(form, "threshold", "使用门槛") or 0,
        _words(form, "skus"),
        _words(form, "categories"),
        form.get("stackable") == "1",
    )
    return TemplateTerms(
        name=form.get("name", ""),
        rule=rule,
        budget_count=_count(form, "budget_count", "发放数量预算"),
        budget_fen=_yuan(form, "budget_yuan", "金额预算"),
        per_customer_limit=_count(form, "per_customer_limit", "每人限领", maximum=1000) or 1,
        validity=Validity(
            _local_time(form.get("valid_from", ""), "valid_from"),
            _local_time(form.get("valid_until", ""), "valid_until", end_of_day=True),
            _count(form, "valid_days", "领取后有效天数", maximum=3650),
        ),
    )


def _local_value(value: dt.datetime | None) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M") if value else ""


# ---- coupon pages -----------------------------------------------------------------------------------------
async def ledger_stats(rt: Any, template_id: int | None = None) -> dict[int, dict[str, tuple[int, int]]]:
    """Per template: ``event → (count, amount_fen)`` from the coupon ledger."""
    q = (
        sa.select(
            coupon_rows.c.template_id, coupon_ledger.c.event, sa.func.count(), sa.func.coalesce(sa.func.sum(coupon_ledger.c.amount_fen), 0)
        )
        .select_from(coupon_ledger.join(coupon_rows, coupon_rows.c.id == coupon_ledger.c.coupon_id))
        .group_by(coupon_rows.c.template_id, coupon_ledger.c.event)
    )
    if template_id is not None:
        q = q.where(coupon_rows.c.template_id == template_id)
    out: dict[int, dict[str, tuple[int, int]]] = {}
    async with rt.db.read() as conn:
        for tid, event, n, fen in await conn.execute(q):
            out.setdefault(int(tid), {})[event] = (int(n), int(fen))
    return out


def _budget_text(tpl: coupons.CouponTemplate) -> str:
    b = tpl.budget
    parts = [f"{b.issued_count}/{b.budget_count} 张" if b.budget_count is not None else f"{b.issued_count} 张（不限）"]
    if b.budget_fen is not None:
        parts.append(f"{money(b.issued_fen)}/{money(b.budget_fen)}")
    return "，".join(parts)


def _template_form(ctx: PageContext, action: str, tpl: coupons.CouponTemplate | None) -> Safe:
    r = tpl.rule if tpl else CouponRule(CouponKind.FIXED)
    b, v = (tpl.budget, tpl.validity) if tpl else (None, Validity())

    def y(fen: int | None) -> str:
        return yuan_text(fen) if fen else ""

    kinds = join(
        t('<option value="{k}"{s}>{zh}</option>', k=k, zh=zh, s=Safe(" selected") if r.kind == k else "")
        for k, zh in ((CouponKind.FIXED, "满减"), (CouponKind.PERCENT, "折扣"))
    )
    active = (
        t('<label class="check"><input type="checkbox" name="active" value="1"{c}> 启用</label>', c=Safe(" checked") if tpl.active else "")
        if tpl
        else ""
    )
    inner = t(
        '<label>名称<input name="name" required maxlength="64" value="{name}"></label>'
        '<label>类型<select name="kind">{kinds}</select></label>'
        '<label>使用门槛（元，满多少可用）<input name="threshold" inputmode="decimal" value="{threshold}" placeholder="100"></label>'
        '<label>减免金额（元，满减）<input name="amount_off" inputmode="decimal" value="{amount}" placeholder="10"></label>'
        '<label>折扣（减百分之几，折扣券：10 = 9折）<input name="percent_off" type="number" min="1" max="99" value="{pct}"></label>'
        '<label>最高减免（元，折扣券必填）<input name="max_off" inputmode="decimal" value="{cap}"></label>'
        '<label>限定商品 SKU（逗号分隔，留空不限）<input name="skus" value="{skus}" maxlength="2000"></label>'
        '<label>限定品类（逗号分隔）<input name="categories" value="{cats}" maxlength="500"></label>'
        '<label>发放数量预算（张，留空不限）<input name="budget_count" type="number" min="1" value="{bc}"></label>'
        '<label>金额预算（元，按面额计，留空不限）<input name="budget_yuan" inputmode="decimal" value="{bf}"></label>'
        '<label>每人限领<input name="per_customer_limit" type="number" min="1" value="{limit}"></label>'
        '<label>领取后有效天数<input name="valid_days" type="number" min="1" value="{days}"></label>'
        '<label>生效时间<input name="valid_from" type="datetime-local" value="{vf}"></label>'
        '<label>截止日期<input name="valid_until" type="datetime-local" value="{vu}"></label>'
        '<label class="check"><input type="checkbox" name="stackable" value="1"{stack}> 可与其他可叠加券同时使用</label>'
        '{active}<button type="submit" class="primary">{submit}</button>',
        name=tpl.name if tpl else "",
        kinds=kinds,
        threshold=y(r.threshold_fen),
        amount=y(r.amount_off_fen),
        pct=r.percent_off or "",
        cap=y(r.max_off_fen),
        skus=",".join(sorted(r.skus)),
        cats=",".join(sorted(r.categories)),
        bc=b.budget_count if b and b.budget_count is not None else "",
        bf=y(b.budget_fen) if b else "",
        limit=tpl.per_customer_limit if tpl else 1,
        days=v.valid_days or "",
        vf=_local_value(v.valid_from),
        vu=_local_value(v.valid_until),
        stack=Safe(" checked") if r.stackable else "",
        active=active,
        submit="保存修改" if tpl else "创建优惠券",
    )
    return post_form(ctx, action, inner, cls="stack")


async def coupon_list(request: web.Request) -> web.Response:
    """优惠券: every template with its budget use and ledger counts, and the form for a new one."""
    rt = request.app[RUNTIME]
    templates = await coupons.list_templates(rt)
    stats = await ledger_stats(rt)
    ctx = _ctx(request, "coupons")

    def n(tid: int, event: str) -> int:
        return stats.get(tid, {}).get(event, (0, 0))[0]

    rows = [
        (
            t('<a href="/console/coupons/{id}">{name}</a>', id=x.id, name=x.name),
            x.rule.label,
            _budget_text(x),
            n(x.id, "issue"),
            n(x.id, "redeem"),
            money(stats.get(x.id, {}).get("redeem", (0, 0))[1]),
            "启用" if x.active else "停用",
        )
        for x in templates
    ]
    body = t(
        '{table}<section class="card"><h3>新建优惠券</h3>{form}</section>',
        table=table(["名称", "规则", "预算使用", "已发放", "已核销", "核销优惠", "状态"], rows, empty="还没有优惠券，先在下面新建一个"),
        form=_template_form(ctx, "/console/coupons", None),
    )
    return _page(request, ctx, "优惠券", body)


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise NotFound("没有这个编号 (no such id)")
    return int(raw)


async def coupon_detail(request: web.Request) -> web.Response:
    """One template's stats (budget, ledger counts and amounts), the issue-to-a-customer form and the edit form."""
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "coupons")
    try:
        tpl = await coupons.get_template(rt, _id(request))
    except NotFound as exc:
        return _page(request, ctx, "没有找到优惠券", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    stats = (await ledger_stats(rt, tpl.id)).get(tpl.id, {})
    ledger = table(["券流水", "张数", "金额"], [(zh, stats.get(e, (0, 0))[0], money(stats.get(e, (0, 0))[1])) for e, zh in LEDGER_EVENTS])
    issue = post_form(
        ctx,
        f"/console/coupons/{tpl.id}/issue",
        Safe(
            '<label>客户编号<input name="customer_id" required inputmode="numeric" placeholder="如 12"></label>'
            '<button type="submit" class="primary">发给客户</button>'
        ),
        cls="row",
    )
    body = t(
        '<p><a href="/console/coupons">← 返回优惠券列表</a></p><p><strong>{label}</strong> · 预算使用：{budget}</p>'
        "{ledger}"
        '<div class="grid"><section class="card"><h3>发券</h3>{issue}</section>'
        '<section class="card"><h3>修改</h3>{edit}</section></div>',
        label=tpl.rule.label,
        budget=_budget_text(tpl),
        ledger=ledger,
        issue=issue,
        edit=_template_form(ctx, f"/console/coupons/{tpl.id}", tpl),
    )
    return _page(request, ctx, f"优惠券：{tpl.name}", body)


async def coupon_create(request: web.Request) -> web.Response:
    form = await _form(request)
    created: list[int] = []

    async def action() -> str:
        tpl = await coupons.create_template(request.app[RUNTIME], terms_from_form(form))
        created.append(tpl.id)
        return f"已创建优惠券“{tpl.name}”（{tpl.rule.label}）"

    response = await _act(request, "/console/coupons", action)
    if created:
        response.headers["Location"] = f"/console/coupons/{created[0]}"
    return response


async def coupon_update(request: web.Request) -> web.Response:
    form = await _form(request)
    tid = _id(request)

    async def action() -> str:
        tpl = await coupons.update_template(request.app[RUNTIME], tid, terms_from_form(form), active=form.get("active") == "1")
        return f"已保存优惠券“{tpl.name}”"

    return await _act(request, f"/console/coupons/{tid}", action)


async def coupon_issue(request: web.Request) -> web.Response:
    form = await _form(request)
    tid = _id(request)

    async def action() -> str:
        cid = _count(form, "customer_id", "客户编号", maximum=2**62)
        if not cid:
            raise InvalidInput("请填写客户编号 (customer id)", field="customer_id")
        coupon = await coupons.issue_coupon(request.app[RUNTIME], tid, cid, source="console", actor=_actor(request)[:64])
        return f"已发给客户 #{cid}：{coupon.label}（券码 {coupon.code}）"

    return await _act(request, f"/console/coupons/{tid}", action)


# ---- referral campaign pages ------------------------------------------------------------------------------
def _campaign_form(ctx: PageContext, templates: list[coupons.CouponTemplate], now: dt.datetime) -> Safe:
    options = join(
        t('<option value="{id}">{name}（{label}）</option>', id=x.id, name=x.name, label=x.rule.label) for x in templates if x.active
    )
    inner = t(
        '<label>活动名称<input name="name" required maxlength="64"></label>'
        '<label>邀请目标（有效好友数）<input name="goal" type="number" min="1" max="1000" required value="3"></label>'
        '<label>奖励优惠券<select name="reward_template_id" required>{options}</select></label>'
        '<label>承接成员 userid（逗号分隔）<input name="userids" required maxlength="2000" placeholder="zhangsan,lisi"></label>'
        '<label>留存时长（小时，好友需保持添加）<input name="hold_hours" type="number" min="0" max="720" value="24"></label>'
        '<label>开始<input name="starts_at" type="datetime-local" required value="{start}"></label>'
        '<label>结束<input name="ends_at" type="datetime-local" required value="{end}"></label>'
        '<label>可参与客户（分群表达式，留空为全部）<input name="eligible_segment" maxlength="2000"></label>'
        '<label>海报文案<textarea name="poster_text" rows="3" maxlength="2000"></textarea></label>'
        '<label class="check"><input type="checkbox" name="start_now" value="1"> 创建后立即开始</label>'
        '<button type="submit" class="primary">创建活动</button>',
        options=options,
        start=_local_value(now),
        end=_local_value(now + dt.timedelta(days=30)),
    )
    return post_form(ctx, "/console/campaigns", inner, cls="stack")


async def campaign_list(request: web.Request) -> web.Response:
    """裂变活动: every campaign with status and window, and the form for a new one."""
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        items = await referral.list_campaigns(conn)
    templates = await coupons.list_templates(rt, active=True)
    ctx = _ctx(request, "campaigns")
    rows = [
        (
            t('<a href="/console/campaigns/{id}">{name}</a>', id=c.id, name=c.name),
            CAMPAIGN_STATUS_ZH.get(c.status, c.status),
            c.goal,
            f"{_local_value(c.starts_at).replace('T', ' ')} – {_local_value(c.ends_at).replace('T', ' ')}",
            "、".join(c.userids),
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
        table=table(["活动", "状态", "目标", "时间", "承接成员"], rows, empty="还没有裂变活动"),
        form=form,
    )
    return _page(request, ctx, "裂变活动", body)


async def campaign_create(request: web.Request) -> web.Response:
    form = await _form(request)
    created: list[int] = []

    async def action() -> str:
        data: dict[str, Any] = {
            "name": form.get("name", ""),
            "goal": _count(form, "goal", "邀请目标", maximum=1000),
            "reward_template_id": _count(form, "reward_template_id", "奖励优惠券", maximum=2**62),
            "userids": sorted(_words(form, "userids")),
            "hold_hours": _count(form, "hold_hours", "留存时长", maximum=720),
            "starts_at": _local_time(form.get("starts_at", ""), "starts_at"),
            "ends_at": _local_time(form.get("ends_at", ""), "ends_at"),
            "eligible_segment": form.get("eligible_segment", ""),
            "poster_text": form.get("poster_text", ""),
            "status": "running" if form.get("start_now") == "1" else "draft",
        }
        campaign = await referral.create_campaign(request.app[RUNTIME], data)
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
            campaign = await referral.get_campaign(conn, _id(request))
            funnel = await referral.funnel(conn, campaign.id)
            leaders = await referral.leaderboard(conn, campaign.id, limit=20)
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
        "<p>状态：<strong>{status}</strong> · 目标 {goal} 位好友 · 留存 {hold} 小时 · 承接成员 {users}</p><p>{buttons}</p>"
        '<section class="card chart">{chart}</section><h2>漏斗</h2>{steps}<h2>排行榜</h2>{board}',
        status=CAMPAIGN_STATUS_ZH.get(campaign.status, campaign.status),
        goal=campaign.goal,
        hold=campaign.hold_hours,
        users="、".join(campaign.userids),
        buttons=buttons,
        chart=chart,
        steps=table(["环节", "人数", "转化率"], step_rows),
        board=board,
    )
    return _page(request, ctx, f"裂变活动：{campaign.name}", body)


async def campaign_status(request: web.Request) -> web.Response:
    cid, target = _id(request), request.query.get("to", "")

    async def action() -> str:
        if target not in CAMPAIGN_STATUS_ZH:
            raise InvalidInput("未知的活动状态 (unknown status)", field="status")
        campaign = await referral.update_campaign(request.app[RUNTIME], cid, {"status": target})
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
