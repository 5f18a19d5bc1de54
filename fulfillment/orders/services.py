"""Order use cases: drafts (quoted in chat), confirmation with allocation, cancellation, expiry. Views and queries
are in :mod:`fulfillment.orders.queries`, backorders and low-stock alerts in :mod:`fulfillment.orders.backorders`.

Every status change is a guarded update (``WHERE id = :id AND version = :v``) plus an order_history row, and
every change a customer must hear about writes an outbox row in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.domain import PricedLine
from fulfillment.catalog.services import categories_of, merge_items, price_items
from fulfillment.inventory import services as inventory
from fulfillment.orders import discounts, placement
from fulfillment.orders.backorders import check_low_stock
from fulfillment.orders.domain import (
    AwaitingApproval,
    CreditExposure,
    CreditHold,
    DraftExpired,
    InvalidTransition,
    OrderNotFound,
    StaleOrder,
    check_transition,
    exceeds_credit_limit,
    order_facts,
    order_number,
)
from fulfillment.orders.models import OrderStatus as S
from fulfillment.orders.models import order_history, order_lines, orders
from fulfillment.orders.queries import (
    LineView,
    OrderView,
    get_order,
    load_view,
)
from fulfillment.sequences import next_value
from scrm.core import audit, outbox
from scrm.core.money import format_fen
from scrm.core.runtime import ResourceKey, Runtime
from scrm.governance.approvals import services as approvals

DRAFT_TTL = dt.timedelta(hours=2)

log = logging.getLogger(__name__)


def _history_row(
    order_id: int,
    from_status: str | None,
    to_status: str,
    event: str,
    now: dt.datetime,
    actor: str = "",
    note: str = "",
    ref: str | None = None,
) -> dict[str, Any]:
    return dict(order_id=order_id, from_status=from_status, to_status=to_status, event=event, actor=actor, note=note, ref=ref, at=now)


async def _history(conn: AsyncConnection, order_id: int, *args: Any, **kw: Any) -> None:
    """One order_history row (the arguments of :func:`_history_row`)."""
    await conn.execute(order_history.insert().values(**_history_row(order_id, *args, **kw)))


def _line_row(order_id: int, ln: PricedLine, **more: Any) -> dict[str, Any]:
    """An order_lines row for a priced line (``more``: allocation columns when the order is confirmed at once)."""
    return {
        "order_id": order_id,
        "product_id": ln.product_id,
        "sku": ln.sku,
        "name": ln.name,
        "unit": ln.unit,
        "qty": ln.qty,
        "unit_price_fen": ln.unit_price_fen,
        "line_total_fen": ln.line_total_fen,
        **more,
    }


async def _write_lines(conn: AsyncConnection, order_id: int, lines: list[PricedLine]) -> int:
    await conn.execute(order_lines.delete().where(order_lines.c.order_id == order_id))
    await conn.execute(
        order_lines.insert(),
        [_line_row(order_id, ln) for ln in lines],
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
    prices: Mapping[str, int] | None = None,
) -> OrderView:
    """Create a pending order (a draft quoted to the customer, expiring after DRAFT_TTL), or — with
    ``confirm=True`` (sidebar/API, where a person already agreed) — create, allocate and confirm it in one
    transaction. With ``ref`` (the step creating it, e.g. a chat message id) a repeated call returns the first order.
    ``prices``: unit prices (fen) agreed for some SKUs (a quote accepted) instead of the catalog's."""
    now = rt.clock.now()
    if ref is not None and (replayed := await _replay(rt, ref, confirm=confirm, actor=actor)) is not None:
        return replayed
    gates = _fast_path_gates(rt) if confirm and not prices else None
    if gates is not None:
        placed = await _place_in_one_statement(
            rt, gates, customer_id, merge_items(items), source, channel, salesperson_userid, actor, ref, now
        )
        if placed is not None:
            return placed
        # Not placed: the gate sends it the general way — or a concurrent call with the same ref placed it first.
        if ref is not None and (replayed := await _replay(rt, ref, confirm=confirm, actor=actor)) is not None:
            return replayed
    try:
        return await _create_in_one_transaction(
            rt, customer_id, items, source, channel, salesperson_userid, actor, confirm=confirm, ref=ref, now=now, prices=prices
        )
    except sa.exc.IntegrityError:
        # A concurrent call with the same ref wrote its order first (orders.source_ref is unique): this one wrote
        # nothing (its transaction rolled back) and answers with that order, as a later replay would.
        if ref is not None and (replayed := await _replay(rt, ref, confirm=confirm, actor=actor)) is not None:
            return replayed
        raise


