"""The business dashboard's figures (经营概览): orders and revenue, collection, overdue receivables, top customers,
repeat purchases, stock value and low stock, and a 30-day series.

Every figure is one set-based SQL query (GROUP BY, conditional sums). Periods are business-local (Asia/Shanghai):
their boundaries are computed here in Python and compared with the UTC timestamps in SQL, so day buckets are right
on SQLite and PostgreSQL alike and no database time-zone function is needed.

Definitions (what the boss reads):
- an order counts, and its total is revenue, when it is confirmed or later (confirmed, partially shipped, shipped,
  completed — not pending, on hold, cancelled or expired), in the period of its ``created_at``;
- collection rate of a period = paid / invoiced of the invoices issued in it (void ones excluded);
- overdue = what is still owed on open or partially paid invoices whose due date is before today;
- repeat-purchase rate = customers with ≥ 2 orders / customers with ≥ 1 order in the last 90 days;
- stock value = Σ on hand × cost (the last purchase cost), the sales price where no cost is known yet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.billing.models import InvoiceStatus, invoices, payments
from fulfillment.catalog.models import products
from fulfillment.inventory.models import stock_levels
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import order_lines, orders
from fulfillment.purchasing.models import PurchaseStatus, purchase_order_lines, purchase_orders
from scrm.core.clock import SHANGHAI, local
from scrm.core.runtime import Runtime

REVENUE_STATUSES = (S.CONFIRMED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.COMPLETED)
OPEN_INVOICE_STATUSES = (InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID)
SERIES_DAYS = 30
TOP_DAYS = 30
TOP_N = 10
REPEAT_DAYS = 90
LOW_STOCK_LIMIT = 50


# ---- pure: periods in business-local time ---------------------------------------------------------------------
def day_start(day: dt.date, tz: ZoneInfo = SHANGHAI) -> dt.datetime:
    """Local midnight of ``day`` as a UTC instant."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


@dataclass(frozen=True)
class Period:
    key: str  # today | week | month
    label: str
    start: dt.datetime  # UTC, inclusive
    end: dt.datetime  # UTC, exclusive


def periods(now: dt.datetime, tz: ZoneInfo = SHANGHAI) -> list[Period]:
    """Today, this week (from Monday) and this month, as [start, end) in UTC of local calendar boundaries."""
    today = local(now, tz).date()
    monday = today - dt.timedelta(days=today.weekday())
    first = today.replace(day=1)
    next_month = (first + dt.timedelta(days=32)).replace(day=1)
    return [
        Period("today", "今日", day_start(today, tz), day_start(today + dt.timedelta(days=1), tz)),
        Period("week", "本周", day_start(monday, tz), day_start(monday + dt.timedelta(days=7), tz)),
        Period("month", "本月", day_start(first, tz), day_start(next_month, tz)),
    ]


def last_days(now: dt.datetime, n: int, tz: ZoneInfo = SHANGHAI) -> list[dt.date]:
    """The last ``n`` local days, oldest first, today included."""
    today = local(now, tz).date()
    return [today - dt.timedelta(days=n - 1 - i) for i in range(n)]


@dataclass(frozen=True)
class Ratio:
    """A rate as two integers (no float in the figures); shown as a percentage with one decimal."""

    num: int
    den: int

    @property
    def percent_text(self) -> str:
        if self.den <= 0:
            return "—"
        tenths = (self.num * 1000 * 2 + self.den) // (self.den * 2)  # rounded half up, integer arithmetic
        return f"{tenths // 10}.{tenths % 10}%"


# ---- the figures --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeriodFigures:
    period: Period
    orders: int
    revenue_fen: int
    invoiced_fen: int  # total of invoices issued in the period (not void)
    invoice_paid_fen: int  # how much of those invoices is paid by now
    received_fen: int  # payments received in the period

    @property
    def collection_rate(self) -> Ratio:
        return Ratio(self.invoice_paid_fen, self.invoiced_fen)


@dataclass(frozen=True)
class Overdue:
    amount_fen: int
    invoices: int
    customers: int


@dataclass(frozen=True)
class TopCustomer:
    customer_id: int  # names live with the customers (scrm); the console looks them up
    orders: int
    revenue_fen: int


@dataclass(frozen=True)
class DayPoint:
    day: dt.date
    orders: int
    revenue_fen: int


@dataclass(frozen=True)
class StockValue:
    total_fen: int
    at_price_fen: int  # part valued at the sales price because the cost is unknown
    products_at_price: int  # how many stocked products have no cost yet


@dataclass(frozen=True)
class LowStock:
    sku: str
    name: str
    unit: str
    available: int
    reorder_point: int | None  # None: no reorder point, listed because out of stock or backordered
    on_order: int
    backordered: int = 0  # confirmed but not allocated: customers waiting


