"""Quotes (报价单), the pure part: pricing a line from its list price with a discount (or an agreed unit price),
validity, and the errors a quote may answer with.

A line's discount is a percentage 0–100 (kept in hundredths of a percent, ``discount_bp``), or the line states
its unit price and the discount follows from the list price. Every problem names the line it is on
("第 2 行：…"), so a salesperson (or a script) knows what to fix; nothing of a refused quote is written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from scrm.core.errors import Conflict, InvalidInput, NotFound

MAX_LINES = 50
DEFAULT_VALID_DAYS = 15
MAX_VALID_DAYS = 366


class QuoteNotFound(NotFound):
    code = "quote_not_found"


class QuoteLineInvalid(InvalidInput):
    code = "quote_line_invalid"


class QuoteExpired(Conflict):
    code = "quote_expired"


class QuoteAwaitingApproval(Conflict):
    code = "quote_awaiting_approval"


class QuoteNotOpen(Conflict):
    code = "quote_not_open"


STATUS_ZH = {
    "pending_approval": "待审批",
    "open": "待客户确认",
    "accepted": "已接受",
    "rejected": "审批未通过",
    "cancelled": "已作废",
}


@dataclass(frozen=True)
class LineRequest:
    sku: str
    qty: int
    discount_pct: float | None = None
    unit_price_fen: int | None = None


@dataclass(frozen=True)
class PricedQuoteLine:
    sku: str
    name: str
    unit: str
    qty: int
    list_price_fen: int
    unit_price_fen: int
    discount_bp: int

    @property
    def line_total_fen(self) -> int:
        return self.qty * self.unit_price_fen

    @property
    def discount_text(self) -> str:
        """12.5% / 10% / — as a page shows it."""
        return discount_text(self.discount_bp)


def line_error(index: int, message: str, **details: object) -> QuoteLineInvalid:
    return QuoteLineInvalid(f"第 {index + 1} 行：{message}", field="lines", line=index + 1, **details)


def price_line(index: int, req: LineRequest, name: str, unit: str, list_price_fen: int) -> PricedQuoteLine:
    """A line priced: ``discount_pct`` off the list price (rounded to the fen), or the stated ``unit_price_fen``."""
    if req.discount_pct is not None and req.unit_price_fen is not None:
        raise line_error(index, "discount_pct 和 unit_price_fen 只能给一个 (give a discount or a unit price, not both)")
    if req.unit_price_fen is not None:
        price = req.unit_price_fen
        if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= 10**11:
            raise line_error(index, f"单价需为不小于 0 的整数（分）：{price} (unit_price_fen must be ≥ 0)")
        bp = 0 if list_price_fen <= 0 else max(0, round((list_price_fen - price) * 10000 / list_price_fen))
        return PricedQuoteLine(req.sku, name, unit, req.qty, list_price_fen, price, min(bp, 10000))
    pct = 0.0 if req.discount_pct is None else req.discount_pct
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
        raise line_error(index, f"折扣需在 0 到 100（%）之间，现为 {pct} (discount_pct must be 0..100)", discount_pct=pct)
    bp = round(pct * 100)
    price = (list_price_fen * (10000 - bp) + 5000) // 10000
    return PricedQuoteLine(req.sku, name, unit, req.qty, list_price_fen, price, bp)


def check_valid_until(valid_until: dt.date | None, today: dt.date) -> dt.date:
    """The last day the quote may be accepted: not in the past, at most a year ahead (default 15 days)."""
    if valid_until is None:
        return today + dt.timedelta(days=DEFAULT_VALID_DAYS)
    if valid_until < today:
        raise InvalidInput(f"有效期不能早于今天（{today.isoformat()}）(valid_until is in the past)", field="valid_until")
    if valid_until > today + dt.timedelta(days=MAX_VALID_DAYS):
        raise InvalidInput("有效期最长一年 (valid_until at most a year ahead)", field="valid_until")
    return valid_until


def is_expired(valid_until: dt.date, today: dt.date) -> bool:
    return today > valid_until


def quote_number(seq: int) -> str:
    return f"QT{100000 + seq}"


def discount_text(bp: int) -> str:
    """Hundredths of a percent as people write it: 10%, 12.5%, 15.25%; no discount is —."""
    if not bp:
        return "—"
    return f"{bp // 100}%" if bp % 100 == 0 else f"{bp / 100:g}%"


def discount_pct(bp: int) -> float:
    """Hundredths of a percent as a percentage (12.5)."""
    return bp / 100 if bp % 100 else float(bp // 100)
