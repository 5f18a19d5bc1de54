"""Coupons with orders and over time: the :class:`fulfillment.orders.discounts.DiscountProvider` that holds, redeems and
releases coupons in the order's own transaction, the expiry sweep, and coupons following a merged customer.
Re-exported by :mod:`scrm.campaigns.coupons.services` (the public import path)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.orders import discounts
from fulfillment.orders.discounts import NO_DISCOUNT, AppliedDiscount, DiscountLine
from scrm.campaigns.coupons.domain import Candidate, Line, best_choice, usable_at
from scrm.campaigns.coupons.models import CouponStatus as CS
from scrm.campaigns.coupons.models import coupons
from scrm.campaigns.coupons.queries import C, coupon_query, coupon_view, rule_of, write_ledger
from scrm.core.jobs import JobContext
from scrm.core.runtime import Runtime


# ---- with orders (fulfillment.orders.discounts.DiscountProvider) -----------------------------------------------
async def _give_back(conn: AsyncConnection, rows: list[Any], now: dt.datetime, order_id: int) -> None:
    """Coupons an order no longer uses go back to the wallet — or expire, if their time ran out meanwhile."""
    for r in rows:
        expired = r.expires_at is not None and r.expires_at <= now
        status = CS.EXPIRED if expired else CS.ISSUED
        done = await conn.execute(
            coupons.update()
            .where(C.id == r.id, C.order_id == order_id, C.status.in_([CS.RESERVED, CS.REDEEMED]))
            .values(status=status, order_id=None, discount_fen=0, updated_at=now)
        )
        if done.rowcount == 1:
            await write_ledger(conn, int(r.id), "release", now, order_id=order_id, amount=int(r.discount_fen))
            if expired:
                await write_ledger(conn, int(r.id), "expire", now)


class CouponDiscounts:
    """The coupon side of :class:`fulfillment.orders.discounts.DiscountProvider`."""

    async def hold(
        self, conn: AsyncConnection, dialect: str, *, order_id: int, customer_id: int, lines: list[DiscountLine], now: dt.datetime
    ) -> AppliedDiscount:
        plain = [Line(ln.sku, ln.category, ln.line_total_fen) for ln in lines]
        excluded: set[int] = set()
        for _ in range(5):  # a coupon taken by another order meanwhile (PostgreSQL) → choose again without it
            q = coupon_query().where(
                C.customer_id == customer_id,
                sa.or_(C.status == CS.ISSUED, sa.and_(C.status == CS.RESERVED, C.order_id == order_id)),
            )
            rows = [r for r in await conn.execute(q) if int(r.id) not in excluded]
            if not rows and not excluded:  # no coupon could apply and none is held for the order: nothing to read back
                return NO_DISCOUNT
            mine = {int(r.id): r for r in rows if r.status == CS.RESERVED}
            cands = [
                Candidate(int(r.id), int(r.template_id), rule_of(r), r.expires_at)
                for r in rows
                if int(r.id) in mine or usable_at(r.expires_at, r.valid_from, now)
            ]
            choice = best_choice(cands, plain)
            chosen = {c.coupon_id: amt for c, amt in zip(choice.coupons, choice.amounts, strict=True)}
            await _give_back(conn, [r for cid, r in mine.items() if cid not in chosen], now, order_id)
            lost = False
            for cid, amount in chosen.items():
                if cid in mine:
                    await conn.execute(coupons.update().where(C.id == cid).values(discount_fen=amount, updated_at=now))
                    continue
                took = await conn.execute(
                    coupons.update()
                    .where(C.id == cid, C.status == CS.ISSUED)
                    .values(status=CS.RESERVED, order_id=order_id, discount_fen=amount, updated_at=now)
                )
                if took.rowcount != 1:
                    excluded.add(cid)
                    lost = True
                    break
                await write_ledger(conn, cid, "reserve", now, order_id=order_id, amount=amount)
            if not lost:
                return await self.held(conn, order_id=order_id)
        return await self.held(conn, order_id=order_id)

    async def held(self, conn: AsyncConnection, *, order_id: int) -> AppliedDiscount:
        q = coupon_query().where(C.order_id == order_id, C.status.in_([CS.RESERVED, CS.REDEEMED])).order_by(C.id)
        views = [coupon_view(r) for r in await conn.execute(q)]
        return AppliedDiscount(sum(v.discount_fen for v in views), tuple(v.code for v in views), tuple(v.label for v in views))

    async def redeem(self, conn: AsyncConnection, dialect: str, *, order_id: int, now: dt.datetime) -> None:
        rows = (await conn.execute(sa.select(coupons).where(C.order_id == order_id, C.status == CS.RESERVED))).all()
        for r in rows:
            done = await conn.execute(
                coupons.update()
                .where(C.id == r.id, C.order_id == order_id, C.status == CS.RESERVED)
                .values(status=CS.REDEEMED, updated_at=now)
            )
            if done.rowcount == 1:
                await write_ledger(conn, int(r.id), "redeem", now, order_id=order_id, amount=int(r.discount_fen))

    async def release(self, conn: AsyncConnection, dialect: str, *, order_id: int, now: dt.datetime) -> None:
        rows = (await conn.execute(sa.select(coupons).where(C.order_id == order_id, C.status.in_([CS.RESERVED, CS.REDEEMED])))).all()
        await _give_back(conn, list(rows), now, order_id)


def install(rt: Runtime) -> None:
    """Composition: orders take coupon discounts from here."""

    discounts.install(rt, CouponDiscounts(), possible=may_discount)


def may_discount(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """A new order of the customer may get a coupon discount: they hold an issued coupon (what ``hold`` chooses
    from for an order that holds none yet)."""
    return sa.exists().where(C.customer_id == customer_id, C.status == CS.ISSUED)


# ---- expiry and merges ----------------------------------------------------------------------------------
async def expire_coupons(rt: Runtime, *, batch: int = 500) -> int:
    """Coupons in wallets past their end become expired (held ones wait for their order). Returns how many."""
    total = 0
    while True:
        now = rt.clock.now()
        async with rt.db.write() as conn:
            ids = [
                int(r.id)
                for r in await conn.execute(sa.select(C.id).where(C.status == CS.ISSUED, C.expires_at <= now).order_by(C.id).limit(batch))
            ]
            for cid in ids:
                done = await conn.execute(
                    coupons.update().where(C.id == cid, C.status == CS.ISSUED).values(status=CS.EXPIRED, updated_at=now)
                )
                if done.rowcount == 1:
                    await write_ledger(conn, cid, "expire", now, actor="system")
                    total += 1
        if len(ids) < batch:
            return total


async def expire_coupons_cron(ctx: JobContext) -> int:
    return await expire_coupons(ctx.rt)


async def follow_merge(rt: Runtime, payload: dict[str, Any]) -> None:
    """Coupons follow a customer merged into another (idempotent)."""
    async with rt.db.write() as conn:
        await conn.execute(coupons.update().where(C.customer_id == int(payload["from"])).values(customer_id=int(payload["into"])))
