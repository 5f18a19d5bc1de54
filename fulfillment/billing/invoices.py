"""Invoices (应收单): issued for what a shipment sent (or for the whole order at confirmation — a setting), due
after the customer's payment terms, paid by allocations, voided by a credit note that returns their payments to
customer credit.

Issuing is idempotent: one invoice per shipment (a UNIQUE key) and one whole-order invoice per order (checked
under the customer's account lock), so an outbox event handled twice issues one invoice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.billing.domain import (
    OPEN_INVOICE_STATUSES,
    InvoiceNotFound,
    due_date,
    invoice_discount,
    invoice_number,
    invoice_status,
)
from fulfillment.billing.models import InvoiceStatus as I
from fulfillment.billing.models import invoice_lines, invoices, payment_allocations, payments
from fulfillment.billing.services import apply_credit, billing_config, change_credit, lock_account
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import ShipmentStatus, order_lines, orders, shipment_lines, shipments
from fulfillment.sequences import next_value
from scrm.core import outbox
from scrm.core.clock import local
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.runtime import Runtime

DISCOUNT_SKU = "DISCOUNT"  # an invoice line carrying the order's discount (negative amount)
INVOICEABLE_ORDER_STATUSES = (S.CONFIRMED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.COMPLETED)


@dataclass(frozen=True)
class InvoiceLineView:
    sku: str
    name: str
    unit: str
    qty: int
    unit_price_fen: int
    amount_fen: int


@dataclass(frozen=True)
class AllocationView:
    amount_fen: int  # negative: reversed by a void
    source: str  # payment | credit | void
    payment_reference: str | None
    at: dt.datetime


@dataclass
class InvoiceView:
    id: int
    number: str
    customer_id: int
    order_id: int
    order_number: str
    salesperson_userid: str
    shipment_number: str | None
    status: str
    total_fen: int
    paid_fen: int
    issued_at: dt.datetime
    due_on: dt.date
    voided_at: dt.datetime | None
    void_reason: str
    lines: list[InvoiceLineView] = field(default_factory=list)
    allocations: list[AllocationView] = field(default_factory=list)

    @property
    def balance_fen(self) -> int:
        return 0 if self.status == I.VOID else self.total_fen - self.paid_fen

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "status": self.status,
            "customer_id": self.customer_id,
            "order": self.order_number,
            "shipment": self.shipment_number,
            "total_fen": self.total_fen,
            "paid_fen": self.paid_fen,
            "balance_fen": self.balance_fen,
            "issued_at": self.issued_at.isoformat(),
            "due_on": self.due_on.isoformat(),
            "voided_at": self.voided_at.isoformat() if self.voided_at else None,
            "void_reason": self.void_reason,
            "lines": [ln.__dict__ for ln in self.lines],
            "allocations": [
                {"amount_fen": a.amount_fen, "source": a.source, "payment": a.payment_reference, "at": a.at.isoformat()}
                for a in self.allocations
            ],
        }


# ---- issuing --------------------------------------------------------------------------------------------
async def invoice_shipment(rt: Runtime, order_id: int, shipment_number: str) -> InvoiceView | None:
    """Issue the invoice for exactly what a shipment sent (qty × the order's unit price, less the order's unused
    discount), due after the customer's terms; customer credit pays it at once where there is some. Issuing twice
    returns the first invoice. None when the shipment was cancelled or the order was invoiced at confirmation."""
    cfg = billing_config(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        q = sa.select(shipments).where(shipments.c.number == shipment_number)
        if rt.db.dialect == "postgresql":
            q = q.with_for_update()  # cancel_shipment takes the same lock: an invoice never outlives its shipment unseen
        ship = (await conn.execute(q)).first()
        if ship is None or int(ship.order_id) != order_id:
            raise NotFound(f"没有找到订单的发货单 {shipment_number} (shipment not found)", shipment=shipment_number)
        existing = (await conn.execute(sa.select(invoices.c.id).where(invoices.c.shipment_id == ship.id))).scalar()
        if existing is not None:
            return await _view(conn, int(existing))
        if ship.status == ShipmentStatus.CANCELLED or await _whole_order_invoice(conn, order_id) is not None:
            return None
        order = (await conn.execute(sa.select(orders).where(orders.c.id == order_id))).one()
        account = await lock_account(conn, rt.db.dialect, int(order.customer_id), now, cfg.default_terms_days)
        items = (
            await conn.execute(
                sa.select(order_lines, shipment_lines.c.qty.label("shipped"))
                .join(shipment_lines, shipment_lines.c.order_line_id == order_lines.c.id)
                .where(shipment_lines.c.shipment_id == ship.id)
                .order_by(order_lines.c.id)
            )
        ).all()
        lines = [_line(ln, int(ln.shipped)) for ln in items]
        invoice_id = await _issue(conn, rt, order, account, lines, int(ship.id), now)
        return await _view(conn, invoice_id)


async def invoice_order(rt: Runtime, order_id: int) -> InvoiceView | None:
    """Issue one invoice for the whole confirmed order (setting ``invoice_on = "confirmation"``). Issuing twice
    returns the first invoice; None when the order is not confirmed or already has shipment invoices."""
    cfg = billing_config(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        q = sa.select(orders).where(orders.c.id == order_id)
        if rt.db.dialect == "postgresql":
            q = q.with_for_update()  # cancel_order takes the same lock: a cancelled order is never invoiced unseen
        order = (await conn.execute(q)).first()
        if order is None:
            raise NotFound("没有找到这张订单 (order not found)", order_id=order_id)
        if order.status not in INVOICEABLE_ORDER_STATUSES:
            return None
        account = await lock_account(conn, rt.db.dialect, int(order.customer_id), now, cfg.default_terms_days)
        whole = await _whole_order_invoice(conn, order_id)
        if whole is not None:
            return await _view(conn, whole)
        others = (
            await conn.execute(sa.select(invoices.c.id).where(invoices.c.order_id == order_id, invoices.c.status != I.VOID).limit(1))
        ).first()
        if others is not None:
            return None
        rows = (await conn.execute(sa.select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.id))).all()
        invoice_id = await _issue(conn, rt, order, account, [_line(ln, int(ln.qty)) for ln in rows], None, now)
        return await _view(conn, invoice_id)


def _line(ln: Any, qty: int) -> dict[str, Any]:
    return {
        "order_line_id": int(ln.id),
        "sku": ln.sku,
        "name": ln.name,
        "unit": ln.unit,
        "qty": qty,
        "unit_price_fen": int(ln.unit_price_fen),
        "amount_fen": qty * int(ln.unit_price_fen),
    }


async def _whole_order_invoice(conn: AsyncConnection, order_id: int) -> int | None:
    q = sa.select(invoices.c.id).where(invoices.c.order_id == order_id, invoices.c.shipment_id.is_(None), invoices.c.status != I.VOID)
    found = (await conn.execute(q)).scalar()
    return None if found is None else int(found)


async def _issue(
    conn: AsyncConnection, rt: Runtime, order: Any, account: Any, lines: list[dict[str, Any]], shipment_id: int | None, now: dt.datetime
) -> int:
    subtotal = sum(ln["amount_fen"] for ln in lines)
    if order.discount_fen:
        used = (
            await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(invoice_lines.c.amount_fen), 0))
                .join(invoices, invoices.c.id == invoice_lines.c.invoice_id)
                .where(invoices.c.order_id == order.id, invoices.c.status != I.VOID, invoice_lines.c.sku == DISCOUNT_SKU)
            )
        ).scalar_one()
        discount = invoice_discount(int(order.discount_fen), -int(used), subtotal)
        if discount:
            lines = [
                *lines,
                {
                    "order_line_id": None,
                    "sku": DISCOUNT_SKU,
                    "name": "优惠",
                    "unit": "",
                    "qty": 1,
                    "unit_price_fen": -discount,
                    "amount_fen": -discount,
                },
            ]
    total = sum(ln["amount_fen"] for ln in lines)
    number = invoice_number(await next_value(conn, rt.db.dialect, "invoice"))
    invoice_id = int(
        (
            await conn.execute(
                invoices.insert()
                .values(
                    number=number,
                    customer_id=order.customer_id,
                    order_id=order.id,
                    shipment_id=shipment_id,
                    status=invoice_status(total, 0),
                    total_fen=total,
                    paid_fen=0,
                    issued_at=now,
                    due_on=due_date(local(now).date(), int(account.payment_terms_days)),
                    version=1,
                )
                .returning(invoices.c.id)
            )
        ).scalar_one()
    )
    await conn.execute(invoice_lines.insert(), [{"invoice_id": invoice_id, **ln} for ln in lines])
    row = (await conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id))).one()
    await apply_credit(conn, account, row, now)
    return invoice_id


# ---- voiding --------------------------------------------------------------------------------------------
def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason.strip()) > 200:
        raise InvalidInput("作废原因必填，且不超过 200 字 (a void reason of at most 200 characters is required)", field="reason")
    return reason.strip()


async def void_invoice(rt: Runtime, number: str, reason: str, *, actor: str = "") -> InvoiceView:
    """Void an invoice by a credit note: every allocation on it is reversed, what was paid goes back to the
    customer's credit (credit_entries "void_return"), and it no longer counts as owed. Voiding twice changes
    nothing; a missing reason changes nothing."""
    reason = _reason(reason)
    async with rt.db.write() as conn:
        invoice_id = await _void(conn, rt, number, reason, only_if_unpaid=False)
        return await _view(conn, invoice_id)


async def void_shipment_invoice(rt: Runtime, shipment_number: str, reason: str) -> str:
    """A shipment was cancelled: void its invoice if nothing was paid on it. Returns what happened: "voided",
    "none" (no invoice), "already_void", or "paid" — then it is kept, and finance is asked (outbox
    "billing.attention") to void it by hand, which moves its payments to customer credit."""
    async with rt.db.write() as conn:
        number = (
            await conn.execute(
                sa.select(invoices.c.number)
                .join(shipments, shipments.c.id == invoices.c.shipment_id)
                .where(shipments.c.number == shipment_number)
            )
        ).scalar()
        if number is None:
            return "none"
        return await _void_unpaid(conn, rt, number, reason, f"发货单 {shipment_number} 已取消")


async def void_order_invoices(rt: Runtime, order_id: int, reason: str) -> list[str]:
    """An order was cancelled (nothing of it shipped): void its unpaid whole-order invoices (invoice_on =
    "confirmation"); paid ones are kept and flagged to finance, as for a cancelled shipment. Returns the outcomes."""
    async with rt.db.write() as conn:
        numbers = (
            await conn.execute(
                sa.select(invoices.c.number, orders.c.number.label("order_number"))
                .join(orders, orders.c.id == invoices.c.order_id)
                .where(invoices.c.order_id == order_id, invoices.c.shipment_id.is_(None))
                .order_by(invoices.c.id)
            )
        ).all()
        return [await _void_unpaid(conn, rt, r.number, reason, f"订单 {r.order_number} 已取消") for r in numbers]


async def _void_unpaid(conn: AsyncConnection, rt: Runtime, number: str, reason: str, what: str) -> str:
    before = (await conn.execute(sa.select(invoices.c.status).where(invoices.c.number == number))).scalar_one()
    if before == I.VOID:
        return "already_void"
    await _void(conn, rt, number, reason, only_if_unpaid=True)
    after = (await conn.execute(sa.select(invoices.c.status).where(invoices.c.number == number))).scalar_one()
    if after == I.VOID:
        return "voided"
    message = f"{what}，但其发票 {number} 已有收款，未自动作废；请核实后在控制台作废（已收款转为客户预收）。"
    await outbox.add(conn, "billing.attention", {"message": message, "key": f"unpaid-void:{number}"}, rt.clock.now())
    return "paid"


async def _void(conn: AsyncConnection, rt: Runtime, number: str, reason: str, *, only_if_unpaid: bool) -> int:
    now = rt.clock.now()
    found = (
        await conn.execute(sa.select(invoices.c.id, invoices.c.customer_id).where(invoices.c.number == number.strip().upper()))
    ).first()
    if found is None:
        raise InvoiceNotFound(f"没有找到发票 {number} (invoice not found)", number=number)
    await lock_account(conn, rt.db.dialect, int(found.customer_id), now, billing_config(rt).default_terms_days)
    inv = (await conn.execute(sa.select(invoices).where(invoices.c.id == found.id))).one()
    if inv.status == I.VOID or (only_if_unpaid and inv.paid_fen):
        return int(inv.id)
    nets = await conn.execute(
        sa.select(payment_allocations.c.payment_id, sa.func.sum(payment_allocations.c.amount_fen).label("net"))
        .where(payment_allocations.c.invoice_id == inv.id)
        .group_by(payment_allocations.c.payment_id)
    )
    reversals = [
        {"payment_id": r.payment_id, "invoice_id": inv.id, "amount_fen": -int(r.net), "source": "void", "created_at": now}
        for r in nets
        if r.net
    ]
    if reversals:
        await conn.execute(payment_allocations.insert(), reversals)
    await conn.execute(
        invoices.update()
        .where(invoices.c.id == inv.id, invoices.c.version == inv.version)
        .values(status=I.VOID, paid_fen=0, voided_at=now, void_reason=reason, version=invoices.c.version + 1)
    )
    if inv.paid_fen:
        await change_credit(conn, int(inv.customer_id), int(inv.paid_fen), "void_return", now, invoice_id=int(inv.id), reference=inv.number)
    return int(inv.id)


# ---- queries --------------------------------------------------------------------------------------------
async def _view(conn: AsyncConnection, invoice_id: int) -> InvoiceView:
    r = (
        await conn.execute(
            sa.select(invoices, orders.c.number.label("order_number"), orders.c.salesperson_userid, shipments.c.number.label("ship_no"))
            .select_from(
                invoices.join(orders, orders.c.id == invoices.c.order_id).outerjoin(shipments, shipments.c.id == invoices.c.shipment_id)
            )
            .where(invoices.c.id == invoice_id)
        )
    ).one()
    lines = await conn.execute(sa.select(invoice_lines).where(invoice_lines.c.invoice_id == invoice_id).order_by(invoice_lines.c.id))
    allocs = await conn.execute(
        sa.select(payment_allocations, payments.c.reference)
        .select_from(payment_allocations.outerjoin(payments, payments.c.id == payment_allocations.c.payment_id))
        .where(payment_allocations.c.invoice_id == invoice_id)
        .order_by(payment_allocations.c.id)
    )
    return InvoiceView(
        int(r.id),
        r.number,
        int(r.customer_id),
        int(r.order_id),
        r.order_number,
        r.salesperson_userid,
        r.ship_no,
        r.status,
        int(r.total_fen),
        int(r.paid_fen),
        r.issued_at,
        r.due_on,
        r.voided_at,
        r.void_reason,
        [InvoiceLineView(ln.sku, ln.name, ln.unit, int(ln.qty), int(ln.unit_price_fen), int(ln.amount_fen)) for ln in lines],
        [AllocationView(int(a.amount_fen), a.source, a.reference, a.created_at) for a in allocs],
    )


async def get_invoice(rt: Runtime, number: str) -> InvoiceView:
    async with rt.db.read() as conn:
        found = (await conn.execute(sa.select(invoices.c.id).where(invoices.c.number == number.strip().upper()))).scalar()
        if found is None:
            raise InvoiceNotFound(f"没有找到发票 {number} (invoice not found)", number=number)
        return await _view(conn, int(found))


async def invoices_of_order(rt: Runtime, order_id: int) -> list[InvoiceView]:
    async with rt.db.read() as conn:
        ids = (await conn.execute(sa.select(invoices.c.id).where(invoices.c.order_id == order_id).order_by(invoices.c.id))).scalars()
        return [await _view(conn, int(i)) for i in list(ids)]


async def list_invoices(
    rt: Runtime, *, customer_id: int | None = None, status: str = "", number: str = "", limit: int = 50, offset: int = 0
) -> list[InvoiceView]:
    """Invoices newest first (without lines), filtered by customer, status ("open" = open or partially paid)
    and/or a number fragment."""
    q = (
        sa.select(invoices.c.id)
        .select_from(invoices.join(orders, orders.c.id == invoices.c.order_id))
        .order_by(invoices.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if customer_id is not None:
        q = q.where(invoices.c.customer_id == customer_id)
    if status == "open":
        q = q.where(invoices.c.status.in_(OPEN_INVOICE_STATUSES))
    elif status:
        q = q.where(invoices.c.status == status)
    if number:
        q = q.where(
            sa.or_(invoices.c.number.contains(number.upper(), autoescape=True), orders.c.number.contains(number.upper(), autoescape=True))
        )
    async with rt.db.read() as conn:
        ids = list((await conn.execute(q)).scalars())
        return [await _view(conn, int(i)) for i in ids]
