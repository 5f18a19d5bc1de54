"""Payments (收款): recorded by staff, by API or from a statement import; idempotent by their reference (the bank or
WeChat Pay transaction id); allocated oldest-due-first or to named invoices; what is left becomes customer credit
(预收), which the next invoice uses. Refunds of credit are explicit.

Conservation, checked by the property tests: for every payment, amount = its allocations + the credit it granted;
for every customer, Σ payments = Σ paid on invoices + credit + Σ refunds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.billing.domain import (
    OPEN_INVOICE_STATUSES,
    PAYMENT_METHODS,
    PAYMENT_SOURCES,
    InsufficientCredit,
    InvoiceNotFound,
    InvoiceOfOtherCustomer,
    InvoicePaid,
    InvoiceVoid,
    OpenItem,
    PaymentConflict,
    allocate,
    check_amount,
)
from fulfillment.billing.models import InvoiceStatus as I
from fulfillment.billing.models import credit_entries, invoices, payment_allocations, payments
from fulfillment.billing.services import billing_config, change_credit, lock_account, put_on_invoice
from scrm.core import outbox
from scrm.core.errors import InvalidInput
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime
from scrm.governance.approvals import services as approvals

MAX_NAMED_INVOICES = 50
FUTURE_TOLERANCE = dt.timedelta(days=1)


@dataclass(frozen=True)
class PaymentResult:
    payment_id: int
    reference: str
    customer_id: int
    amount_fen: int
    method: str
    received_at: dt.datetime
    allocations: tuple[tuple[str, int], ...]  # (invoice number, fen)
    credit_fen: int  # the part kept as customer credit
    duplicate: bool  # the reference was already recorded with this amount: nothing changed

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "customer_id": self.customer_id,
            "amount_fen": self.amount_fen,
            "method": self.method,
            "received_at": self.received_at.isoformat(),
            "allocations": [{"invoice": n, "amount_fen": f} for n, f in self.allocations],
            "credit_fen": self.credit_fen,
            "duplicate": self.duplicate,
        }


def clean_reference(reference: object, field: str = "reference") -> str:
    if not isinstance(reference, str) or not reference.strip() or len(reference.strip()) > 128:
        raise InvalidInput("流水号必填，且不超过 128 个字符 (reference is required, ≤ 128 chars)", field=field)
    return reference.strip()


def _check(method: str, source: str, received_at: dt.datetime, now: dt.datetime) -> None:
    if method not in PAYMENT_METHODS:
        raise InvalidInput(f"收款方式必须是 {', '.join(PAYMENT_METHODS)} 之一 (unknown method {method!r})", field="method")
    if source not in PAYMENT_SOURCES:
        raise InvalidInput(f"收款来源只能是 console、api 或 import (unknown payment source {source!r})", field="source")
    if received_at.tzinfo is None:
        raise InvalidInput("收款时间需要带时区 (received_at must be timezone-aware)", field="received_at")
    if received_at > now + FUTURE_TOLERANCE:
        raise InvalidInput("收款时间不能在未来 (received_at is in the future)", field="received_at")


async def record_payment(
    rt: Runtime,
    *,
    customer_id: int,
    amount_fen: int,
    reference: str,
    method: str = "bank",
    source: str = "api",
    received_at: dt.datetime | None = None,
    invoices_named: Sequence[str] | None = None,
    actor: str = "",
    note: str = "",
) -> PaymentResult:
    """Record money received from a customer, in one transaction: allocate it oldest-due-first over their open
    invoices (or only over ``invoices_named``, in that order) and keep the rest as customer credit.

    Idempotent by ``reference``: the same reference, customer and amount again returns the first result with
    ``duplicate=True`` and changes nothing; the same reference with another amount or customer raises
    PaymentConflict. Zero/negative amounts, unknown/void/paid/foreign named invoices: a clear error, nothing changed."""
    amount = check_amount(amount_fen)
    reference = clean_reference(reference)
    now = rt.clock.now()
    received = received_at or now
    _check(method, source, received, now)
    named = list(dict.fromkeys(n.strip().upper() for n in invoices_named or [] if n.strip()))
    if len(named) > MAX_NAMED_INVOICES:
        raise InvalidInput(f"一次最多指定 {MAX_NAMED_INVOICES} 张发票 (at most {MAX_NAMED_INVOICES} invoices)", field="invoices")
    try:
        async with rt.db.write() as conn:
            await lock_account(conn, rt.db.dialect, customer_id, now, billing_config(rt).default_terms_days)
            existing = await _by_reference(conn, reference)
            if existing is not None:
                return await _same_or_conflict(conn, existing, customer_id, amount)
            open_rows = (
                await conn.execute(
                    sa.select(invoices)
                    .where(invoices.c.customer_id == customer_id, invoices.c.status.in_(OPEN_INVOICE_STATUSES))
                    .order_by(invoices.c.due_on, invoices.c.id)
                )
            ).all()
            named_ids = await _named_ids(conn, named, customer_id) if named else None
            plan = allocate(amount, [OpenItem(int(r.id), r.due_on, int(r.total_fen - r.paid_fen)) for r in open_rows], named_ids)
            payment_id = int(
                (
                    await conn.execute(
                        payments.insert()
                        .values(
                            reference=reference,
                            customer_id=customer_id,
                            amount_fen=amount,
                            method=method,
                            source=source,
                            received_at=received,
                            note=note[:500],
                            created_at=now,
                            created_by=actor[:64],
                        )
                        .returning(payments.c.id)
                    )
                ).scalar_one()
            )
            by_id = {int(r.id): r for r in open_rows}
            for invoice_id, fen in plan.parts:
                await put_on_invoice(conn, by_id[invoice_id], fen, now, payment_id=payment_id, source="payment")
            if plan.remainder_fen:
                await change_credit(conn, customer_id, plan.remainder_fen, "overpayment", now, payment_id=payment_id, reference=reference)
            # The customer's timeline (scrm) hears of it through the outbox; fulfillment does not import scrm.
            await outbox.add(conn, "billing.payment_recorded", {"payment_id": payment_id}, now)
            return await _result(conn, payment_id, duplicate=False)
    except IntegrityError:
        # The same reference committed meanwhile by another customer's transaction (the account lock is per customer).
        async with rt.db.read() as conn:
            existing = await _by_reference(conn, reference)
            if existing is None:
                raise
            return await _same_or_conflict(conn, existing, customer_id, amount)


async def _by_reference(conn: AsyncConnection, reference: str) -> Any:
    return (await conn.execute(sa.select(payments).where(payments.c.reference == reference))).first()


async def _same_or_conflict(conn: AsyncConnection, existing: Any, customer_id: int, amount: int) -> PaymentResult:
    if int(existing.customer_id) != customer_id or int(existing.amount_fen) != amount:
        raise PaymentConflict(
            f"流水号 {existing.reference} 已登记为另一笔收款（{format_fen(int(existing.amount_fen))}），未做任何更改 "
            "(reference already recorded with another amount or customer)",
            reference=existing.reference,
            recorded_amount_fen=int(existing.amount_fen),
            given_amount_fen=amount,
        )
    return await _result(conn, int(existing.id), duplicate=True)


async def _named_ids(conn: AsyncConnection, named: list[str], customer_id: int) -> list[int]:
    rows = {r.number: r for r in await conn.execute(sa.select(invoices).where(invoices.c.number.in_(named)))}
    ids = []
    for number in named:
        r = rows.get(number)
        if r is None:
            raise InvoiceNotFound(f"没有找到发票 {number} (invoice not found)", number=number)
        if int(r.customer_id) != customer_id:
            raise InvoiceOfOtherCustomer(f"发票 {number} 不属于该客户 (invoice belongs to another customer)", number=number)
        if r.status == I.VOID:
            raise InvoiceVoid(f"发票 {number} 已作废，不能收款 (invoice is void)", number=number)
        if r.status == I.PAID:
            raise InvoicePaid(f"发票 {number} 已付清；如确为多付，请不指定发票登记为预收 (invoice is already paid)", number=number)
        ids.append(int(r.id))
    return ids


async def _result(conn: AsyncConnection, payment_id: int, *, duplicate: bool) -> PaymentResult:
    p = (await conn.execute(sa.select(payments).where(payments.c.id == payment_id))).one()
    allocs = await conn.execute(
        sa.select(invoices.c.number, payment_allocations.c.amount_fen)
        .join(invoices, invoices.c.id == payment_allocations.c.invoice_id)
        .where(payment_allocations.c.payment_id == payment_id, payment_allocations.c.source == "payment")
        .order_by(payment_allocations.c.id)
    )
    credit = (
        await conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(credit_entries.c.delta_fen), 0)).where(
                credit_entries.c.payment_id == payment_id, credit_entries.c.reason == "overpayment"
            )
        )
    ).scalar_one()
    return PaymentResult(
        int(p.id),
        p.reference,
        int(p.customer_id),
        int(p.amount_fen),
        p.method,
        p.received_at,
        tuple((a.number, int(a.amount_fen)) for a in allocs),
        int(credit),
        duplicate,
    )


@dataclass(frozen=True)
class RefundOutcome:
    """What asking for a refund did: the credit left, and — when a refund rule matched — the approval it waits for
    (nothing paid out yet)."""

    credit_fen: int
    approval: approvals.ApprovalView | None


async def request_refund(rt: Runtime, customer_id: int, amount_fen: int, reference: str, *, actor: str = "") -> RefundOutcome:
    """Finance pays customer credit back out — at once, or, when an approval rule on refunds matches ("退款超过
    5000 元须总经理审批"), once that approval is given (the same reference asked again waits on the same approval).
    Checked first as :func:`refund_credit` checks it, so a refund that could not be paid is refused now."""
    amount = check_amount(amount_fen)
    reference = clean_reference(reference)
    doc_ref = f"{customer_id}:{reference}"
    now = rt.clock.now()
    async with rt.db.write() as conn:
        account = await lock_account(conn, rt.db.dialect, customer_id, now, billing_config(rt).default_terms_days)
        waiting = await approvals.approval_of(conn, "refund", doc_ref)
        if waiting is not None and waiting.status == "pending":
            return RefundOutcome(int(account.credit_fen), waiting)
        if amount > int(account.credit_fen):
            raise InsufficientCredit(
                f"预收余额只有 {format_fen(int(account.credit_fen))}，不能退 {format_fen(amount)} (refund exceeds customer credit)",
                credit_fen=int(account.credit_fen),
            )
        summary = f"退款 客户#{customer_id} {format_fen(amount)}（单号 {reference}）"
        facts = {"amount_fen": amount, "customer_id": customer_id, "reference": reference}
        waiting = await approvals.request_approval(
            conn, now, doc_type="refund", doc_ref=doc_ref, summary=summary, facts=facts, customer_id=customer_id
        )
    if waiting is not None:
        return RefundOutcome(int(account.credit_fen), waiting)
    return RefundOutcome(await refund_credit(rt, customer_id, amount, reference, actor=actor), None)


async def refund_credit(rt: Runtime, customer_id: int, amount_fen: int, reference: str, *, actor: str = "") -> int:
    """Pay customer credit back out (退预收). Never below zero: more than the credit is refused. Idempotent by
    ``reference`` per customer (the same refund again changes nothing; another amount is a conflict). Returns the
    credit left."""
    amount = check_amount(amount_fen)
    reference = clean_reference(reference)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        account = await lock_account(conn, rt.db.dialect, customer_id, now, billing_config(rt).default_terms_days)
        prior = (
            await conn.execute(
                sa.select(credit_entries.c.delta_fen).where(
                    credit_entries.c.customer_id == customer_id,
                    credit_entries.c.reason == "refund",
                    credit_entries.c.reference == reference,
                )
            )
        ).first()
        if prior is not None:
            if -int(prior.delta_fen) != amount:
                raise PaymentConflict(
                    f"退款单号 {reference} 已用于另一笔退款（{format_fen(-int(prior.delta_fen))}） (refund reference already used)",
                    reference=reference,
                )
            return int(account.credit_fen)
        if amount > int(account.credit_fen):
            raise InsufficientCredit(
                f"预收余额只有 {format_fen(int(account.credit_fen))}，不能退 {format_fen(amount)} (refund exceeds customer credit)",
                credit_fen=int(account.credit_fen),
            )
        return await change_credit(conn, customer_id, -amount, "refund", now, reference=reference)


@dataclass(frozen=True)
class PaymentRow:
    reference: str
    customer_id: int
    amount_fen: int
    method: str
    source: str
    received_at: dt.datetime
    created_by: str
    note: str


async def list_payments(rt: Runtime, *, customer_id: int | None = None, limit: int = 50) -> list[PaymentRow]:
    """Payments newest first."""
    q = sa.select(payments).order_by(payments.c.received_at.desc(), payments.c.id.desc()).limit(limit)
    if customer_id is not None:
        q = q.where(payments.c.customer_id == customer_id)
    async with rt.db.read() as conn:
        return [
            PaymentRow(r.reference, int(r.customer_id), int(r.amount_fen), r.method, r.source, r.received_at, r.created_by, r.note)
            for r in await conn.execute(q)
        ]


@dataclass(frozen=True)
class CreditRow:
    delta_fen: int
    reason: str  # overpayment | applied | refund | void_return
    reference: str
    at: dt.datetime


async def credit_history(rt: Runtime, customer_id: int, *, limit: int = 50) -> list[CreditRow]:
    q = sa.select(credit_entries).where(credit_entries.c.customer_id == customer_id).order_by(credit_entries.c.id.desc()).limit(limit)
    async with rt.db.read() as conn:
        return [CreditRow(int(r.delta_fen), r.reason, r.reference, r.at) for r in await conn.execute(q)]
