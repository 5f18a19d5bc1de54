"""/console/leads — 线索: the leads a person sees (their own, their team's, everyone's), a lead's page with its moves
and follow-ups, typing one in and importing a file; /console/pool — 公海: claim within the day's cap;
/console/follow-ups — 跟进: my next contacts due and overdue; /console/lead-rules — 线索分配 (admin): assignment rules
and the pool's rules. The rules live in :mod:`scrm.sales.leads` and :mod:`scrm.sales.followups`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.pages import act, page_context, path_id, render
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.money import parse_yuan
from scrm.crm.staff.queries import salesperson_choices
from scrm.crm.tags.queries import tag_choices
from scrm.governance.fields.services import rules_for
from scrm.sales.followups import queries as follow_up_queries
from scrm.sales.followups import services as follow_ups
from scrm.sales.followups.domain import KIND_NAMES_ZH
from scrm.sales.leads import domain, ownership, queries, rules, services
from scrm.sales.leads.domain import AssignMethod, LeadSource, LeadStatus
from scrm.sales.leads.files import TEMPLATE_HEADER, LeadFileError, import_leads

VIEWS = {"open": "跟进中", "converted": "已转化", "invalid": "无效", "all": "全部"}


async def _names(request: web.Request) -> dict[str, str]:
    async with request.app[RUNTIME].db.read() as conn:
        return await queries.member_names(conn)


async def leads_list(request: web.Request) -> web.Response:
    """线索: the leads in this person's scope by status, searchable; the forms to type one in or import a file."""
    rt = request.app[RUNTIME]
    person = await services.acting_person(rt)
    view = request.query.get("view", "open")
    view = view if view in VIEWS else "open"
    source = request.query.get("source", "")
    source = source if source in domain.SOURCE_NAMES_ZH else ""
    q = request.query.get("q", "").strip()[:64]
    before_raw = request.query.get("before", "")
    before = int(before_raw) if before_raw.isdecimal() and len(before_raw) < 19 else None
    async with rt.db.read() as conn:
        page = await queries.list_leads(
            conn, person.scope, status=None if view == "all" else view, source=source or None, q=q, before=before, limit=50
        )
        counts = await queries.status_counts(conn, person.scope)
        names = await queries.member_names(conn)
        members = await salesperson_choices(conn)
    fields = await rules_for(rt)
    return render(
        request,
        "sales/leads.html",
        page_context(request, "leads"),
        items=page.items,
        next_before=page.next_before,
        view=view,
        views=[(k, v, counts.get(k) if k != "all" else sum(counts.values())) for k, v in VIEWS.items()],
        pool_count=counts.get(LeadStatus.POOL, 0),
        source=source,
        sources=list(domain.SOURCE_NAMES_ZH.items()),
        q=q,
        names=names,
        phone=fields.phone,
        members=members if person.scope.everything else [(u, n) for u, n in members if u in person.scope.userids],
        me=person.userid,
        scope_text=person.scope.describe(),
        template_header=TEMPLATE_HEADER,
    )


async def lead_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    lead = await services.visible_lead(rt, path_id(request, what="线索"))
    person = await services.acting_person(rt)
    async with rt.db.read() as conn:
        moves = await queries.moves_of(conn, lead.id)
        history = await follow_up_queries.history(conn, lead_id=lead.id)
        names = await queries.member_names(conn)
        members = await salesperson_choices(conn)
        settings = await services.get_pool_settings(conn)
    fields = await rules_for(rt)
    manages = lead.status == LeadStatus.OPEN and person.manages(lead.owner)
    return render(
        request,
        "sales/lead.html",
        page_context(request, "leads"),
        lead=lead,
        moves=moves,
        history=history,
        names=names,
        phone=fields.phone,
        can_claim=lead.status == LeadStatus.POOL and bool(person.userid),
        can_work=manages,
        can_assign=lead.status in (LeadStatus.OPEN, LeadStatus.POOL) and (person.scope.everything or len(person.scope.userids) > 1),
        members=members if person.scope.everything else [(u, n) for u, n in members if u in person.scope.userids],
        kinds=list(KIND_NAMES_ZH.items()),
        today=follow_ups.business_day(rt.clock.now()),
        settings=settings,
    )


def _lead_url(lead_id: int) -> str:
    return f"/console/leads/{lead_id}"


