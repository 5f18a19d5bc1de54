"""Read-only listings of the catalogue with its stock (products joined to inventory's counters)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.models import product_aliases, products
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
    backordered: int = 0  # ordered (confirmed) but not yet allocated: customers waiting for this product

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated

    @property
    def low(self) -> bool:
        """Needs stock — the same rule as the low-stock alert (:func:`needs_stock`)."""
        return needs_stock(active=self.active, available=self.available, backordered=self.backordered, reorder_point=self.reorder_point)


def needs_stock(*, active: bool, available: int, backordered: int, reorder_point: int | None) -> bool:
    """Low stock (低库存): customers are waiting (backordered), or an active product has none available, or an
    active product is at or below its reorder point. Out of stock and backordered count whether a reorder point is
    set or not; a deactivated product (停用) needs stock only while customers wait for it — the dashboard's rule
    (``fulfillment.reports.queries._low_stock``), so the stock page, product page and alert agree with it."""
    if backordered > 0:
        return True
    if not active:
        return False
    return available <= 0 or (reorder_point is not None and available <= reorder_point)


async def stock_rows(conn: AsyncConnection, backordered: Mapping[int, int] | None = None) -> list[StockRow]:
    """Every product (active first, by SKU) with its counters summed over warehouses; ``backordered``: quantity
    waiting per product id (orders' backorders, read by the caller)."""
    waiting = backordered or {}
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
        StockRow(
            int(r.id),
            r.sku,
            r.name,
            r.unit,
            bool(r.active),
            r.reorder_point,
            int(r.on_hand or 0),
            int(r.allocated or 0),
            waiting.get(int(r.id), 0),
        )
        for r in await conn.execute(q)
    ]


@dataclass(frozen=True)
class ProductRow:
    """A product as the console's product list shows it: price, category, aliases and stock."""

    id: int
    sku: str
    name: str
    unit: str
    price_fen: int
    category: str
    active: bool
    reorder_point: int | None
    aliases: tuple[str, ...]
    on_hand: int
    allocated: int

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated


PRODUCTS_PER_PAGE = 50


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def product_rows(
    conn: AsyncConnection, *, q: str = "", category: str = "", status: str = "", page: int = 1
) -> tuple[list[ProductRow], bool]:
    """One page of products (active first, by SKU) matching ``q`` (SKU, name or an alias, substring), in
    ``category`` (exact; blank = all), ``status`` ``active`` / ``inactive`` (blank = both); and whether more follow."""
    levels = (
        sa.select(
            stock_levels.c.product_id,
            sa.func.sum(stock_levels.c.on_hand).label("on_hand"),
            sa.func.sum(stock_levels.c.allocated).label("allocated"),
        )
        .group_by(stock_levels.c.product_id)
        .subquery()
    )
    p = products.c
    where: list[sa.ColumnElement[bool]] = []
    if q.strip():
        pattern = _like(q.strip())
        by_alias = sa.select(product_aliases.c.product_id).where(product_aliases.c.alias.like(pattern, escape="\\"))
        where.append(sa.or_(p.sku.like(pattern, escape="\\"), p.name.like(pattern, escape="\\"), p.id.in_(by_alias)))
    if category:
        where.append(p.category == category)
    if status in ("active", "inactive"):
        where.append(p.active.is_(status == "active"))
    query = (
        sa.select(products, levels.c.on_hand, levels.c.allocated)
        .select_from(products.outerjoin(levels, levels.c.product_id == p.id))
        .where(*where)
        .order_by(p.active.desc(), p.sku)
        .offset((page - 1) * PRODUCTS_PER_PAGE)
        .limit(PRODUCTS_PER_PAGE + 1)
    )
    found = (await conn.execute(query)).all()
    ids = [int(r.id) for r in found[:PRODUCTS_PER_PAGE]]
    aliases: dict[int, list[str]] = {}
    if ids:
        for a in await conn.execute(
            sa.select(product_aliases).where(product_aliases.c.product_id.in_(ids)).order_by(product_aliases.c.alias)
        ):
            aliases.setdefault(int(a.product_id), []).append(a.alias)
    rows = [
        ProductRow(
            int(r.id),
            r.sku,
            r.name,
            r.unit,
            int(r.price_fen),
            r.category or "",
            bool(r.active),
            r.reorder_point,
            tuple(a for a in aliases.get(int(r.id), []) if a != r.name),
            int(r.on_hand or 0),
            int(r.allocated or 0),
        )
        for r in found[:PRODUCTS_PER_PAGE]
    ]
    return rows, len(found) > PRODUCTS_PER_PAGE


async def categories(conn: AsyncConnection) -> list[str]:
    """The categories in use, sorted (for the filter and the form's suggestions)."""
    return [
        r[0]
        for r in await conn.execute(
            sa.select(products.c.category).where(products.c.category != "").distinct().order_by(products.c.category)
        )
    ]
