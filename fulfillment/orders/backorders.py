"""When stock moves: backordered lines get newly available stock (oldest confirmed order first, the customer is
told), and products that need stock (out, backordered, at or below their reorder point) raise a low-stock alert once a business day."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.models import products
from fulfillment.catalog.queries import needs_stock
from fulfillment.inventory import services as inventory
from fulfillment.inventory.models import stock_levels
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import order_history, order_lines, orders
from scrm.core import outbox
from scrm.core.clock import local
from scrm.core.runtime import Runtime


async def check_low_stock(
    conn: AsyncConnection, rt: Runtime, product_ids: list[int], now: dt.datetime, *, watched_only: bool = False
) -> None:
    """Queue a low-stock alert for products that need stock (:func:`fulfillment.catalog.queries.needs_stock`: out of
    stock or backordered — reorder point or not — or at or below the reorder point) — at most once a day per SKU.
    ``watched_only``: the caller passes only products worth a look (a reorder point, or allocation left none), so
    an ordinary order costs no statement here."""
    if not product_ids:
        return
    today = local(now).date()
    # Only products with a stock row not yet alerted today: the others' alert UPDATE below would change nothing,
    # so a product that ran out is looked at once a day, not on every order that finds it short.
    not_alerted = sa.exists().where(
        stock_levels.c.product_id == products.c.id,
        sa.or_(stock_levels.c.low_alerted_on.is_(None), stock_levels.c.low_alerted_on < today),
    )
    found = (
        await conn.execute(
            sa.select(products.c.id, products.c.reorder_point, products.c.active).where(
                products.c.id.in_(sorted(set(product_ids))), not_alerted
            )
        )
    ).all()
    if not found:
        return
    waiting = await backordered_by_product(conn, [int(p.id) for p in found])
    for p in found:
        lvl = await inventory.level(conn, rt.db.dialect, int(p.id))
        short = waiting.get(int(p.id), 0)
        if not needs_stock(active=bool(p.active), available=lvl.available, backordered=short, reorder_point=p.reorder_point):
            continue
        due = sa.and_(
            stock_levels.c.product_id == p.id, sa.or_(stock_levels.c.low_alerted_on.is_(None), stock_levels.c.low_alerted_on < today)
        )
        mark = stock_levels.update().where(due).values(low_alerted_on=today)
        if rt.db.dialect == "postgresql":
            # Another order may hold this product's stock row (it is allocating it and looks at its stock next):
            # waiting for it here, with this order's own rows locked, is how two orders deadlocked. Skip the row; the
            # alert comes with that order or the next one (it is at most once a day, never a reason to wait).
            free = sa.select(stock_levels.c.warehouse_id).where(due).with_for_update(skip_locked=True)
            mark = mark.where(stock_levels.c.warehouse_id.in_(free))
        result = await conn.execute(mark)
        if result.rowcount:
            await outbox.add(
                conn,
                "stock.low",
                {"product_id": int(p.id), "available": lvl.available, "reorder_point": p.reorder_point, "backordered": short},
                now,
            )


async def backordered_by_product(conn: AsyncConnection, product_ids: list[int] | None = None) -> dict[int, int]:
    """Quantity confirmed but not allocated (缺货待补) per product, over the orders :func:`fill_backorders` serves."""
    short = sa.func.sum(order_lines.c.qty - order_lines.c.allocated_qty)
    q = (
        sa.select(order_lines.c.product_id, short.label("short"))
        .join(orders, orders.c.id == order_lines.c.order_id)
        .where(order_lines.c.allocated_qty < order_lines.c.qty, orders.c.status.in_([S.CONFIRMED, S.PARTIALLY_SHIPPED]))
        .group_by(order_lines.c.product_id)
    )
    if product_ids is not None:
        if not product_ids:
            return {}
        q = q.where(order_lines.c.product_id.in_(sorted(set(product_ids))))
    return {int(r.product_id): int(r.short) for r in await conn.execute(q)}


async def fill_backorders(rt: Runtime, product_id: int) -> int:
    """Allocate newly available stock of a product to backordered lines, oldest confirmed order first, and tell
    those customers their goods are reserved. Returns how many units were allocated."""
    now = rt.clock.now()
    total = 0
    async with rt.db.write() as conn:
        waiting = (
            await conn.execute(
                sa.select(order_lines, orders.c.number)
                .join(orders, orders.c.id == order_lines.c.order_id)
                .where(
                    order_lines.c.product_id == product_id,
                    order_lines.c.allocated_qty < order_lines.c.qty,
                    orders.c.status.in_([S.CONFIRMED, S.PARTIALLY_SHIPPED]),
                )
                .order_by(orders.c.confirmed_at, orders.c.id)
            )
        ).all()
        if not waiting:
            return 0
        warehouse_id = await inventory.default_warehouse_of(rt, conn)
        for ln in waiting:
            wh = ln.warehouse_id or warehouse_id
            (taken,) = await inventory.allocate(
                conn,
                rt.db.dialect,
                [(product_id, wh, int(ln.qty - ln.allocated_qty))],
                now,
                order_id=int(ln.order_id),
                reference=f"{ln.number} backorder",
            )
            if not taken:
                break
            total += taken
            await conn.execute(
                order_lines.update()
                .where(order_lines.c.id == ln.id)
                .values(allocated_qty=order_lines.c.allocated_qty + taken, warehouse_id=wh)
            )
            await conn.execute(
                order_history.insert().values(
                    order_id=int(ln.order_id),
                    from_status=None,
                    to_status=S.CONFIRMED,
                    event="backorder_allocated",
                    actor="system",
                    note=f"{ln.sku}×{taken}",
                    ref=None,
                    at=now,
                )
            )
            await outbox.add(
                conn,
                "order.backorder_filled",
                {
                    "order_id": int(ln.order_id),
                    "ref": f"{ln.id}:{int(ln.allocated_qty) + taken}",
                    "lines": [{"name": ln.name, "unit": ln.unit, "qty": taken}],
                },
                now,
            )
    return total
