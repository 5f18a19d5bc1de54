"""Pure billing rules: invoice states, payment allocation, aging buckets, the dunning schedule, the credit check,
the billing settings, and the domain errors (stable codes). No I/O: every function takes plain values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fulfillment.billing.models import InvoiceStatus as I
from scrm.core.errors import Conflict, InvalidInput, NotFound

OPEN_INVOICE_STATUSES = (I.OPEN, I.PARTIALLY_PAID)
INVOICE_STATUS_ZH = {I.OPEN: "未付款", I.PARTIALLY_PAID: "部分付款", I.PAID: "已付清", I.VOID: "已作废"}
INVOICE_ON = ("shipment", "confirmation")
PAYMENT_METHODS = {"bank": "银行转账", "wechat_pay": "微信支付", "alipay": "支付宝", "cash": "现金", "other": "其他"}
PAYMENT_SOURCES = ("console", "api", "import")
MAX_TERMS_DAYS = 365
MAX_AMOUNT_FEN = 10**12  # ¥10 billion: anything larger is a typo, not a payment

# Aging buckets by days past due (today − due date): not yet due (due today or later), then overdue by 1–30, 31–60,
# 61–90, over 90 days — the overdue buckets add up to the overdue balance exactly.
BUCKETS = ("not_due", "1-30", "31-60", "61-90", "90+")
OVERDUE_BUCKETS = BUCKETS[1:]
BUCKET_ZH = {"not_due": "未到期", "1-30": "逾期1–30天", "31-60": "逾期31–60天", "61-90": "逾期61–90天", "90+": "逾期90天以上"}


# ---- errors ---------------------------------------------------------------------------------------------
class InvoiceNotFound(NotFound):
    code = "invoice_not_found"


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"


class InvoiceVoid(Conflict):
    code = "invoice_void"


class InvoicePaid(Conflict):
    code = "invoice_paid"


class InvoiceOfOtherCustomer(InvalidInput):
    code = "invoice_customer_mismatch"


class PaymentConflict(Conflict):
    """The reference is already recorded with another amount or customer: never silently merged."""

    code = "payment_reference_conflict"


class InsufficientCredit(Conflict):
    code = "insufficient_credit"


class NotOnHold(Conflict):
    code = "order_not_on_hold"


class StatementUnreadable(InvalidInput):
    code = "statement_unreadable"


# ---- settings -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DunningLevel:
    name: str  # e.g. "d-3", "d+1": the key of dunning_notices
    days: int  # relative to the due date (negative = before)
    template: str  # a section of config/notices.toml


DEFAULT_DUNNING = (
    DunningLevel("d-3", -3, "dunning_upcoming"),
    DunningLevel("d+1", 1, "dunning_overdue"),
    DunningLevel("d+15", 15, "dunning_overdue"),
    DunningLevel("d+30", 30, "dunning_final"),
)


@dataclass(frozen=True)
class BillingConfig:
    invoice_on: str = "shipment"
    default_terms_days: int = 0
    dunning: tuple[DunningLevel, ...] = DEFAULT_DUNNING
    dunning_hours: tuple[int, int] = (9, 20)


def parse_billing_config(data: Mapping[str, Any]) -> BillingConfig:
    """Validate config/billing.toml's content; a ValueError names the key that is wrong."""
    known = {"invoice_on", "default_payment_terms_days", "dunning", "dunning_hours"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"billing config: unknown keys {', '.join(sorted(unknown))}")
    invoice_on = data.get("invoice_on", "shipment")
    if invoice_on not in INVOICE_ON:
        raise ValueError(f"billing config: invoice_on must be one of {', '.join(INVOICE_ON)}, not {invoice_on!r}")
    terms = data.get("default_payment_terms_days", 0)
    if not _is_int(terms) or not 0 <= terms <= MAX_TERMS_DAYS:
        raise ValueError(f"billing config: default_payment_terms_days must be 0–{MAX_TERMS_DAYS}")
    hours = data.get("dunning_hours", [9, 20])
    if not (isinstance(hours, list) and len(hours) == 2 and all(_is_int(h) for h in hours) and 0 <= hours[0] < hours[1] <= 24):
        raise ValueError("billing config: dunning_hours must be [from, to) with 0 ≤ from < to ≤ 24")
    levels = []
    for i, raw in enumerate(data.get("dunning", [_level_dict(lv) for lv in DEFAULT_DUNNING])):
        name, days, template = raw.get("name"), raw.get("days"), raw.get("template")
        if not isinstance(name, str) or not 0 < len(name) <= 16:
            raise ValueError(f"billing config: dunning[{i}].name must be 1–16 characters")
        if not _is_int(days) or not -90 <= days <= 365:
            raise ValueError(f"billing config: dunning[{i}].days must be an integer from -90 to 365")
        if not isinstance(template, str) or not template:
            raise ValueError(f"billing config: dunning[{i}].template is required")
        levels.append(DunningLevel(name, days, template))
    if len({lv.name for lv in levels}) != len(levels) or len({lv.days for lv in levels}) != len(levels):
        raise ValueError("billing config: dunning level names and days must be unique")
    return BillingConfig(invoice_on, terms, tuple(sorted(levels, key=lambda lv: lv.days)), (hours[0], hours[1]))


def _level_dict(level: DunningLevel) -> dict[str, Any]:
    return {"name": level.name, "days": level.days, "template": level.template}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---- invoices -------------------------------------------------------------------------------------------
def invoice_number(seq: int) -> str:
    return f"INV{100000 + seq}"


