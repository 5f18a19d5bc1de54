"""Pure order rules: which status may follow which, totals, and the domain errors (stable codes)."""

from __future__ import annotations

from dataclasses import dataclass

from fulfillment.orders.models import OrderStatus as S
from scrm.core.errors import Conflict, InvalidInput, NotFound

TRANSITIONS: dict[str, set[str]] = {
    S.PENDING: {S.CONFIRMED, S.ON_HOLD, S.PENDING_APPROVAL, S.CANCELLED, S.EXPIRED},
    S.PENDING_APPROVAL: {S.CONFIRMED, S.ON_HOLD, S.CANCELLED},  # approved (then the credit check), or rejected
    S.ON_HOLD: {S.CONFIRMED, S.CANCELLED},
    S.CONFIRMED: {S.PARTIALLY_SHIPPED, S.SHIPPED, S.CANCELLED},
    S.PARTIALLY_SHIPPED: {S.PARTIALLY_SHIPPED, S.SHIPPED},
    S.SHIPPED: {S.COMPLETED, S.PARTIALLY_SHIPPED},  # a cancelled shipment reopens the order
    S.COMPLETED: set(),
    S.CANCELLED: set(),
    S.EXPIRED: set(),
}
OPEN_STATUSES = (S.PENDING, S.PENDING_APPROVAL, S.ON_HOLD, S.CONFIRMED, S.PARTIALLY_SHIPPED)
SHIPPABLE = (S.CONFIRMED, S.PARTIALLY_SHIPPED)  # allocated goods may go out (the picking list)
CONFIRMABLE = (S.PENDING, S.ON_HOLD)
CANCELLABLE = (S.PENDING, S.PENDING_APPROVAL, S.ON_HOLD, S.CONFIRMED)  # and only while nothing has shipped
STATUS_ZH = {
    S.PENDING: "待确认",
    S.CONFIRMED: "已确认，备货中",
    S.ON_HOLD: "待审核",
    S.PENDING_APPROVAL: "待审批",
    S.PARTIALLY_SHIPPED: "部分发货",
    S.SHIPPED: "已发货",
    S.COMPLETED: "已完成",
    S.CANCELLED: "已取消",
    S.EXPIRED: "已过期",
}


class OrderNotFound(NotFound):
    code = "order_not_found"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class StaleOrder(Conflict):
    code = "stale_order"


class DraftExpired(Conflict):
    code = "draft_expired"


class ShipmentTooLarge(InvalidInput):
    code = "ship_qty_exceeds_allocated"


class NothingToShip(Conflict):
    code = "nothing_to_ship"


class AwaitingApproval(Conflict):
    code = "awaiting_approval"


def order_facts(total_fen: int, qty: int, categories: list[str], source: str) -> dict[str, object]:
    """What an approval rule on orders may look at (scrm.governance.approvals.domain.DOC_TYPES["order"])."""
    return {"amount_fen": total_fen, "qty": qty, "category": sorted({c for c in categories if c}), "source": source}


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, set()):
        raise InvalidTransition(
            f"订单当前状态为“{STATUS_ZH.get(current, current)}”，不能变为“{STATUS_ZH.get(target, target)}” "
            f"(cannot go from {current} to {target})",
            status=current,
            target=target,
        )


ORDER_NUMBER_PREFIX = "SO"
ORDER_NUMBER_BASE = 100000  # the one-statement placement (fulfillment.orders.placement) builds the same number in SQL


def order_number(seq: int) -> str:
    return f"{ORDER_NUMBER_PREFIX}{ORDER_NUMBER_BASE + seq}"


def shipment_number(seq: int) -> str:
    return f"SH{100000 + seq}"


def status_after_shipping(lines: list[tuple[int, int]]) -> str:
    """``[(qty, shipped_qty), …]`` → shipped when everything went out, else partially_shipped."""
    return S.SHIPPED if all(shipped >= qty for qty, shipped in lines) else S.PARTIALLY_SHIPPED


class CreditHold(Conflict):
    """The order waits for a finance release (credit limit); confirming it again is refused."""

    code = "order_on_hold"


# ---- credit limit ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreditExposure:
    """What a customer owes or has committed to, against their credit limit (None = no limit)."""

    limit_fen: int | None
    receivables_fen: int  # open invoice balances
    open_orders_fen: int  # confirmed orders not yet invoiced
    credit_fen: int  # prepaid customer credit

    def with_order(self, order_total_fen: int) -> int:
        return self.receivables_fen + self.open_orders_fen + order_total_fen - self.credit_fen


def exceeds_credit_limit(exposure: CreditExposure, order_total_fen: int) -> bool:
    """True when confirming an order of ``order_total_fen`` would push the exposure over the limit."""
    return exposure.limit_fen is not None and exposure.with_order(order_total_fen) > exposure.limit_fen
