"""Receivables (应收账款): a customer's balance, aging by customer or salesperson, dunning (催款) on a controllable
clock, and orders on credit hold with their release."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.billing.domain import OPEN_INVOICE_STATUSES, Aged, NotOnHold, age, days_past_due, dunning_plan
from fulfillment.billing.models import dunning_notices, invoices
from fulfillment.billing.services import billing_config, credit_exposure, read_account
from fulfillment.orders import queries as order_service_queries
from fulfillment.orders import services as order_service
from fulfillment.orders.domain import CreditExposure
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import order_history, orders
from scrm.core import outbox
from scrm.core.clock import local
from scrm.core.db import insert_ignore
from scrm.core.errors import InvalidInput
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime
from scrm.governance.approvals import services as approvals
from scrm.governance.scopes.services import DataScope


def business_today(rt: Runtime) -> dt.date:
    return local(rt.clock.now()).date()


# ---- one customer's balance -----------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenInvoice:
    number: str
    order_number: str
    issued_at: dt.datetime
    due_on: dt.date
    total_fen: int
    balance_fen: int
    days_past_due: int  # negative: due in that many days


@dataclass(frozen=True)
class Balance:
    customer_id: int
    today: dt.date
    open_fen: int  # Σ open invoice balances: what the customer owes
    overdue_fen: int  # the part past its due date
    credit_fen: int  # prepaid customer credit, used by the next invoice
    invoices: list[OpenInvoice]  # oldest due first

    @property
    def oldest_due_on(self) -> dt.date | None:
        return self.invoices[0].due_on if self.invoices else None


async def customer_balance(rt: Runtime, customer_id: int) -> Balance:
    """What a customer owes today: open invoices (oldest due first), the overdue part, and their credit."""
    today = business_today(rt)
    async with rt.db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(invoices, orders.c.number.label("order_number"))
                .join(orders, orders.c.id == invoices.c.order_id)
                .where(invoices.c.customer_id == customer_id, invoices.c.status.in_(OPEN_INVOICE_STATUSES))
                .order_by(invoices.c.due_on, invoices.c.id)
            )
        ).all()
        account = await read_account(conn, customer_id, billing_config(rt).default_terms_days)
    items = [
        OpenInvoice(
            r.number, r.order_number, r.issued_at, r.due_on, int(r.total_fen), int(r.total_fen - r.paid_fen), days_past_due(r.due_on, today)
        )
        for r in rows
    ]
    return Balance(
        customer_id,
        today,
        sum(i.balance_fen for i in items),
        sum(i.balance_fen for i in items if i.days_past_due > 0),
        account.credit_fen,
        items,
    )


# ---- aging ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgingRow:
    key: str  # the customer id (as text) or the salesperson's userid ("" = none)
    aged: Aged


@dataclass(frozen=True)
class AgingReport:
    by: str  # customer | salesperson
    as_of: dt.date
    rows: list[AgingRow]  # largest balance first
    total: Aged


async def aging_report(rt: Runtime, by: str = "customer") -> AgingReport:
    """Open balances by aging bucket (not due / 1–30 / 31–60 / 61–90 / 90+ days past due, business-local dates),
    grouped by customer or by the order's salesperson, with the grand total."""
    if by not in ("customer", "salesperson"):
        raise InvalidInput("by 必须是 customer 或 salesperson (by must be customer or salesperson)", field="by")
    today = business_today(rt)
    async with rt.db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(invoices.c.customer_id, orders.c.salesperson_userid, invoices.c.due_on, invoices.c.total_fen, invoices.c.paid_fen)
                .join(orders, orders.c.id == invoices.c.order_id)
                .where(invoices.c.status.in_(OPEN_INVOICE_STATUSES))
            )
        ).all()
    items = [(str(r.customer_id) if by == "customer" else r.salesperson_userid, r.due_on, int(r.total_fen - r.paid_fen)) for r in rows]
    grouped = age(items, today)
    total = age([("all", d, b) for _, d, b in items], today).get("all", Aged())
    ordered = sorted(grouped.items(), key=lambda kv: (-kv[1].total_fen, kv[0]))
    return AgingReport(by, today, [AgingRow(k, a) for k, a in ordered], total)


# ---- dunning --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DunningRun:
    sent: int  # levels queued for sending (outbox "billing.dunning")
    skipped: int  # levels recorded as skipped (superseded, or reached before the invoice existed)


