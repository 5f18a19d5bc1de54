"""/console/finance — 财务: receivables aging (by customer / salesperson, CSV), invoices (void with a reason),
payments (record one; import a bank / WeChat Pay statement and read its report), customer accounts (terms, credit
limit, refunds of credit) and orders on credit hold (放行).

Thin views over :mod:`fulfillment.billing`: a domain error becomes the red flash on the page it came from (nothing
changed); success redirects back with a green one. Amounts are typed in yuan and kept in fen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from urllib.parse import quote

import sqlalchemy as sa
from aiohttp import web

from fulfillment.billing import invoices, payments, receivables, services, statements
from fulfillment.billing import web as billing_web
from fulfillment.billing.domain import BUCKET_ZH, BUCKETS, INVOICE_STATUS_ZH, PAYMENT_METHODS, CustomerNotFound
from scrm.console import auth
from scrm.console.auth import Handler
from scrm.console.render import Safe, button_form, join, money, order_url, post_form, t, table, url, when
from scrm.console.web import _act, _actor, _ctx, _form, _page, forbidden
from scrm.core.clock import SHANGHAI
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.money import parse_yuan
from scrm.customers.models import customers
from scrm.web.keys import RUNTIME

# Who may use these pages (staff roles); release_hold's accountability is the session subject passed as ``actor``.
FINANCE_ROLES = frozenset({auth.ROLE_ADMIN, auth.ROLE_FINANCE})
IMPORT_STATUS_ZH = {"recorded": "已登记", "duplicate": "重复", "conflict": "冲突", "error": "错误"}
TABS = (
    ("receivables", "应收账龄"),
    ("invoices", "发票"),
    ("payments", "收款"),
    ("accounts", "客户账户"),
    ("holds", "待审核订单"),
)


def invoice_url(number: str) -> str:
    return "/console/finance/invoices/" + quote(number, safe="")


def _switch(items: list[tuple[str, str]], active: str) -> Safe:
    """Links with the current one shown as plain bold text (the stylesheet has no tab style)."""
    return join(
        (
            t("<strong>{label}</strong>", label=label) if href == active else t('<a href="{href}">{label}</a>', href=href, label=label)
            for href, label in items
        ),
        " · ",
    )


def _tabs(active: str) -> Safe:
    return t("<p>{links}</p>", links=_switch([(f"/console/finance/{k}", label) for k, label in TABS], f"/console/finance/{active}"))


def _show(request: web.Request, tab: str, title: str, body: object, *, status: int = 200) -> web.Response:
    return _page(request, _ctx(request, "finance"), title, t("{tabs}{body}", tabs=_tabs(tab), body=body), status=status)


def _fen(raw: str, label: str) -> int:
    try:
        return parse_yuan(raw)
    except ValueError:
        raise InvalidInput(f"{label}必须是金额，如 1,234.50 (an amount in yuan)", field=label) from None


async def _customer(request: web.Request, text: str) -> int:
    """A customer by external_userid, or by ``#id`` as the console shows them."""
    text = text.strip()
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        if text.startswith("#") and text[1:].isdecimal():
            if (await conn.execute(sa.select(customers.c.id).where(customers.c.id == int(text[1:])))).first() is None:
                raise CustomerNotFound(f"没有客户 {text} (unknown customer)")
            return int(text[1:])
        found_id = await billing_web.resolve_customer(conn, text) if text else None
    if found_id is None:
        raise CustomerNotFound(f"没有这个客户：{text or '（空）'}，请填写客户的 external_userid 或 #编号 (unknown customer)")
    return found_id


async def _labels(request: web.Request, ids: list[int]) -> dict[int, Safe]:
    async with request.app[RUNTIME].db.read() as conn:
        directory = await billing_web.customer_directory(conn, sorted(set(ids)))
    return {
        i: t('<a href="{href}">#{id} {name}</a>', href=url("/console/finance/accounts", customer=f"#{i}"), id=i, name=directory[i][0])
        for i in directory
    }


