"""/console/coupons — 优惠券 pages of the marketer's console: templates (create, edit), issuing to a customer or to a
segment (客群: the expression with a live count — ``static/segments.js`` → ``GET /console/segments/preview`` — or, without
JavaScript, 预览人数 posts the form back with the count; a refused expression comes back in the form with the reason
and the column, 400), and the issue/redeem stats from ``coupon_ledger``; plus the form parsing the campaign pages
share (yuan → fen, Shanghai local times → aware UTC). Mounted by :func:`scrm.console.campaigns.setup_routes` with the
referral pages."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from aiohttp import web

from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import DEFAULT_KIND, ISSUE_RUN_STATUS_ZH, KIND_ZH, CouponRule, TemplateTerms, Validity, yuan_text
from scrm.campaigns.coupons.queries import IssueRunView, ledger_stats
from scrm.console import auth
from scrm.console.customer_picker import resolve_customer_text
from scrm.console.pages import SECURITY_HEADERS, act, actor, money, page_context, path_id, read_form, render
from scrm.console.segments import SegmentPreview, segment_preview
from scrm.core.clock import SHANGHAI
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.ids import short_id
from scrm.core.money import parse_yuan

# The detail page runs static/segments.js (the live count of the segment form); everything else stays as strict.
CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'none'", "script-src 'self'")
LEDGER_EVENTS = (("issue", "发放"), ("reserve", "占用"), ("redeem", "核销"), ("release", "退回"), ("expire", "过期"), ("revoke", "收回"))


# ---- form parsing -----------------------------------------------------------------------------------------
def _yuan(form: dict[str, str], name: str, label: str) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        fen = parse_yuan(raw)
    except ValueError:
        raise InvalidInput(f"{label}请填写以元为单位的数字，最多两位小数，如 10 或 9.90", field=name) from None
    if fen < 0:
        raise InvalidInput(f"{label}不能为负数", field=name)
    return fen


def count_field(form: dict[str, str], name: str, label: str, *, maximum: int = 10_000_000) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdecimal() or int(raw) > maximum:
        raise InvalidInput(f"{label}需为 0 到 {maximum} 的整数", field=name)
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
        raise InvalidInput(f"{name} 需为日期时间，如 2026-12-31", field=name) from None
    if end_of_day and len(raw) == 10:
        value = value.replace(hour=23, minute=59, second=59)
    return (value if value.tzinfo else value.replace(tzinfo=SHANGHAI)).astimezone(dt.UTC)


def terms_from_form(form: dict[str, str]) -> TemplateTerms:
    """Template terms from the coupon form (amounts in yuan)."""
    kind = form.get("kind", DEFAULT_KIND)
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


# ---- view values ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CouponRow:
    """One template in the list: its terms, budget use and ledger counts."""

    id: int
    name: str
    label: str
    budget: str
    issued: int
    redeemed: int
    redeemed_fen: int
    active: bool


@dataclass(frozen=True)
class TemplateFormView:
    """The template form's field values (元, Shanghai local times); ``active`` is None on the new form."""

    name: str
    kind: str
    kinds: tuple[tuple[str, str], ...]
    threshold: str
    amount_off: str
    percent_off: int | str
    max_off: str
    skus: str
    categories: str
    budget_count: int | str
    budget_yuan: str
    per_customer_limit: int
    valid_days: int | str
    valid_from: str
    valid_until: str
    stackable: bool
    active: bool | None
    submit: str


def budget_text(tpl: coupons.CouponTemplate) -> str:
    b = tpl.budget
    parts = [f"{b.issued_count}/{b.budget_count} 张" if b.budget_count is not None else f"{b.issued_count} 张（不限）"]
    if b.budget_fen is not None:
        parts.append(f"{money(b.issued_fen)}/{money(b.budget_fen)}")
    return "，".join(parts)