async def run_dunning(rt: Runtime) -> DunningRun:
    """Queue today's dunning reminders: for each open invoice, the latest level reached (config/billing.toml)
    that was never sent. Each (invoice, level) is recorded once in dunning_notices (primary key) in the same
    transaction as its outbox row, so running twice — or in two workers at once — sends each level once."""
    levels = billing_config(rt).dunning
    if not levels:
        return DunningRun(0, 0)
    now = rt.clock.now()
    today = local(now).date()
    earliest = min(lv.days for lv in levels)
    sent = skipped = 0
    async with rt.db.write() as conn:
        rows = (
            await conn.execute(
                sa.select(invoices.c.id, invoices.c.due_on, invoices.c.issued_at).where(
                    invoices.c.status.in_(OPEN_INVOICE_STATUSES), invoices.c.due_on <= today - dt.timedelta(days=earliest)
                )
            )
        ).all()
        done: dict[int, set[str]] = {}
        recorded = await conn.execute(
            sa.select(dunning_notices.c.invoice_id, dunning_notices.c.level)
            .join(invoices, invoices.c.id == dunning_notices.c.invoice_id)
            .where(invoices.c.status.in_(OPEN_INVOICE_STATUSES))
        )
        for n in recorded:
            done.setdefault(int(n.invoice_id), set()).add(n.level)
        for r in rows:
            send, skip = dunning_plan(
                levels, due_on=r.due_on, issued_on=local(r.issued_at).date(), today=today, done=done.get(int(r.id), ())
            )
            for lv in skip:
                if await _record(conn, rt.db.dialect, int(r.id), lv.name, now, "skipped"):
                    skipped += 1
            if send is not None and await _record(conn, rt.db.dialect, int(r.id), send.name, now, "queued"):
                await outbox.add(conn, "billing.dunning", {"invoice_id": int(r.id), "level": send.name}, now)
                sent += 1
    return DunningRun(sent, skipped)


async def _record(conn: AsyncConnection, dialect: str, invoice_id: int, level: str, now: dt.datetime, channel: str) -> bool:
    inserted = await conn.execute(
        insert_ignore(dunning_notices, dialect)
        .values(invoice_id=invoice_id, level=level, sent_at=now, channel=channel)
        .returning(dunning_notices.c.invoice_id)
    )
    return inserted.scalar() is not None


@dataclass(frozen=True)
class DunningNotice:
    """What a dunning reminder says and to whom (read when the outbox row is handled)."""

    invoice_number: str
    order_number: str
    customer_id: int
    salesperson_userid: str
    level: str
    template: str
    total_fen: int
    balance_fen: int
    due_on: dt.date
    days_past_due: int


async def dunning_notice(rt: Runtime, invoice_id: int, level: str) -> DunningNotice | None:
    """The reminder for (invoice, level), or None when nothing is owed any more (paid or void meanwhile)."""
    async with rt.db.read() as conn:
        r = (
            await conn.execute(
                sa.select(invoices, orders.c.number.label("order_number"), orders.c.salesperson_userid)
                .join(orders, orders.c.id == invoices.c.order_id)
                .where(invoices.c.id == invoice_id)
            )
        ).first()
    if r is None or r.status not in OPEN_INVOICE_STATUSES:
        return None
    days = days_past_due(r.due_on, business_today(rt))
    configured = {lv.name: lv.template for lv in billing_config(rt).dunning}
    template = configured.get(level) or ("dunning_overdue" if days > 0 else "dunning_upcoming")
    return DunningNotice(
        r.number,
        r.order_number,
        int(r.customer_id),
        r.salesperson_userid,
        level,
        template,
        int(r.total_fen),
        int(r.total_fen - r.paid_fen),
        r.due_on,
        days,
    )


async def record_dunning_channel(rt: Runtime, invoice_id: int, level: str, channel: str) -> None:
    """Note how a reminder went out (kf, mp_template, msg_template, none, or cancelled when no longer owed)."""
    async with rt.db.write() as conn:
        await conn.execute(
            dunning_notices.update()
            .where(dunning_notices.c.invoice_id == invoice_id, dunning_notices.c.level == level)
            .values(channel=channel[:24])
        )


# ---- credit holds ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeldOrder:
    number: str
    customer_id: int
    salesperson_userid: str
    total_fen: int
    created_at: dt.datetime
    held_at: dt.datetime | None
    exposure: CreditExposure  # as it stands now (payments since the hold count)


