"""Tables of coupons: coupon templates, the coupons issued from them, and each coupon's ledger."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class CouponKind:
    FIXED = "fixed"  # 满减: amount_off_fen when the eligible subtotal reaches threshold_fen
    PERCENT = "percent"  # 折扣: percent_off of the eligible subtotal, capped by max_off_fen


class CouponTemplate(Model, table=True):
    """A kind of coupon (优惠券模板): discount rule, eligibility, validity and budget."""

    __tablename__ = "coupon_templates"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(sa_type=sa.String(64))
    kind: str = Field(sa_type=sa.String(16))
    amount_off_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    percent_off: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # 1–99
    max_off_fen: int | None = Field(default=None, sa_type=sa.BigInteger())
    threshold_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    skus: list[str] = Field(sa_type=JSON)  # [] = every product
    categories: list[str] = Field(sa_type=JSON)  # [] = every category
    budget_count: int | None = Field(default=None, sa_type=sa.Integer())  # NULL = unlimited
    budget_fen: int | None = Field(default=None, sa_type=sa.BigInteger())  # NULL = unlimited; counts the face value of issued coupons
    issued_count: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    issued_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    per_customer_limit: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})
    valid_from: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    valid_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    valid_days: int | None = Field(default=None, sa_type=sa.Integer())  # validity counted from issue (else valid_until)
    stackable: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.false()})
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (
        sa.CheckConstraint(
            "(budget_count IS NULL OR issued_count <= budget_count) AND (budget_fen IS NULL OR issued_fen <= budget_fen)",
            name="within_budget",
        ),
    )


coupon_templates: sa.Table = CouponTemplate.__table__


class CouponStatus:
    ISSUED = "issued"  # in the customer's wallet
    RESERVED = "reserved"  # held by an order not yet confirmed/paid
    REDEEMED = "redeemed"  # used by a confirmed order
    EXPIRED = "expired"
    REVOKED = "revoked"  # taken back (e.g. a referral reward whose invitee left)


class Coupon(Model, table=True):
    """One coupon in a customer's wallet (优惠券) and its state."""

    __tablename__ = "coupons"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    code: str = Field(unique=True, sa_type=sa.String(32))
    template_id: int = Field(foreign_key="coupon_templates.id", sa_type=BigId)
    customer_id: int = Field(index=True, sa_type=BigId)
    status: str = Field(sa_type=sa.String(16))
    source: str = Field(sa_type=sa.String(16))  # segment | referral | sidebar | console | api
    source_ref: str | None = Field(default=None, sa_type=sa.String(96))  # idempotency: issuing the same thing twice gives one coupon
    issued_at: dt.datetime = Field(sa_type=UTCDateTime())
    expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    order_id: int | None = Field(default=None, sa_type=BigId)
    discount_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("source_ref"),)


coupons: sa.Table = Coupon.__table__


class CouponLedgerEntry(Model, table=True):
    """One event in a coupon's life (优惠券流水): issued, reserved, redeemed, released, expired, revoked."""

    __tablename__ = "coupon_ledger"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    coupon_id: int = Field(foreign_key="coupons.id", index=True, sa_type=BigId)
    event: str = Field(sa_type=sa.String(16))  # issue | reserve | redeem | release | expire | revoke
    order_id: int | None = Field(default=None, sa_type=BigId)
    amount_fen: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})
    at: dt.datetime = Field(sa_type=UTCDateTime())
    actor: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})


coupon_ledger: sa.Table = CouponLedgerEntry.__table__


class IssueRunStatus:
    QUEUED = "queued"  # written when the distribution is queued; the job has not started
    RUNNING = "running"  # the job is issuing (counts grow per batch)
    DONE = "done"  # every member of the segment was handled (issued, had one, or skipped by limit/budget)
    PARTIAL = "partial"  # finished, but some customers' coupons failed (counted in failed, first reasons kept)
    FAILED = "failed"  # could not go on (the segment cannot run, the template is gone or stopped); why in error


class CouponIssueRun(Model, table=True):
    """One distribution of a template to a segment (按客群发券批次): what was asked, by whom, and what came of it —
    the item a failure is recorded on (and alerted once) while other runs go on."""

    __tablename__ = "coupon_issue_runs"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    # No foreign key: a job queued for a template that no longer exists is still recorded (as failed, with why).
    template_id: int = Field(sa_type=BigId)
    run_ref: str = Field(sa_type=sa.String(96))  # the caller's name of the run; coupons carry seg:<run_ref>:<customer>
    segment: str = Field(sa_type=sa.Text())
    requested_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    status: str = Field(sa_type=sa.String(16))
    matched: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # segment members seen
    issued: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    already: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # had this run's coupon (a re-run)
    skipped_limit: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # per-customer limit reached
    skipped_budget: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # after the budget ran out
    failed: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # customers whose coupon failed
    failures: list[str] = Field(sa_type=JSON)  # the first few per-customer failures, "#id: why"
    error: str | None = Field(default=None, sa_type=sa.Text())  # why the run stopped (status failed)
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    started_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("template_id", "run_ref"),)


coupon_issue_runs: sa.Table = CouponIssueRun.__table__
