"""/api/v1 routes of billing: invoices, payments, statement imports, receivables aging (JSON and CSV), customer
accounts (terms, credit limit, refunds), credit holds, dunning (thin; rules live in the services).

Customers are named by their ``external_userid`` (as in /api/v1/orders). Errors are the usual JSON
``{"error": {"code", "message"}}``: invalid_amount, invoice_void, invoice_paid, payment_reference_conflict, …
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Any, ClassVar

import sqlalchemy as sa
from aiohttp import web
from pydantic import ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.billing import invoices, payments, receivables, services, statements
from fulfillment.billing.domain import (
    BUCKET_ZH,
    BUCKETS,
    INVOICE_STATUS_ZH,
    MAX_AMOUNT_FEN,
    MAX_TERMS_DAYS,
    PAYMENT_METHODS,
    Aged,
    CustomerNotFound,
    InvalidAmount,
)
from fulfillment.web import Order, WaitingApproval
from scrm.core.clock import SHANGHAI
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.bodies import Body, NonBlank, OrEmpty, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route
from scrm.crm.customers.models import customer_identities, customers
from scrm.crm.customers.services import find_customer
from scrm.crm.staff.models import salespeople
from scrm.governance.fields.services import rules_for
from scrm.governance.scopes.services import customer_in_scope, scope_for

CSV_INJECTION = ("=", "+", "-", "@", "\t", "\r")


# ---- shared with the console ----------------------------------------------------------------------------
async def resolve_customer(conn: AsyncConnection, external_userid: str) -> int | None:
    """A customer by external_userid (statement imports' ``customer`` column, the API's ``customer``)."""
    return await find_customer(conn, "external_userid", external_userid.strip())


async def customer_directory(conn: AsyncConnection, ids: list[int]) -> dict[int, tuple[str, str]]:
    """customer id → (name, first external_userid) for display."""
    if not ids:
        return {}
    names = {
        int(r.id): r.name or "" for r in await conn.execute(sa.select(customers.c.id, customers.c.name).where(customers.c.id.in_(ids)))
    }
    ext: dict[int, str] = {}
    rows = await conn.execute(
        sa.select(customer_identities.c.customer_id, customer_identities.c.value)
        .where(customer_identities.c.customer_id.in_(ids), customer_identities.c.kind == "external_userid")
        .order_by(customer_identities.c.id)
    )
    for r in rows:
        ext.setdefault(int(r.customer_id), r.value)
    return {i: (names.get(i, ""), ext.get(i, "")) for i in ids}


async def salesperson_names(conn: AsyncConnection, userids: list[str]) -> dict[str, str]:
    rows = await conn.execute(sa.select(salespeople.c.userid, salespeople.c.name).where(salespeople.c.userid.in_(userids)))
    return {r.userid: r.name or "" for r in rows}


async def aging_rows(conn: AsyncConnection, report: receivables.AgingReport) -> list[dict[str, Any]]:
    """The report's rows with a display name (customer or salesperson) for each key."""
    if report.by == "customer":
        directory = await customer_directory(conn, [int(r.key) for r in report.rows])
        label = {r.key: directory.get(int(r.key), ("", "")) for r in report.rows}
    else:
        names = await salesperson_names(conn, [r.key for r in report.rows if r.key])
        label = {r.key: (names.get(r.key, "") if r.key else "（未分配销售）", r.key) for r in report.rows}
    return [{"key": r.key, "name": label[r.key][0], "ident": label[r.key][1], **_aged(r.aged)} for r in report.rows]


def _aged(aged: Aged) -> dict[str, Any]:
    return {"buckets": dict(aged.buckets), "total_fen": aged.total_fen, "overdue_fen": aged.overdue_fen, "invoices": aged.count}