def template_form(tpl: coupons.CouponTemplate | None) -> TemplateFormView:
    """The form for a new template (``tpl`` None) or for editing ``tpl``."""
    r = tpl.rule if tpl else CouponRule(DEFAULT_KIND)
    b, v = (tpl.budget, tpl.validity) if tpl else (None, Validity())

    def y(fen: int | None) -> str:
        return yuan_text(fen) if fen else ""

    return TemplateFormView(
        name=tpl.name if tpl else "",
        kind=r.kind,
        kinds=tuple(KIND_ZH.items()),
        threshold=y(r.threshold_fen),
        amount_off=y(r.amount_off_fen),
        percent_off=r.percent_off or "",
        max_off=y(r.max_off_fen),
        skus=",".join(sorted(r.skus)),
        categories=",".join(sorted(r.categories)),
        budget_count=b.budget_count if b and b.budget_count is not None else "",
        budget_yuan=y(b.budget_fen) if b else "",
        per_customer_limit=tpl.per_customer_limit if tpl else 1,
        valid_days=v.valid_days or "",
        valid_from=local_value(v.valid_from),
        valid_until=local_value(v.valid_until),
        stackable=r.stackable,
        active=tpl.active if tpl else None,
        submit="保存修改" if tpl else "创建优惠券",
    )


# ---- coupon pages -----------------------------------------------------------------------------------------
async def coupon_list(request: web.Request) -> web.Response:
    """优惠券: every template with its budget use and ledger counts, and the form for a new one."""
    rt = request.app[RUNTIME]
    templates = await coupons.list_templates(rt)
    async with rt.db.read() as conn:
        stats = await ledger_stats(conn)

    def n(tid: int, event: str) -> tuple[int, int]:
        return stats.get(tid, {}).get(event, (0, 0))

    rows = [
        CouponRow(x.id, x.name, x.rule.label, budget_text(x), n(x.id, "issue")[0], n(x.id, "redeem")[0], n(x.id, "redeem")[1], x.active)
        for x in templates
    ]
    return render(request, "coupons/list.html", page_context(request, "coupons"), rows=rows, form=template_form(None))


def coupon_id(request: web.Request) -> int:
    return path_id(request, what="编号")


@dataclass(frozen=True)
class IssueRunRow:
    """One distribution to a segment on the coupon's page: status in Chinese, counts, why it failed."""

    id: int
    run_ref: str
    segment: str
    requested_by: str
    status: str  # the stored value (for the badge class and tests)
    status_zh: str
    matched: int
    issued: int
    already: int
    skipped_limit: int
    skipped_budget: int
    failed: int
    problem: str  # why it stopped, or the first per-customer failures; "" when none
    created_at: dt.datetime
    finished_at: dt.datetime | None


def issue_run_row(run: IssueRunView) -> IssueRunRow:
    problem = run.error or "；".join(run.failures[:3])
    return IssueRunRow(
        run.id, run.run_ref, run.segment, run.requested_by, run.status, ISSUE_RUN_STATUS_ZH.get(run.status, run.status),
        run.matched, run.issued, run.already, run.skipped_limit, run.skipped_budget, run.failed, problem,
        run.created_at, run.finished_at,
    )  # fmt: skip


@dataclass(frozen=True)
class SegmentIssueForm:
    """The issue-to-a-segment form as typed (kept when it comes back with a count or a refusal) and its count."""

    segment: str = ""
    preview: SegmentPreview | None = None
    notify: bool = True  # 同时通知客户: each customer who gets a coupon is told in chat


async def coupon_detail(request: web.Request) -> web.Response:
    """One template's stats (budget, ledger counts and amounts), the issue forms (a customer, a segment) and the
    edit form."""
    return await _detail_page(request, SegmentIssueForm())