@dataclass(frozen=True)
class Dashboard:
    as_of: dt.datetime
    today: dt.date
    periods: list[PeriodFigures]
    overdue: Overdue
    top_customers: list[TopCustomer]
    repeat_rate: Ratio
    stock_value: StockValue
    low_stock: list[LowStock]
    days: list[DayPoint]

    def period(self, key: str) -> PeriodFigures:
        return next(p for p in self.periods if p.period.key == key)


def _sum_in(col: Any, value: Any, start: dt.datetime, end: dt.datetime) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((sa.and_(col >= start, col < end), value), else_=0)), 0)


async def _period_figures(conn: AsyncConnection, spans: list[Period]) -> list[PeriodFigures]:
    lo, hi = min(p.start for p in spans), max(p.end for p in spans)
    o = orders.c
    order_sums = (
        await conn.execute(
            sa.select(
                *[x for p in spans for x in (_sum_in(o.created_at, 1, p.start, p.end), _sum_in(o.created_at, o.total_fen, p.start, p.end))]
            ).where(o.status.in_(REVENUE_STATUSES), o.created_at >= lo, o.created_at < hi)
        )
    ).one()
    i = invoices.c
    invoice_sums = (
        await conn.execute(
            sa.select(
                *[
                    x
                    for p in spans
                    for x in (_sum_in(i.issued_at, i.total_fen, p.start, p.end), _sum_in(i.issued_at, i.paid_fen, p.start, p.end))
                ]
            ).where(i.status != InvoiceStatus.VOID, i.issued_at >= lo, i.issued_at < hi)
        )
    ).one()
    pay = payments.c
    payment_sums = (
        await conn.execute(
            sa.select(*[_sum_in(pay.received_at, pay.amount_fen, p.start, p.end) for p in spans]).where(
                pay.received_at >= lo, pay.received_at < hi
            )
        )
    ).one()
    return [
        PeriodFigures(
            p,
            int(order_sums[2 * k]),
            int(order_sums[2 * k + 1]),
            int(invoice_sums[2 * k]),
            int(invoice_sums[2 * k + 1]),
            int(payment_sums[k]),
        )
        for k, p in enumerate(spans)
    ]


async def _overdue(conn: AsyncConnection, today: dt.date) -> Overdue:
    i = invoices.c
    row = (
        await conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(i.total_fen - i.paid_fen), 0),
                sa.func.count(),
                sa.func.count(sa.distinct(i.customer_id)),
            ).where(i.status.in_(OPEN_INVOICE_STATUSES), i.due_on < today, i.total_fen > i.paid_fen)
        )
    ).one()
    return Overdue(int(row[0]), int(row[1]), int(row[2]))


async def _top_customers(conn: AsyncConnection, start: dt.datetime, end: dt.datetime) -> list[TopCustomer]:
    o = orders.c
    revenue = sa.func.sum(o.total_fen).label("revenue")
    q = (
        sa.select(o.customer_id, sa.func.count().label("n"), revenue)
        .where(o.status.in_(REVENUE_STATUSES), o.created_at >= start, o.created_at < end)
        .group_by(o.customer_id)
        .order_by(revenue.desc(), o.customer_id)
        .limit(TOP_N)
    )
    return [TopCustomer(int(r.customer_id), int(r.n), int(r.revenue)) for r in await conn.execute(q)]


async def _repeat_rate(conn: AsyncConnection, start: dt.datetime, end: dt.datetime) -> Ratio:
    o = orders.c
    per_customer = (
        sa.select(o.customer_id, sa.func.count().label("n"))
        .where(o.status.in_(REVENUE_STATUSES), o.created_at >= start, o.created_at < end)
        .group_by(o.customer_id)
        .subquery()
    )
    row = (
        await conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(sa.case((per_customer.c.n >= 2, 1), else_=0)), 0), sa.func.count()).select_from(
                per_customer
            )
        )
    ).one()
    return Ratio(int(row[0]), int(row[1]))


def _levels() -> Any:
    return (
        sa.select(
            stock_levels.c.product_id,
            sa.func.sum(stock_levels.c.on_hand).label("on_hand"),
            sa.func.sum(stock_levels.c.on_hand - stock_levels.c.allocated).label("available"),
        )
        .group_by(stock_levels.c.product_id)
        .subquery()
    )


async def _stock_value(conn: AsyncConnection) -> StockValue:
    lv = _levels()
    p = products.c
    unknown = p.cost_fen.is_(None)
    row = (
        await conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(lv.c.on_hand * sa.func.coalesce(p.cost_fen, p.price_fen)), 0),
                sa.func.coalesce(sa.func.sum(sa.case((unknown, lv.c.on_hand * p.price_fen), else_=0)), 0),
                sa.func.coalesce(sa.func.sum(sa.case((sa.and_(unknown, lv.c.on_hand > 0), 1), else_=0)), 0),
            ).select_from(products.join(lv, lv.c.product_id == p.id))
        )
    ).one()
    return StockValue(int(row[0]), int(row[1]), int(row[2]))


