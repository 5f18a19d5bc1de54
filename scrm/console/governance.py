"""/console/tokens — API 令牌 (each person's own; the admin sees and makes everyone's) and /console/audit — 审计日志
(search, page, export). The rules live in :mod:`scrm.governance.tokens` and :mod:`scrm.core.audit`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection
from typing import Any

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.pages import act, page_context, path_id, render, staff_text
from scrm.core.errors import DomainError, InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.crm.staff.accounts import list_staff
from scrm.crm.staff.domain import ROLE_NAMES_ZH
from scrm.governance.audit import queries as audit_queries
from scrm.governance.audit.web import filter_from
from scrm.governance.fields import services as field_rules
from scrm.governance.fields.domain import FIELDS, MODES_ZH
from scrm.governance.tokens import services as tokens
from scrm.governance.tokens.domain import AREAS, MAX_EXPIRY_DAYS, allowed

PAGE = 50
EXPORT_MAX = 10_000
ACTIONS_ZH = {
    "create": "新建",
    "update": "修改",
    "delete": "删除",
    "permission_change": "权限变更",
    "sign_in": "登录",
    "sign_in_failed": "登录失败",
    "sign_out": "退出",
    "export": "导出",
    "revoke": "吊销",
}


def _owner_scope(request: web.Request) -> int | None:
    """Whose tokens this page shows and manages: the signed-in staff member's own; None = everyone's (admin)."""
    session = request[auth.SESSION]
    if session.staff_id is None or "admin" in session.all_roles:
        return None
    return session.staff_id


async def _tokens_page(request: web.Request, *, created: tuple[Any, str] | None = None, error: str = "") -> web.Response:
    rt = request.app[RUNTIME]
    owner = _owner_scope(request)
    session = request[auth.SESSION]
    staff = [s for s in await list_staff(rt) if s.active] if owner is None else []
    areas = allowed(session.all_roles) if owner is not None else dict.fromkeys(AREAS, "write")
    now = rt.clock.now()
    found = await tokens.list_tokens(rt, staff_id=owner)
    return render(
        request,
        "governance/tokens.html",
        page_context(request, "tokens"),
        http_status=400 if error else 200,
        items=[(t, t.status(now)) for t in found],
        staff=staff,
        areas=[(a, AREAS[a], mode) for a, mode in areas.items()],
        created=created,
        error=error,
        max_days=MAX_EXPIRY_DAYS,
        default_days=tokens.DEFAULT_EXPIRY_DAYS,
        own=owner is not None,
    )


async def tokens_list(request: web.Request) -> web.Response:
    """API 令牌: the tokens, who owns them, what they may do, and the form to make one."""
    return await _tokens_page(request)


async def token_create(request: web.Request) -> web.Response:
    """Make a token and show it on this page once (never in a redirect, a cookie or a log)."""
    rt = request.app[RUNTIME]
    form = await request.post()
    owner = _owner_scope(request)
    scopes = [s for s in form.getall("scope", []) if isinstance(s, str)]
    days_raw = str(form.get("expires_in_days", "")).strip()
    try:
        if owner is None:
            raw = str(form.get("staff_id", ""))
            if not raw.isdecimal():
                raise InvalidInput("请选择令牌的持有人", field="staff_id")
            owner = int(raw)
        if days_raw and (not days_raw.isdecimal() or not 1 <= int(days_raw) <= MAX_EXPIRY_DAYS):
            raise InvalidInput(f"有效期需为 1 到 {MAX_EXPIRY_DAYS} 天；留空为永不过期", field="expires_in_days")
        if not scopes:
            raise InvalidInput("至少选择一个权限范围", field="scope")
        made = await tokens.create_token(
            rt, staff_id=owner, name=str(form.get("name", "")), scopes=scopes, expires_in_days=int(days_raw) if days_raw else None
        )
    except DomainError as exc:
        return await _tokens_page(request, error=staff_text(exc.message))
    return await _tokens_page(request, created=made)


async def token_revoke(request: web.Request) -> web.Response:
    token_id = path_id(request, what="令牌")

    async def action() -> str:
        token = await tokens.revoke_token(request.app[RUNTIME], token_id, owner_id=_owner_scope(request))
        return f"已吊销令牌「{token.name}」（{token.shown_prefix}…），使用它的请求立即被拒绝"

    return await act(request, "/console/tokens", action)


async def audit_list(request: web.Request) -> web.Response:
    """审计日志: who did what, when, from where, before → after; filter and page back in time."""
    rt = request.app[RUNTIME]
    ctx = page_context(request, "audit")
    try:
        wanted = filter_from(request.query)
    except InvalidInput as exc:
        wanted, error = audit_queries.AuditFilter(), staff_text(exc.message)
    else:
        error = ""
    rows = await audit_queries.search(rt, wanted, limit=PAGE)
    params = {k: request.query.get(k, "") for k in ("entity", "id", "actor", "action", "since", "until")}
    older = pages.url("/console/audit", **params, before_id=rows[-1].id) if len(rows) == PAGE else ""
    return render(
        request,
        "governance/audit.html",
        ctx,
        http_status=400 if error else 200,
        rows=rows,
        params=params,
        facets=await audit_queries.facets(rt),
        actions_zh=ACTIONS_ZH,
        older=older,
        export_url=pages.url("/console/audit/export.csv", **params),
        error=error,
    )


async def audit_export(request: web.Request) -> web.Response:
    """The filtered trail as CSV (UTF-8 with BOM, so Excel opens it); itself recorded as an export."""
    rows = await audit_queries.search(request.app[RUNTIME], filter_from(request.query), limit=audit_queries.MAX_PAGE)
    wanted, out = filter_from(request.query), io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["编号", "时间", "操作人类型", "操作人", "令牌", "IP", "操作", "对象", "对象编号", "摘要", "变更前", "变更后", "接口"])
    written = 0
    while rows:
        for r in rows:
            e = audit_queries.entry_json(r)
            writer.writerow([e["id"], e["at"], e["actor_kind"], e["actor"], e["token_id"] or "", e["ip"], e["action"], e["entity"],
                             e["entity_id"], e["summary"], _json(e["before"]), _json(e["after"]), e["route"]])  # fmt: skip
        written += len(rows)
        if written >= EXPORT_MAX or len(rows) < audit_queries.MAX_PAGE:
            break
        wanted = audit_queries.AuditFilter(**{**wanted.__dict__, "before_id": int(rows[-1].id)})
        rows = await audit_queries.search(request.app[RUNTIME], wanted, limit=audit_queries.MAX_PAGE)
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        headers={"Content-Type": "text/csv; charset=utf-8", "Content-Disposition": 'attachment; filename="audit.csv"'},
    )


def _json(value: object) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


async def fields_page(request: web.Request) -> web.Response:
    """字段权限: per role, each protected field visible / masked / hidden (or editable / read-only)."""
    rt = request.app[RUNTIME]
    return render(
        request,
        "governance/fields.html",
        page_context(request, "field-permissions"),
        matrix=await field_rules.matrix(rt),
        fields=[(k, spec.label, spec.modes) for k, spec in FIELDS.items()],
        roles_zh=ROLE_NAMES_ZH,
        modes_zh=MODES_ZH,
    )


async def fields_save(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    form = await pages.read_form(request)

    async def action() -> str:
        current = await field_rules.matrix(rt)
        changed = 0
        for role, modes in current.items():
            for field, mode in modes.items():
                wanted = form.get(f"{role}.{field}", mode)
                if wanted != mode:
                    await field_rules.set_mode(rt, role, field, wanted)
                    changed += 1
        return f"已保存字段权限（{changed} 项变更），立即生效" if changed else "字段权限没有变化"

    return await act(request, "/console/field-permissions", action)


TOKEN_ROUTES = (
    ("GET", "/console/tokens", tokens_list),
    ("POST", "/console/tokens", token_create),
    ("POST", "/console/tokens/{id}/revoke", token_revoke),
)
AUDIT_ROUTES = (
    ("GET", "/console/audit", audit_list),
    ("GET", "/console/audit/export.csv", audit_export),
    ("GET", "/console/field-permissions", fields_page),
    ("POST", "/console/field-permissions", fields_save),
)


def setup_routes(
    app: web.Application, *, token_roles: Collection[str] = auth.ALL_ROLES, audit_roles: Collection[str] = auth.ADMIN_ROLES
) -> None:
    """Mount 令牌 (every signed-in role: their own) and 审计日志 (admin) behind :func:`auth.protected`."""
    pages.setup_templates(app)
    for routes, roles in ((TOKEN_ROUTES, token_roles), (AUDIT_ROUTES, audit_roles)):
        for method, path, handler in routes:
            app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
