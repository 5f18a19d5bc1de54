"""Shipments: goods leave (stock and allocation go down), are delivered, or come back (cancel)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fulfillment.inventory import services as inventory
from fulfillment.orders.backorders import check_low_stock
from fulfillment.orders.domain import SHIPPABLE, InvalidTransition, NothingToShip, ShipmentTooLarge, shipment_number, status_after_shipping
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import order_lines, orders
from fulfillment.orders.queries import OrderView, get_order
from fulfillment.orders.services import _load_for_update, _set_status
from fulfillment.sequences import next_value
from fulfillment.shipments.models import ShipmentStatus, shipment_lines, shipments
from scrm.core import outbox
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.runtime import Runtime


def _clean(text: object, field: str, max_len: int = 64) -> str:
    if not isinstance(text, str) or not text.strip() or len(text.strip()) > max_len:
        raise InvalidInput(f"{field} 必填，且不超过 {max_len} 个字符 ({field} is required, ≤ {max_len} chars)", field=field)
    return text.strip()


async def create_shipment(
    rt: Runtime, order_id: int, *, carrier: str, tracking_no: str, lines: list[tuple[str, int]] | None = None, actor: str = ""
) -> tuple[OrderView, str]:
    """Ship allocated goods: ``lines`` = [(sku, qty)], or None for everything allocated and not yet shipped.
    Shipping more than is allocated for a line is refused (nothing changes). Returns the order and the shipment
    number; the customer's notice (with carrier and tracking number) is queued in the same transaction."""
    carrier = _clean(carrier, "carrier")
    tracking_no = _clean(tracking_no, "tracking_no")
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, order_id)
        if row.status not in SHIPPABLE:
            raise InvalidTransition(f"订单状态为 {row.status}，不能发货 (cannot ship an order that is {row.status})", status=row.status)
        rows = (
            await conn.execute(sa.select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.product_id))
        ).all()
        plan = _plan(rows, lines)
        if not plan:
            raise NothingToShip("没有可发的货：库存尚未分配到这张订单 (nothing allocated is left to ship)")
        seq = await next_value(conn, rt.db.dialect, "shipment")
        number = shipment_number(seq)
        warehouse_id = plan[0][0].warehouse_id or await inventory.default_warehouse(conn, rt.db.dialect)
        shipment_id = int(
            (
                await conn.execute(
                    shipments.insert()
                    .values(
                        order_id=order_id,
                        number=number,
                        carrier=carrier,
                        tracking_no=tracking_no,
                        status=ShipmentStatus.SHIPPED,
                        warehouse_id=warehouse_id,
                        created_at=now,
                    )
                    .returning(shipments.c.id)
                )
            ).scalar_one()
        )
        for ln, qty in plan:
            await conn.execute(shipment_lines.insert().values(shipment_id=shipment_id, order_line_id=ln.id, qty=qty))
            await conn.execute(order_lines.update().where(order_lines.c.id == ln.id).values(shipped_qty=order_lines.c.shipped_qty + qty))
            await inventory.ship(
                conn, ln.product_id, ln.warehouse_id, qty, now, order_id=order_id, shipment_id=shipment_id, reference=number
            )
        shipped = {ln.id: qty for ln, qty in plan}
        target = status_after_shipping([(int(r.qty), int(r.shipped_qty) + shipped.get(r.id, 0)) for r in rows])
        await _set_status(conn, row, target, now, "shipped", actor, note=f"{number} {carrier} {tracking_no}")
        await outbox.add(conn, "order.shipped", {"order_id": order_id, "shipment": number}, now)
        await outbox.add(conn, "billing.shipment_invoiceable", {"order_id": order_id, "shipment": number}, now)
        await check_low_stock(conn, rt, [ln.product_id for ln, _ in plan], now)
    return await get_order(rt, order_id), number


def _plan(rows: list[Any], wanted: list[tuple[str, int]] | None) -> list[tuple[Any, int]]:
    outstanding = {r.sku: r for r in rows}
    if wanted is None:
        return [(r, int(r.allocated_qty - r.shipped_qty)) for r in rows if r.allocated_qty > r.shipped_qty]
    if not wanted:
        raise InvalidInput("lines 不能为空；不传 lines 表示发出全部已备货商品 (omit lines to ship everything)", field="lines")
    merged: dict[str, int] = {}
    for sku, qty in wanted:
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise InvalidInput(f"{sku} 的发货数量必须是正整数 (qty must be a positive integer)", field="lines", sku=sku)
        merged[sku] = merged.get(sku, 0) + qty
    plan = []
    for sku, qty in merged.items():
        line = outstanding.get(sku)
        if line is None:
            raise InvalidInput(f"订单里没有商品 {sku} (the order has no line {sku})", field="lines", sku=sku)
        can = int(line.allocated_qty - line.shipped_qty)
        if qty > can:
            raise ShipmentTooLarge(
                f"{line.name} 最多还能发 {can}{line.unit}，您要发 {qty} (only {can} allocated and unshipped)",
                sku=sku,
                requested=qty,
                shippable=can,
            )
        plan.append((line, qty))
    return plan