async def _create_in_one_transaction(
    rt: Runtime,
    customer_id: int,
    items: list[tuple[str, int]],
    source: str,
    channel: str,
    salesperson_userid: str,
    actor: str,
    *,
    confirm: bool,
    ref: str | None,
    now: dt.datetime,
    prices: Mapping[str, int] | None = None,
) -> OrderView:
    """:func:`create_order`'s general path: price, number, write, allocate (confirmed) and record in one transaction."""
    async with rt.db.write() as conn:
        lines = await price_items(conn, items)
        if prices:
            lines = [dataclasses.replace(ln, unit_price_fen=int(prices[ln.sku])) if ln.sku in prices else ln for ln in lines]
        number = order_number(await next_value(conn, rt.db.dialect, "order"))
        total = sum(ln.line_total_fen for ln in lines)
        waiting = None
        if confirm:
            facts = order_facts(total, sum(ln.qty for ln in lines), [ln.category for ln in lines], source)
            waiting = await _ask_approval(conn, number, total, facts, customer_id, salesperson_userid, now, actor)
            confirm = waiting is None  # an approval waits: written as a draft, then marked pending_approval below
        held = await _over_credit_limit(conn, rt, customer_id, total, None) if confirm else None
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
        left: dict[tuple[int, int], inventory.Level] = {}
        if confirm:
            warehouse_id = await inventory.default_warehouse_of(rt, conn)
            wanted = [(ln.product_id, warehouse_id, ln.qty) for ln in lines]
            allocation = await inventory.allocate_detailed(conn, rt.db.dialect, wanted, now, order_id=order_id, reference=number)
            taken, left = allocation.taken, allocation.levels
        line_ids = (
            (
                await conn.execute(
                    order_lines.insert().returning(order_lines.c.id, sort_by_parameter_order=True),
                    [_line_row(order_id, ln, allocated_qty=got, warehouse_id=warehouse_id) for ln, got in zip(lines, taken, strict=True)],
                )
            )
            .scalars()
            .all()
        )
        history = [_history_row(order_id, None, S.PENDING, "created", now, actor, ref=ref)]
        if confirm:
            history.append(_history_row(order_id, S.PENDING, S.CONFIRMED, "confirmed", now, actor))
            backordered = [_short(ln.sku, ln.name, ln.unit, ln.qty, got) for ln, got in zip(lines, taken, strict=True) if got < ln.qty]
            await outbox.add_many(
                conn,
                [
                    ("order.confirmed", {"order_id": order_id, "backordered": backordered, "told_in_chat": False}),
                    ("billing.order_confirmed", {"order_id": order_id}),
                ],
                now,
            )
            # Watched: a reorder point, or allocation left customers short (out of stock shows, reorder point or not).
            watched = [
                ln.product_id
                for ln, got in zip(lines, taken, strict=True)
                if ln.reorder_point is not None or got < ln.qty or left[(ln.product_id, warehouse_id or 0)].available <= 0
            ]
            await check_low_stock(conn, rt, watched, now, watched_only=True)
        await conn.execute(order_history.insert(), history)
        applied = await discounts.apply_to_order(conn, rt, order_id, customer_id, lines=_discount_lines(lines), written_subtotal=total)
        if confirm and applied.refs:  # a brand-new order holds only what apply_to_order just chose
            await discounts.order_confirmed(conn, rt, order_id)
        if held is not None:
            await _hold(conn, await _load_for_update(conn, rt.db.dialect, order_id), held, now, actor)
            return await load_view(conn, order_id)
        if waiting is not None:
            await _wait_for_approval(conn, await _load_for_update(conn, rt.db.dialect, order_id), waiting, now, actor)
            return await load_view(conn, order_id)
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


