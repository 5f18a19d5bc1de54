"""Read-only listings of the catalogue with its stock (products joined to inventory's counters)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.models import products
from fulfillment.inventory.models import stock_levels


@dataclass(frozen=True)
class StockRow:
    product_id: int
    sku: str
    name: str
    unit: str
    active: bool
    reorder_point: int | None
    on_hand: int
    allocated: int

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated

    @property
    def low(self) -> bool:
        """At or below the reorder point — the same rule as the low-stock alert."""
        return self.reorder_point is not None and self.available <= self.reorder_point


async def stock_rows(conn: AsyncConnection) -> list[StockRow]:
    """Every product (active first, by SKU) with its counters summed over warehouses."""
    levels = (
        sa.select(
            stock_levels.c.product_id,
            sa.func.sum(stock_levels.c.on_hand).label("on_hand"),
            sa.func.sum(stock_levels.c.allocated).label("allocated"),
        )
        .group_by(stock_levels.c.product_id)
        .subquery()
    )
    q = (
        sa.select(products, levels.c.on_hand, levels.c.allocated)
        .select_from(products.outerjoin(levels, levels.c.product_id == products.c.id))
        .order_by(products.c.active.desc(), products.c.sku)
    )
    return [
        StockRow(int(r.id), r.sku, r.name, r.unit, bool(r.active), r.reorder_point, int(r.on_hand or 0), int(r.allocated or 0))
        for r in await conn.execute(q)
    ]
