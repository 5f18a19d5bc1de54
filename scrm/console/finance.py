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
from scrm.console import auth, pages
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
from scrm.console.finance_common import FINANCE_ROLES, customer_field, customer_names, finance_page, invoice_url
from scrm.console.pages import act, actor, read_form
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
    return finance_page(
        request,
        "finance/receivables.html",
        "receivables",
        report=report,
        rows=rows,
        by=by,
        buckets=BUCKETS,
        bucket_names=[BUCKET_ZH[b] for b in BUCKETS],
    )


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

    return await act(request, "/console/finance/receivables", action)


# ---- 发票 ---------------------------------------------------------------------------------------------------


async def invoices_page(request: web.Request) -> web.Response:
    status = request.query.get("status", "")
    status = status if status in INVOICE_STATUS_ZH or status == "open" else ""
    number = request.query.get("q", "").strip()[:32]
    who = request.query.get("customer", "").strip()[:128]
    error = ""
    customer_id: int | None = None
    if who:  # the customer picker's value (name #id), an external_userid, #id or a unique name
        try:
            customer_id = await customer_field(request, who)
        except NotFound as exc:
            error = exc.message
    found = (
        []
        if error
        else await invoices.list_invoices(request.app[RUNTIME], customer_id=customer_id, status=status, number=number, limit=100)
    )
    names = await customer_names(request, [i.customer_id for i in found])
    return finance_page(
        request,
        "finance/invoices.html",
        "invoices",
        http_status=404 if error else 200,
        found=found,
        names=names,
        status=status,
        number=number,
        customer=who,
        customer_error=error,
        status_names=INVOICE_STATUS_ZH,
    )


async def invoice_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        inv = await invoices.get_invoice(rt, request.match_info["number"])
    except NotFound as exc:
        return finance_page(request, "finance/not_found.html", "invoices", http_status=404, title="没有找到发票", message=exc.message)
    names = await customer_names(request, [inv.customer_id])
    return finance_page(request, "finance/invoice.html", "invoices", inv=inv, names=names, status_names=INVOICE_STATUS_ZH)


async def invoice_void(request: web.Request) -> web.Response:
    form = await read_form(request)
    number = request.match_info["number"]

    async def action() -> str:
        inv = await invoices.void_invoice(request.app[RUNTIME], number, form.get("reason", ""), actor=actor(request))
        return f"发票 {inv.number} 已作废" + ("，已收款项转为客户预收" if any(a.source == "void" for a in inv.allocations) else "")

    return await act(request, invoice_url(number), action)


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
    pages.setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
