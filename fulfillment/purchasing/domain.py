"""Pure replenishment rules (进): reorder suggestions, receipt validation, purchase-order states. No I/O.

Every function here takes plain values, so the arithmetic is tested without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from fulfillment.purchasing.models import PurchaseStatus as P
from scrm.core.errors import Conflict, InvalidInput, NotFound

TRANSITIONS: dict[str, set[str]] = {
    P.DRAFT: {P.ORDERED, P.PENDING_APPROVAL, P.CANCELLED},
    P.PENDING_APPROVAL: {P.ORDERED, P.DRAFT, P.CANCELLED},  # approved → sent; rejected → back to a draft
    P.ORDERED: {P.PARTIALLY_RECEIVED, P.RECEIVED, P.CANCELLED},
    P.PARTIALLY_RECEIVED: {P.PARTIALLY_RECEIVED, P.RECEIVED},  # receipts only; cancelling is refused
    P.RECEIVED: set(),
    P.CANCELLED: set(),
}
# Quantities of these purchase orders are "on order": a draft counts, so a suggestion already turned into a draft
# is not suggested again.
OPEN_PURCHASE_STATUSES = (P.DRAFT, P.PENDING_APPROVAL, P.ORDERED, P.PARTIALLY_RECEIVED)
RECEIVABLE_STATUSES = (P.ORDERED, P.PARTIALLY_RECEIVED)
EDITABLE_STATUSES = (P.DRAFT,)  # lines may change and it may be placed
CANCELLABLE_STATUSES = (P.DRAFT, P.PENDING_APPROVAL, P.ORDERED)  # and only while nothing has been received
PURCHASE_STATUS_ZH = {
    P.DRAFT: "草稿",
    P.PENDING_APPROVAL: "待审批",
    P.ORDERED: "已下单",
    P.PARTIALLY_RECEIVED: "部分到货",
    P.RECEIVED: "已到货",
    P.CANCELLED: "已取消",
}
MAX_REFERENCE = 64  # purchase_receipts.reference
SUPPLIER_FIELDS = {"name": 128, "contact": 128, "phone": 32}  # max lengths


class SupplierNotFound(NotFound):
    code = "supplier_not_found"


class SupplierInactive(Conflict):
    code = "supplier_inactive"


class DuplicateSupplier(Conflict):
    code = "supplier_exists"


class PurchaseNotFound(NotFound):
    code = "purchase_order_not_found"


class InvalidPurchaseTransition(Conflict):
    code = "invalid_purchase_transition"


class StalePurchase(Conflict):
    code = "stale_purchase_order"


class PurchaseHasReceipts(Conflict):
    code = "purchase_has_receipts"


class ReceiptExceedsOrdered(InvalidInput):
    code = "receipt_exceeds_ordered"


class NothingToReceive(InvalidInput):
    code = "nothing_to_receive"


class NothingToPurchase(Conflict):
    code = "nothing_to_purchase"


class PurchaseCostMissing(InvalidInput):
    code = "purchase_cost_missing"


def purchase_number(seq: int) -> str:
    return f"PO{100000 + seq}"


def match_sku(typed: str, known: Collection[str]) -> str:
    """The SKU staff meant: exactly as typed (trimmed) when known, else its upper case when known, else as typed
    (the caller reports it unknown). SKUs are stored as imported; people type them in any case."""
    sku = typed.strip()
    return sku if sku in known or sku.upper() not in known else sku.upper()


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, set()):
        raise InvalidPurchaseTransition(
            f"采购单当前状态为“{PURCHASE_STATUS_ZH.get(current, current)}”，不能变为“{PURCHASE_STATUS_ZH.get(target, target)}” "
            f"(cannot go from {current} to {target})",
            status=current,
            target=target,
        )


# ---- reorder suggestions ------------------------------------------------------------------------------------
def needs_reorder(*, available: int, on_order: int, backordered: int, reorder_point: int | None) -> bool:
    """A product needs buying when what is free plus what is coming is at or below its reorder point, or when
    customers are waiting for it (backordered lines)."""
    low = reorder_point is not None and available + on_order <= reorder_point
    return low or backordered > 0


def suggested_qty(*, available: int, on_order: int, backordered: int, reorder_point: int | None, reorder_qty: int | None) -> int:
    """How much to buy: backorders + (reorder_qty, else twice the reorder point) − available − on order.
    0 when the product needs nothing (never negative)."""
    if not needs_reorder(available=available, on_order=on_order, backordered=backordered, reorder_point=reorder_point):
        return 0
    batch = reorder_qty or 2 * (reorder_point or 0)
    return max(0, backordered + batch - available - on_order)


@dataclass(frozen=True)
class StockPosition:
    """One product's numbers as a suggestion needs them."""

    product_id: int
    sku: str
    name: str
    unit: str
    available: int  # on_hand − allocated
    on_order: int  # open purchase-order quantity not yet received
    backordered: int  # confirmed order quantity waiting for stock
    reorder_point: int | None
    reorder_qty: int | None
    supplier_id: int | None  # the supplier it was last bought from; None = never bought
    unit_cost_fen: int  # the last purchase cost (0 when unknown)


