"""/console/approvals — 审批: what I may decide now (approve / reject with a reason), what I asked for, and for the
admin everything; /console/approval-rules — 审批规则 (admin): write a rule as a form, see it as a sentence, switch it
off. The rules and decisions live in :mod:`scrm.governance.approvals`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.pages import act, page_context, path_id, render
from scrm.core import audit
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.money import parse_yuan
from scrm.crm.staff.domain import ROLE_NAMES_ZH
from scrm.crm.staff.services import list_salespeople
from scrm.governance.approvals import services as approvals
from scrm.governance.approvals.domain import DOC_TYPES, MODES, OPS_ZH

STATUS_ZH = {"pending": "待审批", "approved": "已通过", "rejected": "已驳回", "withdrawn": "已撤销"}
VIEWS = {"mine": "待我审批", "asked": "我发起的", "all": "全部"}
CONDITION_ROWS = 3
STEP_ROWS = 3


async def approvals_list(request: web.Request) -> web.Response:
    """审批: the inbox first (what this person may decide now), with 我发起的 and (admin) 全部."""
    rt = request.app[RUNTIME]
    actor = audit.current_actor()
    view = request.query.get("view", "mine")
    is_admin = "admin" in request[auth.SESSION].all_roles
    view = view if view in VIEWS and (view != "all" or is_admin) else "mine"
    if view == "all":
        items = await approvals.list_approvals(rt)
    elif view == "asked":
        items = await approvals.list_approvals(rt, for_actor=actor, which="asked")
    else:
        items = await approvals.list_approvals(rt, status="pending", for_actor=actor, which="decide")
    return render(
        request,
        "governance/approvals.html",
        page_context(request, "approvals"),
        items=items,
        view=view,
        views=[(k, v) for k, v in VIEWS.items() if k != "all" or is_admin],
        status_zh=STATUS_ZH,
        doc_zh={k: v[0] for k, v in DOC_TYPES.items()},
    )


async def _decide(request: web.Request, *, approve: bool) -> web.Response:
    approval_id = path_id(request, what="审批")
    form = await pages.read_form(request)
    comment = form.get("comment", "").strip()[:500]

    async def action() -> str:
        if not approve and not comment:
            raise InvalidInput("驳回时请写明原因，申请人会看到", field="comment")
        decided = await approvals.decide(request.app[RUNTIME], approval_id, approve=approve, comment=comment)
        if decided.status == "pending":
            return f"已同意，{decided.doc_summary} 转下一步：{'、'.join(decided.waiting_for)}"
        return f"{decided.doc_summary} {STATUS_ZH[decided.status]}"

    return await act(request, "/console/approvals", action)


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, approve=True)


async def reject(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


async def rules_list(request: web.Request) -> web.Response:
    """审批规则: the rules as sentences (on/off) and the form to write one."""
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        members = [(s.userid, s.display_name) for s in await list_salespeople(conn)]
    rules = await approvals.list_rules(rt)
    fields = [(doc, name, [(f, spec.label, spec.kind) for f, spec in facts.items()]) for doc, (name, facts) in DOC_TYPES.items()]
    return render(
        request,
        "governance/approval_rules.html",
        page_context(request, "approval-rules"),
        rules=rules,
        row_classes=["" if r.active else "inactive" for r in rules],
        doc_types=[(k, v[0]) for k, v in DOC_TYPES.items()],
        fields=fields,
        ops=list(OPS_ZH.items()),
        roles=list(ROLE_NAMES_ZH.items()),
        members=members,
        modes=list(MODES.items()),
        condition_rows=range(CONDITION_ROWS),
        step_rows=range(STEP_ROWS),
    )


def _condition_value(raw: str, field: str, doc_type: str, op: str) -> Any:
    """A condition's value as typed on the form: 元 for money (to fen), whole numbers for counts, text, or a list
    separated by 、 or commas for 属于 / 不属于."""
    spec = DOC_TYPES.get(doc_type, ("", {}))[1].get(field)
    raw = raw.strip()
    if spec is None:
        return raw
    if spec.kind == "number":
        if spec.unit == "分":
            try:
                return parse_yuan(raw)
            except (ValueError, InvalidInput):
                raise InvalidInput(f"{spec.label}请写金额（元），如 100000", field="conditions") from None
        if not raw.lstrip("-").isdecimal():
            raise InvalidInput(f"{spec.label}请写整数", field="conditions")
        return int(raw)
    if op in ("in", "not_in"):
        return [v for v in raw.replace("，", ",").replace("、", ",").split(",") if v.strip()]
    return raw


def _rule_from_form(form: Any) -> dict[str, Any]:
    doc_type = str(form.get("doc_type", ""))
    conditions = []
    for i in range(CONDITION_ROWS):
        field, op, value = (str(form.get(f"{k}_{i}", "")).strip() for k in ("field", "op", "value"))
        if field and op and value:
            conditions.append({"field": field, "op": op, "value": _condition_value(value, field, doc_type, op)})
    steps: list[dict[str, Any]] = []
    for i in range(STEP_ROWS):
        kind, value = str(form.get(f"step_{i}", "")).strip(), str(form.get(f"step_value_{i}", "")).strip()
        if kind == "lead":
            steps.append({"lead": True})
        elif kind.startswith("role:"):
            steps.append({"role": kind.removeprefix("role:")})
        elif kind.startswith("member:"):
            steps.append({"member": kind.removeprefix("member:")})
        elif kind or value:
            steps.append({kind or "?": value})
    raw_priority = str(form.get("priority", "100")).strip() or "100"
    if not raw_priority.isdecimal() or int(raw_priority) > 10_000:
        raise InvalidInput("优先级请写 0 到 10000 的整数（小的先匹配）", field="priority")
    return {
        "name": str(form.get("name", "")),
        "doc_type": doc_type,
        "conditions": conditions,
        "steps": steps,
        "mode": str(form.get("mode", "sequential")),
        "priority": int(raw_priority),
    }


async def rule_create(request: web.Request) -> web.Response:
    form = await request.post()

    async def action() -> str:
        rule = await approvals.create_rule(request.app[RUNTIME], **_rule_from_form(form))
        return f"已添加审批规则「{rule.name}」：{rule.describe()}"

    return await act(request, "/console/approval-rules", action)


async def rule_active(request: web.Request) -> web.Response:
    rule_id = path_id(request, what="审批规则")
    active = (await pages.read_form(request)).get("active") == "1"

    async def action() -> str:
        rule = await approvals.set_rule_active(request.app[RUNTIME], rule_id, active)
        return f"审批规则「{rule.name}」已{'启用' if rule.active else '停用'}"

    return await act(request, "/console/approval-rules", action)


INBOX_ROUTES = (
    ("GET", "/console/approvals", approvals_list),
    ("POST", "/console/approvals/{id}/approve", approve),
    ("POST", "/console/approvals/{id}/reject", reject),
)
RULE_ROUTES = (
    ("GET", "/console/approval-rules", rules_list),
    ("POST", "/console/approval-rules", rule_create),
    ("POST", "/console/approval-rules/{id}/active", rule_active),
)


def setup_routes(
    app: web.Application, *, inbox_roles: Collection[str] = auth.ALL_ROLES, rule_roles: Collection[str] = auth.ADMIN_ROLES
) -> None:
    """Mount 审批 (every signed-in role: their inbox) and 审批规则 (admin) behind :func:`auth.protected`."""
    pages.setup_templates(app)
    for routes, roles in ((INBOX_ROUTES, inbox_roles), (RULE_ROUTES, rule_roles)):
        for method, path, handler in routes:
            app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