async def lead_create(request: web.Request) -> web.Response:
    form = await pages.read_form(request)

    async def action() -> str:
        owner = form.get("owner", "").strip()
        new = services.NewLead(
            source=LeadSource.MANUAL,
            name=form.get("name", ""),
            phone=form.get("phone", ""),
            corp_name=form.get("corp_name", ""),
            region=form.get("region", ""),
            remark=form.get("remark", ""),
            source_ref=form.get("source_ref", ""),
            owner=owner or None,
        )
        arrived = await services.add_lead(request.app[RUNTIME], new)
        if arrived.duplicate:
            return f"已有相同的线索 #{arrived.lead.id}（{arrived.lead.label}，{arrived.lead.status_zh}）：这次留资已记在原线索上"
        where = f"分给了 {arrived.lead.owner}" if arrived.lead.owner else "进入了公海"
        return f"已新建线索 #{arrived.lead.id}（{arrived.lead.label}），{where}"

    return await act(request, "/console/leads", action)


async def lead_import(request: web.Request) -> web.Response:
    post = await request.post()  # already read (and CSRF-checked) by auth.protected
    upload = post.get("file")

    async def action() -> str:
        if not isinstance(upload, web.FileField):
            raise InvalidInput("请选择要导入的 CSV 或 xlsx 文件", field="file")
        try:
            name = unquote(upload.filename or "")  # some clients percent-encode a Chinese file name
            report = await import_leads(request.app[RUNTIME], name, upload.file.read(), actor=pages.actor(request))
        except LeadFileError as exc:
            raise InvalidInput(str(exc), field="file") from None
        except ValueError as exc:  # the catalog reader's file errors (encoding, not a sheet, too big)
            raise InvalidInput(str(exc), field="file") from None
        return f"{unquote(upload.filename or '')}（按 {report.read_as} 读取）：{report.summary}"

    return await act(request, "/console/leads", action)