@dataclass(frozen=True)
class Suggestion:
    position: StockPosition
    qty: int

    @property
    def sku(self) -> str:
        return self.position.sku


def suggest(positions: Iterable[StockPosition]) -> list[Suggestion]:
    """Every position that needs buying with its quantity, in SKU order; positions needing nothing are left out."""
    out = []
    for p in positions:
        qty = suggested_qty(
            available=p.available, on_order=p.on_order, backordered=p.backordered, reorder_point=p.reorder_point, reorder_qty=p.reorder_qty
        )
        if qty > 0:
            out.append(Suggestion(p, qty))
    return sorted(out, key=lambda s: s.sku)


def group_by_supplier(suggestions: Iterable[Suggestion]) -> dict[int | None, list[Suggestion]]:
    """Suggestions per last supplier (None = never bought: unassigned, listed last)."""
    groups: dict[int | None, list[Suggestion]] = {}
    for s in suggestions:
        groups.setdefault(s.position.supplier_id, []).append(s)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))


# ---- receiving ----------------------------------------------------------------------------------------------
def validate_reference(reference: str) -> str:
    ref = reference.strip()
    if not ref or len(ref) > MAX_REFERENCE:
        raise InvalidInput(
            f"请填写送货单号（不超过 {MAX_REFERENCE} 字）(a delivery note reference of 1–{MAX_REFERENCE} chars is required)",
            field="reference",
        )
    return ref


def validate_receipt(outstanding: dict[str, int], lines: list[tuple[str, int]] | None) -> dict[str, int]:
    """What a receipt posts, per SKU. ``outstanding``: ordered − received per SKU of the purchase order.
    ``lines=None`` receives everything outstanding. The same SKU twice is summed. Refused (nothing posted): an SKU
    not on the order, a quantity ≤ 0, more than is outstanding, or nothing at all."""
    if lines is None:
        wanted = {sku: qty for sku, qty in outstanding.items() if qty > 0}
    else:
        wanted = {}
        for sku, qty in lines:
            if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
                raise InvalidInput(f"{sku} 的到货数量必须是正整数 (quantity must be a positive whole number)", field="lines", sku=sku)
            if sku not in outstanding:
                raise InvalidInput(f"采购单上没有 {sku} (this SKU is not on the purchase order)", field="lines", sku=sku)
            wanted[sku] = wanted.get(sku, 0) + qty
        for sku, qty in wanted.items():
            if qty > outstanding[sku]:
                raise ReceiptExceedsOrdered(
                    f"{sku} 到货 {qty} 超过未到数量 {outstanding[sku]} (receiving more than ordered)",
                    sku=sku,
                    qty=qty,
                    outstanding=outstanding[sku],
                )
    if not wanted:
        raise NothingToReceive("没有可收货的数量 (nothing left to receive)")
    return wanted


def status_after_receipt(lines: Iterable[tuple[int, int]]) -> str:
    """``[(qty, received_qty), …]`` → received when everything arrived, else partially_received."""
    return P.RECEIVED if all(received >= qty for qty, received in lines) else P.PARTIALLY_RECEIVED