async def _low_stock(conn: AsyncConnection) -> list[LowStock]:
    """Products that need stock: out of stock (active) or backordered whether a reorder point is set or not, and
    those at or below their reorder point (the rule of ``fulfillment.catalog.queries.needs_stock``); furthest
    below the point (none set: 0) first."""
    lv = _levels()
    line = purchase_order_lines.c
    on_order = (
        sa.select(line.product_id, sa.func.sum(line.qty - line.received_qty).label("qty"))
        .join(purchase_orders, purchase_orders.c.id == line.purchase_order_id)
        .where(purchase_orders.c.status.in_([PurchaseStatus.ORDERED, PurchaseStatus.PARTIALLY_RECEIVED]))
        .group_by(line.product_id)
        .subquery()
    )
    ol = order_lines.c
    waiting = (
        sa.select(ol.product_id, sa.func.sum(ol.qty - ol.allocated_qty).label("qty"))
        .join(orders, orders.c.id == ol.order_id)
        .where(ol.allocated_qty < ol.qty, orders.c.status.in_([S.CONFIRMED, S.PARTIALLY_SHIPPED]))
        .group_by(ol.product_id)
        .subquery()
    )
    p = products.c
    available = sa.func.coalesce(lv.c.available, 0)
    backordered = sa.func.coalesce(waiting.c.qty, 0)
    q = (
        sa.select(
            p.sku,
            p.name,
            p.unit,
            available.label("available"),
            p.reorder_point,
            sa.func.coalesce(on_order.c.qty, 0).label("on_order"),
            backordered.label("backordered"),
        )
        .select_from(
            products.outerjoin(lv, lv.c.product_id == p.id)
            .outerjoin(on_order, on_order.c.product_id == p.id)
            .outerjoin(waiting, waiting.c.product_id == p.id)
        )
        .where(
            sa.or_(
                backordered > 0,
                sa.and_(p.active.is_(True), sa.or_(available <= 0, sa.and_(p.reorder_point.is_not(None), available <= p.reorder_point))),
            )
        )
        .order_by(available - sa.func.coalesce(p.reorder_point, 0), p.sku)
        .limit(LOW_STOCK_LIMIT)
    )
    return [
        LowStock(r.sku, r.name, r.unit, int(r.available), r.reorder_point, int(r.on_order), int(r.backordered))
        for r in await conn.execute(q)
    ]


async def _series(conn: AsyncConnection, days: list[dt.date]) -> list[DayPoint]:
    """Orders and revenue per local day: each order's day index by a CASE over the days' UTC boundaries."""
    bounds = [day_start(day) for day in days] + [day_start(days[-1] + dt.timedelta(days=1))]
    o = orders.c
    bucket = sa.case(*[(o.created_at < bounds[k + 1], k) for k in range(len(days))], else_=None)
    tagged = (
        sa.select(bucket.label("k"), o.total_fen)
        .where(o.status.in_(REVENUE_STATUSES), o.created_at >= bounds[0], o.created_at < bounds[-1])
        .subquery()
    )
    rows = await conn.execute(sa.select(tagged.c.k, sa.func.count(), sa.func.sum(tagged.c.total_fen)).group_by(tagged.c.k))
    found = {int(k): (int(n), int(total)) for k, n, total in rows}
    return [DayPoint(day, *found.get(k, (0, 0))) for k, day in enumerate(days)]


async def load_dashboard(conn: AsyncConnection, now: dt.datetime) -> Dashboard:
    """Every figure of the dashboard as of ``now`` (read-only; empty tables give zeros)."""
    today = local(now).date()
    series_days = last_days(now, SERIES_DAYS)
    end = day_start(today + dt.timedelta(days=1))
    return Dashboard(
        as_of=now,
        today=today,
        periods=await _period_figures(conn, periods(now)),
        overdue=await _overdue(conn, today),
        top_customers=await _top_customers(conn, day_start(last_days(now, TOP_DAYS)[0]), end),
        repeat_rate=await _repeat_rate(conn, day_start(last_days(now, REPEAT_DAYS)[0]), end),
        stock_value=await _stock_value(conn),
        low_stock=await _low_stock(conn),
        days=await _series(conn, series_days),
    )


async def business_dashboard(rt: Runtime) -> Dashboard:
    """The dashboard as of the runtime clock's now, read in one connection."""
    async with rt.db.read() as conn:
        return await load_dashboard(conn, rt.clock.now())