async def _detail_page(request: web.Request, segment_form: SegmentIssueForm, *, status: int = 200, error: str = "") -> web.Response:
    rt = request.app[RUNTIME]
    ctx = page_context(request, "coupons")
    try:
        tpl = await coupons.get_template(rt, coupon_id(request))
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有找到优惠券", message=exc.message)
    if error:
        ctx = dataclasses.replace(ctx, flash=("err", error))
    async with rt.db.read() as conn:
        stats = (await ledger_stats(conn, tpl.id)).get(tpl.id, {})
    ledger = [(zh, *stats.get(e, (0, 0))) for e, zh in LEDGER_EVENTS]
    return render(
        request,
        "coupons/detail.html",
        ctx,
        http_status=status,
        http_headers={"Content-Security-Policy": CSP},
        tpl=tpl,
        budget=budget_text(tpl),
        ledger=ledger,
        runs=[issue_run_row(r) for r in await coupons.list_issue_runs(rt, tpl.id)],
        form=template_form(tpl),
        segment_form=segment_form,
    )


async def coupon_create(request: web.Request) -> web.Response:
    form = await read_form(request)
    created: list[int] = []

    async def action() -> str:
        tpl = await coupons.create_template(request.app[RUNTIME], terms_from_form(form))
        created.append(tpl.id)
        return f"已创建优惠券“{tpl.name}”（{tpl.rule.label}）"

    response = await act(request, "/console/coupons", action)
    if created:
        response.headers["Location"] = f"/console/coupons/{created[0]}"
    return response


async def coupon_update(request: web.Request) -> web.Response:
    form = await read_form(request)
    tid = coupon_id(request)

    async def action() -> str:
        tpl = await coupons.update_template(request.app[RUNTIME], tid, terms_from_form(form), active=form.get("active") == "1")
        return f"已保存优惠券“{tpl.name}”"

    return await act(request, f"/console/coupons/{tid}", action)


async def coupon_issue(request: web.Request) -> web.Response:
    form = await read_form(request)
    tid = coupon_id(request)

    async def action() -> str:
        # the customer picker's field: "name #id", an identity, a unique name, or a bare customer id
        text = form.get("customer_id", "").strip()
        cid = await resolve_customer_text(request.app[RUNTIME], f"#{text}" if text.isdecimal() else text)
        coupon = await coupons.issue_coupon(request.app[RUNTIME], tid, cid, source="console", actor=actor(request)[:64], notify=True)
        return f"已发给客户 #{cid}：{coupon.label}（券码 {coupon.code}），并将在聊天中通知客户"

    return await act(request, f"/console/coupons/{tid}", action)


async def coupon_issue_segment(request: web.Request) -> web.Response:
    """预览人数 shows how many customers the expression picks, the form kept; 发给客群 checks the expression and the
    template and queues the distribution (one coupon per customer, within budget and the per-customer limit), then
    comes back with the count it was queued for — the run's row (发放记录: status, counts, why it failed) and the 发放
    figures on the page grow as the job issues. A refused
    expression comes back in the form with the reason and its column (400)."""
    rt = request.app[RUNTIME]
    form = await read_form(request)
    expression = form.get("segment", "")
    preview = await segment_preview(rt, expression)
    notify = form.get("notify") == "1"  # an unticked box is not sent at all
    typed = SegmentIssueForm(expression, preview, notify)
    if form.get("action") == "preview":
        return await _detail_page(request, typed)
    tid = coupon_id(request)
    try:
        run_ref = short_id(12)
        await coupons.queue_issue_to_segment(rt, tid, expression, run_ref=run_ref, requested_by=actor(request), notify=notify)
    except DomainError as exc:
        return await _detail_page(request, typed, status=400, error=exc.message)
    count = preview.count if preview is not None else 0
    response = web.Response(status=303, headers={"Location": f"/console/coupons/{tid}"})
    told = "，领到券的客户会收到聊天通知" if notify else "，不通知客户"
    auth.set_flash(request, response, "ok", f"已开始向客群发券：{count} 位客户（批次 {run_ref}），每人一张，超出预算或限领的不再发放{told}")
    return response