def due_date(issued_on: dt.date, terms_days: int) -> dt.date:
    """The business-local due date: the issue date plus the customer's payment terms (0 = due on issue)."""
    if not 0 <= terms_days <= MAX_TERMS_DAYS:
        raise InvalidInput(f"账期必须是 0 到 {MAX_TERMS_DAYS} 天 (payment terms must be 0–{MAX_TERMS_DAYS} days)", field="terms_days")
    return issued_on + dt.timedelta(days=terms_days)


def invoice_status(total_fen: int, paid_fen: int) -> str:
    """open → partially_paid → paid, from the amounts alone (void is set explicitly, never derived)."""
    if not 0 <= paid_fen <= total_fen:
        raise ValueError(f"paid {paid_fen} outside 0..{total_fen}")
    if paid_fen == total_fen:
        return I.PAID
    return I.PARTIALLY_PAID if paid_fen else I.OPEN


def invoice_discount(order_discount_fen: int, already_used_fen: int, subtotal_fen: int) -> int:
    """The order's discount is taken by its invoices in issue order until used up, never more than an invoice's
    subtotal (so no invoice is negative)."""
    return max(0, min(order_discount_fen - already_used_fen, subtotal_fen))


def check_amount(amount_fen: object, field: str = "amount_fen") -> int:
    """A money amount that must be a positive integer number of fen."""
    if not _is_int(amount_fen):
        raise InvalidAmount(f"金额必须是整数（单位：分）({field} must be an integer number of fen)", field=field)
    assert isinstance(amount_fen, int)
    if amount_fen <= 0:
        raise InvalidAmount(f"金额必须大于 0 ({field} must be greater than zero)", field=field, value=amount_fen)
    if amount_fen > MAX_AMOUNT_FEN:
        raise InvalidAmount(f"金额过大 ({field} is implausibly large)", field=field, value=amount_fen)
    return amount_fen


# ---- allocation -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenItem:
    """An invoice that can take money: what is still owed and when it was due."""

    invoice_id: int
    due_on: dt.date
    balance_fen: int


@dataclass(frozen=True)
class Allocation:
    parts: tuple[tuple[int, int], ...]  # (invoice_id, fen), in the order applied
    remainder_fen: int  # what is left for customer credit

    @property
    def allocated_fen(self) -> int:
        return sum(fen for _, fen in self.parts)


def allocate(amount_fen: int, items: Iterable[OpenItem], named: Sequence[int] | None = None) -> Allocation:
    """Spread a payment over open invoices: oldest due date first (ties: lower id first), or only over the
    ``named`` invoice ids in the given order. Never more than an invoice's balance; the rest is the remainder.
    Guarantees: every part > 0, allocated + remainder == amount."""
    check_amount(amount_fen)
    pool = [it for it in items if it.balance_fen > 0]
    if named is None:
        order = sorted(pool, key=lambda it: (it.due_on, it.invoice_id))
    else:
        by_id = {it.invoice_id: it for it in pool}
        order = [by_id[i] for i in dict.fromkeys(named) if i in by_id]
    left = amount_fen
    parts = []
    for it in order:
        if not left:
            break
        take = min(left, it.balance_fen)
        parts.append((it.invoice_id, take))
        left -= take
    return Allocation(tuple(parts), left)


# ---- aging ----------------------------------------------------------------------------------------------
def days_past_due(due_on: dt.date, today: dt.date) -> int:
    return (today - due_on).days


def aging_bucket(due_on: dt.date, today: dt.date) -> str:
    """not_due until the due date has passed (an invoice due today is not overdue); then 1–30, 31–60, 61–90, 90+ days."""
    days = days_past_due(due_on, today)
    if days <= 0:
        return "not_due"
    if days <= 30:
        return "1-30"
    if days <= 60:
        return "31-60"
    return "61-90" if days <= 90 else "90+"


K = TypeVar("K")


@dataclass
class Aged:
    """Open balance of one key (customer, salesperson, everyone) per bucket."""

    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    overdue_fen: int = 0  # strictly past the due date
    count: int = 0

    @property
    def total_fen(self) -> int:
        return sum(self.buckets.values())

    def add(self, due_on: dt.date, balance_fen: int, today: dt.date) -> None:
        self.buckets[aging_bucket(due_on, today)] += balance_fen
        if days_past_due(due_on, today) > 0:
            self.overdue_fen += balance_fen
        self.count += 1


def age(items: Iterable[tuple[K, dt.date, int]], today: dt.date) -> dict[K, Aged]:
    """``[(key, due_on, balance_fen)]`` → the aged balance per key (only balances > 0 count)."""
    out: dict[K, Aged] = {}
    for key, due_on, balance in items:
        if balance > 0:
            out.setdefault(key, Aged()).add(due_on, balance, today)
    return out


# ---- dunning --------------------------------------------------------------------------------------------
def dunning_plan(
    levels: Sequence[DunningLevel], *, due_on: dt.date, issued_on: dt.date, today: dt.date, done: Iterable[str]
) -> tuple[DunningLevel | None, list[DunningLevel]]:
    """Which level to send today for an open invoice, and which levels to record as skipped.

    A level is reached on ``due_on + days``. Of the reached levels not yet recorded, only the latest is sent (a
    cron that missed days must not send three reminders at once); the earlier ones are skipped for good. A level
    reached before the invoice was issued is skipped, never sent (no "due in 3 days" on the due date)."""
    recorded = set(done)
    reached = [lv for lv in sorted(levels, key=lambda lv: lv.days) if due_on + dt.timedelta(days=lv.days) <= today]
    pending = [lv for lv in reached if lv.name not in recorded]
    if not pending:
        return None, []
    latest = pending[-1]
    if due_on + dt.timedelta(days=latest.days) < issued_on:
        return None, pending
    return latest, pending[:-1]
