"""/console/finance — 收款 (record a payment; import a statement and read its report), 客户账户 (terms, credit
limit, refunds of credit) and 待审核订单 (orders on credit hold, 放行). Same conventions as :mod:`scrm.console.finance`."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from fulfillment.billing import payments, receivables, services, statements
from fulfillment.billing import web as billing_web
from fulfillment.billing.domain import PAYMENT_METHODS
from scrm.console.finance_common import IMPORT_STATUS_ZH, customer_field, customer_names, fen_field, finance_page
from scrm.console.pages import act, actor, back, money, read_form, url
from scrm.core.clock import SHANGHAI
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.governance.fields.services import rules_for


# ---- 收款 ---------------------------------------------------------------------------------------------------
async def payments_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    recent = await payments.list_payments(rt, limit=50)
    names = await customer_names(request, [p.customer_id for p in recent])
    imports = await statements.list_imports(rt, limit=10)
    return finance_page(
        request,
        "finance/payments.html",
        "payments",
        recent=recent,
        names=names,
        imports=imports,
        methods=PAYMENT_METHODS,
        import_status_zh=IMPORT_STATUS_ZH,
    )


async def payment_record(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        received = None
        if form.get("received_on", "").strip():
            try:
                day = dt.date.fromisoformat(form["received_on"].strip())
            except ValueError:
                raise InvalidInput("收款日期格式不对", field="received_on") from None
            received = dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI)
        result = await payments.record_payment(
            request.app[RUNTIME],
            customer_id=await customer_field(request, form.get("customer", "")),
            amount_fen=fen_field(form.get("amount", ""), "金额"),
            reference=form.get("reference", ""),
            method=form.get("method", "bank"),
            source="console",
            received_at=received,
            invoices_named=[n for n in form.get("invoices", "").replace("，", ",").split(",") if n.strip()] or None,
            actor=actor(request),
            note=form.get("note", "")[:200],
        )
        if result.duplicate:
            return f"流水号 {result.reference} 已登记过，未重复入账"
        parts = "、".join(f"{n} {money(f)}" for n, f in result.allocations) or "无"
        return f"已登记 {money(result.amount_fen)}：冲销 {parts}" + (f"；转预收 {money(result.credit_fen)}" if result.credit_fen else "")

    return await act(request, "/console/finance/payments", action)


async def import_upload(request: web.Request) -> web.Response:
    post = await request.post()  # already read (and CSRF-checked) by auth.protected
    upload = post.get("file")
    done: list[tuple[int, dict[str, int]]] = []

    async def action() -> str:
        if not isinstance(upload, web.FileField):
            raise InvalidInput("请选择要导入的 CSV 文件", field="file")
        report = await statements.import_statement(
            request.app[RUNTIME],
            upload.file.read(),
            filename=upload.filename or "",
            resolve_customer=billing_web.resolve_customer,
            actor=actor(request),
        )
        done.append((report.import_id, report.counts))
        return ""

    response = await act(request, "/console/finance/payments", action)
    if done:  # read: show the report of this import (act's flash is replaced by the import's outcome)
        import_id, counts = done[0]
        kind, message = import_outcome(counts)
        response = back(request, f"/console/finance/imports/{import_id}", kind, message)
    return response


def import_outcome(c: dict[str, int]) -> tuple[str, str]:
    """The flash after a statement import: green ``导入完成`` only when every row was recorded or already there;
    amber (``warn``) when a row failed or conflicted, or when nothing was recorded — the report below says why."""
    counts = f"登记 {c['recorded']} 笔，重复 {c['duplicate']}，冲突 {c['conflict']}，错误 {c['error']}"
    problems = c["error"] + c["conflict"]
    if problems and not c["recorded"]:
        return "warn", f"没有登记任何款项：{problems} 行有问题，见下方明细（{counts}）"
    if problems:
        return "warn", f"部分导入：{problems} 行有问题未登记，见下方明细（{counts}）"
    if not c["recorded"]:
        return "warn", f"没有登记任何款项（{counts}）"
    return "ok", f"导入完成：{counts}"


async def import_page(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    try:
        report = await statements.get_import_report(request.app[RUNTIME], int(raw) if raw.isdecimal() else -1)
    except NotFound as exc:
        return finance_page(request, "finance/not_found.html", "payments", http_status=404, title="没有这次导入", message=exc.message)
    return finance_page(request, "finance/import.html", "payments", report=report, import_status_zh=IMPORT_STATUS_ZH)


# ---- 客户账户 -----------------------------------------------------------------------------------------------
REASON_ZH = {"overpayment": "多付转预收", "applied": "抵扣发票", "refund": "退款", "void_return": "作废转回"}


async def accounts_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    query = request.query.get("customer", "").strip()[:128]
    if not query:
        return finance_page(request, "finance/accounts.html", "accounts", query=query, error="")
    try:
        cid = await customer_field(request, query)
    except NotFound as exc:
        return finance_page(request, "finance/accounts.html", "accounts", http_status=404, query=query, error=exc.message)
    account = await services.get_account(rt, cid)
    balance = await receivables.customer_balance(rt, cid)
    history = await payments.credit_history(rt, cid, limit=20)
    names = await customer_names(request, [cid])
    return finance_page(
        request,
        "finance/accounts.html",
        "accounts",
        query=query,
        error="",
        cid=cid,
        name=names[cid],
        account=account,
        balance=balance,
        history=history,
        reason_zh=REASON_ZH,
        limit_mode=(await rules_for(rt)).modes["credit_limit"],  # 字段权限: edit, read or hidden
    )


def account_id(request: web.Request) -> int:
    raw = request.match_info["customer_id"]
    if not raw.isdecimal():
        raise InvalidInput("客户编号不对")
    return int(raw)


async def account_save(request: web.Request) -> web.Response:
    form = await read_form(request)
    cid = account_id(request)

    async def action() -> str:
        terms = form.get("terms_days", "").strip()
        if not terms.isdecimal():
            raise InvalidInput("账期必须是 0 到 365 的整数天", field="terms_days")
        if "credit_limit" in form:  # the field is on the form only for roles that may change it
            raw_limit = form["credit_limit"].strip()
            limit = fen_field(raw_limit, "信用额度", "credit_limit") if raw_limit else None
            account = await services.set_account(request.app[RUNTIME], cid, terms_days=int(terms), credit_limit_fen=limit)
        else:
            account = await services.set_account(request.app[RUNTIME], cid, terms_days=int(terms))
        if not (await rules_for(request.app[RUNTIME])).credit_limit_visible:
            return f"已保存：账期 {account.terms_days} 天"
        shown = "不限" if account.credit_limit_fen is None else money(account.credit_limit_fen)
        return f"已保存：账期 {account.terms_days} 天，信用额度 {shown}"

    return await act(request, url("/console/finance/accounts", customer=f"#{cid}"), action)


async def account_refund(request: web.Request) -> web.Response:
    form = await read_form(request)
    cid = account_id(request)

    async def action() -> str:
        outcome = await payments.request_refund(
            request.app[RUNTIME], cid, fen_field(form.get("amount", ""), "退款金额"), form.get("reference", ""), actor=actor(request)
        )
        if outcome.approval is not None:
            return f"退款需审批（规则「{outcome.approval.rule_name}」），等待 {'、'.join(outcome.approval.waiting_for)}；通过后自动退款"
        return f"已退还预收，余额 {money(outcome.credit_fen)}"

    return await act(request, url("/console/finance/accounts", customer=f"#{cid}"), action)


# ---- 待审核订单 ----------------------------------------------------------------------------------------------
async def holds_page(request: web.Request) -> web.Response:
    held = await receivables.held_orders(request.app[RUNTIME])
    names = await customer_names(request, [h.customer_id for h in held])
    show_limit = (await rules_for(request.app[RUNTIME])).credit_limit_visible
    return finance_page(request, "finance/holds.html", "holds", held=held, names=names, show_limit=show_limit)


async def hold_release(request: web.Request) -> web.Response:
    # Only finance (and admin) may release a credit hold: FINANCE_ROLES is the route guard.
    async def action() -> str:
        outcome = await receivables.request_release(request.app[RUNTIME], request.match_info["number"], actor=actor(request))
        order = outcome.order
        if outcome.approval is not None:
            who = "、".join(outcome.approval.waiting_for)
            return f"订单 {order.number} 的信用放行需审批（规则「{outcome.approval.rule_name}」），等待 {who}"
        short = sum(ln.backordered_qty for ln in order.lines)
        return f"订单 {order.number} 已放行并确认" + (f"，缺货 {short} 件待补" if short else "，已全部备货")

    return await act(request, "/console/finance/holds", action)