def validate_purchase_line(sku: str, qty: object, unit_cost_fen: object, *, max_qty: int) -> tuple[str, int, int]:
    """A purchase line typed by staff: positive whole quantity, cost in fen ≥ 0."""
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= max_qty:
        raise InvalidInput(f"{sku} 的采购数量必须是 1 到 {max_qty} 的整数 (qty must be 1..{max_qty})", field="lines", sku=sku)
    if isinstance(unit_cost_fen, bool) or not isinstance(unit_cost_fen, int) or not 0 <= unit_cost_fen <= 10**10:
        raise InvalidInput(f"{sku} 的采购单价必须是不小于 0 的整数（分）(unit_cost_fen must be ≥ 0 fen)", field="lines", sku=sku)
    return sku, qty, unit_cost_fen


def supplier_values(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate supplier fields typed by staff; unknown fields are refused."""
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key in SUPPLIER_FIELDS:
            text = value.strip() if isinstance(value, str) else None
            if text is None or len(text) > SUPPLIER_FIELDS[key] or (key == "name" and not text):
                raise InvalidInput(
                    f"供应商{key}必须是不超过 {SUPPLIER_FIELDS[key]} 字的文字 ({key} ≤ {SUPPLIER_FIELDS[key]} chars)", field=key
                )
            values[key] = text
        elif key == "lead_time_days":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 365:
                raise InvalidInput("交货周期必须是 0 到 365 天 (lead_time_days must be 0..365)", field=key)
            values[key] = value
        elif key == "active":
            if not isinstance(value, bool):
                raise InvalidInput("active 必须是 true/false", field=key)
            values[key] = value
        else:
            raise InvalidInput(f"未知字段 (unknown field): {key}", field=key)
    return values


# ---- views (plain data the services return) ------------------------------------------------------------
@dataclass(frozen=True)
class SupplierView:
    id: int
    name: str
    contact: str
    phone: str
    lead_time_days: int
    active: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PurchaseLineView:
    product_id: int
    sku: str
    name: str
    unit: str
    qty: int
    received_qty: int
    unit_cost_fen: int

    @property
    def outstanding(self) -> int:
        return self.qty - self.received_qty

    @property
    def amount_fen(self) -> int:
        return self.qty * self.unit_cost_fen


@dataclass(frozen=True)
class ReceiptView:
    reference: str
    received_at: dt.datetime
    received_by: str


@dataclass
class PurchaseOrderView:
    id: int
    number: str
    supplier: SupplierView
    status: str
    note: str
    created_at: dt.datetime
    ordered_at: dt.datetime | None
    expected_on: dt.date | None
    closed_at: dt.datetime | None
    version: int
    lines: list[PurchaseLineView] = field(default_factory=list)
    receipts: list[ReceiptView] = field(default_factory=list)

    @property
    def total_fen(self) -> int:
        return sum(ln.amount_fen for ln in self.lines)

    def to_json(self, *, show_cost: bool = True) -> dict[str, Any]:
        """The order as the API answers it; ``show_cost=False`` (字段权限: cost hidden) nulls every price."""
        iso = lambda v: v.isoformat() if v is not None else None  # noqa: E731
        return {
            "number": self.number,
            "status": self.status,
            "supplier": self.supplier.to_json(),
            "note": self.note,
            "total_fen": self.total_fen if show_cost else None,
            "created_at": iso(self.created_at),
            "ordered_at": iso(self.ordered_at),
            "expected_on": iso(self.expected_on),
            "closed_at": iso(self.closed_at),
            "lines": [
                {
                    **{k: getattr(ln, k) for k in ("sku", "name", "unit", "qty", "received_qty")},
                    "unit_cost_fen": ln.unit_cost_fen if show_cost else None,
                    "outstanding": ln.outstanding,
                }
                for ln in self.lines
            ],
            "receipts": [
                {"reference": r.reference, "received_at": iso(r.received_at), "received_by": r.received_by} for r in self.receipts
            ],
        }


@dataclass(frozen=True)
class ReceiptResult:
    order: PurchaseOrderView
    received: dict[str, int]  # what this call posted per SKU (empty when the reference was already posted)
    backorders_filled: dict[str, int]  # units allocated to waiting orders per SKU
    duplicate: bool  # True: this delivery note had been posted before; nothing new was received


@dataclass(frozen=True)
class SuggestionGroup:
    supplier: SupplierView | None  # None: never bought, choose a supplier
    suggestions: list[Suggestion]

    @property
    def total_fen(self) -> int:
        return sum(s.qty * s.position.unit_cost_fen for s in self.suggestions)


class PurchaseAwaitingApproval(Conflict):
    code = "awaiting_approval"