async def _replay(rt: Runtime, ref: str, *, confirm: bool, actor: str) -> OrderView | None:
    """The order a create with this ``ref`` already made (confirmed now if asked), or None."""
    async with rt.db.read() as conn:
        existing = (await conn.execute(sa.select(orders.c.id).where(orders.c.source_ref == ref))).first()
    if existing is None:
        return None
    found = await get_order(rt, int(existing.id))
    # A replay of a create that went on credit hold (or waits for approval) returns that order: only a release
    # (an approval) confirms it.
    return await confirm_order(rt, found.id, actor=actor) if confirm and found.status not in (S.ON_HOLD, S.PENDING_APPROVAL) else found


async def _place_in_one_statement(
    rt: Runtime,
    gates: tuple[discounts.CustomerCondition | None, discounts.CustomerCondition | None],
    customer_id: int,
    merged: dict[str, int],
    source: str,
    channel: str,
    salesperson_userid: str,
    actor: str,
    ref: str | None,
    now: dt.datetime,
) -> OrderView | None:
    """:func:`create_order` with ``confirm=True`` as one statement, shared with the placements arriving meanwhile
    (:mod:`fulfillment.orders.placement`); None when the general path must place it (its gate) or a concurrent call
    placed its ``ref`` first (nothing of it written)."""
    if not rt.has(inventory.DEFAULT_WAREHOUSE):
        async with rt.db.write() as conn:
            await inventory.default_warehouse_of(rt, conn)
    placed = await placement.place_confirmed(
        rt,
        placement.Placement(customer_id, merged, source, channel, salesperson_userid, actor, ref, now),
        warehouse_id=rt.get(inventory.DEFAULT_WAREHOUSE),
        credit_limited=gates[0],
        discount_possible=gates[1],
    )
    if placed is None:
        return None
    view, due = placed
    if due:
        async with rt.db.write() as conn:
            await check_low_stock(conn, rt, due, now, watched_only=True)
    return view


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
            return await load_view(conn, order_id)
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
    rt: Runtime, order_id: int, *, actor: str = "", told_in_chat: bool = False, release_hold: bool = False, approved: bool = False
) -> OrderView:
    """Confirm a pending draft: allocate stock line by line (what is short becomes backorder), move to confirmed
    and queue the customer notice — one transaction. Confirming an already-confirmed order changes nothing.
    When an approval rule matches, the order waits ``pending_approval`` instead (nothing allocated) and only
    ``approved=True`` (the approval's decision) confirms it, else AwaitingApproval. When the customer's credit
    limit would be exceeded the order goes on_hold instead (nothing allocated, the salesperson alerted); a held
    order is confirmed only with ``release_hold=True`` (billing.release_hold), otherwise CreditHold is raised."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, order_id)
        if row.status in (S.CONFIRMED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.COMPLETED):
            return await load_view(conn, order_id)
        if row.status == S.PENDING_APPROVAL and not approved:
            raise AwaitingApproval(f"订单 {row.number} 正在等待审批，审批通过后自动确认 (awaiting approval)", number=row.number)
        if row.status == S.ON_HOLD and not release_hold:
            raise CreditHold(f"订单 {row.number} 超出信用额度，待财务审核放行 (on credit hold; finance releases it)", number=row.number)
        if row.status == S.PENDING and row.expires_at is not None and row.expires_at <= now:
            await _set_status(conn, row, S.EXPIRED, now, "expired", "system", closed_at=now)
            await discounts.order_closed(conn, rt, order_id)
            expired = True
        else:
            expired = False
            waiting = None
            if row.status == S.PENDING:
                lines = (await conn.execute(sa.select(order_lines.c.sku, order_lines.c.qty).where(order_lines.c.order_id == row.id))).all()
                categories = await categories_of(conn, [ln.sku for ln in lines])
                facts = order_facts(int(row.subtotal_fen), sum(int(ln.qty) for ln in lines), categories, row.source)
                waiting = await _ask_approval(
                    conn, row.number, int(row.subtotal_fen), facts, int(row.customer_id), row.salesperson_userid, now, actor
                )
            if waiting is not None:
                await _wait_for_approval(conn, row, waiting, now, actor, told_in_chat=told_in_chat)
            else:
                await _confirm_in(conn, rt, row, now, actor, told_in_chat, credit_check=not release_hold)
    if expired:
        raise DraftExpired("这张订单已过期，请重新下单 (the draft expired; order again)", number=row.number)
    return await get_order(rt, order_id)


async def _confirm_in(
    conn: AsyncConnection, rt: Runtime, row: Any, now: dt.datetime, actor: str, told_in_chat: bool, *, credit_check: bool = True
) -> None:
    held = await _over_credit_limit(conn, rt, int(row.customer_id), int(row.total_fen), int(row.id)) if credit_check else None
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


class CreditExposureReader(Protocol):
    """What a customer owes and has committed, against their limit (billing knows: receivables, credit, terms).
    ``lock``: taken inside the confirming transaction, so two orders cannot both slip under the limit."""

    async def __call__(self, conn: AsyncConnection, customer_id: int, *, exclude_order_id: int | None, lock: bool) -> CreditExposure: ...


# Installed by the composition root (billing's reader); without one, orders are not credit-checked.
CREDIT_EXPOSURE: ResourceKey[CreditExposureReader] = ResourceKey("credit_exposure")

# "This customer has a credit limit" as a SQL condition on the customer id, installed with the reader it belongs
# to: one-statement placement confirms orders of customers without a limit and leaves the others to the reader.
CREDIT_LIMITED: ResourceKey[tuple[CreditExposureReader, discounts.CustomerCondition]] = ResourceKey("credit_limited")


def install_credit_check(rt: Runtime, reader: CreditExposureReader, limited: discounts.CustomerCondition | None = None) -> None:
    """Orders check the credit limit with ``reader``; ``limited`` lets placement skip it for customers with no limit."""
    rt.put(CREDIT_EXPOSURE, reader)
    if limited is not None:
        rt.put(CREDIT_LIMITED, (reader, limited))


def _fast_path_gates(rt: Runtime) -> tuple[discounts.CustomerCondition | None, discounts.CustomerCondition | None] | None:
    """The (credit, discount) conditions one-statement placement checks, or None when a port installed here has no
    condition to check (then every order goes the general way)."""
    if rt.db.dialect != "postgresql":
        return None
    credit = None
    if rt.has(CREDIT_EXPOSURE):
        if not rt.has(CREDIT_LIMITED) or rt.get(CREDIT_LIMITED)[0] is not rt.get(CREDIT_EXPOSURE):
            return None
        credit = rt.get(CREDIT_LIMITED)[1]
    possible = discounts.possible_of(rt)
    if discounts.provider_of(rt) is not None and possible is None:
        return None
    return credit, possible


async def _over_credit_limit(
    conn: AsyncConnection, rt: Runtime, customer_id: int, total_fen: int, order_id: int | None
) -> CreditExposure | None:
    """The customer's exposure when confirming ``total_fen`` more would exceed their credit limit, else None."""
    if not rt.has(CREDIT_EXPOSURE):
        return None
    exposure = await rt.get(CREDIT_EXPOSURE)(conn, customer_id, exclude_order_id=order_id, lock=True)
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


