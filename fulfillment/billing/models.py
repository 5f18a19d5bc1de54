"""Tables of billing: customer accounts (terms, credit), invoices, payments and their allocations, dunning."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


# Per-customer commercial terms and the running customer credit (预收/余额) left by overpayments.
class CustomerAccount(Model, table=True):
    """A customer's commercial terms (账期, 信用额度) and unused credit (预收/余额)."""

    __tablename__ = "customer_accounts"

    customer_id: int = Field(primary_key=True, sa_type=BigId)
    payment_terms_days: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # 0 = due on issue; 30 = 月结30天
    credit_limit_fen: int | None = Field(default=None, sa_type=sa.BigInteger())  # NULL = no limit
    credit_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})  # unused customer credit
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.CheckConstraint("credit_fen >= 0", name="credit_not_negative"),)


customer_accounts: sa.Table = CustomerAccount.__table__


class InvoiceStatus:
    OPEN = "open"  # issued, nothing paid yet
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"  # cancelled by a credit note; its payments went back to customer credit


class Invoice(Model, table=True):
    """An invoice (应收账款) for an order or one of its shipments, with what is paid of it."""

    __tablename__ = "invoices"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    number: str = Field(unique=True, sa_type=sa.String(32))
    customer_id: int = Field(index=True, sa_type=BigId)
    order_id: int = Field(foreign_key="orders.id", index=True, sa_type=BigId)
    shipment_id: int | None = Field(default=None, foreign_key="shipments.id", sa_type=BigId)  # NULL when invoiced on confirmation
    status: str = Field(sa_type=sa.String(16))
    total_fen: int = Field(sa_type=sa.BigInteger())
    paid_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    issued_at: dt.datetime = Field(sa_type=UTCDateTime())
    due_on: dt.date = Field(sa_type=sa.Date())  # business-local date
    voided_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    void_reason: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    version: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})

    __table_args__ = (
        sa.CheckConstraint("paid_fen >= 0 AND paid_fen <= total_fen", name="balance_not_negative"),
        sa.UniqueConstraint("order_id", "shipment_id"),
        sa.Index("ix_invoices_open_due", "status", "due_on"),
    )


invoices: sa.Table = Invoice.__table__


class InvoiceLine(Model, table=True):
    """One line of an invoice (发票明细): product, quantity, price as invoiced."""

    __tablename__ = "invoice_lines"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    invoice_id: int = Field(foreign_key="invoices.id", index=True, sa_type=BigId)
    order_line_id: int | None = Field(default=None, foreign_key="order_lines.id", sa_type=BigId)
    sku: str = Field(sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(128))
    unit: str = Field(sa_type=sa.String(16))
    qty: int = Field(sa_type=sa.BigInteger())
    unit_price_fen: int = Field(sa_type=sa.BigInteger())
    amount_fen: int = Field(sa_type=sa.BigInteger())


invoice_lines: sa.Table = InvoiceLine.__table__


class Payment(Model, table=True):
    """Money received from a customer (收款), once per bank/WeChat Pay reference."""

    __tablename__ = "payments"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    reference: str = Field(unique=True, sa_type=sa.String(128))  # bank / WeChat Pay transaction id: the idempotency key
    customer_id: int = Field(index=True, sa_type=BigId)
    amount_fen: int = Field(sa_type=sa.BigInteger())
    method: str = Field(sa_type=sa.String(16))  # bank | wechat_pay | alipay | cash | other
    source: str = Field(sa_type=sa.String(16))  # console | api | import
    received_at: dt.datetime = Field(sa_type=UTCDateTime())
    note: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    created_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})

    __table_args__ = (sa.CheckConstraint("amount_fen > 0", name="amount_positive"),)


payments: sa.Table = Payment.__table__


class PaymentAllocation(Model, table=True):
    """How much of a payment (or of customer credit) paid which invoice (核销)."""

    __tablename__ = "payment_allocations"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    payment_id: int | None = Field(default=None, foreign_key="payments.id", sa_type=BigId)  # NULL when customer credit paid the invoice
    invoice_id: int = Field(foreign_key="invoices.id", index=True, sa_type=BigId)
    amount_fen: int = Field(sa_type=sa.BigInteger())  # negative when an allocation is reversed (void)
    source: str = Field(sa_type=sa.String(16))  # payment | credit | void
    created_at: dt.datetime = Field(sa_type=UTCDateTime())


payment_allocations: sa.Table = PaymentAllocation.__table__


# Every change of a customer's credit, so the balance is explained (overpayment in, used by an invoice, refund out).
class CreditEntry(Model, table=True):
    """One change of a customer's credit balance (余额流水) and why."""

    __tablename__ = "credit_entries"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    customer_id: int = Field(index=True, sa_type=BigId)
    delta_fen: int = Field(sa_type=sa.BigInteger())
    reason: str = Field(sa_type=sa.String(24))  # overpayment | applied | refund | void_return
    payment_id: int | None = Field(default=None, sa_type=BigId)
    invoice_id: int | None = Field(default=None, sa_type=BigId)
    reference: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    at: dt.datetime = Field(sa_type=UTCDateTime())


credit_entries: sa.Table = CreditEntry.__table__


# One row per invoice and dunning level: each level is sent once.
class DunningNotice(Model, table=True):
    """A payment reminder (催款通知) sent for an invoice at one dunning level."""

    __tablename__ = "dunning_notices"

    invoice_id: int = Field(primary_key=True, foreign_key="invoices.id", sa_type=BigId)
    level: str = Field(primary_key=True, sa_type=sa.String(16))  # the level's name from config, e.g. "d-3", "d+1"
    sent_at: dt.datetime = Field(sa_type=UTCDateTime())
    channel: str = Field(sa_type=sa.String(24), sa_column_kwargs={"server_default": ""})


dunning_notices: sa.Table = DunningNotice.__table__


# Statement imports: what each file did, so re-importing the same file is visibly a no-op.
class PaymentImport(Model, table=True):
    """One imported bank/payment statement file (对账单导入) and what importing it did."""

    __tablename__ = "payment_imports"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    file_sha256: str = Field(sa_type=sa.String(64))
    filename: str = Field(sa_type=sa.String(256), sa_column_kwargs={"server_default": ""})
    report: dict[str, Any] = Field(sa_type=JSON)
    imported_at: dt.datetime = Field(sa_type=UTCDateTime())
    imported_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})


payment_imports: sa.Table = PaymentImport.__table__
