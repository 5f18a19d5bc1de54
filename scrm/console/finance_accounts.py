"""/console/finance — 收款 (record a payment; import a statement and read its report), 客户账户 (terms, credit
limit, refunds of credit) and 待审核订单 (orders on credit hold, 放行). Same conventions as :mod:`scrm.console.finance`."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from aiohttp import web

from fulfillment.billing import payments, receivables, services, statements
from fulfillment.billing import web as billing_web
from fulfillment.billing.domain import PAYMENT_METHODS
from scrm.console.finance_common import (
    IMPORT_STATUS_ZH,
    customer_field,
    customer_labels,
    fen_field,
    invoice_url,
    show_tab,
)
from scrm.console.render import Safe, button_form, join, money, order_url, post_form, t, table, url, when
from scrm.console.web import _act, _actor, _ctx, _form
from scrm.core.clock import SHANGHAI
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME


# ---- 收款 ---------------------------------------------------------------------------------------------------
async def payments_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "finance")
    recent = await payments.list_payments(rt, limit=50)
    labels = await customer_labels(request, [p.customer_id for p in recent])
    methods = join(t('<option value="{k}">{v}</option>', k=k, v=v) for k, v in PAYMENT_METHODS.items())
    record = post_form(
        ctx,
        "/console/finance/payments",
        t(
            '<label>客户（external_userid 或 #编号）<input name="customer" required maxlength="128"></label>'
            '<label>金额（元）<input name="amount" required maxlength="20" placeholder="1,234.50"></label>'
            '<label>流水号<input name="reference" required maxlength="128" placeholder="银行流水号 / 微信支付单号"></label>'
            '<label>方式<select name="method">{m}</select></label>'
            '<label>收款日期（留空为现在）<input type="date" name="received_on"></label>'
            '<label>指定发票（可选，逗号分隔）<input name="invoices" maxlength="400" placeholder="INV100001, INV100002"></label>'
            '<label>备注<input name="note" maxlength="200"></label><button type="submit" class="primary">登记收款</button>'
            '<p class="hint">不指定发票时按到期日从早到晚冲销；多付的部分转为客户预收。同一流水号重复登记不会重复入账。</p>',
            m=methods,
        ),
        cls="stack",
    )
    upload = t(
        '<form method="post" action="/console/finance/imports" enctype="multipart/form-data" class="stack">{csrf}'
        '<label>对账单 CSV（UTF-8）<input type="file" name="file" accept=".csv,text/csv" required></label>'
        '<button type="submit" class="primary">导入</button><p class="hint">列：date,reference,amount,payer,method,memo,customer'
        "（也认中文列名：日期、流水号、金额、付款方、方式、备注、客户）。付款客户由 customer 列（external_userid）或备注中的发票号确定；"
        "同一文件导入两次不会重复入账。</p></form>",
        csrf=Safe(f'<input type="hidden" name="csrf_token" value="{ctx.csrf}">'),
    )
    imports = await statements.list_imports(rt, limit=10)
    import_rows = [
        (
            t('<a href="/console/finance/imports/{i}">#{i}</a>', i=s.id),
            s.filename,
            when(s.imported_at),
            s.imported_by,
            "、".join(f"{IMPORT_STATUS_ZH[k]} {v}" for k, v in s.counts.items() if v) or "—",
        )
        for s in imports
    ]
    pay_rows = [
        (
            p.reference,
            labels.get(p.customer_id, p.customer_id),
            money(p.amount_fen),
            PAYMENT_METHODS.get(p.method, p.method),
            when(p.received_at),
            p.source,
            p.note,
        )
        for p in recent
    ]
    body = t(
        '<div class="grid"><section class="card"><h3>登记收款</h3>{r}</section><section class="card"><h3>导入对账单</h3>{u}</section></div>'
        "<h2>最近导入</h2>{i}<h2>最近收款</h2>{p}",
        r=record,
        u=upload,
        i=table(["导入", "文件", "时间", "操作人", "结果"], import_rows, empty="还没有导入过对账单"),
        p=table(["流水号", "客户", "金额", "方式", "收款时间", "来源", "备注"], pay_rows, empty="还没有收款"),
    )
    return show_tab(request, "payments", "收款", body)


async def payment_record(request: web.Request) -> web.Response:
    form = await _form(request)

    async def action() -> str:
        received = None
        if form.get("received_on", "").strip():
            try:
                day = dt.date.fromisoformat(form["received_on"].strip())
            except ValueError:
                raise InvalidInput("收款日期格式不对 (received_on must be YYYY-MM-DD)", field="received_on") from None
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
            actor=_actor(request),
            note=form.get("note", "")[:200],
        )
        if result.duplicate:
            return f"流水号 {result.reference} 已登记过，未重复入账"
        parts = "、".join(f"{n} {money(f)}" for n, f in result.allocations) or "无"
        return f"已登记 {money(result.amount_fen)}：冲销 {parts}" + (f"；转预收 {money(result.credit_fen)}" if result.credit_fen else "")

    return await _act(request, "/console/finance/payments", action)


async def import_upload(request: web.Request) -> web.Response:
    post = await request.post()  # already read (and CSRF-checked) by auth.protected
    upload = post.get("file")
    done: list[int] = []

    async def action() -> str:
        if not isinstance(upload, web.FileField):
            raise InvalidInput("请选择要导入的 CSV 文件 (choose a file)", field="file")
        report = await statements.import_statement(
            request.app[RUNTIME],
            upload.file.read(),
            filename=upload.filename or "",
            resolve_customer=billing_web.resolve_customer,
            actor=_actor(request),
        )
        done.append(report.import_id)
        c = report.counts
        return f"导入完成：登记 {c['recorded']} 笔，重复 {c['duplicate']}，冲突 {c['conflict']}，错误 {c['error']}"

    response = await _act(request, "/console/finance/payments", action)
    if done:  # success: show the report of this import
        response.headers["Location"] = f"/console/finance/imports/{done[0]}"
    return response


async def import_page(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    try:
        report = await statements.get_import(request.app[RUNTIME], int(raw) if raw.isdecimal() else -1)
    except NotFound as exc:
        return show_tab(request, "payments", "没有这次导入", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    again = ""
    if report.get("previously_imported"):
        ids = "、".join(f"#{i}" for i in report["previously_imported"])
        again = t('<div class="flash flash-err">这个文件之前已导入过（{ids}），本次未重复入账。</div>', ids=ids)
    rows = [
        (
            r["line"],
            r["reference"],
            t('<span class="badge st-{s}">{zh}</span>', s=r["status"], zh=IMPORT_STATUS_ZH.get(r["status"], r["status"])),
            money(r["amount_fen"]) if r.get("amount_fen") is not None else "—",
            f"#{r['customer_id']}" if r.get("customer_id") else "—",
            "、".join(f"{a['invoice']} {money(a['amount_fen'])}" for a in r.get("allocations", [])) or "—",
            r["message"],
        )
        for r in report.get("rows", [])
    ]
    counts = report.get("counts", {})
    body = t(
        '<p><a href="/console/finance/payments">← 返回收款</a></p>{again}'
        "<p>文件 {f}（{when}，{by}）：登记 {rec} 笔，重复 {dup}，冲突 {con}，错误 {err}。</p>{table}",
        again=again,
        f=report.get("filename") or "（未命名）",
        when=when(dt.datetime.fromisoformat(report["imported_at"])) if report.get("imported_at") else "—",
        by=report.get("imported_by", ""),
        rec=counts.get("recorded", 0),
        dup=counts.get("duplicate", 0),
        con=counts.get("conflict", 0),
        err=counts.get("error", 0),
        table=table(["行", "流水号", "结果", "金额", "客户", "冲销", "说明"], rows, empty="文件里没有数据行"),
    )
    return show_tab(request, "payments", f"导入 #{report['import_id']}", body)


# ---- 客户账户 -----------------------------------------------------------------------------------------------
async def accounts_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "finance")
    query = request.query.get("customer", "").strip()[:128]
    lookup = t(
        '<form method="get" action="/console/finance/accounts" class="toolbar">'
        '<input name="customer" value="{q}" placeholder="external_userid 或 #编号" maxlength="128">'
        '<button type="submit">查找</button></form>',
        q=query,
    )
    if not query:
        return show_tab(
            request, "accounts", "客户账户", t('{l}<p class="hint">输入客户查看账期、信用额度、预收余额和未结发票。</p>', l=lookup)
        )
    try:
        cid = await customer_field(request, query)
    except NotFound as exc:
        return show_tab(request, "accounts", "客户账户", t('{l}<p class="empty">{m}</p>', l=lookup, m=exc.message), status=404)
    account = await services.get_account(rt, cid)
    balance = await receivables.customer_balance(rt, cid)
    history = await payments.credit_history(rt, cid, limit=20)
    label = (await customer_labels(request, [cid]))[cid]
    limit = "" if account.credit_limit_fen is None else f"{account.credit_limit_fen // 100}.{account.credit_limit_fen % 100:02d}"
    settings_form = post_form(
        ctx,
        f"/console/finance/accounts/{cid}",
        t(
            "<label>账期（天，0 = 现结，30 = 月结30天）"
            '<input type="number" name="terms_days" min="0" max="365" value="{terms}" required></label>'
            '<label>信用额度（元，留空 = 不限）<input name="credit_limit" value="{limit}" maxlength="20"></label>'
            '<button type="submit" class="primary">保存</button>',
            terms=account.terms_days,
            limit=limit,
        ),
        cls="stack",
    )
    refund_form = post_form(
        ctx,
        f"/console/finance/accounts/{cid}/refund",
        Safe(
            '<label>退款金额（元）<input name="amount" required maxlength="20"></label>'
            '<label>退款单号<input name="reference" required maxlength="128"></label><button type="submit" class="danger">退还预收</button>'
        ),
        cls="stack",
    )
    open_rows = [
        (
            t('<a href="{h}">{n}</a>', h=invoice_url(i.number), n=i.number),
            i.order_number,
            money(i.balance_fen),
            i.due_on.isoformat(),
            t('<span class="warn">逾期 {d} 天</span>', d=i.days_past_due) if i.days_past_due > 0 else "—",
        )
        for i in balance.invoices
    ]
    reason_zh = {"overpayment": "多付转预收", "applied": "抵扣发票", "refund": "退款", "void_return": "作废转回"}
    credit_rows = [(when(c.at), reason_zh.get(c.reason, c.reason), money(c.delta_fen), c.reference) for c in history]
    body = t(
        "{l}<h2>{who}</h2><p>未结 <strong>{open}</strong>，其中逾期 {overdue}；预收余额 {credit}；信用额度 {lim}；账期 {terms} 天。</p>"
        '<div class="grid"><section class="card"><h3>账期与信用额度</h3>{s}</section>'
        '<section class="card"><h3>退还预收</h3>{r}</section></div>'
        "<h2>未结发票</h2>{o}<h2>预收变动</h2>{c}",
        l=lookup,
        who=label,
        open=money(balance.open_fen),
        overdue=money(balance.overdue_fen),
        credit=money(account.credit_fen),
        lim="不限" if account.credit_limit_fen is None else money(account.credit_limit_fen),
        terms=account.terms_days,
        s=settings_form,
        r=refund_form,
        o=table(["发票", "订单", "未付", "到期日", "逾期"], open_rows, empty="没有未结发票"),
        c=table(["时间", "类型", "金额", "单号"], credit_rows, empty="没有预收变动"),
    )
    return show_tab(request, "accounts", "客户账户", body)


def account_id(request: web.Request) -> int:
    raw = request.match_info["customer_id"]
    if not raw.isdecimal():
        raise InvalidInput("客户编号不对 (bad customer id)")
    return int(raw)


async def account_save(request: web.Request) -> web.Response:
    form = await _form(request)
    cid = account_id(request)

    async def action() -> str:
        terms = form.get("terms_days", "").strip()
        if not terms.isdecimal():
            raise InvalidInput("账期必须是 0 到 365 的整数天 (terms must be whole days)", field="terms_days")
        raw_limit = form.get("credit_limit", "").strip()
        limit = fen_field(raw_limit, "信用额度") if raw_limit else None
        account = await services.set_account(request.app[RUNTIME], cid, terms_days=int(terms), credit_limit_fen=limit)
        shown = "不限" if account.credit_limit_fen is None else money(account.credit_limit_fen)
        return f"已保存：账期 {account.terms_days} 天，信用额度 {shown}"

    return await _act(request, url("/console/finance/accounts", customer=f"#{cid}"), action)


async def account_refund(request: web.Request) -> web.Response:
    form = await _form(request)
    cid = account_id(request)

    async def action() -> str:
        left = await payments.refund_credit(
            request.app[RUNTIME], cid, fen_field(form.get("amount", ""), "退款金额"), form.get("reference", ""), actor=_actor(request)
        )
        return f"已退还预收，余额 {money(left)}"

    return await _act(request, url("/console/finance/accounts", customer=f"#{cid}"), action)


# ---- 待审核订单 ----------------------------------------------------------------------------------------------
async def holds_page(request: web.Request) -> web.Response:
    held = await receivables.held_orders(request.app[RUNTIME])
    labels = await customer_labels(request, [h.customer_id for h in held])
    ctx = _ctx(request, "finance")
    rows = [
        (
            t('<a href="{href}">{n}</a>', href=order_url(h.number), n=h.number),
            labels.get(h.customer_id, h.customer_id),
            h.salesperson_userid or "—",
            money(h.total_fen),
            money(h.exposure.receivables_fen),
            money(h.exposure.open_orders_fen),
            money(h.exposure.credit_fen),
            "不限" if h.exposure.limit_fen is None else money(h.exposure.limit_fen),
            when(h.held_at),
            button_form(ctx, f"/console/finance/holds/{quote(h.number, safe='')}/release", "放行", cls="primary"),
        )
        for h in held
    ]
    body = t(
        '<p class="hint">超出信用额度的订单在此等待财务审核。放行后立即备货并通知客户；不放行请在订单页取消。</p>{t}',
        t=table(["订单", "客户", "销售", "本单", "应收", "未开票订单", "预收", "额度", "转待审核", "操作"], rows, empty="没有待审核的订单"),
    )
    return show_tab(request, "holds", "待审核订单", body)


async def hold_release(request: web.Request) -> web.Response:
    # Only finance (and admin) may release a credit hold: FINANCE_ROLES is the route guard.
    async def action() -> str:
        order = await receivables.release_hold(request.app[RUNTIME], request.match_info["number"], actor=_actor(request))
        short = sum(ln.backordered_qty for ln in order.lines)
        return f"订单 {order.number} 已放行并确认" + (f"，缺货 {short} 件待补" if short else "，已全部备货")

    return await _act(request, "/console/finance/holds", action)