def _verb(verb: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        lead_id = path_id(request, what="线索")
        form = await pages.read_form(request)
        rt = request.app[RUNTIME]

        async def action() -> str:
            if verb == "claim":
                lead = await ownership.claim_lead(rt, lead_id)
                days = (await _pool_settings(rt)).return_after_days
                return f"已领取线索「{lead.label}」" + (f"，请在 {days} 天内跟进（否则自动回收公海）" if days else "")
            if verb == "release":
                lead = await ownership.release_lead(rt, lead_id, form.get("reason", ""))
                return f"线索「{lead.label}」已退回公海"
            if verb == "assign":
                lead = await ownership.assign_lead(rt, lead_id, form.get("to", "").strip(), form.get("reason", ""))
                return f"线索「{lead.label}」已分配给 {lead.owner}"
            if verb == "invalidate":
                lead = await ownership.invalidate_lead(rt, lead_id, form.get("reason", ""))
                return f"线索「{lead.label}」已标为无效"
            title = form.get("title", "").strip()
            draft = None
            if title:
                amount = form.get("amount", "").strip()
                draft = ownership.OpportunityDraft(title=title, amount_fen=parse_yuan(amount) if amount else 0)
            done = await ownership.convert_lead(rt, lead_id, draft)
            text = f"线索「{done.lead.label}」已转为客户 #{done.lead.customer_id}"
            return text + (f"，并建了商机 #{done.opportunity_id}" if done.opportunity_id else "")

        back_to = "/console/pool" if verb == "claim" and form.get("from") == "pool" else _lead_url(lead_id)
        return await act(request, back_to, action)

    return handler


async def _pool_settings(rt: Any) -> services.PoolSettingsView:
    async with rt.db.read() as conn:
        return await services.get_pool_settings(conn)


def _day(raw: str) -> dt.date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("下次联系日期格式应为 年-月-日", field="next_contact_on") from None


async def follow_up_create(request: web.Request) -> web.Response:
    """A follow-up from the lead's page or the customer's page (``lead_id`` or ``customer_id`` in the form)."""
    form = await pages.read_form(request)
    lead_raw, customer_raw = form.get("lead_id", ""), form.get("customer_id", "")
    lead_id = int(lead_raw) if lead_raw.isdecimal() and len(lead_raw) < 19 else None
    customer_id = int(customer_raw) if customer_raw.isdecimal() and len(customer_raw) < 19 else None
    back_to = _lead_url(lead_id) if lead_id is not None else f"/console/customers/{customer_id}" if customer_id else "/console/follow-ups"

    async def action() -> str:
        new = follow_ups.NewFollowUp(
            kind=form.get("kind", "note"),
            body=form.get("body", ""),
            lead_id=lead_id,
            customer_id=customer_id,
            next_contact_on=_day(form.get("next_contact_on", "")),
        )
        made = await follow_ups.record_follow_up(request.app[RUNTIME], new)
        nxt = f"，下次联系 {made.next_contact_on:%m月%d日}（当天会在企业微信提醒）" if made.next_contact_on else ""
        return f"已记录跟进（{made.kind_zh}）{nxt}"

    return await act(request, back_to, action)


async def follow_up_done(request: web.Request) -> web.Response:
    follow_up_id = path_id(request, what="跟进记录")

    async def action() -> str:
        await follow_ups.complete_follow_up(request.app[RUNTIME], follow_up_id)
        return "已标为完成"

    return await act(request, "/console/follow-ups", action)


async def pool_page(request: web.Request) -> web.Response:
    """公海: the unowned leads, newest first, each with 领取; the pool's rules and how many I claimed today."""
    rt = request.app[RUNTIME]
    person = await services.acting_person(rt)
    q = request.query.get("q", "").strip()[:64]
    before_raw = request.query.get("before", "")
    before = int(before_raw) if before_raw.isdecimal() and len(before_raw) < 19 else None
    async with rt.db.read() as conn:
        page = await queries.list_leads(conn, person.scope, status=LeadStatus.POOL, q=q, before=before, limit=50)
        settings = await services.get_pool_settings(conn)
        claimed = await ownership.claims_today(conn, person.userid, rt.clock.now()) if person.userid else 0
        names = await queries.member_names(conn)
    fields = await rules_for(rt)
    return render(
        request,
        "sales/pool.html",
        page_context(request, "pool"),
        items=page.items,
        next_before=page.next_before,
        q=q,
        settings=settings,
        claimed=claimed,
        me=person.userid,
        names=names,
        phone=fields.phone,
        now=rt.clock.now(),
    )


async def follow_ups_page(request: web.Request) -> web.Response:
    """跟进: the next contacts of the people in my scope — overdue, today, the coming week."""
    rt = request.app[RUNTIME]
    person = await services.acting_person(rt)
    today = follow_ups.business_day(rt.clock.now())
    async with rt.db.read() as conn:
        items = await follow_up_queries.todos(conn, person.scope, today, until=today + dt.timedelta(days=7))
        names = await queries.member_names(conn)
    return render(
        request,
        "sales/follow_ups.html",
        page_context(request, "follow-ups"),
        overdue=[t for t in items if t.overdue_days > 0],
        due_today=[t for t in items if t.overdue_days == 0],
        coming=[t for t in items if t.overdue_days < 0],
        names=names,
        scope_text=person.scope.describe(),
        unbound=person.scope.unbound,
    )


async def rules_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        found = await rules.list_rules(conn)
        settings = await services.get_pool_settings(conn)
        members = await salesperson_choices(conn)
        tags = await tag_choices(conn)
        names = await queries.member_names(conn)
    edit_raw = request.query.get("edit", "")
    editing = next((r for r in found if edit_raw.isdecimal() and r.id == int(edit_raw)), None)
    return render(
        request,
        "sales/lead_rules.html",
        page_context(request, "lead-rules"),
        rules=found,
        row_classes=["" if r.active else "inactive" for r in found],
        settings=settings,
        members=members,
        tags=tags,
        conditions={r.id: _conditions(r, dict(tags)) for r in found},
        names=names,
        sources=list(domain.SOURCE_NAMES_ZH.items()),
        methods=list(domain.METHOD_NAMES_ZH.items()),
        editing=editing,
    )


def _conditions(rule: rules.Rule, tag_names: dict[int, str]) -> str:
    parts = []
    if rule.sources:
        parts.append("来源：" + "、".join(domain.SOURCE_NAMES_ZH.get(s, s) for s in rule.sources))
    if rule.regions:
        parts.append("地区：" + "、".join(rule.regions))
    if rule.tag_ids:
        parts.append("标签：" + "、".join(tag_names.get(t, f"#{t}") for t in rule.tag_ids))
    return "；".join(parts) or "所有线索"


def _optional_int(form: Any, name: str, label: str, top: int) -> int | None:
    raw = str(form.get(name, "")).strip()
    if not raw:
        return None
    if not raw.isdecimal() or int(raw) > top:
        raise InvalidInput(f"{label}请写 0 到 {top} 的整数", field=name)
    return int(raw)


def _rule_fields(form: Any) -> dict[str, Any]:
    priority = _optional_int(form, "priority", "优先级", 10_000)
    return {
        "name": str(form.get("name", "")),
        "priority": 100 if priority is None else priority,
        "active": form.get("active", "1") == "1",
        "sources": [s for s in form.getall("sources", []) if isinstance(s, str)],
        "regions": [r for r in str(form.get("regions", "")).replace("，", ",").replace("、", ",").split(",") if r.strip()],
        "tag_ids": [int(t) for t in form.getall("tag_ids", []) if isinstance(t, str) and t.isdecimal()],
        "members": [m for m in form.getall("members", []) if isinstance(m, str) and m],
        "method": str(form.get("method", AssignMethod.ROUND_ROBIN)),
        "daily_cap": _optional_int(form, "daily_cap", "每人每日上限", 10_000) or 0,
        "return_after_days": _optional_int(form, "return_after_days", "回收天数", 3650) or None,
    }


async def rule_save(request: web.Request) -> web.Response:
    form = await request.post()
    raw = request.match_info.get("id")
    rule_id = path_id(request, what="分配规则") if raw is not None else None

    async def action() -> str:
        rule = await rules.save_rule(request.app[RUNTIME], rule_id, **_rule_fields(form))
        return f"已保存线索分配规则「{rule.name}」"

    return await act(request, "/console/lead-rules", action)


async def rule_delete(request: web.Request) -> web.Response:
    rule_id = path_id(request, what="分配规则")

    async def action() -> str:
        rule = await rules.delete_rule(request.app[RUNTIME], rule_id)
        return f"已删除线索分配规则「{rule.name}」（已分配的线索不变）"

    return await act(request, "/console/lead-rules", action)


async def pool_settings_save(request: web.Request) -> web.Response:
    form = await pages.read_form(request)

    async def action() -> str:
        values = {
            name: _optional_int(form, name, label, top) or 0
            for name, label, top in (
                ("return_after_days", "未跟进回收天数", 3650),
                ("claim_daily_cap", "每日领取上限", 10_000),
                ("reclaim_block_days", "原负责人不能领回的天数", 3650),
                ("customer_return_after_days", "客户未跟进回收天数", 3650),
            )
        }
        await services.set_pool_settings(request.app[RUNTIME], **values)
        return "已保存公海规则"

    return await act(request, "/console/lead-rules", action)


SALES_ROUTES = (
    ("GET", "/console/leads", leads_list),
    ("POST", "/console/leads", lead_create),
    ("POST", "/console/leads/import", lead_import),
    ("GET", "/console/leads/{id}", lead_page),
    *(("POST", f"/console/leads/{{id}}/{verb}", _verb(verb)) for verb in ("claim", "release", "assign", "invalidate", "convert")),
    ("GET", "/console/pool", pool_page),
    ("GET", "/console/follow-ups", follow_ups_page),
    ("POST", "/console/follow-ups", follow_up_create),
    ("POST", "/console/follow-ups/{id}/done", follow_up_done),
)
RULE_ROUTES = (
    ("GET", "/console/lead-rules", rules_page),
    ("POST", "/console/lead-rules", rule_save),
    ("POST", "/console/lead-rules/pool", pool_settings_save),
    ("POST", "/console/lead-rules/{id}", rule_save),
    ("POST", "/console/lead-rules/{id}/delete", rule_delete),
)


def setup_routes(
    app: web.Application, *, sales_roles: Collection[str] = auth.SALES_ROLES, rule_roles: Collection[str] = auth.ADMIN_ROLES
) -> None:
    """Mount 线索 / 公海 / 跟进 (sales and the admin) and 线索分配 (admin) behind :func:`auth.protected`."""
    pages.setup_templates(app)
    for routes, roles in ((SALES_ROUTES, sales_roles), (RULE_ROUTES, rule_roles)):
        for method, path, handler in routes:
            app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
