"""Invoices, payments, credit, voids, aging, dunning and credit holds against real SQLite and PostgreSQL, plus the
billing API over HTTP. Invariants (balances never negative, money conserved) are checked after every step."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulfillment.billing import invoices, jobs, payments, receivables, services
from fulfillment.billing import web as billing_web
from fulfillment.billing.domain import (
    BillingConfig,
    InsufficientCredit,
    InvalidAmount,
    InvoiceNotFound,
    InvoiceOfOtherCustomer,
    InvoicePaid,
    InvoiceVoid,
    NotOnHold,
    PaymentConflict,
    invoice_status,
)
from fulfillment.billing.models import InvoiceStatus, credit_entries, customer_accounts, dunning_notices, payment_allocations
from fulfillment.billing.models import invoices as invoices_table
from fulfillment.billing.models import payments as payments_table
from fulfillment.orders import services as orders
from fulfillment.orders import shipments as shipments
from fulfillment.orders.domain import CreditHold
from fulfillment.orders.models import OrderStatus, order_history
from fulfillment.orders.models import orders as orders_table
from scrm.app.webapp import create_app
from scrm.core import outbox
from scrm.core.clock import FrozenClock
from scrm.core.errors import DomainError, InvalidInput
from scrm.core.runtime import Runtime
from tests.conftest import make_customer

BILLING_TOPICS = ("billing.shipment_invoiceable", "billing.order_confirmed", "billing.shipment_cancelled")
assert jobs.invoice_on_shipment  # registers billing's outbox handlers


# ---- helpers (also used by the statement, console and chat tests) -----------------------------------------
async def run_billing_events(rt: Runtime) -> None:
    """Handle pending billing outbox rows the way the relay would (notices to people are not sent here)."""
    while True:
        async with rt.db.read() as conn:
            ids = list(
                (
                    await conn.execute(
                        sa.select(outbox.outbox.c.id)
                        .where(
                            outbox.outbox.c.topic.in_(BILLING_TOPICS),
                            outbox.outbox.c.done_at.is_(None),
                            outbox.outbox.c.failed_at.is_(None),
                        )
                        .order_by(outbox.outbox.c.id)
                    )
                ).scalars()
            )
        if not ids:
            return
        for oid in ids:
            await outbox.dispatch(rt, oid, final_try=True)


async def topic_count(rt: Runtime, topic: str) -> int:
    async with rt.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).where(outbox.outbox.c.topic == topic))).scalar_one())


async def ship_and_invoice(
    rt: Runtime, customer_id: int, items: list[tuple[str, int]], *, salesperson: str = "", lines: list[tuple[str, int]] | None = None
) -> invoices.InvoiceView:
    """Place a confirmed order, ship it (all or ``lines``) and let billing invoice the shipment."""
    order = await orders.create_order(rt, customer_id=customer_id, items=items, source="api", salesperson_userid=salesperson, confirm=True)
    _, number = await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no=f"SF{order.id}", lines=lines)
    await run_billing_events(rt)
    found = [i for i in await invoices.invoices_of_order(rt, order.id) if i.shipment_number == number]
    assert len(found) == 1
    return found[0]


async def check_invariants(rt: Runtime) -> None:
    """0 ≤ paid ≤ total and paid = Σ allocations per invoice; each payment = its allocations + the credit it
    granted; per customer Σ payments = Σ paid + credit + refunds; credit = Σ credit entries ≥ 0."""
    async with rt.db.read() as conn:
        for inv in await conn.execute(sa.select(invoices_table)):
            allocated = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(payment_allocations.c.amount_fen), 0)).where(
                        payment_allocations.c.invoice_id == inv.id
                    )
                )
            ).scalar_one()
            assert 0 <= inv.paid_fen <= inv.total_fen and inv.paid_fen == allocated, inv.number
            if inv.status == InvoiceStatus.VOID:
                assert inv.paid_fen == 0
            else:
                assert inv.status == invoice_status(inv.total_fen, inv.paid_fen)
        for p in await conn.execute(sa.select(payments_table)):
            to_invoices = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(payment_allocations.c.amount_fen), 0)).where(
                        payment_allocations.c.payment_id == p.id, payment_allocations.c.source == "payment"
                    )
                )
            ).scalar_one()
            granted = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(credit_entries.c.delta_fen), 0)).where(
                        credit_entries.c.payment_id == p.id, credit_entries.c.reason == "overpayment"
                    )
                )
            ).scalar_one()
            assert p.amount_fen == to_invoices + granted, p.reference
        for acct in await conn.execute(sa.select(customer_accounts)):
            cid = acct.customer_id

            async def total(q: Any) -> int:
                return int((await conn.execute(q)).scalar_one())

            paid_in = await total(
                sa.select(sa.func.coalesce(sa.func.sum(payments_table.c.amount_fen), 0)).where(payments_table.c.customer_id == cid)
            )
            on_invoices = await total(
                sa.select(sa.func.coalesce(sa.func.sum(invoices_table.c.paid_fen), 0)).where(invoices_table.c.customer_id == cid)
            )
            refunds = await total(
                sa.select(sa.func.coalesce(sa.func.sum(credit_entries.c.delta_fen), 0)).where(
                    credit_entries.c.customer_id == cid, credit_entries.c.reason == "refund"
                )
            )
            ledger = await total(
                sa.select(sa.func.coalesce(sa.func.sum(credit_entries.c.delta_fen), 0)).where(credit_entries.c.customer_id == cid)
            )
            assert acct.credit_fen >= 0 and acct.credit_fen == ledger
            assert paid_in == on_invoices + acct.credit_fen - refunds


async def counts(rt: Runtime) -> tuple[int, ...]:
    out = []
    async with rt.db.read() as conn:
        for t in (payments_table, payment_allocations, credit_entries, invoices_table):
            out.append(int((await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one()))
    return tuple(out)


# ---- invoices ---------------------------------------------------------------------------------------------
async def test_shipment_invoice_is_for_exactly_what_shipped(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmInv")
    await services.set_account(rt, cid, terms_days=30)
    order = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 5), ("RICE-5KG", 2)], source="api", confirm=True)
    _, first = await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="SF1", lines=[("WATER-550", 3)])
    await run_billing_events(rt)
    [inv] = await invoices.invoices_of_order(rt, order.id)
    assert (inv.number, inv.shipment_number, inv.status, inv.total_fen) == ("INV100001", first, "open", 3 * 3600)
    assert [(ln.sku, ln.qty, ln.amount_fen) for ln in inv.lines] == [("WATER-550", 3, 10800)]
    assert inv.due_on == dt.date(2026, 12, 23)  # issued 2026-11-23 (Shanghai) + 月结30天
    # The event handled again (a crash before it was marked done) issues nothing new.
    await jobs.invoice_on_shipment(rt, {"order_id": order.id, "shipment": first})
    assert len(await invoices.invoices_of_order(rt, order.id)) == 1

    _, second = await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="SF2")
    await run_billing_events(rt)
    both = await invoices.invoices_of_order(rt, order.id)
    assert [i.number for i in both] == ["INV100001", "INV100002"]
    assert both[1].total_fen == 2 * 3600 + 2 * 4990 and both[1].shipment_number == second
    assert sum(i.total_fen for i in both) == order.total_fen
    await check_invariants(rt)


async def test_order_discount_is_spread_over_its_shipment_invoices(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmDiscount")
    order = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 3)], source="api", confirm=True)
    async with rt.db.write() as conn:  # as a coupon would have left it: ¥50 off ¥108
        await conn.execute(orders_table.update().where(orders_table.c.id == order.id).values(discount_fen=5000, total_fen=5800))
    await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="D1", lines=[("WATER-550", 1)])
    await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="D2")
    await run_billing_events(rt)
    first, second = await invoices.invoices_of_order(rt, order.id)
    assert (first.total_fen, first.status, [ln.amount_fen for ln in first.lines]) == (0, "paid", [3600, -3600])
    assert (second.total_fen, [ln.sku for ln in second.lines]) == (5800, ["WATER-550", "DISCOUNT"])
    assert first.total_fen + second.total_fen == 5800
    await check_invariants(rt)


async def test_invoice_on_confirmation_setting(catalog: Runtime) -> None:
    rt = catalog
    rt.put(services.BILLING_CONFIG, BillingConfig(invoice_on="confirmation", default_terms_days=7))
    cid = await make_customer(rt, "wmConf")
    order = await orders.create_order(rt, customer_id=cid, items=[("COLA-330", 2)], source="api", confirm=True)
    await run_billing_events(rt)
    [inv] = await invoices.invoices_of_order(rt, order.id)
    assert inv.shipment_number is None and inv.total_fen == order.total_fen
    assert inv.due_on == dt.date(2026, 11, 30)  # the configured default terms: 7 days
    await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="SF3")
    await run_billing_events(rt)
    assert len(await invoices.invoices_of_order(rt, order.id)) == 1  # shipping does not invoice twice
    assert await invoices.invoice_order(rt, order.id) is not None  # idempotent
    assert len(await invoices.invoices_of_order(rt, order.id)) == 1


async def test_cancelled_order_voids_its_confirmation_invoice(catalog: Runtime) -> None:
    rt = catalog
    rt.put(services.BILLING_CONFIG, BillingConfig(invoice_on="confirmation"))
    cid = await make_customer(rt, "wmConfCancel")
    unpaid = await orders.create_order(rt, customer_id=cid, items=[("COLA-330", 1)], source="api", confirm=True)
    paid = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="api", confirm=True)
    await run_billing_events(rt)
    [paid_inv] = await invoices.invoices_of_order(rt, paid.id)
    await payments.record_payment(rt, customer_id=cid, amount_fen=100, reference="CC-1", invoices_named=[paid_inv.number])
    for order in (unpaid, paid):
        await orders.cancel_order(rt, order.id, reason="客户取消")
        await jobs.void_invoices_of_cancelled_order(rt, {"order_id": order.id, "reason": "客户取消"})  # order.cancelled
    assert [i.status for i in await invoices.invoices_of_order(rt, unpaid.id)] == ["void"]
    assert [i.status for i in await invoices.invoices_of_order(rt, paid.id)] == ["partially_paid"]  # money on it: finance decides
    assert await topic_count(rt, "billing.attention") == 1
    assert await invoices.void_order_invoices(rt, unpaid.id, "again") == ["already_void"]
    await check_invariants(rt)


# ---- payments and credit ----------------------------------------------------------------------------------
async def test_oldest_due_first_overpayment_credit_and_refund(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmPay")
    await services.set_account(rt, cid, terms_days=30)
    a = await ship_and_invoice(rt, cid, [("WATER-550", 2)])  # 7200, due 12-23
    await services.set_account(rt, cid, terms_days=0)
    b = await ship_and_invoice(rt, cid, [("COLA-330", 1)])  # 5280, due today: older due date, paid first
    assert b.due_on < a.due_on

    first = await payments.record_payment(rt, customer_id=cid, amount_fen=6280, reference="BANK-1", method="bank")
    assert first.allocations == ((b.number, 5280), (a.number, 1000)) and first.credit_fen == 0
    assert (await invoices.get_invoice(rt, b.number)).status == "paid"
    assert (await invoices.get_invoice(rt, a.number)).status == "partially_paid"

    second = await payments.record_payment(rt, customer_id=cid, amount_fen=6700, reference="WX-2", method="wechat_pay")
    assert second.allocations == ((a.number, 6200),) and second.credit_fen == 500
    assert (await services.get_account(rt, cid)).credit_fen == 500

    c = await ship_and_invoice(rt, cid, [("TISSUE-3", 1)])  # the credit pays the next invoice at once
    assert (c.status, c.paid_fen, c.balance_fen) == ("partially_paid", 500, 2590 - 500)
    assert [(x.source, x.amount_fen) for x in c.allocations] == [("credit", 500)]
    assert (await services.get_account(rt, cid)).credit_fen == 0

    with pytest.raises(InsufficientCredit):
        await payments.refund_credit(rt, cid, 1, "RF-0")
    await payments.record_payment(rt, customer_id=cid, amount_fen=2090 + 2000, reference="BANK-3")
    assert await payments.refund_credit(rt, cid, 1500, "RF-1") == 500
    assert await payments.refund_credit(rt, cid, 1500, "RF-1") == 500  # the same refund again changes nothing
    with pytest.raises(PaymentConflict):
        await payments.refund_credit(rt, cid, 100, "RF-1")
    with pytest.raises(InsufficientCredit):
        await payments.refund_credit(rt, cid, 501, "RF-2")
    with pytest.raises(InvalidAmount):
        await payments.refund_credit(rt, cid, 0, "RF-3")
    assert (await services.get_account(rt, cid)).credit_fen == 500
    async with rt.db.read() as conn:
        reasons = [r.reason for r in await conn.execute(sa.select(credit_entries.c.reason).order_by(credit_entries.c.id))]
    assert reasons == ["overpayment", "applied", "overpayment", "refund"]
    await check_invariants(rt)


async def test_payment_idempotency_and_bad_input_change_nothing(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmIdem")
    other = await make_customer(rt, "wmOtherCo")
    inv = await ship_and_invoice(rt, cid, [("WATER-550", 1)])
    foreign = await ship_and_invoice(rt, other, [("WATER-550", 1)])
    first = await payments.record_payment(rt, customer_id=cid, amount_fen=1000, reference="R-1", invoices_named=[inv.number.lower()])
    before = await counts(rt)
    again = await payments.record_payment(rt, customer_id=cid, amount_fen=1000, reference="R-1", invoices_named=[inv.number])
    assert again.duplicate and not first.duplicate and again.allocations == first.allocations
    bad: list[tuple[type[DomainError], dict[str, Any]]] = [
        (PaymentConflict, {"amount_fen": 1001, "reference": "R-1"}),
        (PaymentConflict, {"amount_fen": 1000, "reference": "R-1", "customer_id": other}),
        (InvalidAmount, {"amount_fen": 0, "reference": "R-2"}),
        (InvalidAmount, {"amount_fen": -500, "reference": "R-2"}),
        (InvalidInput, {"amount_fen": 100, "reference": "  "}),
        (InvalidInput, {"amount_fen": 100, "reference": "R-2", "method": "bitcoin"}),
        (InvalidInput, {"amount_fen": 100, "reference": "R-2", "received_at": rt.clock.now() + dt.timedelta(days=3)}),
        (InvoiceNotFound, {"amount_fen": 100, "reference": "R-2", "invoices_named": ["INV999999"]}),
        (InvoiceOfOtherCustomer, {"amount_fen": 100, "reference": "R-2", "invoices_named": [foreign.number]}),
    ]
    for error, kwargs in bad:
        with pytest.raises(error):
            await payments.record_payment(rt, **{"customer_id": cid, **kwargs})
    assert await counts(rt) == before
    await invoices.void_invoice(rt, foreign.number, "开错了")
    await payments.record_payment(rt, customer_id=cid, amount_fen=2600, reference="R-3", invoices_named=[inv.number])
    before = await counts(rt)
    with pytest.raises(InvoicePaid):
        await payments.record_payment(rt, customer_id=cid, amount_fen=100, reference="R-4", invoices_named=[inv.number])
    with pytest.raises(InvoiceVoid) as void_err:
        await payments.record_payment(rt, customer_id=other, amount_fen=100, reference="R-4", invoices_named=[foreign.number])
    assert void_err.value.code == "invoice_void" and "作废" in void_err.value.message
    assert await counts(rt) == before
    await check_invariants(rt)


async def test_void_returns_payments_to_credit(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmVoid")
    inv = await ship_and_invoice(rt, cid, [("OIL-5L", 1)])  # 12800
    await payments.record_payment(rt, customer_id=cid, amount_fen=5000, reference="V-1")
    with pytest.raises(InvalidInput):
        await invoices.void_invoice(rt, inv.number, "  ")
    voided = await invoices.void_invoice(rt, inv.number, "价格开错，重开", actor="test")
    assert (voided.status, voided.paid_fen, voided.balance_fen, voided.void_reason) == ("void", 0, 0, "价格开错，重开")
    assert [(a.source, a.amount_fen, a.payment_reference) for a in voided.allocations] == [("payment", 5000, "V-1"), ("void", -5000, "V-1")]
    assert (await services.get_account(rt, cid)).credit_fen == 5000
    again = await invoices.void_invoice(rt, inv.number, "再来一次")
    assert again.void_reason == "价格开错，重开"  # voiding twice changes nothing
    assert (await services.get_account(rt, cid)).credit_fen == 5000
    assert (await receivables.customer_balance(rt, cid)).open_fen == 0
    with pytest.raises(InvoiceNotFound):
        await invoices.void_invoice(rt, "INV999999", "x")
    await check_invariants(rt)


async def test_cancelled_shipment_voids_its_unpaid_invoice_and_flags_a_paid_one(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmCancelShip")
    unpaid = await ship_and_invoice(rt, cid, [("WATER-550", 1)])
    await shipments.cancel_shipment(rt, unpaid.shipment_number or "")
    await run_billing_events(rt)
    assert (await invoices.get_invoice(rt, unpaid.number)).status == "void"

    paid = await ship_and_invoice(rt, cid, [("RICE-5KG", 1)])
    await payments.record_payment(rt, customer_id=cid, amount_fen=1000, reference="CS-1")
    await shipments.cancel_shipment(rt, paid.shipment_number or "")
    await run_billing_events(rt)
    assert (await invoices.get_invoice(rt, paid.number)).status == "partially_paid"  # kept: money was received
    assert await topic_count(rt, "billing.attention") == 1
    assert await invoices.void_shipment_invoice(rt, paid.shipment_number or "", "x") == "paid"
    await check_invariants(rt)


async def test_billing_follows_a_merged_customer(catalog: Runtime) -> None:
    rt = catalog
    older = await make_customer(rt, "wmMergeA")
    newer = await make_customer(rt, "wmMergeB")
    await services.set_account(rt, older, terms_days=30)
    await ship_and_invoice(rt, older, [("WATER-550", 1)])
    await ship_and_invoice(rt, newer, [("COLA-330", 1)])
    await payments.record_payment(rt, customer_id=newer, amount_fen=5280 + 700, reference="MG-1")  # ¥7 credit
    for _ in range(2):  # the handler may run twice
        await jobs.move_billing_of_merged_customer(rt, {"from": newer, "into": older})
    balance = await receivables.customer_balance(rt, older)
    assert (balance.open_fen, balance.credit_fen, len(balance.invoices)) == (3600, 700, 1)
    assert (await services.get_account(rt, older)).terms_days == 30  # the survivor keeps its terms
    assert not (await services.get_account(rt, newer)).configured
    assert [p.reference for p in await payments.list_payments(rt, customer_id=older)] == ["MG-1"]
    await check_invariants(rt)


# ---- receivables ------------------------------------------------------------------------------------------
async def test_aging_by_customer_and_salesperson_on_a_controllable_clock(catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    cash = await make_customer(rt, "wmCash")
    monthly = await make_customer(rt, "wmMonthly")
    await services.set_account(rt, monthly, terms_days=30)
    a = await ship_and_invoice(rt, cash, [("WATER-550", 2)])  # 7200 due today
    b = await ship_and_invoice(rt, monthly, [("COLA-330", 1)], salesperson="sales01")  # 5280 due in 30 days
    await payments.record_payment(rt, customer_id=cash, amount_fen=200, reference="AG-1")

    def buckets(report: receivables.AgingReport) -> dict[str, dict[str, int]]:
        return {r.key: {k: v for k, v in r.aged.buckets.items() if v} for r in report.rows}

    today = await receivables.aging_report(rt)
    assert buckets(today) == {str(cash): {"not_due": 7000}, str(monthly): {"not_due": 5280}}
    assert today.total.total_fen == 12280 and today.total.overdue_fen == 0
    clock.advance(days=45)
    later = await receivables.aging_report(rt)
    assert buckets(later) == {str(cash): {"31-60": 7000}, str(monthly): {"1-30": 5280}}
    assert later.total.overdue_fen == 12280
    clock.advance(days=55)
    by_sales = await receivables.aging_report(rt, "salesperson")
    assert buckets(by_sales) == {"": {"90+": 7000}, "sales01": {"61-90": 5280}}
    with pytest.raises(InvalidInput):
        await receivables.aging_report(rt, "region")
    balance = await receivables.customer_balance(rt, cash)
    assert (balance.open_fen, balance.overdue_fen, balance.oldest_due_on) == (7000, 7000, a.due_on)
    assert b.number not in [i.number for i in balance.invoices]


async def test_each_dunning_level_is_queued_once(catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmDun")
    await services.set_account(rt, cid, terms_days=30)
    inv = await ship_and_invoice(rt, cid, [("WATER-550", 1)])  # due 2026-12-23

    async def levels() -> list[tuple[str, str]]:
        async with rt.db.read() as conn:
            rows = await conn.execute(
                sa.select(dunning_notices).where(dunning_notices.c.invoice_id == inv.id).order_by(dunning_notices.c.level)
            )
            return [(r.level, r.channel) for r in rows]

    assert await receivables.run_dunning(rt) == receivables.DunningRun(0, 0)
    clock.set(dt.datetime(2026, 12, 20, 2, 0, tzinfo=dt.UTC))  # d-3, 10:00 in Shanghai
    assert await receivables.run_dunning(rt) == receivables.DunningRun(1, 0)
    assert await receivables.run_dunning(rt) == receivables.DunningRun(0, 0)  # run twice → sent once
    notice = await receivables.dunning_notice(rt, inv.id, "d-3")
    assert notice is not None and notice.template == "dunning_upcoming" and notice.balance_fen == 3600
    clock.set(dt.datetime(2026, 12, 24, 2, 0, tzinfo=dt.UTC))
    assert (await receivables.run_dunning(rt)).sent == 1  # d+1
    clock.set(dt.datetime(2027, 1, 12, 2, 0, tzinfo=dt.UTC))  # d+20: d+15 only
    assert await receivables.run_dunning(rt) == receivables.DunningRun(1, 0)
    assert await topic_count(rt, "billing.dunning") == 3
    await receivables.record_dunning_channel(rt, inv.id, "d+15", "kf")
    assert await levels() == [("d+1", "queued"), ("d+15", "kf"), ("d-3", "queued")]

    await payments.record_payment(rt, customer_id=cid, amount_fen=3600, reference="DUN-1")
    assert await receivables.dunning_notice(rt, inv.id, "d+15") is None  # paid meanwhile: nothing to say
    clock.set(dt.datetime(2027, 2, 1, 2, 0, tzinfo=dt.UTC))
    assert await receivables.run_dunning(rt) == receivables.DunningRun(0, 0)  # paid invoices are not dunned

    # A cash invoice first seen by the cron 20 days late: only the latest level goes out, the rest are skipped.
    await services.set_account(rt, cid, terms_days=0)
    late = await ship_and_invoice(rt, cid, [("COLA-330", 1)])
    clock.advance(days=20)
    assert await receivables.run_dunning(rt) == receivables.DunningRun(1, 2)
    async with rt.db.read() as conn:
        rows = await conn.execute(
            sa.select(dunning_notices.c.level, dunning_notices.c.channel).where(dunning_notices.c.invoice_id == late.id)
        )
        assert sorted(map(tuple, rows)) == [("d+1", "skipped"), ("d+15", "queued"), ("d-3", "skipped")]


async def test_credit_hold_and_release(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmCredit")
    await services.set_account(rt, cid, credit_limit_fen=10_000)
    first = await orders.create_order(
        rt, customer_id=cid, items=[("WATER-550", 2)], source="api", salesperson_userid="sales01", confirm=True
    )
    assert first.status == OrderStatus.CONFIRMED  # 7200 ≤ ¥100
    held = await orders.create_order(
        rt, customer_id=cid, items=[("WATER-550", 1)], source="api", salesperson_userid="sales01", confirm=True
    )
    assert held.status == OrderStatus.ON_HOLD and held.lines[0].allocated_qty == 0  # 7200 open + 3600 > 10000
    async with rt.db.read() as conn:
        payload = (
            await conn.execute(sa.select(outbox.outbox.c.payload).where(outbox.outbox.c.topic == "billing.credit_hold"))
        ).scalar_one()
        note = (await conn.execute(sa.select(order_history.c.note).where(order_history.c.event == "credit_hold"))).scalar_one()
    assert payload == {
        "order_id": held.id,
        "total_fen": 3600,
        "limit_fen": 10_000,
        "receivables_fen": 0,
        "open_orders_fen": 7200,
        "credit_fen": 0,
    }
    assert "额度 ¥100.00" in note
    with pytest.raises(CreditHold) as err:
        await orders.confirm_order(rt, held.id)
    assert err.value.code == "order_on_hold"
    assert [h.number for h in await receivables.held_orders(rt)] == [held.number]

    # A chat draft confirmed over the limit waits too.
    draft = await orders.create_order(rt, customer_id=cid, items=[("RICE-5KG", 1)], source="chat")
    assert (await orders.confirm_order(rt, draft.id, actor="customer", told_in_chat=True)).status == OrderStatus.ON_HOLD

    released = await receivables.release_hold(rt, held.number, actor="console:admin")
    assert released.status == OrderStatus.CONFIRMED and released.lines[0].allocated_qty == 1
    assert (await receivables.release_hold(rt, held.number, actor="x")).version == released.version  # releasing twice: no change
    with pytest.raises(NotOnHold):
        await receivables.release_hold(rt, (await orders.cancel_order(rt, draft.id)).number, actor="x")

    # Paying what is owed makes room again; no limit means never held.
    for o in (first, released):
        await shipments.create_shipment(rt, o.id, carrier="顺丰", tracking_no=f"SF{o.id}")
    await run_billing_events(rt)
    assert (await receivables.customer_balance(rt, cid)).open_fen == 10_800
    await payments.record_payment(rt, customer_id=cid, amount_fen=10_800 + 5_000, reference="CR-1")
    # Nothing owed, ¥50 prepaid: an order of ¥144 fits the ¥100 limit.
    assert (await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 4)], source="api", confirm=True)).status == "confirmed"
    await services.set_account(rt, cid, credit_limit_fen=None)
    big = await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 5)], source="api", confirm=True)
    assert big.status == OrderStatus.CONFIRMED
    with pytest.raises(InvalidInput):
        await services.set_account(rt, cid, credit_limit_fen=-1)
    with pytest.raises(InvalidInput):
        await services.set_account(rt, cid, terms_days=400)


async def test_sidebar_style_replay_of_a_held_order_returns_it(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmReplay")
    await services.set_account(rt, cid, credit_limit_fen=0)
    a = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="sidebar", confirm=True, ref="sidebar:r1")
    b = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="sidebar", confirm=True, ref="sidebar:r1")
    assert a.id == b.id and b.status == OrderStatus.ON_HOLD


# ---- conservation under random sequences (hypothesis, real databases) -------------------------------------
EXAMPLES = itertools.count()
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), st.sampled_from(["WATER-550", "COLA-330", "SOY-DARK"]), st.integers(1, 4)),
        st.tuples(st.just("pay"), st.integers(1, 30_000), st.integers(0, 5), st.booleans()),
        st.tuples(st.just("void"), st.integers(0, 9)),
        st.tuples(st.just("refund"), st.integers(1, 20_000)),
        st.tuples(st.just("terms"), st.integers(0, 45)),
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(ops=OPS)
async def test_random_sequences_keep_balances_and_conserve_money(catalog: Runtime, ops: list[tuple[Any, ...]]) -> None:
    rt = catalog
    rt.put(services.BILLING_CONFIG, BillingConfig(invoice_on="confirmation"))
    cid = await make_customer(rt, f"wmProp{next(EXAMPLES)}")  # a fresh customer per example
    numbers: list[str] = []
    refs: list[str] = []
    for op in ops:
        try:
            if op[0] == "invoice":
                order = await orders.create_order(rt, customer_id=cid, items=[(op[1], op[2])], source="api", confirm=True)
                inv = await invoices.invoice_order(rt, order.id)
                assert inv is not None
                numbers.append(inv.number)
            elif op[0] == "pay":
                reuse = refs and op[2] % 3 == 0  # sometimes an old reference: duplicate or conflict
                ref = refs[op[2] % len(refs)] if reuse else f"P{cid}-{len(refs)}"
                named = numbers[-1:] if op[3] and numbers else None
                await payments.record_payment(rt, customer_id=cid, amount_fen=op[1], reference=ref, invoices_named=named)
                refs.append(ref)
            elif op[0] == "void" and numbers:
                await invoices.void_invoice(rt, numbers[op[1] % len(numbers)], "测试作废")
            elif op[0] == "refund":
                await payments.refund_credit(rt, cid, op[1], f"RF{cid}-{len(refs)}")
            elif op[0] == "terms":
                await services.set_account(rt, cid, terms_days=op[1])
        except (PaymentConflict, InsufficientCredit, InvoicePaid, InvoiceVoid):
            pass  # refused: nothing changed (checked below with everything else)
        await check_invariants(rt)
    balance = await receivables.customer_balance(rt, cid)
    async with rt.db.read() as conn:
        owed = (
            await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(invoices_table.c.total_fen - invoices_table.c.paid_fen), 0)).where(
                    invoices_table.c.customer_id == cid, invoices_table.c.status != "void"
                )
            )
        ).scalar_one()
    assert balance.open_fen == owed >= 0


# ---- the API ----------------------------------------------------------------------------------------------
@pytest.fixture
async def api(catalog: Runtime) -> AsyncIterator[TestClient]:
    app = create_app(catalog.settings, runtime=catalog)
    billing_web.setup_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c


def auth(rt: Runtime) -> dict[str, str]:
    return {"Authorization": f"Bearer {rt.settings.admin_token.get()}"}


async def test_api_payments_invoices_and_errors(api: TestClient, catalog: Runtime) -> None:
    rt = catalog
    h = auth(rt)
    cid = await make_customer(rt, "wmApi")
    inv = await ship_and_invoice(rt, cid, [("WATER-550", 2)])
    assert (await api.post("/api/v1/payments", json={})).status == 401

    async def post(body: object, status: int, code: str | None = None) -> dict[str, Any]:
        resp = await api.post("/api/v1/payments", headers=h, **({"data": body} if isinstance(body, str) else {"json": body}))
        data = await resp.json()
        assert resp.status == status, data
        if code:
            assert data["error"]["code"] == code
        return data

    await post("{nope", 400, "invalid_input")
    await post({"customer": "wmApi", "amount_fen": 100}, 400, "invalid_input")  # no reference
    await post({"customer": "wmNobody", "amount_fen": 100, "reference": "A1"}, 404, "customer_not_found")
    await post({"customer": "wmApi", "amount_fen": 0, "reference": "A1"}, 400, "invalid_amount")
    await post({"customer": "wmApi", "amount_fen": -5, "reference": "A1"}, 400, "invalid_amount")
    await post({"customer": "wmApi", "amount_fen": "100", "reference": "A1"}, 400, "invalid_input")
    await post({"customer": "wmApi", "amount_fen": 100, "reference": "A1", "received_at": "yesterday"}, 400, "invalid_input")
    await post({"customer": "wmApi", "amount_fen": 100, "reference": "A1", "invoices": "INV1"}, 400, "invalid_input")
    done = await post(
        {
            "customer": "wmApi",
            "amount_fen": 8000,
            "reference": "A1",
            "method": "wechat_pay",
            "received_at": "2026-11-22T18:00:00",
            "invoices": [inv.number],
        },
        201,
    )
    assert done["allocations"] == [{"invoice": inv.number, "amount_fen": 7200}] and done["credit_fen"] == 800
    assert done["received_at"] == "2026-11-22T10:00:00+00:00"  # naive times are Shanghai time
    again = await post({"customer": "wmApi", "amount_fen": 8000, "reference": "A1"}, 200)
    assert again["duplicate"] is True
    await post({"customer": "wmApi", "amount_fen": 9000, "reference": "A1"}, 409, "payment_reference_conflict")

    resp = await api.get(f"/api/v1/invoices/{inv.number}", headers=h)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "paid" and body["balance_fen"] == 0
    resp = await api.get("/api/v1/invoices/INV999999", headers=h)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "invoice_not_found"
    resp = await api.post(f"/api/v1/invoices/{inv.number}/void", headers=h, json={})
    assert resp.status == 400
    resp = await api.post(f"/api/v1/invoices/{inv.number}/void", headers=h, json={"reason": "退货"})
    assert (await resp.json())["status"] == "void"
    await post({"customer": "wmApi", "amount_fen": 100, "reference": "A2", "invoices": [inv.number]}, 409, "invoice_void")
    listed = await (await api.get("/api/v1/invoices?customer=wmApi&status=void", headers=h)).json()
    assert [i["number"] for i in listed["items"]] == [inv.number]
    assert (await api.get("/api/v1/invoices?status=bogus", headers=h)).status == 400

    account = await (await api.get("/api/v1/accounts/wmApi", headers=h)).json()
    assert account["credit_fen"] == 8000 and account["open_fen"] == 0
    resp = await api.patch("/api/v1/accounts/wmApi", headers=h, json={"terms_days": 30, "credit_limit_fen": 500_000})
    assert (await resp.json())["terms_days"] == 30
    resp = await api.patch("/api/v1/accounts/wmApi", headers=h, json={"terms_days": "30"})
    assert resp.status == 400
    resp = await api.post("/api/v1/accounts/wmApi/refunds", headers=h, json={"amount_fen": 9000, "reference": "RF1"})
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "insufficient_credit"
    resp = await api.post("/api/v1/accounts/wmApi/refunds", headers=h, json={"amount_fen": 3000, "reference": "RF1"})
    assert resp.status == 201 and (await resp.json())["credit_fen"] == 5000
    await check_invariants(rt)


async def test_api_aging_json_csv_holds_and_dunning(api: TestClient, catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    h = auth(rt)
    cid = await make_customer(rt, "wmAging")
    async with rt.db.write() as conn:
        from scrm.crm.customers.models import customers

        await conn.execute(customers.update().where(customers.c.id == cid).values(name="=HYPERLINK(1)"))
    await ship_and_invoice(rt, cid, [("WATER-550", 1)], salesperson="sales01")
    clock.advance(days=40)
    data = await (await api.get("/api/v1/receivables/aging?by=customer", headers=h)).json()
    assert data["as_of"] == "2027-01-02" and data["rows"][0]["buckets"]["31-60"] == 3600
    assert data["rows"][0]["ident"] == "wmAging" and data["total"]["overdue_fen"] == 3600
    by_sales = await (await api.get("/api/v1/receivables/aging?by=salesperson", headers=h)).json()
    assert by_sales["rows"][0]["key"] == "sales01"
    bad = await api.get("/api/v1/receivables/aging?by=planet", headers=h)
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid_input"
    resp = await api.get("/api/v1/receivables/aging.csv", headers=h)
    text = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert text.startswith("\ufeff客户ID,客户") and ",36.00," in text
    assert "'=HYPERLINK(1)" in text  # a name never becomes a spreadsheet formula
    assert text.strip().splitlines()[-1].startswith("合计")

    assert (await (await api.post("/api/v1/dunning/run", headers=h)).json()) == {"sent": 1, "skipped": 3}  # 40 days late: d+30 only
    await services.set_account(rt, cid, credit_limit_fen=100)
    order = await orders.create_order(rt, customer_id=cid, items=[("COLA-330", 1)], source="api", confirm=True)
    holds = await (await api.get("/api/v1/holds", headers=h)).json()
    assert [x["number"] for x in holds["items"]] == [order.number]
    resp = await api.post(f"/api/v1/holds/{order.number}/release", headers=h)
    assert resp.status == 200 and (await resp.json())["status"] == "confirmed"
    resp = await api.post("/api/v1/holds/SO999999/release", headers=h)
    assert resp.status == 404
    spec = await (await api.get("/api/openapi.json")).json()
    assert "/api/v1/payments" in spec["paths"] and "/api/v1/receivables/aging.csv" in spec["paths"]
