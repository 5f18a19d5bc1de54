"""Replenishment use cases (进): suppliers, purchase orders from suggestions or by hand, placing, receiving.

Receiving posts goods to the stock ledger (:func:`fulfillment.inventory.services.receive`), records the purchase cost on the
product and then releases backorders oldest first through :func:`fulfillment.orders.services.fill_backorders`, which writes
the outbox row that tells each waiting customer their goods are reserved.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.domain import ProductNotFound
from fulfillment.catalog.models import products
from fulfillment.catalog.services import MAX_QTY
from fulfillment.inventory import services as inventory
from fulfillment.inventory.models import stock_levels
from fulfillment.orders import backorders as orders_backorders
from fulfillment.orders.models import OrderStatus, order_lines
from fulfillment.orders.models import orders as orders_table
from fulfillment.purchasing import domain as d
from fulfillment.purchasing.domain import (
    PurchaseLineView,
    PurchaseOrderView,
    ReceiptResult,
    ReceiptView,
    SuggestionGroup,
    SupplierView,
)
from fulfillment.purchasing.models import PurchaseStatus as P
from fulfillment.purchasing.models import purchase_order_lines as pol
from fulfillment.purchasing.models import purchase_orders as po
from fulfillment.purchasing.models import purchase_receipts, suppliers
from fulfillment.sequences import next_value
from scrm.core.clock import local
from scrm.core.errors import InvalidInput
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime
from scrm.governance.approvals import services as approvals

SEQUENCE = "purchase"
MAX_LINES = 100


# ---- suppliers ----------------------------------------------------------------------------------------------
def _supplier(r: Any) -> SupplierView:
    return SupplierView(int(r.id), r.name, r.contact, r.phone, int(r.lead_time_days), bool(r.active))


async def _supplier_row(conn: AsyncConnection, supplier_id: int) -> Any:
    row = (await conn.execute(sa.select(suppliers).where(suppliers.c.id == supplier_id))).first()
    if row is None:
        raise d.SupplierNotFound("没有这个供应商 (supplier not found)", supplier_id=supplier_id)
    return row


async def _name_taken(conn: AsyncConnection, name: str, except_id: int | None = None) -> None:
    q = sa.select(suppliers.c.id).where(suppliers.c.name == name)
    if except_id is not None:
        q = q.where(suppliers.c.id != except_id)
    if (await conn.execute(q)).first() is not None:
        raise d.DuplicateSupplier(f"已有同名供应商：{name} (a supplier with this name exists)", name=name)


async def create_supplier(rt: Runtime, *, name: str, contact: str = "", phone: str = "", lead_time_days: int = 3) -> SupplierView:
    """Add an active supplier. Names are unique (a second one with the same name is refused)."""
    values = d.supplier_values({"name": name, "contact": contact, "phone": phone, "lead_time_days": lead_time_days})
    async with rt.db.write() as conn:
        await _name_taken(conn, values["name"])
        new_id = (
            await conn.execute(suppliers.insert().values(**values, active=True, created_at=rt.clock.now()).returning(suppliers.c.id))
        ).scalar_one()
        return _supplier(await _supplier_row(conn, int(new_id)))


async def update_supplier(rt: Runtime, supplier_id: int, **changes: Any) -> SupplierView:
    """Change name, contact, phone, lead_time_days or active of a supplier; invalid values change nothing."""
    values = d.supplier_values(changes)
    async with rt.db.write() as conn:
        await _supplier_row(conn, supplier_id)
        if "name" in values:
            await _name_taken(conn, values["name"], except_id=supplier_id)
        if values:
            await conn.execute(suppliers.update().where(suppliers.c.id == supplier_id).values(**values))
        return _supplier(await _supplier_row(conn, supplier_id))


async def deactivate_supplier(rt: Runtime, supplier_id: int) -> SupplierView:
    """No new purchase orders to this supplier; its open ones can still be received. Repeating changes nothing."""
    return await update_supplier(rt, supplier_id, active=False)


async def list_suppliers(rt: Runtime, *, active_only: bool = False) -> list[SupplierView]:
    async with rt.db.read() as conn:
        q = sa.select(suppliers).order_by(suppliers.c.active.desc(), suppliers.c.name)
        if active_only:
            q = q.where(suppliers.c.active.is_(True))
        return [_supplier(r) for r in await conn.execute(q)]


async def get_supplier(rt: Runtime, supplier_id: int) -> SupplierView:
    async with rt.db.read() as conn:
        return _supplier(await _supplier_row(conn, supplier_id))


# ---- purchase orders ----------------------------------------------------------------------------------------
async def _view(conn: AsyncConnection, po_id: int) -> PurchaseOrderView:
    row = (await conn.execute(sa.select(po).where(po.c.id == po_id))).one()
    sup = await _supplier_row(conn, int(row.supplier_id))
    lines = await conn.execute(
        sa.select(pol, products.c.sku, products.c.name, products.c.unit)
        .join(products, products.c.id == pol.c.product_id)
        .where(pol.c.purchase_order_id == po_id)
        .order_by(pol.c.id)
    )
    receipts = await conn.execute(
        sa.select(purchase_receipts).where(purchase_receipts.c.purchase_order_id == po_id).order_by(purchase_receipts.c.id)
    )
    return PurchaseOrderView(
        id=int(row.id),
        number=row.number,
        supplier=_supplier(sup),
        status=row.status,
        note=row.note,
        created_at=row.created_at,
        ordered_at=row.ordered_at,
        expected_on=row.expected_on,
        closed_at=row.closed_at,
        version=int(row.version),
        lines=[
            PurchaseLineView(int(ln.product_id), ln.sku, ln.name, ln.unit, int(ln.qty), int(ln.received_qty), int(ln.unit_cost_fen))
            for ln in lines
        ],
        receipts=[ReceiptView(r.reference, r.received_at, r.received_by) for r in receipts],
    )


async def _load_for_update(conn: AsyncConnection, dialect: str, number: str) -> Any:
    q = sa.select(po).where(po.c.number == number.strip().upper())
    if dialect == "postgresql":
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        raise d.PurchaseNotFound(f"没有找到采购单 {number} (purchase order not found)", number=number)
    return row


async def _set_status(conn: AsyncConnection, row: Any, target: str, now: dt.datetime, **values: Any) -> None:
    d.check_transition(row.status, target)
    result = await conn.execute(
        po.update().where(po.c.id == row.id, po.c.version == row.version).values(status=target, version=row.version + 1, **values)
    )
    if result.rowcount != 1:
        raise d.StalePurchase("采购单刚刚被修改过，请重试 (the purchase order changed meanwhile; retry)")


async def _resolve_lines(conn: AsyncConnection, lines: list[tuple[str, int, int]]) -> list[tuple[int, int, int]]:
    """``[(sku, qty, unit_cost_fen)]`` → ``[(product_id, qty, cost)]``: validated, the same SKU twice summed."""
    if not lines:
        raise InvalidInput("采购单至少要有一行 (a purchase order needs at least one line)", field="lines")
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"一张采购单最多 {MAX_LINES} 行 (at most {MAX_LINES} lines)", field="lines")
    typed = {sku.strip() for sku, _, _ in lines}
    rows = await conn.execute(sa.select(products).where(products.c.sku.in_(sorted(typed | {s.upper() for s in typed}))))
    found = {r.sku: r for r in rows}
    merged: dict[str, tuple[int, int]] = {}
    for raw, qty, cost in lines:
        sku, qty, cost = d.validate_purchase_line(d.match_sku(raw, found), qty, cost, max_qty=MAX_QTY)
        if sku not in found or not found[sku].active:
            raise ProductNotFound(f"没有这个商品：{sku} (unknown or inactive sku)", sku=sku)
        if sku in merged and merged[sku][1] != cost:
            raise InvalidInput(f"{sku} 出现两次且单价不同 (the same SKU twice with different costs)", field="lines", sku=sku)
        merged[sku] = (merged.get(sku, (0, cost))[0] + qty, cost)
        if merged[sku][0] > MAX_QTY:
            raise InvalidInput(f"{sku} 的采购数量过大 (qty too large)", field="lines", sku=sku)
    return [(int(found[sku].id), qty, cost) for sku, (qty, cost) in merged.items()]


async def _insert_po(
    conn: AsyncConnection, rt: Runtime, supplier_id: int, lines: list[tuple[int, int, int]], note: str, expected_on: dt.date | None
) -> int:
    sup = await _supplier_row(conn, supplier_id)
    if not sup.active:
        raise d.SupplierInactive(f"供应商 {sup.name} 已停用 (supplier is inactive)", supplier_id=supplier_id)
    if len(note) > 500:
        raise InvalidInput("备注不超过 500 字 (note ≤ 500 chars)", field="note")
    number = d.purchase_number(await next_value(conn, rt.db.dialect, SEQUENCE))
    warehouse_id = await inventory.default_warehouse(conn, rt.db.dialect)
    po_id = (
        await conn.execute(
            po.insert()
            .values(
                number=number,
                supplier_id=supplier_id,
                status=P.DRAFT,
                warehouse_id=warehouse_id,
                note=note.strip(),
                created_at=rt.clock.now(),
                expected_on=expected_on,
            )
            .returning(po.c.id)
        )
    ).scalar_one()
    await conn.execute(
        pol.insert(), [{"purchase_order_id": po_id, "product_id": p, "qty": q, "unit_cost_fen": c, "received_qty": 0} for p, q, c in lines]
    )
    return int(po_id)


async def create_purchase_order(
    rt: Runtime, *, supplier_id: int, lines: list[tuple[str, int, int]], note: str = "", expected_on: dt.date | None = None
) -> PurchaseOrderView:
    """A draft purchase order written by hand: ``lines=[(sku, qty, unit_cost_fen)]`` to an active supplier.
    Bad lines (unknown SKU, qty ≤ 0, negative cost) are refused and nothing is created."""
    async with rt.db.write() as conn:
        resolved = await _resolve_lines(conn, lines)
        return await _view(conn, await _insert_po(conn, rt, supplier_id, resolved, note, expected_on))


async def set_draft_lines(rt: Runtime, number: str, lines: list[tuple[str, int, int]]) -> PurchaseOrderView:
    """Replace the lines of a draft (quantities and costs as agreed with the supplier). Only drafts change."""
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, number)
        if row.status != P.DRAFT:
            raise d.InvalidPurchaseTransition("只有草稿采购单可以修改 (only a draft can change)", status=row.status)
        resolved = await _resolve_lines(conn, lines)
        await conn.execute(pol.delete().where(pol.c.purchase_order_id == row.id))
        await conn.execute(
            pol.insert(),
            [{"purchase_order_id": row.id, "product_id": p, "qty": q, "unit_cost_fen": c, "received_qty": 0} for p, q, c in resolved],
        )
        await conn.execute(po.update().where(po.c.id == row.id).values(version=row.version + 1))
        return await _view(conn, int(row.id))


async def place_purchase_order(
    rt: Runtime, number: str, *, expected_on: dt.date | None = None, approved: bool = False
) -> PurchaseOrderView:
    """Send a draft to its supplier: draft → ordered, expected on the given date or today + the supplier's lead
    time. Every line needs a cost > 0 (it becomes the product's cost on receipt). Placing twice changes nothing.
    When an approval rule on purchase orders matches, the order waits ``pending_approval`` (not sent) and only
    ``approved=True`` (the approval's decision) sends it."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, number)
        if row.status in (P.ORDERED, P.PARTIALLY_RECEIVED, P.RECEIVED):
            return await _view(conn, int(row.id))
        if row.status == P.PENDING_APPROVAL and not approved:
            raise d.PurchaseAwaitingApproval(f"采购单 {row.number} 正在等待审批，通过后自动下单 (awaiting approval)", number=row.number)
        sup = await _supplier_row(conn, int(row.supplier_id))
        if not sup.active:
            raise d.SupplierInactive(f"供应商 {sup.name} 已停用 (supplier is inactive)", supplier_id=int(sup.id))
        view = await _view(conn, int(row.id))
        free = [ln.sku for ln in view.lines if ln.unit_cost_fen <= 0]
        if free:
            raise d.PurchaseCostMissing(f"请先填写采购单价：{', '.join(free)} (unit cost missing)", skus=free)
        if row.status == P.DRAFT:
            summary = f"采购单 {row.number}（{sup.name}，{format_fen(view.total_fen)}）"
            facts = {"amount_fen": view.total_fen, "supplier": sup.name}
            waiting = await approvals.request_approval(
                conn, now, doc_type="purchase_order", doc_ref=row.number, summary=summary, facts=facts
            )
            if waiting is not None:  # the date asked for is kept for when it is approved
                await _set_status(conn, row, P.PENDING_APPROVAL, now, **({"expected_on": expected_on} if expected_on else {}))
                return await _view(conn, int(row.id))
        due = expected_on or row.expected_on or local(now).date() + dt.timedelta(days=int(sup.lead_time_days))
        await _set_status(conn, row, P.ORDERED, now, ordered_at=now, expected_on=due)
        return await _view(conn, int(row.id))


async def return_to_draft(rt: Runtime, number: str, *, reason: str) -> PurchaseOrderView:
    """Its approval was rejected (or withdrawn): the purchase order is a draft again, with the reason in its note.
    An order no longer waiting changes nothing."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, number)
        if row.status == P.PENDING_APPROVAL:
            note = (row.note + f"\n{reason.strip()[:200]}").strip()
            await _set_status(conn, row, P.DRAFT, now, note=note)
        return await _view(conn, int(row.id))


async def cancel_purchase_order(rt: Runtime, number: str, *, reason: str = "") -> PurchaseOrderView:
    """Cancel a draft or an ordered purchase order nothing of which has arrived. Refused once goods were received
    (error, nothing changed); cancelling a cancelled order changes nothing."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, number)
        if row.status == P.CANCELLED:
            return await _view(conn, int(row.id))
        received = (
            await conn.execute(sa.select(sa.func.coalesce(sa.func.sum(pol.c.received_qty), 0)).where(pol.c.purchase_order_id == row.id))
        ).scalar_one()
        if received or row.status in (P.PARTIALLY_RECEIVED, P.RECEIVED):
            raise d.PurchaseHasReceipts(f"采购单 {row.number} 已有到货，不能取消 (goods were received; cannot cancel)", number=row.number)
        note = (row.note + f"\n取消：{reason.strip()[:200]}").strip() if reason.strip() else row.note
        if row.status == P.PENDING_APPROVAL:  # nobody needs to decide on it any more
            await approvals.withdraw(conn, now, "purchase_order", row.number, reason or "采购单已取消")
        await _set_status(conn, row, P.CANCELLED, now, closed_at=now, note=note)
        return await _view(conn, int(row.id))


async def receive_purchase(
    rt: Runtime, number: str, lines: list[tuple[str, int]] | None = None, *, reference: str, actor: str = ""
) -> ReceiptResult:
    """Post a delivery (full when ``lines`` is None, else ``[(sku, qty)]``) against an ordered purchase order.

    Guarantees: once per (purchase order, reference) — a repeated reference posts nothing and reports
    ``duplicate``; more than outstanding, an SKU not on the order, or a draft/cancelled order → error, nothing
    changed. In one transaction: ledger receipts (reference = PO number + delivery note), received quantities,
    product cost = unit cost, status partially_received / received. Then backorders of each received product are
    released oldest first (each release tells its customer via the outbox); a retry of the same reference repeats
    only this release, so a crash in between heals."""
    ref = d.validate_reference(reference)
    now = rt.clock.now()
    posted: dict[str, int] = {}
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, number)
        seen = (
            await conn.execute(
                sa.select(purchase_receipts.c.id).where(
                    purchase_receipts.c.purchase_order_id == row.id, purchase_receipts.c.reference == ref
                )
            )
        ).first()
        view = await _view(conn, int(row.id))
        if seen is None:
            if row.status not in d.RECEIVABLE_STATUSES:
                hint = "请先下单" if row.status == P.DRAFT else d.PURCHASE_STATUS_ZH.get(row.status, row.status)
                raise d.InvalidPurchaseTransition(
                    f"采购单 {row.number} 不能收货：{hint} (cannot receive in status {row.status})", status=row.status
                )
            outstanding = {ln.sku: ln.outstanding for ln in view.lines}
            typed = None if lines is None else [(d.match_sku(sku, outstanding), qty) for sku, qty in lines]
            posted = d.validate_receipt(outstanding, typed)
            await _post_receipt(conn, rt, row, view, posted, ref, actor, now)
            view = await _view(conn, int(row.id))
    filled: dict[str, int] = {}
    for ln in view.lines:
        if ln.sku in posted or (seen is not None and ln.received_qty):
            got = await orders_backorders.fill_backorders(rt, ln.product_id)
            if got:
                filled[ln.sku] = got
    return ReceiptResult(view, posted, filled, duplicate=seen is not None)


async def _post_receipt(
    conn: AsyncConnection, rt: Runtime, row: Any, view: PurchaseOrderView, posted: dict[str, int], ref: str, actor: str, now: dt.datetime
) -> None:
    await conn.execute(purchase_receipts.insert().values(purchase_order_id=row.id, reference=ref, received_at=now, received_by=actor[:64]))
    ledger_ref = f"{row.number} {ref}"[:128]
    after: list[tuple[int, int]] = []
    for ln in sorted(view.lines, key=lambda x: x.product_id):  # lock stock rows in id order, as allocation does
        qty = posted.get(ln.sku, 0)
        after.append((ln.qty, ln.received_qty + qty))
        if not qty:
            continue
        await inventory.receive(conn, rt.db.dialect, ln.product_id, int(row.warehouse_id), qty, now, reference=ledger_ref)
        await conn.execute(
            pol.update()
            .where(pol.c.purchase_order_id == row.id, pol.c.product_id == ln.product_id)
            .values(received_qty=pol.c.received_qty + qty)
        )
        await conn.execute(products.update().where(products.c.id == ln.product_id).values(cost_fen=ln.unit_cost_fen, updated_at=now))
    status = d.status_after_receipt(after)
    await _set_status(conn, row, status, now, closed_at=now if status == P.RECEIVED else None)


async def get_purchase_order(rt: Runtime, number: str) -> PurchaseOrderView:
    async with rt.db.read() as conn:
        q = sa.select(po.c.id).where(po.c.number == number.strip().upper())
        found = (await conn.execute(q)).first()
        if found is None:
            raise d.PurchaseNotFound(f"没有找到采购单 {number} (purchase order not found)", number=number)
        return await _view(conn, int(found.id))


async def list_purchase_orders(rt: Runtime, *, status: str = "", limit: int = 100) -> list[PurchaseOrderView]:
    """Purchase orders newest first, optionally of one status."""
    async with rt.db.read() as conn:
        q = sa.select(po.c.id).order_by(po.c.created_at.desc(), po.c.id.desc()).limit(limit)
        if status:
            q = q.where(po.c.status == status)
        return [await _view(conn, int(r.id)) for r in (await conn.execute(q)).all()]


# ---- suggestions --------------------------------------------------------------------------------------------
async def stock_positions(conn: AsyncConnection) -> list[d.StockPosition]:
    """Every active product with its available stock, quantity on order, backorders and last supplier/cost —
    four grouped subqueries and a window function, one round trip."""
    levels = (
        sa.select(stock_levels.c.product_id, sa.func.sum(stock_levels.c.on_hand - stock_levels.c.allocated).label("available"))
        .group_by(stock_levels.c.product_id)
        .subquery()
    )
    on_order = (
        sa.select(pol.c.product_id, sa.func.sum(pol.c.qty - pol.c.received_qty).label("qty"))
        .join(po, po.c.id == pol.c.purchase_order_id)
        .where(po.c.status.in_(d.OPEN_PURCHASE_STATUSES))
        .group_by(pol.c.product_id)
        .subquery()
    )
    waiting = (
        sa.select(order_lines.c.product_id, sa.func.sum(order_lines.c.qty - order_lines.c.allocated_qty).label("qty"))
        .join(orders_table, orders_table.c.id == order_lines.c.order_id)
        .where(
            orders_table.c.status.in_([OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED]),
            order_lines.c.allocated_qty < order_lines.c.qty,
        )
        .group_by(order_lines.c.product_id)
        .subquery()
    )
    # The last supplier: the newest purchase order that was not cancelled, else the newest cancelled one.
    cancelled_last = sa.case((po.c.status == P.CANCELLED, 1), else_=0)
    ranked = (
        sa.select(
            pol.c.product_id,
            po.c.supplier_id,
            pol.c.unit_cost_fen,
            sa.func.row_number()
            .over(partition_by=pol.c.product_id, order_by=(cancelled_last, po.c.created_at.desc(), po.c.id.desc()))
            .label("rn"),
        )
        .join(po, po.c.id == pol.c.purchase_order_id)
        .subquery()
    )
    last = sa.select(ranked.c.product_id, ranked.c.supplier_id, ranked.c.unit_cost_fen).where(ranked.c.rn == 1).subquery()
    q = (
        sa.select(
            products.c.id,
            products.c.sku,
            products.c.name,
            products.c.unit,
            products.c.reorder_point,
            products.c.reorder_qty,
            products.c.cost_fen,
            sa.func.coalesce(levels.c.available, 0).label("available"),
            sa.func.coalesce(on_order.c.qty, 0).label("on_order"),
            sa.func.coalesce(waiting.c.qty, 0).label("backordered"),
            last.c.supplier_id,
            last.c.unit_cost_fen,
        )
        .select_from(
            products.outerjoin(levels, levels.c.product_id == products.c.id)
            .outerjoin(on_order, on_order.c.product_id == products.c.id)
            .outerjoin(waiting, waiting.c.product_id == products.c.id)
            .outerjoin(last, last.c.product_id == products.c.id)
        )
        .where(products.c.active.is_(True))
        .order_by(products.c.sku)
    )
    return [
        d.StockPosition(
            product_id=int(r.id),
            sku=r.sku,
            name=r.name,
            unit=r.unit,
            available=int(r.available),
            on_order=int(r.on_order),
            backordered=int(r.backordered),
            reorder_point=r.reorder_point,
            reorder_qty=r.reorder_qty,
            supplier_id=None if r.supplier_id is None else int(r.supplier_id),
            unit_cost_fen=int(r.unit_cost_fen if r.unit_cost_fen is not None else (r.cost_fen or 0)),
        )
        for r in await conn.execute(q)
    ]


async def suggest_purchases(rt: Runtime) -> list[SuggestionGroup]:
    """What to buy now, grouped by each product's last supplier (unassigned last): products whose available plus
    on-order stock is at or below the reorder point, or that customers are waiting for. Reads only."""
    async with rt.db.read() as conn:
        groups = d.group_by_supplier(d.suggest(await stock_positions(conn)))
        by_id = {int(r.id): _supplier(r) for r in await conn.execute(sa.select(suppliers))}
    return [SuggestionGroup(by_id.get(sid) if sid is not None else None, items) for sid, items in groups.items()]


async def draft_from_suggestions(rt: Runtime, *, supplier_id: int, skus: list[str] | None = None, note: str = "") -> PurchaseOrderView:
    """A draft purchase order to ``supplier_id`` with the current suggestions: those last bought from this
    supplier, or exactly ``skus`` (e.g. never-bought products). Computed inside the write transaction, and drafts
    count as on order, so pressing the button twice makes one draft and then reports nothing to buy."""
    async with rt.db.write() as conn:
        positions = await stock_positions(conn)
        known = {p.sku for p in positions}
        wanted = {d.match_sku(s, known) for s in skus} if skus else None
        picked = [s for s in d.suggest(positions) if (s.sku in wanted if wanted is not None else s.position.supplier_id == supplier_id)]
        if not picked:
            raise d.NothingToPurchase("目前没有需要向该供应商采购的商品 (nothing to buy from this supplier now)", supplier_id=supplier_id)
        lines = [(s.position.product_id, s.qty, s.position.unit_cost_fen) for s in picked]
        return await _view(conn, await _insert_po(conn, rt, supplier_id, lines, note or "由补货建议生成", None))
