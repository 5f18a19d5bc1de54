"""Billing's shared ground: the settings, customer accounts (terms, credit limit, customer credit), the two ledger
moves every use case is built from (money onto an invoice; customer credit up or down), and the credit exposure
that order confirmation checks.

Use cases live next door: :mod:`.invoices` (issue, void), :mod:`.payments` (record, refund), :mod:`.statements`
(bank / WeChat Pay CSV import), :mod:`.receivables` (balance, aging, dunning, credit holds).

Concurrency: every change of a customer's money first locks that customer's account row (``FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers anyway), so one customer's invoices, allocations and
credit change one transaction at a time. Lock order everywhere: shipment → account → invoices.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from config.settings import CONFIG_DIR
from fulfillment.billing.domain import (
    MAX_AMOUNT_FEN,
    MAX_TERMS_DAYS,
    OPEN_INVOICE_STATUSES,
    BillingConfig,
    InsufficientCredit,
    invoice_status,
    parse_billing_config,
)
from fulfillment.billing.models import InvoiceStatus, credit_entries, customer_accounts, invoices, payment_allocations, payments
from fulfillment.orders.domain import CreditExposure
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import orders
from scrm.core import audit
from scrm.core.db import insert_ignore
from scrm.core.errors import Conflict, InvalidInput
from scrm.core.money import format_fen
from scrm.core.runtime import ResourceKey, Runtime
from scrm.governance.fields.services import rules_for

CONFIG_FILE = CONFIG_DIR / "billing.toml"
BILLING_CONFIG: ResourceKey[BillingConfig] = ResourceKey("billing_config")
# Orders whose value counts as committed but not yet invoiced (on hold ones wait for a decision; they do not).
COMMITTED_ORDER_STATUSES = (S.CONFIRMED, S.PARTIALLY_SHIPPED, S.SHIPPED)
UNSET: Any = object()


# ---- settings -------------------------------------------------------------------------------------------
def load_billing_config(path: Path = CONFIG_FILE) -> BillingConfig:
    """Read and validate config/billing.toml (built-in defaults when the file is absent)."""
    if not path.exists():
        return BillingConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return parse_billing_config(data)


def billing_config(rt: Runtime) -> BillingConfig:
    """The billing settings of this process: read once, then kept on the runtime (tests may put their own)."""
    if not rt.has(BILLING_CONFIG):
        rt.put(BILLING_CONFIG, load_billing_config())
    return rt.get(BILLING_CONFIG)


# ---- accounts -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    customer_id: int
    terms_days: int
    credit_limit_fen: int | None  # None = no limit
    credit_fen: int  # unused customer credit (预收)
    configured: bool  # False: no account row yet, terms are the configured default


async def lock_account(conn: AsyncConnection, dialect: str, customer_id: int, now: dt.datetime, default_terms: int) -> Any:
    """The customer's account row, created with the default terms if missing, locked for this transaction."""
    await conn.execute(
        insert_ignore(customer_accounts, dialect).values(
            customer_id=customer_id, payment_terms_days=default_terms, credit_fen=0, updated_at=now
        )
    )
    q = sa.select(customer_accounts).where(customer_accounts.c.customer_id == customer_id)
    if dialect == "postgresql":
        q = q.with_for_update()
    return (await conn.execute(q)).one()


async def read_account(conn: AsyncConnection, customer_id: int, default_terms: int) -> Account:
    row = (await conn.execute(sa.select(customer_accounts).where(customer_accounts.c.customer_id == customer_id))).first()
    if row is None:
        return Account(customer_id, default_terms, None, 0, False)
    limit = None if row.credit_limit_fen is None else int(row.credit_limit_fen)
    return Account(customer_id, int(row.payment_terms_days), limit, int(row.credit_fen), True)


async def get_account(rt: Runtime, customer_id: int) -> Account:
    async with rt.db.read() as conn:
        return await read_account(conn, customer_id, billing_config(rt).default_terms_days)