async def _ask_approval(
    conn: AsyncConnection,
    number: str,
    total: int,
    facts: dict[str, Any],
    customer_id: int,
    salesperson_userid: str,
    now: dt.datetime,
    actor: str = "",
) -> approvals.ApprovalView | None:
    """The approval this order must wait for, made in the order's transaction, or None when no rule applies."""
    summary = f"订单 {number}（{format_fen(total)}）"
    ask = functools.partial(
        approvals.request_approval,
        conn, now, doc_type="order", doc_ref=number, summary=summary, facts=facts,
        customer_id=customer_id, requester_userid=salesperson_userid,
    )  # fmt: skip
    if actor == "customer":  # ordered in chat: the customer asked (the lead of their salesperson, if any, decides)
        with audit.acting_as(audit.Actor("customer", f"客户#{customer_id}", "客户聊天下单")):
            return await ask()
    return await ask()


async def _wait_for_approval(
    conn: AsyncConnection, row: Any, approval: approvals.ApprovalView, now: dt.datetime, actor: str, *, told_in_chat: bool = False
) -> None:
    """An approval rule matched: the order waits, holding no stock, until ``approval.decided``."""
    note = f"按审批规则「{approval.rule_name}」等待 {'、'.join(approval.waiting_for)} 审批"
    await _set_status(conn, row, S.PENDING_APPROVAL, now, "approval_requested", actor, note=note, expires_at=None)
    payload = {"order_id": int(row.id), "approval_id": approval.id, "told_in_chat": told_in_chat}
    await outbox.add(conn, "order.awaiting_approval", payload, now)