async def _shipment(conn: Any, dialect: str, number: str) -> Any:
    q = sa.select(shipments).where(shipments.c.number == number.strip().upper())
    if dialect == "postgresql":
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound(f"没有找到发货单 {number} (shipment not found)", number=number)
    return row


async def mark_delivered(rt: Runtime, number: str, *, actor: str = "") -> OrderView:
    """The carrier delivered: the shipment is delivered; when every shipment of a fully shipped order is, the
    order is completed. Delivering twice changes nothing."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        ship = await _shipment(conn, rt.db.dialect, number)
        if ship.status == ShipmentStatus.DELIVERED:
            return await get_order(rt, int(ship.order_id))
        if ship.status != ShipmentStatus.SHIPPED:
            raise InvalidTransition("发货单已取消，不能签收 (a cancelled shipment cannot be delivered)", status=ship.status)
        await conn.execute(shipments.update().where(shipments.c.id == ship.id).values(status=ShipmentStatus.DELIVERED, delivered_at=now))
        row = await _load_for_update(conn, rt.db.dialect, int(ship.order_id))
        undelivered = (
            await conn.execute(
                sa.select(sa.func.count()).where(shipments.c.order_id == row.id, shipments.c.status == ShipmentStatus.SHIPPED)
            )
        ).scalar_one()
        await outbox.add(conn, "order.delivered", {"order_id": int(row.id), "shipment": ship.number}, now)
        if row.status == S.SHIPPED and not undelivered:
            await _set_status(conn, row, S.COMPLETED, now, "completed", actor, closed_at=now)
    return await get_order(rt, int(ship.order_id))


async def cancel_shipment(rt: Runtime, number: str, *, actor: str = "", reason: str = "") -> OrderView:
    """Undo a shipment that did not go out (or came back): goods return to stock, reserved for the order again."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        ship = await _shipment(conn, rt.db.dialect, number)
        if ship.status != ShipmentStatus.SHIPPED:
            raise InvalidTransition(
                f"发货单状态为 {ship.status}，不能取消 (only a shipped, undelivered shipment can be cancelled)", status=ship.status
            )
        row = await _load_for_update(conn, rt.db.dialect, int(ship.order_id))
        items = (
            await conn.execute(
                sa.select(shipment_lines, order_lines.c.product_id, order_lines.c.warehouse_id)
                .join(order_lines, order_lines.c.id == shipment_lines.c.order_line_id)
                .where(shipment_lines.c.shipment_id == ship.id)
            )
        ).all()
        for it in items:
            await inventory.unship(
                conn,
                it.product_id,
                it.warehouse_id,
                int(it.qty),
                now,
                order_id=int(row.id),
                shipment_id=int(ship.id),
                reference=f"{ship.number} cancelled",
            )
            await conn.execute(
                order_lines.update().where(order_lines.c.id == it.order_line_id).values(shipped_qty=order_lines.c.shipped_qty - it.qty)
            )
        await conn.execute(shipments.update().where(shipments.c.id == ship.id).values(status=ShipmentStatus.CANCELLED, cancelled_at=now))
        await outbox.add(conn, "billing.shipment_cancelled", {"order_id": int(row.id), "shipment": ship.number}, now)
        remaining = (
            await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(order_lines.c.shipped_qty), 0)).where(order_lines.c.order_id == row.id)
            )
        ).scalar_one()
        target = S.PARTIALLY_SHIPPED if remaining else S.CONFIRMED
        if target == S.CONFIRMED:
            # Back to "nothing shipped": a direct guarded update, since confirmed is not a forward transition.
            await conn.execute(
                orders.update()
                .where(orders.c.id == row.id, orders.c.version == row.version)
                .values(status=S.CONFIRMED, version=row.version + 1, updated_at=now)
            )
        elif row.status != target:
            await _set_status(conn, row, target, now, "shipment_cancelled", actor, note=reason)
    return await get_order(rt, int(ship.order_id))
