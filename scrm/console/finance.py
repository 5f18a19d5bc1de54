"""/console/finance — 财务: receivables aging (by customer / salesperson, CSV), invoices (void with a reason),
payments (record one; import a bank / WeChat Pay statement and read its report), customer accounts (terms, credit
limit, refunds of credit) and orders on credit hold (放行).

Thin views over :mod:`fulfillment.billing`: a domain error becomes the red flash on the page it came from (nothing
changed); success redirects back with a green one. Amounts are typed in yuan and kept in fen.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from fulfillment.billing import invoices, receivables
from fulfillment.billing import web as billing_web
from fulfillment.billing.domain import BUCKET_ZH, BUCKETS, INVOICE_STATUS_ZH
from scrm.console import auth
from scrm.console.auth import Handler
from scrm.console.finance_accounts import (
    account_refund,
    account_save,
    accounts_page,
    hold_release,
    holds_page,
    import_page,
    import_upload,
    payment_record,
    payments_page,
)
from scrm.console.finance_common import (
    FINANCE_ROLES,
    customer_labels,
    invoice_url,
    show_tab,
    tab_switch,
)
from scrm.console.render import Safe, button_form, join, money, order_url, post_form, t, table, url, when
from scrm.console.web import _act, _actor, _ctx, _form, forbidden
from scrm.core.errors import NotFound
from scrm.core.http.keys import RUNTIME


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
    switch = tab_switch(
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
            *[
                (who(r), *(amount_text(r["buckets"][b]) for b in BUCKETS), money(r["total_fen"]), amount_text(r["overdue_fen"]))
                for r in rows
            ],
            (
                Safe("<strong>合计</strong>"),
                *(amount_text(report.total.buckets[b]) for b in BUCKETS),
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
    return show_tab(request, "receivables", "应收账龄", body)


def amount_text(fen: int) -> str:
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
def status_badge_of(status: str) -> Safe:
    return t('<span class="badge st-{s}">{zh}</span>', s=status, zh=INVOICE_STATUS_ZH.get(status, status))


async def invoices_page(request: web.Request) -> web.Response:
    status = request.query.get("status", "")
    status = status if status in INVOICE_STATUS_ZH or status == "open" else ""
    number = request.query.get("q", "").strip()[:32]
    found = await invoices.list_invoices(request.app[RUNTIME], status=status, number=number, limit=100)
    labels = await customer_labels(request, [i.customer_id for i in found])
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
            status_badge_of(i.status),
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
    return show_tab(request, "invoices", "发票", body)


async def invoice_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        inv = await invoices.get_invoice(rt, request.match_info["number"])
    except NotFound as exc:
        return show_tab(request, "invoices", "没有找到发票", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    labels = await customer_labels(request, [inv.customer_id])
    ctx = _ctx(request, "finance")
    facts = (
        ("状态", status_badge_of(inv.status)),
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
    return show_tab(request, "invoices", f"发票 {inv.number}", body)


async def invoice_void(request: web.Request) -> web.Response:
    form = await _form(request)
    number = request.match_info["number"]

    async def action() -> str:
        inv = await invoices.void_invoice(request.app[RUNTIME], number, form.get("reason", ""), actor=_actor(request))
        return f"发票 {inv.number} 已作废" + ("，已收款项转为客户预收" if any(a.source == "void" for a in inv.allocations) else "")

    return await _act(request, invoice_url(number), action)


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