# ---- 应收 ---------------------------------------------------------------------------------------------------
async def index(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/console/finance/receivables"})


async def receivables_page(request: web.Request) -> web.Response:
    """应收账龄: open balances per customer or salesperson by days past due, with the CSV export."""
    by = "salesperson" if request.query.get("by") == "salesperson" else "customer"
    rt = request.app[RUNTIME]
    report = await receivables.aging_report(rt, by)
    async with rt.db.read() as conn:
        rows = await billing_web.aging_rows(conn, report)
    switch = _switch(
        [(url("/console/finance/receivables", by=k), label) for k, label in (("customer", "按客户"), ("salesperson", "按销售"))],
        url("/console/finance/receivables", by=by),
    )
    first = "客户" if by == "customer" else "销售"

    def who(r: dict[str, object]) -> object:
        if by == "customer":
            return t(
                '<a href="{href}">#{k} {n}</a>', href=url("/console/finance/accounts", customer=f"#{r['key']}"), k=r["key"], n=r["name"]
            )
        return t("{n} {k}", n=r["name"], k=r["key"])

    aged = table(
        [first, *(BUCKET_ZH[b] for b in BUCKETS), "合计", "其中逾期"],
        [
            *[(who(r), *(_amount(r["buckets"][b]) for b in BUCKETS), money(r["total_fen"]), _amount(r["overdue_fen"])) for r in rows],
            (
                Safe("<strong>合计</strong>"),
                *(_amount(report.total.buckets[b]) for b in BUCKETS),
                money(report.total.total_fen),
                money(report.total.overdue_fen),
            ),
        ]
        if rows
        else [],
        empty="没有未结的应收款",
    )
    dunning = button_form(_ctx(request, "finance"), "/console/finance/dunning/run", "立即发送今天的催款提醒")
    body = t(
        '<p>{switch} · <a href="{csv}">导出 CSV</a></p>'
        '<p class="hint">截至 {as_of}（北京时间）。账龄按逾期天数：到期当天起计 0–30 天。</p>{table}'
        '<h2>催款</h2><p class="hint">每个提醒级别对每张发票只发一次（config/billing.toml）。</p>{dunning}',
        switch=switch,
        csv=url("/console/finance/aging.csv", by=by),
        as_of=report.as_of.isoformat(),
        table=aged,
        dunning=dunning,
    )
    return _show(request, "receivables", "应收账龄", body)


def _amount(fen: int) -> str:
    return money(fen) if fen else "—"


async def aging_csv(request: web.Request) -> web.Response:
    by = "salesperson" if request.query.get("by") == "salesperson" else "customer"
    rt = request.app[RUNTIME]
    report = await receivables.aging_report(rt, by)
    async with rt.db.read() as conn:
        rows = await billing_web.aging_rows(conn, report)
    name = f"aging-{by}-{report.as_of.isoformat()}.csv"
    return web.Response(
        text=billing_web.aging_csv(report, rows),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


async def dunning_run(request: web.Request) -> web.Response:
    async def action() -> str:
        run = await receivables.run_dunning(request.app[RUNTIME])
        return f"已排队发送 {run.sent} 条催款提醒" + (f"，跳过 {run.skipped} 个已过时的级别" if run.skipped else "")

    return await _act(request, "/console/finance/receivables", action)


# ---- 发票 ---------------------------------------------------------------------------------------------------
def _status(status: str) -> Safe:
    return t('<span class="badge st-{s}">{zh}</span>', s=status, zh=INVOICE_STATUS_ZH.get(status, status))


async def invoices_page(request: web.Request) -> web.Response:
    status = request.query.get("status", "")
    status = status if status in INVOICE_STATUS_ZH or status == "open" else ""
    number = request.query.get("q", "").strip()[:32]
    found = await invoices.list_invoices(request.app[RUNTIME], status=status, number=number, limit=100)
    labels = await _labels(request, [i.customer_id for i in found])
    options = join(
        t('<option value="{v}"{sel}>{label}</option>', v=v, label=label, sel=Safe(" selected") if v == status else "")
        for v, label in (("", "全部状态"), ("open", "未结清"), *INVOICE_STATUS_ZH.items())
    )
    filters = t(
        '<form method="get" action="/console/finance/invoices" class="toolbar"><select name="status">{o}</select>'
        '<input name="q" value="{q}" placeholder="发票号 / 订单号" maxlength="32"><button type="submit">筛选</button></form>',
        o=options,
        q=number,
    )
    rows = [
        (
            t('<a href="{href}">{n}</a>', href=invoice_url(i.number), n=i.number),
            _status(i.status),
            labels.get(i.customer_id, i.customer_id),
            t('<a href="{href}">{n}</a>', href=order_url(i.order_number), n=i.order_number),
            money(i.total_fen),
            money(i.balance_fen),
            i.due_on.isoformat(),
            when(i.issued_at),
        )
        for i in found
    ]
    body = t("{f}{t}", f=filters, t=table(["发票号", "状态", "客户", "订单", "金额", "未付", "到期日", "开票时间"], rows, empty="没有发票"))
    return _show(request, "invoices", "发票", body)


async def invoice_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        inv = await invoices.get_invoice(rt, request.match_info["number"])
    except NotFound as exc:
        return _show(request, "invoices", "没有找到发票", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    labels = await _labels(request, [inv.customer_id])
    ctx = _ctx(request, "finance")
    facts = (
        ("状态", _status(inv.status)),
        ("客户", labels.get(inv.customer_id, inv.customer_id)),
        ("订单", t('<a href="{href}">{n}</a>', href=order_url(inv.order_number), n=inv.order_number)),
        ("发货单", inv.shipment_number or "（确认时开票）"),
        ("开票时间", when(inv.issued_at)),
        ("到期日", inv.due_on.isoformat()),
        ("金额", money(inv.total_fen)),
        ("已付", money(inv.paid_fen)),
        ("未付", t("<strong>{m}</strong>", m=money(inv.balance_fen))),
        ("作废原因", inv.void_reason or "—"),
    )
    summary = t('<dl class="summary">{i}</dl>', i=join(t("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v) for k, v in facts))
    lines = table(
        ["SKU", "商品", "数量", "单价", "金额"],
        [(ln.sku, ln.name, f"{ln.qty}{ln.unit}", money(ln.unit_price_fen), money(ln.amount_fen)) for ln in inv.lines],
    )
    source_zh = {"payment": "收款", "credit": "预收抵扣", "void": "作废冲回"}
    allocs = table(
        ["时间", "来源", "流水号", "金额"],
        [(when(a.at), source_zh.get(a.source, a.source), a.payment_reference or "—", money(a.amount_fen)) for a in inv.allocations],
        empty="尚无收款",
    )
    void = ""
    if inv.status != "void":
        void = post_form(
            ctx,
            invoice_url(inv.number) + "/void",
            Safe(
                '<label>作废原因<input name="reason" required maxlength="200" placeholder="开错价格、退货…"></label>'
                '<button type="submit" class="danger">作废（红冲）</button>'
                '<p class="hint">已收的款项会转为客户预收，自动抵扣下一张发票。</p>'
            ),
            cls="stack",
        )
        void = t('<section class="card"><h3>作废发票</h3>{f}</section>', f=void)
    body = t(
        '<p><a href="/console/finance/invoices">← 返回发票列表</a></p>{s}<h2>明细</h2>{l}<h2>收款分配</h2>{a}<div class="grid">{v}</div>',
        s=summary,
        l=lines,
        a=allocs,
        v=void,
    )
    return _show(request, "invoices", f"发票 {inv.number}", body)


async def invoice_void(request: web.Request) -> web.Response:
    form = await _form(request)
    number = request.match_info["number"]

    async def action() -> str:
        inv = await invoices.void_invoice(request.app[RUNTIME], number, form.get("reason", ""), actor=_actor(request))
        return f"发票 {inv.number} 已作废" + ("，已收款项转为客户预收" if any(a.source == "void" for a in inv.allocations) else "")

    return await _act(request, invoice_url(number), action)


# ---- 收款 ---------------------------------------------------------------------------------------------------
async def payments_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = _ctx(request, "finance")
    recent = await payments.list_payments(rt, limit=50)
    labels = await _labels(request, [p.customer_id for p in recent])
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
    return _show(request, "payments", "收款", body)


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
            customer_id=await _customer(request, form.get("customer", "")),
            amount_fen=_fen(form.get("amount", ""), "金额"),
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
        return _show(request, "payments", "没有这次导入", t('<p class="empty">{m}</p>', m=exc.message), status=404)
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
    return _show(request, "payments", f"导入 #{report['import_id']}", body)


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
        return _show(
            request, "accounts", "客户账户", t('{l}<p class="hint">输入客户查看账期、信用额度、预收余额和未结发票。</p>', l=lookup)
        )
    try:
        cid = await _customer(request, query)
    except NotFound as exc:
        return _show(request, "accounts", "客户账户", t('{l}<p class="empty">{m}</p>', l=lookup, m=exc.message), status=404)
    account = await services.get_account(rt, cid)
    balance = await receivables.customer_balance(rt, cid)
    history = await payments.credit_history(rt, cid, limit=20)
    label = (await _labels(request, [cid]))[cid]
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
    return _show(request, "accounts", "客户账户", body)


def _account_id(request: web.Request) -> int:
    raw = request.match_info["customer_id"]
    if not raw.isdecimal():
        raise InvalidInput("客户编号不对 (bad customer id)")
    return int(raw)


async def account_save(request: web.Request) -> web.Response:
    form = await _form(request)
    cid = _account_id(request)

    async def action() -> str:
        terms = form.get("terms_days", "").strip()
        if not terms.isdecimal():
            raise InvalidInput("账期必须是 0 到 365 的整数天 (terms must be whole days)", field="terms_days")
        raw_limit = form.get("credit_limit", "").strip()
        limit = _fen(raw_limit, "信用额度") if raw_limit else None
        account = await services.set_account(request.app[RUNTIME], cid, terms_days=int(terms), credit_limit_fen=limit)
        shown = "不限" if account.credit_limit_fen is None else money(account.credit_limit_fen)
        return f"已保存：账期 {account.terms_days} 天，信用额度 {shown}"

    return await _act(request, url("/console/finance/accounts", customer=f"#{cid}"), action)


async def account_refund(request: web.Request) -> web.Response:
    form = await _form(request)
    cid = _account_id(request)

    async def action() -> str:
        left = await payments.refund_credit(
            request.app[RUNTIME], cid, _fen(form.get("amount", ""), "退款金额"), form.get("reference", ""), actor=_actor(request)
        )
        return f"已退还预收，余额 {money(left)}"

    return await _act(request, url("/console/finance/accounts", customer=f"#{cid}"), action)


# ---- 待审核订单 ----------------------------------------------------------------------------------------------
async def holds_page(request: web.Request) -> web.Response:
    held = await receivables.held_orders(request.app[RUNTIME])
    labels = await _labels(request, [h.customer_id for h in held])
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
    return _show(request, "holds", "待审核订单", body)


async def hold_release(request: web.Request) -> web.Response:
    # Only finance (and admin) may release a credit hold: FINANCE_ROLES is the route guard.
    async def action() -> str:
        order = await receivables.release_hold(request.app[RUNTIME], request.match_info["number"], actor=_actor(request))
        short = sum(ln.backordered_qty for ln in order.lines)
        return f"订单 {order.number} 已放行并确认" + (f"，缺货 {short} 件待补" if short else "，已全部备货")

    return await _act(request, "/console/finance/holds", action)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/console/finance", index),
    ("GET", "/console/finance/", index),
    ("GET", "/console/finance/receivables", receivables_page),
    ("GET", "/console/finance/aging.csv", aging_csv),
    ("POST", "/console/finance/dunning/run", dunning_run),
    ("GET", "/console/finance/invoices", invoices_page),
    ("GET", "/console/finance/invoices/{number}", invoice_page),
    ("POST", "/console/finance/invoices/{number}/void", invoice_void),
    ("GET", "/console/finance/payments", payments_page),
    ("POST", "/console/finance/payments", payment_record),
    ("POST", "/console/finance/imports", import_upload),
    ("GET", "/console/finance/imports/{id}", import_page),
    ("GET", "/console/finance/accounts", accounts_page),
    ("POST", "/console/finance/accounts/{customer_id}", account_save),
    ("POST", "/console/finance/accounts/{customer_id}/refund", account_refund),
    ("GET", "/console/finance/holds", holds_page),
    ("POST", "/console/finance/holds/{number}/release", hold_release),
]


def setup_routes(app: web.Application, *, roles: Collection[str] = FINANCE_ROLES) -> None:
    """Mount the finance pages behind the console's sign-in (every route through :func:`auth.protected`)."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
