"""/console/coupons — 优惠券 pages of the marketer's console: templates (create, edit), issuing to a customer, and the
issue/redeem stats from ``coupon_ledger``; plus the form parsing the campaign pages share (yuan → fen, Shanghai local
times → aware UTC). Mounted by :func:`scrm.console.campaigns.setup_routes` with the referral pages."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms, Validity, yuan_text
from scrm.campaigns.coupons.models import CouponKind
from scrm.campaigns.coupons.queries import ledger_stats
from scrm.console.render import PageContext, Safe, join, money, post_form, t, table
from scrm.console.web import _act, _actor, _ctx, _form, _page, path_id
from scrm.core.clock import SHANGHAI
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.money import parse_yuan

LEDGER_EVENTS = (("issue", "发放"), ("reserve", "占用"), ("redeem", "核销"), ("release", "退回"), ("expire", "过期"), ("revoke", "收回"))


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


def count_field(form: dict[str, str], name: str, label: str, *, maximum: int = 10_000_000) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdecimal() or int(raw) > maximum:
        raise InvalidInput(f"{label}需为 0 到 {maximum} 的整数 ({name} must be a whole number)", field=name)
    return int(raw)


def words_field(form: dict[str, str], name: str) -> frozenset[str]:
    return frozenset(w for w in form.get(name, "").replace("，", ",").replace(" ", ",").split(",") if w.strip())


def local_time(raw: str, name: str, *, end_of_day: bool = False) -> dt.datetime | None:
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
        count_field(form, "percent_off", "折扣", maximum=99) or 0,
        _yuan(form, "max_off", "最高减免"),
        _yuan(form, "threshold", "使用门槛") or 0,
        words_field(form, "skus"),
        words_field(form, "categories"),
        form.get("stackable") == "1",
    )
    return TemplateTerms(
        name=form.get("name", ""),
        rule=rule,
        budget_count=count_field(form, "budget_count", "发放数量预算"),
        budget_fen=_yuan(form, "budget_yuan", "金额预算"),
        per_customer_limit=count_field(form, "per_customer_limit", "每人限领", maximum=1000) or 1,
        validity=Validity(
            local_time(form.get("valid_from", ""), "valid_from"),
            local_time(form.get("valid_until", ""), "valid_until", end_of_day=True),
            count_field(form, "valid_days", "领取后有效天数", maximum=3650),
        ),
    )


def local_value(value: dt.datetime | None) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M") if value else ""


# ---- coupon pages -----------------------------------------------------------------------------------------
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
        vf=local_value(v.valid_from),
        vu=local_value(v.valid_until),
        stack=Safe(" checked") if r.stackable else "",
        active=active,
        submit="保存修改" if tpl else "创建优惠券",
    )
    return post_form(ctx, action, inner, cls="stack")


async def coupon_list(request: web.Request) -> web.Response:
    """优惠券: every template with its budget use and ledger counts, and the form for a new one."""
    rt = request.app[RUNTIME]
    templates = await coupons.list_templates(rt)
    async with rt.db.read() as conn:
        stats = await ledger_stats(conn)
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


def coupon_id(request: web.Request) -> int:
    return path_id(request, what="编号")


async def coupon_detail(request: web.Request) -> web.Response:
    """One template's stats (budget, ledger counts and amounts), the issue-to-a-customer form and the edit form."""
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "coupons")
    try:
        tpl = await coupons.get_template(rt, coupon_id(request))
    except NotFound as exc:
        return _page(request, ctx, "没有找到优惠券", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    async with rt.db.read() as conn:
        stats = (await ledger_stats(conn, tpl.id)).get(tpl.id, {})
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
    tid = coupon_id(request)

    async def action() -> str:
        tpl = await coupons.update_template(request.app[RUNTIME], tid, terms_from_form(form), active=form.get("active") == "1")
        return f"已保存优惠券“{tpl.name}”"

    return await _act(request, f"/console/coupons/{tid}", action)


async def coupon_issue(request: web.Request) -> web.Response:
    form = await _form(request)
    tid = coupon_id(request)

    async def action() -> str:
        cid = count_field(form, "customer_id", "客户编号", maximum=2**62)
        if not cid:
            raise InvalidInput("请填写客户编号 (customer id)", field="customer_id")
        coupon = await coupons.issue_coupon(request.app[RUNTIME], tid, cid, source="console", actor=_actor(request)[:64])
        return f"已发给客户 #{cid}：{coupon.label}（券码 {coupon.code}）"

    return await _act(request, f"/console/coupons/{tid}", action)
