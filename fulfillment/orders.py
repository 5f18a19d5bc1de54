"""Order use cases: drafts (quoted in chat), confirmation with allocation, cancellation, expiry, queries.

Every status change is a guarded update (``WHERE id = :id AND version = :v``) plus an order_history row, and
every change a customer must hear about writes an outbox row in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment import discounts, inventory
from fulfillment.billing.domain import CreditExposure, CreditHold, exceeds_credit_limit
from fulfillment.billing.services import credit_exposure
from fulfillment.catalog import validate_qty
from fulfillment.domain import (
    OPEN_STATUSES,
    DraftExpired,
    InvalidTransition,
    OrderNotFound,
    PricedLine,
    ProductNotFound,
    StaleOrder,
    check_transition,
    order_number,
)
from fulfillment.models import OrderStatus as S
from fulfillment.models import order_history, order_lines, orders, products, shipments
from fulfillment.sequences import next_value
from scrm.core import outbox
from scrm.core.errors import InvalidInput
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime

DRAFT_TTL = dt.timedelta(hours=2)
MAX_LINES = 50


@dataclass
class LineView:
    id: int
    product_id: int
    sku: str
    name: str
    unit: str
    qty: int
    unit_price_fen: int
    line_total_fen: int
    allocated_qty: int
    shipped_qty: int

    @property
    def backordered_qty(self) -> int:
        return self.qty - self.allocated_qty


@dataclass
class ShipmentView:
    number: str
    carrier: str
    tracking_no: str
    status: str
    created_at: dt.datetime


@dataclass
class OrderView:
    id: int
    number: str
    customer_id: int
    status: str
    version: int
    source: str
    channel: str
    salesperson_userid: str
    subtotal_fen: int
    discount_fen: int
    total_fen: int
    created_at: dt.datetime
    expires_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    lines: list[LineView] = field(default_factory=list)
    shipments: list[ShipmentView] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "status": self.status,
            "total_fen": self.total_fen,
            "subtotal_fen": self.subtotal_fen,
            "discount_fen": self.discount_fen,
            "customer_id": self.customer_id,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "lines": [
                {
                    "sku": ln.sku,
                    "name": ln.name,
                    "unit": ln.unit,
                    "qty": ln.qty,
                    "unit_price_fen": ln.unit_price_fen,
                    "line_total_fen": ln.line_total_fen,
                    "allocated_qty": ln.allocated_qty,
                    "shipped_qty": ln.shipped_qty,
                    "backordered_qty": ln.backordered_qty,
                }
                for ln in self.lines
            ],
            "shipments": [
                {
                    "number": s.number,
                    "carrier": s.carrier,
                    "tracking_no": s.tracking_no,
                    "status": s.status,
                    "created_at": s.created_at.isoformat(),
                }
                for s in self.shipments
            ],
        }


async def price_items(conn: AsyncConnection, items: list[tuple[str, int]]) -> list[PricedLine]:
    """Resolve ``[(sku, qty)]`` against active products; the same SKU twice is summed. Errors name the SKU."""
    if not items:
        raise InvalidInput("订单至少要有一件商品 (an order needs at least one line)", field="lines")
    if len(items) > MAX_LINES:
        raise InvalidInput(f"一张订单最多 {MAX_LINES} 行 (at most {MAX_LINES} lines)", field="lines")
    merged: dict[str, int] = {}
    for sku, qty in items:
        merged[sku] = validate_qty(merged.get(sku, 0) + validate_qty(qty))
    rows = (await conn.execute(sa.select(products).where(products.c.sku.in_(list(merged))))).all()
    by_sku = {r.sku: r for r in rows if r.active}
    for sku in merged:
        if sku not in by_sku:
            raise ProductNotFound(f"没有这个商品：{sku} (unknown or inactive sku)", sku=sku)
    return [
        PricedLine(
            int(r.id), s, r.name, r.unit, q, int(r.price_fen), r.category or "", None if r.reorder_point is None else int(r.reorder_point)
        )
        for s, q in merged.items()
        for r in (by_sku[s],)
    ]


async def _history(
    conn: AsyncConnection,
    order_id: int,
    from_status: str | None,
    to_status: str,
    event: str,
    now: dt.datetime,
    actor: str = "",
    note: str = "",
    ref: str | None = None,
) -> None:
    await conn.execute(
        order_history.insert().values(
            order_id=order_id, from_status=from_status, to_status=to_status, event=event, actor=actor, note=note, ref=ref, at=now
        )
    )


async def _write_lines(conn: AsyncConnection, order_id: int, lines: list[PricedLine]) -> int:
    await conn.execute(order_lines.delete().where(order_lines.c.order_id == order_id))
    await conn.execute(
        order_lines.insert(),
        [
            {
                "order_id": order_id,
                "product_id": ln.product_id,
                "sku": ln.sku,
                "name": ln.name,
                "unit": ln.unit,
                "qty": ln.qty,
                "unit_price_fen": ln.unit_price_fen,
                "line_total_fen": ln.line_total_fen,
            }
            for ln in lines
        ],
    )
    return sum(ln.line_total_fen for ln in lines)


async def create_order(
    rt: Runtime,
    *,
    customer_id: int,
    items: list[tuple[str, int]],
    source: str,
    channel: str = "",
    salesperson_userid: str = "",
    actor: str = "",
    confirm: bool = False,
    ref: str | None = None,
) -> OrderView:
    """Create a pending order (a draft quoted to the customer, expiring after DRAFT_TTL), or — with
    ``confirm=True`` (sidebar/API, where a person already agreed) — create, allocate and confirm it in one
    transaction. With ``ref`` (the step creating it, e.g. a chat message id) a repeated call returns the first order."""
    now = rt.clock.now()
    if ref is not None:
        async with rt.db.read() as conn:
            existing = (await conn.execute(sa.select(orders.c.id).where(orders.c.source_ref == ref))).first()
        if existing is not None:
            found = await get_order(rt, int(existing.id))
            # A replay of a create that went on credit hold returns the held order: only a release confirms it.
            return await confirm_order(rt, found.id, actor=actor) if confirm and found.status != S.ON_HOLD else found
    async with rt.db.write() as conn:
        lines = await price_items(conn, items)
        number = order_number(await next_value(conn, rt.db.dialect, "order"))
        total = sum(ln.line_total_fen for ln in lines)
        held = await _over_credit_limit(conn, customer_id, total, None) if confirm else None
        if held is not None:
            confirm = False  # created as a draft, then put on credit hold below instead of being allocated
        status = S.CONFIRMED if confirm else S.PENDING
        # What the order row and the answer share (the answer is built from what is written, not read back).
        head: dict[str, Any] = {
            "number": number,
            "customer_id": customer_id,
            "status": status,
            "version": 1,
            "source": source,
            "channel": channel,
            "salesperson_userid": salesperson_userid,
            "created_at": now,
            "expires_at": None if confirm else now + DRAFT_TTL,
            "confirmed_at": now if confirm else None,
        }
        order_id = int(
            (
                await conn.execute(
                    orders.insert()
                    .values(**head, subtotal_fen=total, total_fen=total, updated_at=now, source_ref=ref)
                    .returning(orders.c.id)
                )
            ).scalar_one()
        )
        taken = [0] * len(lines)
        warehouse_id = None
        if confirm:
            warehouse_id = await inventory.default_warehouse_of(rt, conn)
            wanted = [(ln.product_id, warehouse_id, ln.qty) for ln in lines]
            taken = (await inventory.allocate_detailed(conn, rt.db.dialect, wanted, now, order_id=order_id, reference=number)).taken
        line_ids = (
            (
                await conn.execute(
                    order_lines.insert().returning(order_lines.c.id, sort_by_parameter_order=True),
                    [
                        {
                            "order_id": order_id,
                            "product_id": ln.product_id,
                            "sku": ln.sku,
                            "name": ln.name,
                            "unit": ln.unit,
                            "qty": ln.qty,
                            "unit_price_fen": ln.unit_price_fen,
                            "line_total_fen": ln.line_total_fen,
                            "allocated_qty": got,
                            "warehouse_id": warehouse_id,
                        }
                        for ln, got in zip(lines, taken, strict=True)
                    ],
                )
            )
            .scalars()
            .all()
        )
        history = [
            {
                "order_id": order_id,
                "from_status": None,
                "to_status": S.PENDING,
                "event": "created",
                "actor": actor,
                "note": "",
                "ref": ref,
                "at": now,
            }
        ]
        if confirm:
            history.append(
                {
                    "order_id": order_id,
                    "from_status": S.PENDING,
                    "to_status": S.CONFIRMED,
                    "event": "confirmed",
                    "actor": actor,
                    "note": "",
                    "ref": None,
                    "at": now,
                }
            )
            backordered = [_short(ln.sku, ln.name, ln.unit, ln.qty, got) for ln, got in zip(lines, taken, strict=True) if got < ln.qty]
            await outbox.add_many(
                conn,
                [
                    ("order.confirmed", {"order_id": order_id, "backordered": backordered, "told_in_chat": False}),
                    ("billing.order_confirmed", {"order_id": order_id}),
                ],
                now,
            )
            await check_low_stock(conn, rt, [ln.product_id for ln in lines if ln.reorder_point is not None], now, watched_only=True)
        await conn.execute(order_history.insert(), history)
        applied = await discounts.apply_to_order(conn, rt, order_id, customer_id, lines=_discount_lines(lines), written_subtotal=total)
        if confirm and applied.refs:  # a brand-new order holds only what apply_to_order just chose
            await discounts.order_confirmed(conn, rt, order_id)
        if held is not None:
            await _hold(conn, await _load_for_update(conn, rt.db.dialect, order_id), held, now, actor)
            return await _view(conn, order_id)
        off = max(0, min(applied.discount_fen, total))
        # Everything the order is was written just now: the view is built from it, not read back (3 statements).
        return OrderView(
            id=order_id,
            **head,
            subtotal_fen=total,
            discount_fen=off,
            total_fen=total - off,
            lines=[
                LineView(int(line_id), ln.product_id, ln.sku, ln.name, ln.unit, ln.qty, ln.unit_price_fen, ln.line_total_fen, got, 0)
                for line_id, ln, got in zip(line_ids, lines, taken, strict=True)
            ],
        )


def _discount_lines(lines: list[PricedLine]) -> list[discounts.DiscountLine]:
    return [discounts.DiscountLine(ln.sku, ln.category, ln.qty, ln.unit_price_fen, ln.line_total_fen) for ln in lines]


def _short(sku: str, name: str, unit: str, qty: int, allocated: int) -> dict[str, Any]:
    return {"sku": sku, "name": name, "unit": unit, "qty": qty - allocated, "allocated": allocated}


async def set_draft_lines(
    rt: Runtime, order_id: int, items: list[tuple[str, int]], *, expected_version: int, actor: str = "", ref: str | None = None
) -> OrderView:
    """Replace a pending draft's lines (the dialogue computes the new set: add, correct, remove). Refused if the
    draft changed since it was read (version) or is no longer pending. A change with a ``ref`` applies once."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, order_id)
        if (
            ref is not None
            and (
                await conn.execute(sa.select(order_history.c.id).where(order_history.c.order_id == order_id, order_history.c.ref == ref))
            ).first()
        ):
            return await _view(conn, order_id)
        if row.status != S.PENDING:
            raise InvalidTransition("订单已不是待确认状态，不能修改 (only a pending draft can change)", status=row.status)
        lines = await price_items(conn, items)
        total = await _write_lines(conn, order_id, lines)
        result = await conn.execute(
            orders.update()
            .where(orders.c.id == order_id, orders.c.version == expected_version)
            .values(subtotal_fen=total, total_fen=total, version=orders.c.version + 1, updated_at=now, expires_at=now + DRAFT_TTL)
        )
        if result.rowcount != 1:
            raise StaleOrder("订单刚刚被修改过，请再看一下 (the draft changed meanwhile)")
        await discounts.apply_to_order(conn, rt, order_id, int(row.customer_id))
        await _history(
            conn, order_id, S.PENDING, S.PENDING, "lines_changed", now, actor, note=", ".join(f"{ln.sku}×{ln.qty}" for ln in lines), ref=ref
        )
    return await get_order(rt, order_id)