async def set_account(rt: Runtime, customer_id: int, *, terms_days: Any = UNSET, credit_limit_fen: Any = UNSET) -> Account:
    """Change a customer's payment terms (days, 0 = due on issue) and/or credit limit (fen; None = no limit).
    Applies to invoices issued and orders confirmed from now on. Bad values change nothing."""
    values: dict[str, Any] = {}
    if terms_days is not UNSET:
        if not isinstance(terms_days, int) or isinstance(terms_days, bool) or not 0 <= terms_days <= MAX_TERMS_DAYS:
            raise InvalidInput(f"账期必须是 0 到 {MAX_TERMS_DAYS} 的整数天 (terms_days must be 0–{MAX_TERMS_DAYS})", field="terms_days")
        values["payment_terms_days"] = terms_days
    if credit_limit_fen is not UNSET:
        ok = credit_limit_fen is None or (
            isinstance(credit_limit_fen, int) and not isinstance(credit_limit_fen, bool) and 0 <= credit_limit_fen <= MAX_AMOUNT_FEN
        )
        if not ok:
            raise InvalidInput("信用额度必须是不小于 0 的金额，或留空表示不限 (credit_limit_fen ≥ 0 or null)", field="credit_limit_fen")
        values["credit_limit_fen"] = credit_limit_fen
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await lock_account(conn, rt.db.dialect, customer_id, now, billing_config(rt).default_terms_days)
        current = await read_account(conn, customer_id, billing_config(rt).default_terms_days)
        if "credit_limit_fen" in values and values["credit_limit_fen"] != current.credit_limit_fen:
            (await rules_for(rt)).check_credit_limit_edit()  # 字段权限: only roles that may edit it change a credit limit
            before, after = {"credit_limit_fen": current.credit_limit_fen}, {"credit_limit_fen": values["credit_limit_fen"]}
            await audit.record(conn, now, action="update", entity="accounts", entity_id=customer_id, summary="修改信用额度",
                               before=before, after=after)  # fmt: skip
        if values:
            await conn.execute(
                customer_accounts.update().where(customer_accounts.c.customer_id == customer_id).values(updated_at=now, **values)
            )
        return await read_account(conn, customer_id, billing_config(rt).default_terms_days)


# ---- the two ledger moves -------------------------------------------------------------------------------
async def put_on_invoice(
    conn: AsyncConnection, invoice: Any, amount_fen: int, now: dt.datetime, *, payment_id: int | None, source: str
) -> None:
    """Money onto an open invoice (from a payment or from customer credit): paid_fen, status and an allocation
    row change together. The caller holds the customer's account lock; the guard makes a stale read fail loudly."""
    paid = int(invoice.paid_fen) + amount_fen
    status = invoice_status(int(invoice.total_fen), paid)
    result = await conn.execute(
        invoices.update()
        .where(invoices.c.id == invoice.id, invoices.c.version == invoice.version, invoices.c.status.in_(OPEN_INVOICE_STATUSES))
        .values(paid_fen=paid, status=status, version=invoices.c.version + 1)
    )
    if result.rowcount != 1:
        raise Conflict("发票刚刚被修改过，请重试 (the invoice changed meanwhile; retry)", invoice=invoice.number)
    await conn.execute(
        payment_allocations.insert().values(
            payment_id=payment_id, invoice_id=invoice.id, amount_fen=amount_fen, source=source, created_at=now
        )
    )


async def change_credit(
    conn: AsyncConnection,
    customer_id: int,
    delta_fen: int,
    reason: str,
    now: dt.datetime,
    *,
    payment_id: int | None = None,
    invoice_id: int | None = None,
    reference: str = "",
) -> int:
    """Customer credit up or down with its explanation row; never below zero. Returns the new credit."""
    result = await conn.execute(
        customer_accounts.update()
        .where(customer_accounts.c.customer_id == customer_id, customer_accounts.c.credit_fen + delta_fen >= 0)
        .values(credit_fen=customer_accounts.c.credit_fen + delta_fen, updated_at=now)
        .returning(customer_accounts.c.credit_fen)
    )
    new = result.scalar_one_or_none()
    if new is None:
        raise InsufficientCredit(f"预收余额不足 {format_fen(-delta_fen)} (customer credit would go below zero)", customer_id=customer_id)
    await conn.execute(
        credit_entries.insert().values(
            customer_id=customer_id,
            delta_fen=delta_fen,
            reason=reason,
            payment_id=payment_id,
            invoice_id=invoice_id,
            reference=reference,
            at=now,
        )
    )
    return int(new)


async def apply_credit(conn: AsyncConnection, account: Any, invoice: Any, now: dt.datetime) -> int:
    """Use the customer's credit on a just-issued invoice (as much as both allow). Returns the fen applied."""
    take = min(int(account.credit_fen), int(invoice.total_fen) - int(invoice.paid_fen))
    if take <= 0 or invoice.status not in OPEN_INVOICE_STATUSES:
        return 0
    await change_credit(conn, int(account.customer_id), -take, "applied", now, invoice_id=int(invoice.id), reference=invoice.number)
    await put_on_invoice(conn, invoice, take, now, payment_id=None, source="credit")
    return take