def yuan_text(fen: int) -> str:
    """Fen as plain yuan for spreadsheets: 123450 → '1234.50' (no separators, no float)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _cell(text: str) -> str:
    return "'" + text if text.startswith(CSV_INJECTION) else text  # a name never becomes a spreadsheet formula


def aging_csv(report: receivables.AgingReport, rows: list[dict[str, Any]]) -> str:
    """Aging as CSV (UTF-8 with BOM so Excel reads the Chinese), amounts in yuan, a 合计 row last."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    first = ("客户ID", "客户", "external_userid") if report.by == "customer" else ("销售userid", "销售", "")
    writer.writerow([*first, *(BUCKET_ZH[b] for b in BUCKETS), "合计", "其中逾期", f"截至 {report.as_of.isoformat()}"])
    for r in rows:
        writer.writerow(
            [
                _cell(r["key"]),
                _cell(r["name"]),
                _cell(r["ident"]),
                *(yuan_text(r["buckets"][b]) for b in BUCKETS),
                yuan_text(r["total_fen"]),
                yuan_text(r["overdue_fen"]),
                "",
            ]
        )
    t = report.total
    writer.writerow(["合计", "", "", *(yuan_text(t.buckets[b]) for b in BUCKETS), yuan_text(t.total_fen), yuan_text(t.overdue_fen), ""])
    return "\ufeff" + out.getvalue()


AMOUNT_MESSAGE = "amount_fen 必须是整数（分）(amount_fen must be an integer number of fen)"


class VoidIn(Body):
    messages: ClassVar[dict[str, str]] = {"reason": "作废原因必填，且不超过 200 字 (a void reason of at most 200 characters is required)"}

    reason: Annotated[str, NonBlank, Field(max_length=200)]


class PaymentIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "amount_fen": AMOUNT_MESSAGE,
        "invoices": '发票号数组 ["INV100001"] (invoices must be an array of numbers)',
        "reference": "流水号必填，且不超过 128 个字符 (reference is required, ≤ 128 chars)",
        "received_at": "received_at 必须是 ISO 时间，如 2026-11-20T14:30:00+08:00 (ISO 8601)",
    }

    customer: Annotated[str, NonBlank, Field(max_length=128, description="external_userid")]
    amount_fen: int = Field(description="fen, > 0 (else invalid_amount)")
    reference: Annotated[str, NonBlank, Field(max_length=128, description="idempotency key (bank serial number)")]
    method: Annotated[str, OrEmpty, Field(max_length=16, description=f"one of {', '.join(PAYMENT_METHODS)}; default bank")] = ""
    received_at: dt.datetime | None = Field(None, description="default now; without a timezone: Asia/Shanghai")
    invoices: list[str] | None = Field(None, description="pay these invoices first (oldest due otherwise)")
    note: Annotated[str, OrEmpty, Field(max_length=500)] = ""


class AccountChange(Body):
    model_config = ConfigDict(extra="forbid")
    messages: ClassVar[dict[str, str]] = {
        "terms_days": f"账期必须是 0 到 {MAX_TERMS_DAYS} 的整数天 (terms_days must be 0–{MAX_TERMS_DAYS})",
        "credit_limit_fen": "信用额度必须是不小于 0 的金额，或留空表示不限 (credit_limit_fen ≥ 0 or null)",
    }

    terms_days: int = Field(None, ge=0, le=MAX_TERMS_DAYS)
    credit_limit_fen: int | None = Field(None, ge=0, le=MAX_AMOUNT_FEN, description="null = no limit")


class RefundIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "amount_fen": "金额必须是整数（单位：分）(amount_fen must be an integer number of fen)",
        "reference": "流水号必填，且不超过 128 个字符 (reference is required, ≤ 128 chars)",
    }
    error_types: ClassVar[dict[str, type[InvalidInput]]] = {"amount_fen": InvalidAmount}

    amount_fen: int = Field(description="fen, > 0; never more than the credit")
    reference: Annotated[str, NonBlank, Field(max_length=128, description="idempotency key")]