async def _load_for_update(conn: AsyncConnection, dialect: str, order_id: int) -> Any:
    q = sa.select(orders).where(orders.c.id == order_id)
    if dialect == "postgresql":
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        raise OrderNotFound("没有找到这张订单 (order not found)", order_id=order_id)
    return row


async def _set_status(
    conn: AsyncConnection, row: Any, target: str, now: dt.datetime, event: str, actor: str, note: str = "", **values: Any
) -> None:
    check_transition(row.status, target)
    result = await conn.execute(
        orders.update()
        .where(orders.c.id == row.id, orders.c.version == row.version)
        .values(status=target, version=row.version + 1, updated_at=now, **values)
    )
    if result.rowcount != 1:
        raise StaleOrder("订单刚刚被修改过，请重试 (the order changed meanwhile; retry)")
    await _history(conn, row.id, row.status, target, event, now, actor, note)


async def confirm_order(
    rt: Runtime, order_id: int, *, actor: str = "", told_in_chat: bool = False, release_hold: bool = False
) -> OrderView:
    """Confirm a pending draft: allocate stock line by line (what is short becomes backorder), move to confirmed
    and queue the customer notice — one transaction. Confirming an already-confirmed order changes nothing.
    When the customer's credit limit would be exceeded the order goes on_hold instead (nothing allocated, the
    salesperson alerted); a held order is confirmed only with ``release_hold=True`` (billing.release_hold),
    otherwise CreditHold is raised."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, order_id)
        if row.status in (S.CONFIRMED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.COMPLETED):
            return await _view(conn, order_id)
        if row.status == S.ON_HOLD and not release_hold:
            raise CreditHold(f"订单 {row.number} 超出信用额度，待财务审核放行 (on credit hold; finance releases it)", number=row.number)
        if row.status == S.PENDING and row.expires_at is not None and row.expires_at <= now:
            await _set_status(conn, row, S.EXPIRED, now, "expired", "system", closed_at=now)
            await discounts.order_closed(conn, rt, order_id)
            expired = True
        else:
            expired = False
            await _confirm_in(conn, rt, row, now, actor, told_in_chat, credit_check=not release_hold)
    if expired:
        raise DraftExpired("这张订单已过期，请重新下单 (the draft expired; order again)", number=row.number)
    return await get_order(rt, order_id)


async def _confirm_in(
    conn: AsyncConnection, rt: Runtime, row: Any, now: dt.datetime, actor: str, told_in_chat: bool, *, credit_check: bool = True
) -> None:
    held = await _over_credit_limit(conn, int(row.customer_id), int(row.total_fen), int(row.id)) if credit_check else None
    if held is not None:
        await _hold(conn, row, held, now, actor)
        return
    lines = (await conn.execute(sa.select(order_lines).where(order_lines.c.order_id == row.id).order_by(order_lines.c.id))).all()
    warehouse_id = await inventory.default_warehouse_of(rt, conn)
    wanted = [(ln.product_id, warehouse_id, ln.qty) for ln in lines]
    taken = (await inventory.allocate_detailed(conn, rt.db.dialect, wanted, now, order_id=row.id, reference=row.number)).taken
    await conn.execute(
        order_lines.update()
        .where(order_lines.c.id == sa.bindparam("line_id"))
        .values(allocated_qty=sa.bindparam("got"), warehouse_id=warehouse_id),
        [{"line_id": ln.id, "got": got} for ln, got in zip(lines, taken, strict=True)],
    )
    backordered = [_short(ln.sku, ln.name, ln.unit, ln.qty, got) for ln, got in zip(lines, taken, strict=True) if got < ln.qty]
    await _set_status(conn, row, S.CONFIRMED, now, "confirmed", actor, confirmed_at=now, expires_at=None)
    await discounts.order_confirmed(conn, rt, int(row.id))
    # told_in_chat: the customer confirmed in chat and the bot's reply already says all of it.
    await outbox.add_many(
        conn,
        [
            ("order.confirmed", {"order_id": int(row.id), "backordered": backordered, "told_in_chat": told_in_chat}),
            ("billing.order_confirmed", {"order_id": int(row.id)}),
        ],
        now,
    )
    await check_low_stock(conn, rt, [ln.product_id for ln in lines], now)


async def _over_credit_limit(conn: AsyncConnection, customer_id: int, total_fen: int, order_id: int | None) -> CreditExposure | None:
    """The customer's exposure when confirming ``total_fen`` more would exceed their credit limit, else None."""
    exposure = await credit_exposure(conn, customer_id, exclude_order_id=order_id, lock=True)
    return exposure if exceeds_credit_limit(exposure, total_fen) else None


