"""Tables of billing: customer accounts (terms, credit), invoices, payments and their allocations, dunning."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

# Per-customer commercial terms and the running customer credit (预收/余额) left by overpayments.
customer_accounts = sa.Table(
    "customer_accounts",
    metadata,
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("payment_terms_days", sa.Integer(), nullable=False, server_default="0"),  # 0 = due on issue; 30 = 月结30天
    sa.Column("credit_limit_fen", sa.BigInteger()),  # NULL = no limit
    sa.Column("credit_fen", sa.BigInteger(), nullable=False, server_default="0"),  # unused customer credit
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("credit_fen >= 0", name="credit_not_negative"),
)


class InvoiceStatus:
    OPEN = "open"  # issued, nothing paid yet
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"  # cancelled by a credit note; its payments went back to customer credit


invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("customer_id", BigId, nullable=False, index=True),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
    sa.Column("shipment_id", BigId, sa.ForeignKey("shipments.id")),  # NULL when invoiced on confirmation
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total_fen", sa.BigInteger(), nullable=False),
    sa.Column("paid_fen", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("issued_at", UTCDateTime(), nullable=False),
    sa.Column("due_on", sa.Date(), nullable=False),  # business-local date
    sa.Column("voided_at", UTCDateTime()),
    sa.Column("void_reason", sa.Text(), nullable=False, server_default=""),
    sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    sa.CheckConstraint("paid_fen >= 0 AND paid_fen <= total_fen", name="balance_not_negative"),
    sa.UniqueConstraint("order_id", "shipment_id"),
    sa.Index("ix_invoices_open_due", "status", "due_on"),
)

invoice_lines = sa.Table(
    "invoice_lines",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False, index=True),
    sa.Column("order_line_id", BigId, sa.ForeignKey("order_lines.id")),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("qty", sa.BigInteger(), nullable=False),
    sa.Column("unit_price_fen", sa.BigInteger(), nullable=False),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("reference", sa.String(128), nullable=False, unique=True),  # bank / WeChat Pay transaction id: the idempotency key
    sa.Column("customer_id", BigId, nullable=False, index=True),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),  # bank | wechat_pay | alipay | cash | other
    sa.Column("source", sa.String(16), nullable=False),  # console | api | import
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("note", sa.Text(), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
    sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
)

payment_allocations = sa.Table(
    "payment_allocations",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("payment_id", BigId, sa.ForeignKey("payments.id")),  # NULL when customer credit paid the invoice
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False, index=True),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),  # negative when an allocation is reversed (void)
    sa.Column("source", sa.String(16), nullable=False),  # payment | credit | void
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Every change of a customer's credit, so the balance is explained (overpayment in, used by an invoice, refund out).
credit_entries = sa.Table(
    "credit_entries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", BigId, nullable=False, index=True),
    sa.Column("delta_fen", sa.BigInteger(), nullable=False),
    sa.Column("reason", sa.String(24), nullable=False),  # overpayment | applied | refund | void_return
    sa.Column("payment_id", BigId),
    sa.Column("invoice_id", BigId),
    sa.Column("reference", sa.String(128), nullable=False, server_default=""),
    sa.Column("at", UTCDateTime(), nullable=False),
)

# One row per invoice and dunning level: each level is sent once.
dunning_notices = sa.Table(
    "dunning_notices",
    metadata,
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), primary_key=True),
    sa.Column("level", sa.String(16), primary_key=True),  # the level's name from config, e.g. "d-3", "d+1"
    sa.Column("sent_at", UTCDateTime(), nullable=False),
    sa.Column("channel", sa.String(24), nullable=False, server_default=""),
)

# Statement imports: what each file did, so re-importing the same file is visibly a no-op.
payment_imports = sa.Table(
    "payment_imports",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("file_sha256", sa.String(64), nullable=False),
    sa.Column("filename", sa.String(256), nullable=False, server_default=""),
    sa.Column("report", JSON, nullable=False),
    sa.Column("imported_at", UTCDateTime(), nullable=False),
    sa.Column("imported_by", sa.String(64), nullable=False, server_default=""),
)
