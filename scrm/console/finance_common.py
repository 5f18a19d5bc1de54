"""Shared pieces of the finance console pages (/console/finance): tabs, who may use them, reading amounts and
customers from forms, customer names."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from fulfillment.billing import web as billing_web
from fulfillment.billing.domain import CustomerNotFound
from scrm.console import auth
from scrm.console.customer_picker import PICKER_HEADERS, CustomerNotChosen, resolve_customer_text
from scrm.console.pages import page_context, render
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.money import parse_yuan

# Who may use these pages (staff roles); release_hold's accountability is the session subject passed as ``actor``.
FINANCE_ROLES = auth.FINANCE_ROLES
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


def finance_page(request: web.Request, template: str, tab: str, *, http_status: int = 200, **values: object) -> web.Response:
    """A finance page: ``template`` (extending ``finance/base.html``) under the tabs, ``tab`` the active one. Sent
    with the CSP that lets the customer picker's script run (the pages choose customers)."""
    tabs = [(f"/console/finance/{k}", label) for k, label in TABS]
    ctx = page_context(request, "finance")
    return render(request, template, ctx, http_status=http_status, http_headers=PICKER_HEADERS, tab=tab, tabs=tabs, **values)


def fen_field(raw: str, label: str, name: str = "amount") -> int:
    """A form's amount in 元 (``1,234.50``, ``¥36``) as fen; anything else is InvalidInput on field ``name``."""
    try:
        return parse_yuan(raw)
    except ValueError:
        shown = raw.strip()[:20] or "（空）"
        raise InvalidInput(f"{label}“{shown}”不是有效的金额：请填写以元为单位的数字，最多两位小数，如 1,234.50", field=name) from None


async def customer_field(request: web.Request, text: str) -> int:
    """A customer by external_userid, by ``#id`` (alone, or after the name as the customer picker writes it), or by a
    name only one customer has (:func:`scrm.console.customer_picker.resolve_customer_text`)."""
    text = text.strip()
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        found_id = await billing_web.resolve_customer(conn, text) if text and not text.startswith("#") else None
    if found_id is not None:
        return found_id
    try:
        return await resolve_customer_text(rt, text)
    except CustomerNotChosen as exc:
        raise CustomerNotFound(exc.message, field="customer") from None


async def customer_names(request: web.Request, ids: list[int]) -> dict[int, str]:
    """The names the billing directory knows for ``ids`` (templates link them to the customer's account)."""
    async with request.app[RUNTIME].db.read() as conn:
        directory = await billing_web.customer_directory(conn, sorted(set(ids)))
    return {i: directory[i][0] for i in directory}