class InvoiceLine(ApiModel):
    sku: str
    name: str
    unit: str
    qty: int
    unit_price_fen: int
    amount_fen: int


class InvoiceAllocation(ApiModel):
    amount_fen: int
    source: str
    payment: str | None = Field(description="the payment's reference")
    at: dt.datetime


class Invoice(ApiModel):
    number: str
    status: str = Field(description=", ".join(INVOICE_STATUS_ZH))
    customer_id: int
    order: str = Field(description="the order number")
    shipment: str | None = Field(description="the shipment number (invoiced per shipment)")
    total_fen: int
    paid_fen: int
    balance_fen: int
    issued_at: dt.datetime
    due_on: dt.date
    voided_at: dt.datetime | None
    void_reason: str
    lines: list[InvoiceLine]
    allocations: list[InvoiceAllocation]


class InvoiceList(ApiModel):
    items: list[Invoice]


class PaymentAllocation(ApiModel):
    invoice: str
    amount_fen: int


class PaymentResult(ApiModel):
    reference: str
    customer_id: int
    amount_fen: int
    method: str
    received_at: dt.datetime
    allocations: list[PaymentAllocation]
    credit_fen: int = Field(description="the part kept as customer credit")
    duplicate: bool = Field(description="the reference was recorded already with this amount: nothing changed")


class Payment(ApiModel):
    reference: str
    customer_id: int
    amount_fen: int
    method: str
    source: str
    received_at: dt.datetime
    created_by: str
    note: str


class PaymentList(ApiModel):
    items: list[Payment]


class ImportRow(ApiModel):
    line: int
    reference: str
    status: str = Field(description="recorded, duplicate, conflict or error")
    message: str
    amount_fen: int | None
    customer_id: int | None
    allocations: list[PaymentAllocation]
    credit_fen: int


class ImportReport(ApiModel):
    import_id: int
    filename: str
    file_sha256: str
    imported_at: dt.datetime
    imported_by: str
    previously_imported: list[int] = Field(description="earlier imports of the very same file")
    counts: dict[str, int] = Field(description="rows per status")
    recorded_fen: int
    rows: list[ImportRow]


class AgedTotals(ApiModel):
    buckets: dict[str, int] = Field(description="fen per aging bucket")
    total_fen: int
    overdue_fen: int
    invoices: int


class AgingRow(AgedTotals):
    key: str = Field(description="customer id or salesperson userid")
    name: str
    ident: str = Field(description="the customer's external_userid, or the salesperson's userid")


class Aging(ApiModel):
    by: str = Field(description="customer or salesperson")
    as_of: dt.date
    buckets: list[str]
    rows: list[AgingRow]
    total: AgedTotals


class OpenInvoice(ApiModel):
    number: str
    order: str
    due_on: dt.date
    balance_fen: int


class Account(ApiModel):
    customer_id: int
    terms_days: int
    credit_limit_fen: int | None = Field(None, description="null = no limit; absent when your role may not see credit limits")
    credit_fen: int
    open_fen: int
    overdue_fen: int
    oldest_due_on: dt.date | None
    open_invoices: list[OpenInvoice]


class Refunded(ApiModel):
    customer_id: int
    credit_fen: int = Field(description="credit left")
    approval: WaitingApproval | None = Field(None, description="202: the approval the refund waits for")


class Exposure(ApiModel):
    limit_fen: int | None = Field(None, description="the credit limit; absent when your role may not see credit limits")
    receivables_fen: int
    open_orders_fen: int
    credit_fen: int


class Hold(ApiModel):
    number: str
    customer_id: int
    salesperson: str
    total_fen: int
    created_at: dt.datetime
    exposure: Exposure


class HoldList(ApiModel):
    items: list[Hold]


class DunningResult(ApiModel):
    sent: int
    skipped: int