async def _hold(conn: AsyncConnection, row: Any, exposure: CreditExposure, now: dt.datetime, actor: str) -> None:
    """Credit limit reached: the order waits on_hold, nothing allocated, until finance releases it."""
    note = (
        f"应收 {format_fen(exposure.receivables_fen)} + 未开票订单 {format_fen(exposure.open_orders_fen)} - 预收 "
        f"{format_fen(exposure.credit_fen)} + 本单 {format_fen(int(row.total_fen))} > 额度 {format_fen(exposure.limit_fen or 0)}"
    )
    await _set_status(conn, row, S.ON_HOLD, now, "credit_hold", actor, note=note, expires_at=None)
    payload = {"order_id": int(row.id), "total_fen": int(row.total_fen), **exposure.__dict__}
    await outbox.add(conn, "billing.credit_hold", payload, now)


async def check_low_stock(
    conn: AsyncConnection, rt: Runtime, product_ids: list[int], now: dt.datetime, *, watched_only: bool = False
) -> None:
    """Queue a low-stock alert for products at or below their reorder point — at most once a day per SKU.
    ``watched_only``: the caller passes only products that have a reorder point (read with its own lines), so
    an order of unwatched products costs no statement here."""
    from fulfillment.models import stock_levels
    from scrm.core.clock import local

    if not product_ids:
        return
    watched = (
        await conn.execute(
            sa.select(products.c.id, products.c.reorder_point).where(
                products.c.id.in_(sorted(set(product_ids))), products.c.reorder_point.is_not(None)
            )
        )
    ).all()
    today = local(now).date()
    for p in watched:
        lvl = await inventory.level(conn, rt.db.dialect, int(p.id))
        if lvl.available > p.reorder_point:
            continue
        result = await conn.execute(
            stock_levels.update()
            .where(
                stock_levels.c.product_id == p.id, sa.or_(stock_levels.c.low_alerted_on.is_(None), stock_levels.c.low_alerted_on < today)
            )
            .values(low_alerted_on=today)
        )
        if result.rowcount:
            await outbox.add(
                conn, "stock.low", {"product_id": int(p.id), "available": lvl.available, "reorder_point": p.reorder_point}, now
            )