# ---- credit exposure (used by order confirmation) -------------------------------------------------------
async def credit_exposure(
    conn: AsyncConnection, customer_id: int, *, exclude_order_id: int | None = None, lock: bool = False
) -> CreditExposure:
    """Open invoice balances + committed orders not yet invoiced − customer credit, with the limit. Customers
    without a limit cost one query. ``lock`` (order confirmation): hold the account row so two orders of one
    customer confirmed at once are checked one after the other (PostgreSQL; SQLite serialises writers)."""
    q = sa.select(customer_accounts).where(customer_accounts.c.customer_id == customer_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    acct = (await conn.execute(q)).first()
    if acct is None or acct.credit_limit_fen is None:
        return CreditExposure(None, 0, 0, int(acct.credit_fen) if acct else 0)
    receivables = (
        await conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(invoices.c.total_fen - invoices.c.paid_fen), 0)).where(
                invoices.c.customer_id == customer_id, invoices.c.status.in_(OPEN_INVOICE_STATUSES)
            )
        )
    ).scalar_one()
    open_orders = sum(fen for _, fen in await _uninvoiced(conn, customer_id, exclude_order_id))
    return CreditExposure(int(acct.credit_limit_fen), int(receivables), open_orders, int(acct.credit_fen))


def has_credit_limit(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """SQL: the customer has a credit limit (otherwise :func:`credit_exposure` never holds an order back)."""
    return sa.exists().where(customer_accounts.c.customer_id == customer_id, customer_accounts.c.credit_limit_fen.is_not(None))


async def _uninvoiced(conn: AsyncConnection, customer_id: int, exclude_order_id: int | None = None) -> list[tuple[str, int]]:
    """(order number, fen not yet invoiced) for each committed order of the customer with something left to bill."""
    invoiced = (
        sa.select(invoices.c.order_id, sa.func.sum(invoices.c.total_fen).label("invoiced"))
        .where(invoices.c.customer_id == customer_id, invoices.c.status != InvoiceStatus.VOID)
        .group_by(invoices.c.order_id)
        .subquery()
    )
    q = (
        sa.select(orders.c.number, orders.c.total_fen, sa.func.coalesce(invoiced.c.invoiced, 0).label("invoiced"))
        .select_from(orders.outerjoin(invoiced, invoiced.c.order_id == orders.c.id))
        .where(orders.c.customer_id == customer_id, orders.c.status.in_(COMMITTED_ORDER_STATUSES))
        .order_by(orders.c.id)
    )
    if exclude_order_id is not None:
        q = q.where(orders.c.id != exclude_order_id)
    rows = [(r.number, int(r.total_fen) - int(r.invoiced)) for r in await conn.execute(q)]
    return [(number, fen) for number, fen in rows if fen > 0]


async def uninvoiced_orders(rt: Runtime, customer_id: int) -> list[tuple[str, int]]:
    """The customer's confirmed orders not yet (fully) invoiced — goods ordered, bill still to come: (number, fen)."""
    async with rt.db.read() as conn:
        return await _uninvoiced(conn, customer_id)


# ---- merged customers -----------------------------------------------------------------------------------
async def merge_customer_billing(rt: Runtime, from_id: int, into_id: int) -> None:
    """Two customer records turned out to be one person: invoices, payments and credit history follow the
    surviving record, the credit is added to its account, and the surviving account keeps its terms and limit
    (taking the merged one's when it had none). Idempotent: a second run finds nothing left to move."""
    if from_id == into_id:
        return
    now = rt.clock.now()
    async with rt.db.write() as conn:
        existing = {
            int(r.customer_id): r
            for r in await conn.execute(sa.select(customer_accounts).where(customer_accounts.c.customer_id.in_([from_id, into_id])))
        }
        for table in (invoices, payments, credit_entries):
            await conn.execute(table.update().where(table.c.customer_id == from_id).values(customer_id=into_id))
        source = existing.get(from_id)
        if source is None:
            return
        for cid in sorted((from_id, into_id)):  # lock both accounts in id order
            await lock_account(conn, rt.db.dialect, cid, now, billing_config(rt).default_terms_days)
        values: dict[str, Any] = {"credit_fen": customer_accounts.c.credit_fen + int(source.credit_fen), "updated_at": now}
        if into_id not in existing:
            values.update(payment_terms_days=source.payment_terms_days, credit_limit_fen=source.credit_limit_fen)
        await conn.execute(customer_accounts.update().where(customer_accounts.c.customer_id == into_id).values(**values))
        await conn.execute(customer_accounts.delete().where(customer_accounts.c.customer_id == from_id))