# ---- handlers -------------------------------------------------------------------------------------------
async def _customer_id(request: web.Request, external: str) -> int:
    async with request.app[RUNTIME].db.read() as conn:
        found = await resolve_customer(conn, external)
    if found is None or not await customer_in_scope(request.app[RUNTIME], await scope_for(request.app[RUNTIME]), found):
        raise CustomerNotFound(f"没有这个客户 {external} (unknown customer)", customer=external)  # someone else's = unknown
    return found


async def _in_scope(request: web.Request, customer_ids: list[int]) -> set[int]:
    """Which of these customers the person asking may see (their data scope)."""
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    if scope.everything:
        return set(customer_ids)
    return {c for c in set(customer_ids) if await customer_in_scope(rt, scope, c)}


def _limit(request: web.Request, default: int = 50) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdecimal() or not 1 <= int(raw) <= 500:
        raise InvalidInput("limit 须为 1 到 500 的整数 (limit must be an integer from 1 to 500)", field="limit")
    return int(raw)


async def list_invoices(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    external = request.query.get("customer", "").strip()
    status = request.query.get("status", "")
    if status and status != "open" and status not in INVOICE_STATUS_ZH:
        raise InvalidInput("status 只能是 open、partially_paid、paid 或 void (status: open | partially_paid | paid | void)", field="status")
    customer_id = await _customer_id(request, external) if external else None
    found = await invoices.list_invoices(rt, customer_id=customer_id, status=status, limit=_limit(request))
    seen = await _in_scope(request, [i.customer_id for i in found])
    return web.json_response({"items": [i.to_json() for i in found if i.customer_id in seen]})


async def get_invoice(request: web.Request) -> web.Response:
    invoice = await invoices.get_invoice(request.app[RUNTIME], request.match_info["number"])
    if invoice.customer_id not in await _in_scope(request, [invoice.customer_id]):
        raise NotFound(f"没有这张发票 {invoice.number} (no such invoice)")
    return web.json_response(invoice.to_json())


async def void_invoice(request: web.Request) -> web.Response:
    body = await read_body(request, VoidIn)
    view = await invoices.void_invoice(request.app[RUNTIME], request.match_info["number"], body.reason, actor="api")
    return web.json_response(view.to_json())


def _received_at(when: dt.datetime | None) -> dt.datetime | None:
    return when if when is None or when.tzinfo else when.replace(tzinfo=SHANGHAI)


async def create_payment(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_body(request, PaymentIn)
    result = await payments.record_payment(
        rt,
        customer_id=await _customer_id(request, body.customer),
        amount_fen=body.amount_fen,
        reference=body.reference,
        method=body.method or "bank",
        source="api",
        received_at=_received_at(body.received_at),
        invoices_named=body.invoices,
        actor="api",
        note=body.note,
    )
    return web.json_response(result.to_json(), status=200 if result.duplicate else 201)


async def list_payments(request: web.Request) -> web.Response:
    external = request.query.get("customer", "").strip()
    customer_id = await _customer_id(request, external) if external else None
    rows = await payments.list_payments(request.app[RUNTIME], customer_id=customer_id, limit=_limit(request))
    seen = await _in_scope(request, [r.customer_id for r in rows])
    shown = [r for r in rows if r.customer_id in seen]
    return web.json_response({"items": [{**r.__dict__, "received_at": r.received_at.isoformat()} for r in shown]})


async def import_statement(request: web.Request) -> web.Response:
    """The CSV file is the request body (Content-Type text/csv); ?filename= names it in the report."""
    rt = request.app[RUNTIME]
    report = await statements.import_statement(
        rt, await request.read(), filename=request.query.get("filename", "")[:256], resolve_customer=resolve_customer, actor="api"
    )
    return web.json_response(report.to_json(), status=201)


async def get_import(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not raw.isdecimal():
        raise InvalidInput("导入编号必须是数字 (import id must be a number)", field="id")
    return web.json_response(await statements.get_import(request.app[RUNTIME], int(raw)))


async def _aging(request: web.Request) -> tuple[receivables.AgingReport, list[dict[str, Any]]]:
    rt = request.app[RUNTIME]
    report = await receivables.aging_report(rt, request.query.get("by", "customer"))
    async with rt.db.read() as conn:
        return report, await aging_rows(conn, report)


async def aging(request: web.Request) -> web.Response:
    report, rows = await _aging(request)
    return web.json_response(
        {"by": report.by, "as_of": report.as_of.isoformat(), "buckets": list(BUCKETS), "rows": rows, "total": _aged(report.total)}
    )


async def aging_csv_view(request: web.Request) -> web.Response:
    report, rows = await _aging(request)
    name = f"aging-{report.by}-{report.as_of.isoformat()}.csv"
    return web.Response(
        text=aging_csv(report, rows),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _account_json(request: web.Request, customer_id: int) -> dict[str, Any]:
    rt = request.app[RUNTIME]
    account = await services.get_account(rt, customer_id)
    balance = await receivables.customer_balance(rt, customer_id)
    limit = {"credit_limit_fen": account.credit_limit_fen} if (await rules_for(rt)).credit_limit_visible else {}
    return {
        "customer_id": customer_id,
        "terms_days": account.terms_days,
        **limit,
        "credit_fen": account.credit_fen,
        "open_fen": balance.open_fen,
        "overdue_fen": balance.overdue_fen,
        "oldest_due_on": balance.oldest_due_on.isoformat() if balance.oldest_due_on else None,
        "open_invoices": [
            {"number": i.number, "order": i.order_number, "due_on": i.due_on.isoformat(), "balance_fen": i.balance_fen}
            for i in balance.invoices
        ],
    }


async def get_account(request: web.Request) -> web.Response:
    return web.json_response(await _account_json(request, await _customer_id(request, request.match_info["customer"])))


async def update_account(request: web.Request) -> web.Response:
    changes = (await read_body(request, AccountChange)).model_dump(exclude_unset=True)
    customer_id = await _customer_id(request, request.match_info["customer"])
    await services.set_account(request.app[RUNTIME], customer_id, **changes)
    return web.json_response(await _account_json(request, customer_id))


async def refund(request: web.Request) -> web.Response:
    body = await read_body(request, RefundIn)
    customer_id = await _customer_id(request, request.match_info["customer"])
    outcome = await payments.request_refund(request.app[RUNTIME], customer_id, body.amount_fen, body.reference, actor="api")
    if outcome.approval is not None:
        body_out = {"customer_id": customer_id, "credit_fen": outcome.credit_fen, "approval": outcome.approval.brief()}
        return web.json_response(body_out, status=202)
    return web.json_response({"customer_id": customer_id, "credit_fen": outcome.credit_fen}, status=201)


async def list_holds(request: web.Request) -> web.Response:
    held = await receivables.held_orders(request.app[RUNTIME])
    show_limit = (await rules_for(request.app[RUNTIME])).credit_limit_visible
    return web.json_response(
        {
            "items": [
                {
                    "number": h.number,
                    "customer_id": h.customer_id,
                    "salesperson": h.salesperson_userid,
                    "total_fen": h.total_fen,
                    "created_at": h.created_at.isoformat(),
                    "exposure": h.exposure.__dict__ if show_limit else {k: v for k, v in h.exposure.__dict__.items() if k != "limit_fen"},
                }
                for h in held
            ]
        }
    )


async def release(request: web.Request) -> web.Response:
    outcome = await receivables.request_release(request.app[RUNTIME], request.match_info["number"], actor="api")
    body = outcome.order.to_json()
    if outcome.approval is not None:  # a credit-release rule matched: the order stays on hold until it is approved
        body["approval"] = outcome.approval.brief()
    return web.json_response(body)


async def dunning_run(request: web.Request) -> web.Response:
    run = await receivables.run_dunning(request.app[RUNTIME])
    return web.json_response({"sent": run.sent, "skipped": run.skipped})


def setup_routes(app: web.Application) -> None:
    e = (400, 401, 404, 409)
    add_api_route(
        app,
        "GET",
        "/invoices",
        list_invoices,
        summary="Invoices (filter by customer, status)",
        response=InvoiceList,
        parameters=[
            Query("customer"),
            Query("status", enum=("open", *INVOICE_STATUS_ZH)),
            Query("limit", type="integer", minimum=1, maximum=500),
        ],
    )
    add_api_route(app, "GET", "/invoices/{number}", get_invoice, summary="One invoice with lines and allocations", response=Invoice)
    add_api_route(
        app,
        "POST",
        "/invoices/{number}/void",
        void_invoice,
        summary="Void an invoice (credit note): payments go to customer credit",
        response=Invoice,
        request_body=VoidIn,
        errors=e,
    )
    add_api_route(
        app,
        "POST",
        "/payments",
        create_payment,
        success=(200, 201),
        summary="Record a payment: allocated oldest-due-first (or to the named invoices), the rest kept as credit; idempotent by reference",
        response=PaymentResult,
        request_body=PaymentIn,
        errors=e,
    )
    add_api_route(
        app,
        "GET",
        "/payments",
        list_payments,
        summary="Payments, newest first",
        response=PaymentList,
        parameters=[Query("customer"), Query("limit", type="integer", minimum=1, maximum=500)],
    )
    add_api_route(
        app,
        "POST",
        "/payment-imports",
        import_statement,
        success=201,
        summary="Import a bank / WeChat Pay statement CSV (body; UTF-8): a report per line; re-importing changes nothing",
        response=ImportReport,
        request_content_type="text/csv",
        parameters=[Query("filename", max_length=256)],
        errors=(400, 401, 413),
    )
    add_api_route(
        app,
        "GET",
        "/payment-imports/{id}",
        get_import,
        summary="The stored report of a statement import",
        response=ImportReport,
        path_pattern={"id": "^[0-9]+$"},
    )
    by = Query("by", enum=("customer", "salesperson"))
    add_api_route(
        app, "GET", "/receivables/aging", aging, summary="Receivables aging by customer or salesperson", response=Aging, parameters=[by]
    )
    add_api_route(
        app,
        "GET",
        "/receivables/aging.csv",
        aging_csv_view,
        content_type="text/csv",
        summary="Receivables aging as CSV (yuan)",
        parameters=[by],
    )
    add_api_route(
        app,
        "GET",
        "/accounts/{customer}",
        get_account,
        summary="A customer's terms, credit limit, credit and open invoices",
        response=Account,
    )
    add_api_route(
        app,
        "PATCH",
        "/accounts/{customer}",
        update_account,
        summary="Set payment terms (days) and/or credit limit (fen, null = none)",
        response=Account,
        request_body=AccountChange,
    )
    add_api_route(
        app,
        "POST",
        "/accounts/{customer}/refunds",
        refund,
        success=(201, 202),
        summary="Refund customer credit (never below zero; idempotent by reference); 202 with the approval when a refund rule "
        "holds it (nothing paid out until approved)",
        response={201: Refunded, 202: Refunded},
        request_body=RefundIn,
        errors=e,
    )
    add_api_route(app, "GET", "/holds", list_holds, summary="Orders on credit hold", response=HoldList, errors=(401,))
    add_api_route(
        app,
        "POST",
        "/holds/{number}/release",
        release,
        summary="Release a credit hold: confirm and allocate — or, when a credit_release approval rule matches, wait for it (the order "
        "stays on_hold and answers with the approval)",
        response=Order,
        errors=(401, 404, 409),
    )
    add_api_route(
        app,
        "POST",
        "/dunning/run",
        dunning_run,
        summary="Queue today's dunning reminders now (each level once)",
        response=DunningResult,
        errors=(401,),
    )