async def held_orders(rt: Runtime, *, limit: int = 200) -> list[HeldOrder]:
    """Orders waiting on a credit release, oldest first, with each customer's current exposure."""
    async with rt.db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(orders).where(orders.c.status == S.ON_HOLD).order_by(orders.c.created_at, orders.c.id).limit(limit)
            )
        ).all()
        out = []
        for r in rows:
            held_at = (
                await conn.execute(
                    sa.select(sa.func.max(order_history.c.at)).where(
                        order_history.c.order_id == r.id, order_history.c.to_status == S.ON_HOLD
                    )
                )
            ).scalar()
            exposure = await credit_exposure(conn, int(r.customer_id), exclude_order_id=int(r.id))
            out.append(HeldOrder(r.number, int(r.customer_id), r.salesperson_userid, int(r.total_fen), r.created_at, held_at, exposure))
    return out


@dataclass(frozen=True)
class ReleaseOutcome:
    """What asking to release a hold did: the order (confirmed, or still on hold) and, when a credit-release rule
    matched, the approval the release waits for."""

    order: order_service.OrderView
    approval: approvals.ApprovalView | None


async def request_release(rt: Runtime, number: str, *, actor: str) -> ReleaseOutcome:
    """Finance asks to release a credit hold: at once, or — when an approval rule on credit releases matches (e.g.
    "超出额度 1 万元以上须总经理审批") — once that approval is given; the order stays on hold meanwhile, and asking
    again returns the same waiting approval."""
    async with rt.db.read() as conn:
        order_id = await order_service_queries.order_id_by_number(conn, number)
    order = await order_service.get_order(rt, order_id)
    if order.status != S.ON_HOLD:
        return ReleaseOutcome(await release_hold(rt, number, actor=actor), None)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        waiting = await approvals.approval_of(conn, "credit_release", number)
        if waiting is None or waiting.status != "pending":
            exposure = await credit_exposure(conn, order.customer_id, exclude_order_id=order_id)
            over = exposure.receivables_fen + exposure.open_orders_fen - exposure.credit_fen + order.total_fen - (exposure.limit_fen or 0)
            summary = f"信用放行 订单 {number}（{format_fen(order.total_fen)}，超出额度 {format_fen(max(0, over))}）"
            facts = {"amount_fen": order.total_fen, "over_limit_fen": max(0, over)}
            waiting = await approvals.request_approval(
                conn, now, doc_type="credit_release", doc_ref=number, summary=summary, facts=facts, customer_id=order.customer_id
            )
    if waiting is not None:
        return ReleaseOutcome(order, waiting)
    return ReleaseOutcome(await release_hold(rt, number, actor=actor), None)


async def release_hold(rt: Runtime, number: str, *, actor: str) -> order_service.OrderView:
    """A person with the finance role accepts the credit risk: the held order is confirmed and its stock allocated
    (as confirm_order does, without the credit check). Releasing an order already released changes nothing; an
    order that was never held (or was cancelled) is refused."""
    async with rt.db.read() as conn:
        order_id = await order_service_queries.order_id_by_number(conn, number)
    order = await order_service.get_order(rt, order_id)
    if order.status in (S.CONFIRMED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.COMPLETED):
        return order
    if order.status != S.ON_HOLD:
        raise NotOnHold(f"订单 {order.number} 不在待审核状态 (order is not on hold)", number=order.number, status=order.status)
    return await order_service.confirm_order(rt, order_id, actor=actor, release_hold=True)


# ---- a salesperson's overdue invoices ----------------------------------------------------------------------------
@dataclass(frozen=True)
class OverdueInvoice:
    number: str
    order_number: str
    customer_id: int
    balance_fen: int
    due_on: dt.date
    days_overdue: int


async def overdue_invoices(conn: AsyncConnection, scope: DataScope, today: dt.date, *, limit: int = 20) -> list[OverdueInvoice]:
    """Open invoices past their due date whose order is in ``scope`` (the customer is, or one of its members sold
    it), longest overdue first — what a salesperson chases (催款) this morning."""
    rows = await conn.execute(
        sa.select(
            invoices.c.number,
            orders.c.number.label("order_number"),
            invoices.c.customer_id,
            invoices.c.total_fen,
            invoices.c.paid_fen,
            invoices.c.due_on,
        )
        .select_from(invoices.join(orders, orders.c.id == invoices.c.order_id))
        .where(
            invoices.c.status.in_(OPEN_INVOICE_STATUSES),
            invoices.c.due_on < today,
            scope.orders(invoices.c.customer_id, orders.c.salesperson_userid),
        )
        .order_by(invoices.c.due_on, invoices.c.id)
        .limit(limit)
    )
    return [
        OverdueInvoice(r.number, r.order_number, int(r.customer_id), int(r.total_fen - r.paid_fen), r.due_on, (today - r.due_on).days)
        for r in rows
    ]
