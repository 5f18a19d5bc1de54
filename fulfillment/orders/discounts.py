"""Discounts on orders, without fulfilment knowing where they come from.

Coupons live in ``scrm.campaigns``, which fulfilment must not import. Instead the composition puts one
:class:`DiscountProvider` on the runtime (``install(rt, provider)``); orders call the functions below with the
order's own transaction, so a discount is held, redeemed or given back atomically with the order's change:

* a pending draft is (re)priced → :func:`apply_to_order`: the provider holds the best discount for these lines
  (releasing what it held for this order before) and the order's ``discount_fen``/``total_fen`` are written;
* the order is confirmed → :func:`order_confirmed`: what is held becomes used;
* the order is cancelled or its draft expires → :func:`order_closed`: what is held or used goes back.

No provider installed = no discounts (every total is the subtotal), which keeps fulfilment usable alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.models import products
from fulfillment.orders.models import order_lines, orders
from scrm.core.runtime import ResourceKey, Runtime


@dataclass(frozen=True)
class DiscountLine:
    sku: str
    category: str
    qty: int
    unit_price_fen: int
    line_total_fen: int


@dataclass(frozen=True)
class AppliedDiscount:
    discount_fen: int = 0
    refs: tuple[str, ...] = ()  # what gives it, e.g. coupon codes
    labels: tuple[str, ...] = ()  # how the customer reads it, e.g. "满100减10"

    @property
    def label(self) -> str:
        return "，".join(self.labels)


NO_DISCOUNT = AppliedDiscount()


class DiscountProvider(Protocol):
    """All methods run inside the caller's write transaction and must be idempotent."""

    async def hold(
        self, conn: AsyncConnection, dialect: str, *, order_id: int, customer_id: int, lines: list[DiscountLine], now: dt.datetime
    ) -> AppliedDiscount:
        """Hold the best discount for a pending order's lines (replacing what it held before) and return it."""
        ...

    async def held(self, conn: AsyncConnection, *, order_id: int) -> AppliedDiscount:
        """What the order holds or has used now."""
        ...

    async def redeem(self, conn: AsyncConnection, dialect: str, *, order_id: int, now: dt.datetime) -> None: ...

    async def release(self, conn: AsyncConnection, dialect: str, *, order_id: int, now: dt.datetime) -> None: ...


DISCOUNTS: ResourceKey[DiscountProvider] = ResourceKey("fulfillment.orders.discounts")

# "A discount may apply to a new order of this customer" as a SQL condition on the customer id (a column or bound
# value), from the provider's own tables. With it, one-statement placement (fulfillment.orders.placement) skips the
# provider for customers it has nothing for; a provider without it sends every order the general way.
CustomerCondition = Callable[[sa.ColumnElement[Any]], sa.ColumnElement[bool]]
DISCOUNT_POSSIBLE: ResourceKey[CustomerCondition | None] = ResourceKey("fulfillment.orders.discount_possible")


def install(rt: Runtime, provider: DiscountProvider, possible: CustomerCondition | None = None) -> None:
    rt.put(DISCOUNTS, provider)
    rt.put(DISCOUNT_POSSIBLE, possible)  # always replaced: a condition never outlives its provider


def provider_of(rt: Runtime) -> DiscountProvider | None:
    return rt.get(DISCOUNTS) if rt.has(DISCOUNTS) else None


def possible_of(rt: Runtime) -> CustomerCondition | None:
    """The installed provider's :data:`DISCOUNT_POSSIBLE` condition (None: no provider, or one without it)."""
    return rt.get(DISCOUNT_POSSIBLE) if rt.has(DISCOUNT_POSSIBLE) else None


async def discount_lines(conn: AsyncConnection, order_id: int) -> list[DiscountLine]:
    q = (
        sa.select(order_lines, products.c.category)
        .join(products, products.c.id == order_lines.c.product_id)
        .where(order_lines.c.order_id == order_id)
        .order_by(order_lines.c.id)
    )
    return [DiscountLine(r.sku, r.category or "", int(r.qty), int(r.unit_price_fen), int(r.line_total_fen)) for r in await conn.execute(q)]


async def apply_to_order(
    conn: AsyncConnection,
    rt: Runtime,
    order_id: int,
    customer_id: int,
    *,
    lines: list[DiscountLine] | None = None,
    written_subtotal: int | None = None,
) -> AppliedDiscount:
    """Hold the best discount for the order's current lines and write ``discount_fen`` and ``total_fen``.
    ``lines``: the order's lines when the caller just wrote them (saves reading them back); ``written_subtotal``:
    the subtotal and total the caller wrote with no discount — then no discount means nothing to write."""
    provider = provider_of(rt)
    if provider is None:
        return NO_DISCOUNT
    if lines is None:
        lines = await discount_lines(conn, order_id)
    subtotal = sum(ln.line_total_fen for ln in lines)
    applied = await provider.hold(conn, rt.db.dialect, order_id=order_id, customer_id=customer_id, lines=lines, now=rt.clock.now())
    off = max(0, min(applied.discount_fen, subtotal))
    if off == 0 and written_subtotal == subtotal:
        return applied
    await conn.execute(
        orders.update().where(orders.c.id == order_id).values(subtotal_fen=subtotal, discount_fen=off, total_fen=subtotal - off)
    )
    return applied


async def order_confirmed(conn: AsyncConnection, rt: Runtime, order_id: int) -> None:
    provider = provider_of(rt)
    if provider is not None:
        await provider.redeem(conn, rt.db.dialect, order_id=order_id, now=rt.clock.now())


async def order_closed(conn: AsyncConnection, rt: Runtime, order_id: int) -> None:
    provider = provider_of(rt)
    if provider is not None:
        await provider.release(conn, rt.db.dialect, order_id=order_id, now=rt.clock.now())


async def discount_of(rt: Runtime, order_id: int) -> AppliedDiscount:
    """The discount an order holds or used (for quotes and order views)."""
    provider = provider_of(rt)
    if provider is None:
        return NO_DISCOUNT
    async with rt.db.read() as conn:
        return await provider.held(conn, order_id=order_id)
