"""Dashboard figures on SQLite and PostgreSQL, checked against a reference computed here by a different method:
plain Python over the raw rows, bucketing each timestamp by its Asia/Shanghai calendar date."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa

from fulfillment.billing.models import invoices, payments
from fulfillment.catalog.models import products
from fulfillment.inventory import services as inventory
from fulfillment.inventory.models import stock_levels
from fulfillment.orders import services as orders
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import order_lines
from fulfillment.orders.models import orders as orders_table
from fulfillment.purchasing import services as ps
from fulfillment.purchasing.models import PurchaseStatus, purchase_order_lines, purchase_orders
from fulfillment.reports.queries import Dashboard, Ratio, business_dashboard, load_dashboard, periods
from scrm.core.clock import SHANGHAI, UTC, FrozenClock
from scrm.core.runtime import Runtime
from tests.conftest import make_customer

NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # Thursday 11:00 in Shanghai
MIDNIGHT = dt.datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # = 2026-11-26 00:00 Shanghai
JUST_BEFORE = MIDNIGHT - dt.timedelta(seconds=1)
REVENUE = {S.CONFIRMED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.COMPLETED}
FORCED = [S.SHIPPED, S.COMPLETED, S.PARTIALLY_SHIPPED, S.EXPIRED, S.ON_HOLD]


# ---- pure ---------------------------------------------------------------------------------------------------
def test_periods_are_local_calendar_spans() -> None:
    today, week, month = periods(NOW)
    assert (today.start, today.end) == (MIDNIGHT, MIDNIGHT + dt.timedelta(days=1))
    assert week.start == dt.datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # Monday 23rd, 00:00 Shanghai
    assert month.start == dt.datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert periods(JUST_BEFORE)[0].start == MIDNIGHT - dt.timedelta(days=1)
    new_year = periods(dt.datetime(2026, 12, 31, 16, 0, tzinfo=UTC))  # 2027-01-01 00:00 Shanghai
    assert new_year[2].start == dt.datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert new_year[2].end == dt.datetime(2027, 1, 31, 16, 0, tzinfo=UTC)
    assert new_year[1].start == dt.datetime(2026, 12, 27, 16, 0, tzinfo=UTC)  # Monday 28 December


def test_ratio_text() -> None:
    assert Ratio(1, 3).percent_text == "33.3%"
    assert Ratio(2, 3).percent_text == "66.7%"
    assert Ratio(1, 1).percent_text == "100.0%"
    assert Ratio(0, 0).percent_text == "—"
    assert Ratio(1, 8).percent_text == "12.5%"


# ---- seeding ----------------------------------------------------------------------------------------------
async def place(rt: Runtime, clock: FrozenClock, customer: int, at: dt.datetime, qty: int, status: str) -> int:
    clock.set(at)
    if status == S.PENDING:
        return (await orders.create_order(rt, customer_id=customer, items=[("SOY-LIGHT", qty)], source="chat")).id
    order = await orders.create_order(rt, customer_id=customer, items=[("SOY-LIGHT", qty)], source="api", confirm=True)
    if status == S.CANCELLED:
        await orders.cancel_order(rt, order.id)
    elif status != S.CONFIRMED:
        async with rt.db.write() as conn:
            await conn.execute(orders_table.update().where(orders_table.c.id == order.id).values(status=status))
    return order.id


async def seed(rt: Runtime, clock: FrozenClock) -> dict[str, int]:
    """Orders around every boundary (day at 16:00 UTC, week, month, 30 and 90 days) plus random ones, invoices,
    payments, costs, reorder points and an open purchase order."""
    customers = [await make_customer(rt, f"wmDash{i}") for i in range(8)]
    named: dict[str, int] = {}
    explicit = [
        ("today", 0, NOW - dt.timedelta(hours=2), 3, S.CONFIRMED),
        ("midnight", 1, MIDNIGHT, 5, S.SHIPPED),
        ("just_before", 2, JUST_BEFORE, 7, S.CONFIRMED),
        ("today_cancelled", 3, NOW - dt.timedelta(hours=1), 9, S.CANCELLED),
        ("today_pending", 3, NOW - dt.timedelta(minutes=30), 2, S.PENDING),
        ("week_start", 4, dt.datetime(2026, 11, 22, 16, 0, tzinfo=UTC), 4, S.COMPLETED),
        ("last_week", 4, dt.datetime(2026, 11, 22, 15, 59, 59, tzinfo=UTC), 6, S.CONFIRMED),
        ("month_start", 5, dt.datetime(2026, 10, 31, 16, 0, tzinfo=UTC), 8, S.CONFIRMED),
        ("last_month", 5, dt.datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC), 10, S.CONFIRMED),
        ("day30_in", 6, dt.datetime(2026, 10, 27, 16, 0, tzinfo=UTC), 11, S.CONFIRMED),
        ("day30_out", 7, dt.datetime(2026, 10, 27, 15, 59, 59, tzinfo=UTC), 12, S.CONFIRMED),
    ]
    for name, who, at, qty, status in explicit:
        named[name] = await place(rt, clock, customers[who], at, qty, status)
    rnd = random.Random(20261126)
    for _ in range(36):
        at = NOW - dt.timedelta(days=2, seconds=rnd.randrange(100 * 86400))
        status = rnd.choice([S.CONFIRMED] * 4 + [S.CANCELLED, S.PENDING, *FORCED])
        await place(rt, clock, rnd.choice(customers), at, rnd.randint(1, 4), status)
    clock.set(NOW)
    order_ids = sorted(named.values())

    def inv(k: int, status: str, total: int, paid: int, issued: dt.datetime, due: dt.date) -> dict[str, Any]:
        return {
            "number": f"INV-T{k}",
            "customer_id": customers[k % 5],
            "order_id": order_ids[k],
            "status": status,
            "total_fen": total,
            "paid_fen": paid,
            "issued_at": issued,
            "due_on": due,
        }

    d = dt.date
    async with rt.db.write() as conn:
        await conn.execute(
            invoices.insert(),
            [
                inv(0, "paid", 5000, 5000, MIDNIGHT, d(2026, 12, 26)),
                inv(1, "open", 7000, 0, JUST_BEFORE, d(2026, 11, 25)),  # due yesterday: overdue
                inv(2, "partially_paid", 9000, 2500, dt.datetime(2026, 11, 1, 2, tzinfo=UTC), d(2026, 11, 10)),  # overdue
                inv(3, "open", 4000, 0, dt.datetime(2026, 10, 20, 2, tzinfo=UTC), d(2026, 11, 26)),  # due today: not overdue
                inv(4, "void", 8000, 0, MIDNIGHT, d(2026, 11, 1)),
                inv(5, "paid", 3000, 3000, dt.datetime(2026, 10, 31, 16, tzinfo=UTC), d(2026, 11, 2)),
                inv(6, "open", 1200, 0, dt.datetime(2026, 10, 31, 15, 59, tzinfo=UTC), d(2026, 11, 20)),  # overdue
            ],
        )
        await conn.execute(
            payments.insert(),
            [
                {
                    "reference": f"PAY-{k}",
                    "customer_id": customers[k],
                    "amount_fen": amount,
                    "method": "bank",
                    "source": "import",
                    "received_at": at,
                    "created_at": at,
                }
                for k, (amount, at) in enumerate(
                    [
                        (5000, MIDNIGHT),
                        (2500, JUST_BEFORE),
                        (3000, dt.datetime(2026, 11, 2, tzinfo=UTC)),
                        (999, dt.datetime(2026, 10, 1, tzinfo=UTC)),
                    ]
                )
            ],
        )
        await conn.execute(products.update().where(products.c.sku == "WATER-550").values(cost_fen=3000, reorder_point=500))
        await conn.execute(products.update().where(products.c.sku == "SOY-LIGHT").values(cost_fen=900, reorder_point=60))
        await conn.execute(products.update().where(products.c.sku == "COLA-330").values(active=False, reorder_point=1000))
        await conn.execute(products.update().where(products.c.sku == "RICE-5KG").values(reorder_point=40))
    supplier = await ps.create_supplier(rt, name="批发商")
    po = await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("WATER-550", 40, 3000), ("RICE-5KG", 5, 4000)])
    await ps.place_purchase_order(rt, po.number)
    await ps.receive_purchase(rt, po.number, [("RICE-5KG", 2)], reference="DN-1")
    draft = await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("RICE-5KG", 50, 4000)])  # a draft is not in transit
    assert draft.status == PurchaseStatus.DRAFT
    return named


# ---- the reference ------------------------------------------------------------------------------------------
async def reference(rt: Runtime, now: dt.datetime) -> dict[str, Any]:
    async with rt.db.read() as conn:
        order_rows = (await conn.execute(sa.select(orders_table))).all()
        invoice_rows = (await conn.execute(sa.select(invoices))).all()
        payment_rows = (await conn.execute(sa.select(payments))).all()
        product_rows = (await conn.execute(sa.select(products))).all()
        level_rows = (await conn.execute(sa.select(stock_levels))).all()
        po_rows = (await conn.execute(sa.select(purchase_orders.c.id, purchase_orders.c.status))).all()
        pol_rows = (await conn.execute(sa.select(purchase_order_lines))).all()
        line_rows = (await conn.execute(sa.select(order_lines))).all()

    def day(ts: dt.datetime) -> dt.date:
        return ts.astimezone(SHANGHAI).date()

    today = day(now)
    spans = {
        "today": lambda x: x == today,
        "week": lambda x: x.isocalendar()[:2] == today.isocalendar()[:2],
        "month": lambda x: (x.year, x.month) == (today.year, today.month),
    }
    sold = [r for r in order_rows if r.status in REVENUE]
    figures = []
    for key, inside in spans.items():
        mine = [r for r in sold if inside(day(r.created_at))]
        issued = [r for r in invoice_rows if r.status != "void" and inside(day(r.issued_at))]
        figures.append(
            (
                key,
                len(mine),
                sum(r.total_fen for r in mine),
                sum(r.total_fen for r in issued),
                sum(r.paid_fen for r in issued),
                sum(r.amount_fen for r in payment_rows if inside(day(r.received_at))),
            )
        )
    late = [r for r in invoice_rows if r.status in ("open", "partially_paid") and r.due_on < today and r.total_fen > r.paid_fen]
    overdue = (sum(r.total_fen - r.paid_fen for r in late), len(late), len({r.customer_id for r in late}))
    last30 = [today - dt.timedelta(days=k) for k in range(29, -1, -1)]
    revenue: dict[int, int] = defaultdict(int)
    count: Counter[int] = Counter()
    for r in sold:
        if last30[0] <= day(r.created_at) <= today:
            revenue[r.customer_id] += r.total_fen
            count[r.customer_id] += 1
    top = sorted(revenue, key=lambda c: (-revenue[c], c))[:10]
    in90 = Counter(r.customer_id for r in sold if today - dt.timedelta(days=89) <= day(r.created_at) <= today)
    on_hand: dict[int, int] = defaultdict(int)
    available: dict[int, int] = defaultdict(int)
    for lv in level_rows:
        on_hand[lv.product_id] += lv.on_hand
        available[lv.product_id] += lv.on_hand - lv.allocated
    value = sum(on_hand[p.id] * (p.cost_fen if p.cost_fen is not None else p.price_fen) for p in product_rows)
    at_price = sum(on_hand[p.id] * p.price_fen for p in product_rows if p.cost_fen is None)
    priced = sum(1 for p in product_rows if p.cost_fen is None and on_hand[p.id] > 0)
    transit_po = {r.id for r in po_rows if r.status in ("ordered", "partially_received")}
    transit: dict[int, int] = defaultdict(int)
    for ln in pol_rows:
        if ln.purchase_order_id in transit_po:
            transit[ln.product_id] += ln.qty - ln.received_qty
    # Needs stock (issue 15 item 6): backordered, or active and out of stock — reorder point or not — or active and
    # at or below the reorder point; furthest below the point (none set: 0) first.
    waiting_orders = {r.id for r in order_rows if r.status in ("confirmed", "partially_shipped")}
    short: dict[int, int] = defaultdict(int)
    for ln in line_rows:
        if ln.order_id in waiting_orders and ln.allocated_qty < ln.qty:
            short[ln.product_id] += ln.qty - ln.allocated_qty
    low = sorted(
        (
            (available[p.id] - (p.reorder_point or 0), p.sku, available[p.id], p.reorder_point, transit[p.id])
            for p in product_rows
            if short[p.id] > 0
            or (p.active and (available[p.id] <= 0 or (p.reorder_point is not None and available[p.id] <= p.reorder_point)))
        ),
    )
    series = [(x, sum(1 for r in sold if day(r.created_at) == x), sum(r.total_fen for r in sold if day(r.created_at) == x)) for x in last30]
    return {
        "today": today,
        "periods": figures,
        "overdue": overdue,
        "top": [(c, count[c], revenue[c]) for c in top],
        "repeat": (sum(1 for n in in90.values() if n >= 2), len(in90)),
        "stock": (value, at_price, priced),
        "low": [x[1:] for x in low],
        "series": series,
    }


def observed(board: Dashboard) -> dict[str, Any]:
    return {
        "today": board.today,
        "periods": [(p.period.key, p.orders, p.revenue_fen, p.invoiced_fen, p.invoice_paid_fen, p.received_fen) for p in board.periods],
        "overdue": (board.overdue.amount_fen, board.overdue.invoices, board.overdue.customers),
        "top": [(c.customer_id, c.orders, c.revenue_fen) for c in board.top_customers],
        "repeat": (board.repeat_rate.num, board.repeat_rate.den),
        "stock": (board.stock_value.total_fen, board.stock_value.at_price_fen, board.stock_value.products_at_price),
        "low": [(r.sku, r.available, r.reorder_point, r.on_order) for r in board.low_stock],
        "series": [(p.day, p.orders, p.revenue_fen) for p in board.days],
    }


# ---- against the databases ----------------------------------------------------------------------------------
async def test_empty_database_gives_zeros(rt: Runtime) -> None:
    board = await business_dashboard(rt)
    assert all(p.orders == p.revenue_fen == p.invoiced_fen == p.received_fen == 0 for p in board.periods)
    assert board.period("month").collection_rate.percent_text == "—"
    assert (board.overdue.amount_fen, board.top_customers, board.low_stock) == (0, [], [])
    assert board.repeat_rate == Ratio(0, 0) and board.stock_value.total_fen == 0
    assert len(board.days) == 30 and all(p.orders == 0 for p in board.days)


async def test_figures_equal_the_reference(catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    named = await seed(rt, clock)
    price = 1290  # SOY-LIGHT
    board = await business_dashboard(rt)
    assert observed(board) == await reference(rt, NOW)

    # the boundary at 16:00 UTC = 00:00 Shanghai, spelled out
    today = board.period("today")
    assert today.orders == 2 and today.revenue_fen == (3 + 5) * price  # "today" + "midnight"; not cancelled/pending
    assert board.days[-1].revenue_fen == (3 + 5) * price and board.days[-2].revenue_fen >= 7 * price
    assert today.invoiced_fen == 5000 and today.invoice_paid_fen == 5000 and today.received_fen == 5000  # void excluded
    assert board.overdue.amount_fen == 7000 + 6500 + 1200 and board.overdue.invoices == 3
    assert board.period("month").invoiced_fen == 5000 + 7000 + 9000 + 3000  # 15:59 on 31 Oct is October
    assert board.stock_value.products_at_price > 0  # some products have no cost yet: valued at price
    assert [r.sku for r in board.low_stock][:1] == ["WATER-550"] and "COLA-330" not in [r.sku for r in board.low_stock]
    assert next(r for r in board.low_stock if r.sku == "WATER-550").on_order == 40
    assert next(r for r in board.low_stock if r.sku == "RICE-5KG").on_order == 3  # the draft is not in transit
    assert named["day30_in"] and board.days[0].day == dt.date(2026, 10, 28)

    async with rt.db.read() as conn:
        for moment in (JUST_BEFORE, MIDNIGHT, MIDNIGHT + dt.timedelta(days=6, hours=1)):
            assert observed(await load_dashboard(conn, moment)) == await reference(rt, moment), moment
        before = await load_dashboard(conn, JUST_BEFORE)
    assert before.today == dt.date(2026, 11, 25)
    assert before.days[-1].orders >= 1 and before.days[-1].revenue_fen >= 7 * price  # the 15:59:59 order is "yesterday's" today
    async with rt.db.read() as conn:
        drift = await inventory.reconcile(conn)
    assert drift == []