async def cancel_order(rt: Runtime, order_id: int, *, actor: str = "", reason: str = "") -> OrderView:
    """Cancel an order nothing of which has shipped; allocations go back to stock; the customer is told.
    Cancelling an already-cancelled order changes nothing; a shipped one is refused with a clear error."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, order_id)
        if row.status == S.CANCELLED:
            return await _view(conn, order_id)
        shipped = (
            await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(order_lines.c.shipped_qty), 0)).where(order_lines.c.order_id == order_id)
            )
        ).scalar_one()
        if shipped:
            raise InvalidTransition("订单已发货，不能取消；如需退货请联系客服 (shipped orders cannot be cancelled)", status=row.status)
        lines = (
            await conn.execute(sa.select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.product_id))
        ).all()
        was_pending = row.status == S.PENDING
        await _set_status(conn, row, S.CANCELLED, now, "cancelled", actor, note=reason, closed_at=now, expires_at=None)
        await discounts.order_closed(conn, rt, order_id)
        for ln in lines:
            if ln.allocated_qty:
                await inventory.release(
                    conn, ln.product_id, ln.warehouse_id, ln.allocated_qty, now, order_id=order_id, reference=f"{row.number} cancelled"
                )
                await conn.execute(order_lines.update().where(order_lines.c.id == ln.id).values(allocated_qty=0))
        if not was_pending:
            await outbox.add(conn, "order.cancelled", {"order_id": order_id, "reason": reason}, now)
    return await get_order(rt, order_id)


async def expire_drafts(rt: Runtime) -> int:
    """Pending drafts past their expiry become expired (they hold no stock). Returns how many."""
    now = rt.clock.now()
    count = 0
    async with rt.db.write() as conn:
        rows = (await conn.execute(sa.select(orders).where(orders.c.status == S.PENDING, orders.c.expires_at <= now))).all()
        for row in rows:
            await _set_status(conn, row, S.EXPIRED, now, "expired", "system", closed_at=now)
            await discounts.order_closed(conn, rt, int(row.id))
            count += 1
    return count


# ---- queries --------------------------------------------------------------------------------------------
async def _view(conn: AsyncConnection, order_id: int) -> OrderView:
    row = (await conn.execute(sa.select(orders).where(orders.c.id == order_id))).first()
    if row is None:
        raise OrderNotFound("没有找到这张订单 (order not found)", order_id=order_id)
    lines = (await conn.execute(sa.select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.id))).all()
    ships = (await conn.execute(sa.select(shipments).where(shipments.c.order_id == order_id).order_by(shipments.c.id))).all()
    return OrderView(
        id=int(row.id),
        number=row.number,
        customer_id=int(row.customer_id),
        status=row.status,
        version=int(row.version),
        source=row.source,
        channel=row.channel,
        salesperson_userid=row.salesperson_userid,
        subtotal_fen=int(row.subtotal_fen),
        discount_fen=int(row.discount_fen),
        total_fen=int(row.total_fen),
        created_at=row.created_at,
        expires_at=row.expires_at,
        confirmed_at=row.confirmed_at,
        lines=[
            LineView(
                int(ln.id),
                int(ln.product_id),
                ln.sku,
                ln.name,
                ln.unit,
                int(ln.qty),
                int(ln.unit_price_fen),
                int(ln.line_total_fen),
                int(ln.allocated_qty),
                int(ln.shipped_qty),
            )
            for ln in lines
        ],
        shipments=[ShipmentView(s.number, s.carrier, s.tracking_no, s.status, s.created_at) for s in ships],
    )


async def get_order(rt: Runtime, order_id: int) -> OrderView:
    async with rt.db.read() as conn:
        return await _view(conn, order_id)


async def order_id_by_number(conn: AsyncConnection, number: str) -> int:
    row = (await conn.execute(sa.select(orders.c.id).where(orders.c.number == number.strip().upper()))).first()
    if row is None:
        raise OrderNotFound(f"没有找到订单 {number} (order not found)", number=number)
    return int(row.id)


async def get_order_by_number(rt: Runtime, number: str) -> OrderView:
    async with rt.db.read() as conn:
        return await _view(conn, await order_id_by_number(conn, number))


async def orders_of_customer(rt: Runtime, customer_id: int, *, limit: int = 20, include_drafts: bool = False) -> list[OrderView]:
    async with rt.db.read() as conn:
        q = sa.select(orders.c.id).where(orders.c.customer_id == customer_id).order_by(orders.c.id.desc()).limit(limit)
        if not include_drafts:
            q = q.where(orders.c.status.not_in([S.PENDING, S.EXPIRED]))
        ids = [int(r.id) for r in await conn.execute(q)]
        return [await _view(conn, i) for i in ids]


async def open_draft(rt: Runtime, customer_id: int) -> OrderView | None:
    """The customer's current pending draft from chat, if any (unexpired)."""
    now = rt.clock.now()
    async with rt.db.read() as conn:
        row = (
            await conn.execute(
                sa.select(orders.c.id)
                .where(
                    orders.c.customer_id == customer_id, orders.c.status == S.PENDING, orders.c.source == "chat", orders.c.expires_at > now
                )
                .order_by(orders.c.id.desc())
                .limit(1)
            )
        ).first()
        return await _view(conn, int(row.id)) if row else None


__all__ = ["OPEN_STATUSES"]


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
            await _history(conn, int(ln.order_id), None, S.CONFIRMED, "backorder_allocated", now, "system", note=f"{ln.sku}×{taken}")
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