async def cancel_order(rt: Runtime, order_id: int, *, actor: str = "", reason: str = "", rejected: bool = False) -> OrderView:
    """Cancel an order nothing of which has shipped; allocations go back to stock; the customer is told (``rejected``:
    it did not pass approval — the customer hears that politely, without the approver's words).
    Cancelling an already-cancelled order changes nothing; a shipped one is refused with a clear error."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load_for_update(conn, rt.db.dialect, order_id)
        if row.status == S.CANCELLED:
            return await load_view(conn, order_id)
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
        if row.status == S.PENDING_APPROVAL:  # nobody needs to decide on it any more
            await approvals.withdraw(conn, now, "order", row.number, reason or "订单已取消")
        await _set_status(conn, row, S.CANCELLED, now, "cancelled", actor, note=reason, closed_at=now, expires_at=None)
        await discounts.order_closed(conn, rt, order_id)
        for ln in lines:
            if ln.allocated_qty:
                await inventory.release(
                    conn, ln.product_id, ln.warehouse_id, ln.allocated_qty, now, order_id=order_id, reference=f"{row.number} cancelled"
                )
                await conn.execute(order_lines.update().where(order_lines.c.id == ln.id).values(allocated_qty=0))
        if not was_pending:
            await outbox.add(conn, "order.cancelled", {"order_id": order_id, "reason": reason, "rejected": rejected}, now)
    return await get_order(rt, order_id)


async def expire_drafts(rt: Runtime) -> int:
    """Pending drafts past their expiry become expired (they hold no stock). Returns how many.

    Each draft expires in its own transaction: a draft the customer confirmed meanwhile (StaleOrder) is left as
    it is, and one whose expiry fails (its discount could not be given back, say) is logged and tried again on the
    next tick, while the others expire now — one bad draft never keeps the rest pending."""
    now = rt.clock.now()
    async with rt.db.read() as conn:
        ids = (await conn.execute(sa.select(orders.c.id).where(orders.c.status == S.PENDING, orders.c.expires_at <= now))).scalars().all()
    count = 0
    for order_id in ids:
        try:
            async with rt.db.write() as conn:
                row = (await conn.execute(sa.select(orders).where(orders.c.id == order_id))).one()
                if row.status != S.PENDING:
                    continue
                await _set_status(conn, row, S.EXPIRED, now, "expired", "system", closed_at=now)
                await discounts.order_closed(conn, rt, int(row.id))
        except StaleOrder:
            continue
        except Exception:
            log.exception("draft expiry failed; retried on the next tick", extra={"order_id": int(order_id)})
            continue
        count += 1
    return count


# Re-exported: callers import the order use cases and views from here.


OPEN_STATUSES = (S.PENDING, S.CONFIRMED, S.ON_HOLD, S.PENDING_APPROVAL, S.PARTIALLY_SHIPPED, S.SHIPPED)


async def reassign_open_orders(
    conn: AsyncConnection, *, customer_id: int, from_userid: str, to_userid: str, now: dt.datetime, actor: str = "", note: str = ""
) -> list[str]:
    """The customer's orders that ``from_userid`` sells and that are not finished (not completed, cancelled or
    expired) get ``to_userid`` as their salesperson, in the caller's transaction, each with an order_history row
    (status unchanged). Idempotent: a second run finds none left. Returns the order numbers moved."""
    rows = (
        await conn.execute(
            sa.select(orders.c.id, orders.c.number, orders.c.status)
            .where(
                orders.c.customer_id == customer_id,
                orders.c.salesperson_userid == from_userid,
                orders.c.status.in_(OPEN_STATUSES),
            )
            .order_by(orders.c.id)
        )
    ).all()
    moved = []
    for row in rows:
        result = await conn.execute(
            orders.update()
            .where(orders.c.id == row.id, orders.c.salesperson_userid == from_userid)
            .values(salesperson_userid=to_userid, version=orders.c.version + 1, updated_at=now)
        )
        if result.rowcount == 1:
            await _history(conn, row.id, row.status, row.status, "salesperson_changed", now, actor, note or f"{from_userid} → {to_userid}")
            moved.append(str(row.number))
    return moved
