"""Stock: counters per product and warehouse, changed only together with an append-only ledger row.

Never oversell: allocation reads and changes the counters under a lock — PostgreSQL ``SELECT … FOR UPDATE`` taken
in (product_id, warehouse_id) order so concurrent orders cannot deadlock; SQLite serialises writers with
``BEGIN IMMEDIATE`` (see :meth:`scrm.core.db.Database.write`). The table's CHECK constraint
``allocated <= on_hand`` backs this up: a bug would fail loudly, not oversell.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.inventory.models import MovementKind, stock_levels, stock_movements, warehouses
from scrm.core.db import insert_ignore
from scrm.core.errors import Conflict, InvalidInput
from scrm.core.runtime import ResourceKey, Runtime


@dataclass(frozen=True)
class Level:
    on_hand: int
    allocated: int

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated


async def default_warehouse(conn: AsyncConnection, dialect: str) -> int:
    row = (await conn.execute(sa.select(warehouses.c.id).where(warehouses.c.is_default.is_(True)))).first()
    if row:
        return int(row.id)
    await conn.execute(insert_ignore(warehouses, dialect).values(code="MAIN", name="主仓库", is_default=True))
    return int((await conn.execute(sa.select(warehouses.c.id).where(warehouses.c.code == "MAIN"))).scalar_one())


DEFAULT_WAREHOUSE: ResourceKey[int] = ResourceKey("fulfillment.default_warehouse")


async def default_warehouse_of(rt: Runtime, conn: AsyncConnection) -> int:
    """:func:`default_warehouse`, remembered on the runtime: the default warehouse is made once and never changes,
    so the hot ordering path does not read it per order."""
    if rt.has(DEFAULT_WAREHOUSE):
        return rt.get(DEFAULT_WAREHOUSE)
    warehouse_id = await default_warehouse(conn, rt.db.dialect)
    rt.put(DEFAULT_WAREHOUSE, warehouse_id)
    return warehouse_id


async def _ensure_level(conn: AsyncConnection, dialect: str, product_id: int, warehouse_id: int) -> None:
    await conn.execute(
        insert_ignore(stock_levels, dialect).values(product_id=product_id, warehouse_id=warehouse_id, on_hand=0, allocated=0)
    )


async def level(conn: AsyncConnection, dialect: str, product_id: int, warehouse_id: int | None = None) -> Level:
    """Counters summed over warehouses (or of one warehouse)."""
    q = sa.select(
        sa.func.coalesce(sa.func.sum(stock_levels.c.on_hand), 0), sa.func.coalesce(sa.func.sum(stock_levels.c.allocated), 0)
    ).where(stock_levels.c.product_id == product_id)
    if warehouse_id is not None:
        q = q.where(stock_levels.c.warehouse_id == warehouse_id)
    on_hand, allocated = (await conn.execute(q)).one()
    return Level(int(on_hand), int(allocated))


async def _move(
    conn: AsyncConnection,
    product_id: int,
    warehouse_id: int,
    kind: str,
    now: dt.datetime,
    *,
    on_hand: int = 0,
    allocated: int = 0,
    order_id: int | None = None,
    shipment_id: int | None = None,
    reference: str = "",
) -> None:
    """Apply a movement to the counters and write its ledger row (same transaction, always both)."""
    if on_hand == 0 and allocated == 0:
        return
    await conn.execute(
        stock_levels.update()
        .where(stock_levels.c.product_id == product_id, stock_levels.c.warehouse_id == warehouse_id)
        .values(on_hand=stock_levels.c.on_hand + on_hand, allocated=stock_levels.c.allocated + allocated)
    )
    await conn.execute(
        stock_movements.insert().values(
            product_id=product_id,
            warehouse_id=warehouse_id,
            kind=kind,
            on_hand_delta=on_hand,
            allocated_delta=allocated,
            order_id=order_id,
            shipment_id=shipment_id,
            reference=reference,
            created_at=now,
        )
    )


async def receive(
    conn: AsyncConnection, dialect: str, product_id: int, warehouse_id: int, qty: int, now: dt.datetime, reference: str = ""
) -> None:
    await _ensure_level(conn, dialect, product_id, warehouse_id)
    await _move(conn, product_id, warehouse_id, MovementKind.RECEIPT, now, on_hand=qty, reference=reference)


async def set_on_hand(
    conn: AsyncConnection, dialect: str, product_id: int, warehouse_id: int, target: int, now: dt.datetime, reference: str = ""
) -> None:
    """Stock count: set on_hand to ``target`` by an adjustment. Refused below what is already allocated."""
    await _ensure_level(conn, dialect, product_id, warehouse_id)
    current = await _locked_levels(conn, dialect, [(product_id, warehouse_id)])
    lvl = current[(product_id, warehouse_id)]
    if target < lvl.allocated:
        raise Conflict(
            f"库存不能少于已分配的 {lvl.allocated} (on hand cannot go below the {lvl.allocated} allocated)", allocated=lvl.allocated
        )
    await _move(conn, product_id, warehouse_id, MovementKind.ADJUSTMENT, now, on_hand=target - lvl.on_hand, reference=reference)


MAX_REASON = 100


async def adjust_on_hand(
    conn: AsyncConnection, dialect: str, product_id: int, warehouse_id: int, delta: int, now: dt.datetime, *, reason: str, actor: str = ""
) -> Level:
    """A stock adjustment (报损, 盘盈, 退货入库 …): on_hand changes by ``delta`` through one ledger row whose
    reference is the reason (required). Refused below what is allocated, so nothing allocated is ever lost.
    Returns the counters after it."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("请填写调整原因 (a reason is required)", field="reason")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"调整原因不超过 {MAX_REASON} 个字 (reason too long)", field="reason")
    if delta == 0:
        raise InvalidInput("调整数量不能为 0 (delta must not be 0)", field="delta")
    await _ensure_level(conn, dialect, product_id, warehouse_id)
    lvl = (await _locked_levels(conn, dialect, [(product_id, warehouse_id)]))[(product_id, warehouse_id)]
    if lvl.on_hand + delta < lvl.allocated:
        raise Conflict(
            f"调整后在库 {lvl.on_hand + delta} 会少于已分配的 {lvl.allocated}，不能调整 (on hand cannot go below allocated)",
            allocated=lvl.allocated,
        )
    reference = f"{reason}（{actor}）" if actor else reason
    await _move(conn, product_id, warehouse_id, MovementKind.ADJUSTMENT, now, on_hand=delta, reference=reference[:128])
    return Level(lvl.on_hand + delta, lvl.allocated)


class _Levels(dict[tuple[int, int], Level]):
    def __init__(self, levels: dict[tuple[int, int], Level], missing: list[tuple[int, int]]) -> None:
        super().__init__(levels)
        self.missing = missing  # keys with no stock_levels row yet


async def _locked_levels(conn: AsyncConnection, dialect: str, keys: list[tuple[int, int]]) -> _Levels:
    """Read counters for update in one statement, locking rows in key order (PostgreSQL; concurrent orders take
    the same order, so they cannot deadlock). SQLite already holds the write lock (BEGIN IMMEDIATE)."""
    wanted = sorted(set(keys))
    q = (
        sa.select(stock_levels.c.product_id, stock_levels.c.warehouse_id, stock_levels.c.on_hand, stock_levels.c.allocated)
        .where(sa.tuple_(stock_levels.c.product_id, stock_levels.c.warehouse_id).in_(wanted))
        .order_by(stock_levels.c.product_id, stock_levels.c.warehouse_id)
    )
    if dialect == "postgresql":
        q = q.with_for_update()
    found = {(int(r.product_id), int(r.warehouse_id)): Level(int(r.on_hand), int(r.allocated)) for r in await conn.execute(q)}
    return _Levels({key: found.get(key, Level(0, 0)) for key in wanted}, [key for key in wanted if key not in found])


@dataclass(frozen=True)
class Allocation:
    taken: list[int]  # per wanted entry: how much was allocated (less than asked = backorder)
    levels: dict[tuple[int, int], Level]  # counters after the allocation


async def allocate(
    conn: AsyncConnection, dialect: str, wanted: list[tuple[int, int, int]], now: dt.datetime, *, order_id: int, reference: str = ""
) -> list[int]:
    """Allocate ``[(product_id, warehouse_id, qty), …]`` as far as stock allows; returns the quantity allocated
    per entry (less than asked = backorder). Guarantees allocated ≤ on_hand under any concurrency."""
    return (await allocate_detailed(conn, dialect, wanted, now, order_id=order_id, reference=reference)).taken


async def allocate_detailed(
    conn: AsyncConnection, dialect: str, wanted: list[tuple[int, int, int]], now: dt.datetime, *, order_id: int, reference: str = ""
) -> Allocation:
    """:func:`allocate` with the counters after it. A constant number of statements whatever the line count:
    one locking read, one batched counter update, one ledger insert."""
    levels = await _locked_levels(conn, dialect, [(p, w) for p, w, _ in wanted])
    for product_id, warehouse_id in levels.missing:  # never stocked here: a zero row, nothing to allocate
        await _ensure_level(conn, dialect, product_id, warehouse_id)
    taken: list[int] = []
    delta: dict[tuple[int, int], int] = {}
    for product_id, warehouse_id, qty in wanted:
        key = (product_id, warehouse_id)
        lvl = levels[key]
        take = max(0, min(qty, lvl.available))
        levels[key] = Level(lvl.on_hand, lvl.allocated + take)
        delta[key] = delta.get(key, 0) + take
        taken.append(take)
    moved = [(key, d) for key, d in sorted(delta.items()) if d]
    if moved:
        await conn.execute(
            stock_levels.update()
            .where(stock_levels.c.product_id == sa.bindparam("p"), stock_levels.c.warehouse_id == sa.bindparam("w"))
            .values(allocated=stock_levels.c.allocated + sa.bindparam("d")),
            [{"p": p, "w": w, "d": d} for (p, w), d in moved],
        )
        await conn.execute(
            stock_movements.insert(),
            [
                {
                    "product_id": p,
                    "warehouse_id": w,
                    "kind": MovementKind.ALLOCATION,
                    "on_hand_delta": 0,
                    "allocated_delta": d,
                    "order_id": order_id,
                    "shipment_id": None,
                    "reference": reference,
                    "created_at": now,
                }
                for (p, w), d in moved
            ],
        )
    return Allocation(taken, dict(levels))


async def release(
    conn: AsyncConnection, product_id: int, warehouse_id: int, qty: int, now: dt.datetime, *, order_id: int, reference: str = ""
) -> None:
    await _move(conn, product_id, warehouse_id, MovementKind.RELEASE, now, allocated=-qty, order_id=order_id, reference=reference)


async def ship(
    conn: AsyncConnection,
    product_id: int,
    warehouse_id: int,
    qty: int,
    now: dt.datetime,
    *,
    order_id: int,
    shipment_id: int,
    reference: str = "",
) -> None:
    await _move(
        conn,
        product_id,
        warehouse_id,
        MovementKind.SHIPMENT,
        now,
        on_hand=-qty,
        allocated=-qty,
        order_id=order_id,
        shipment_id=shipment_id,
        reference=reference,
    )


async def unship(
    conn: AsyncConnection,
    product_id: int,
    warehouse_id: int,
    qty: int,
    now: dt.datetime,
    *,
    order_id: int,
    shipment_id: int,
    reference: str = "",
) -> None:
    """A cancelled shipment: the goods are back on hand and stay reserved for their order."""
    await _move(
        conn,
        product_id,
        warehouse_id,
        MovementKind.ADJUSTMENT,
        now,
        on_hand=qty,
        allocated=qty,
        order_id=order_id,
        shipment_id=shipment_id,
        reference=reference or "shipment cancelled",
    )


@dataclass(frozen=True)
class Drift:
    product_id: int
    warehouse_id: int
    counters: Level
    ledger: Level


async def reconcile(conn: AsyncConnection) -> list[Drift]:
    """Rebuild counters from the ledger and report every (product, warehouse) where they differ."""
    ledger = (
        await conn.execute(
            sa.select(
                stock_movements.c.product_id,
                stock_movements.c.warehouse_id,
                sa.func.sum(stock_movements.c.on_hand_delta),
                sa.func.sum(stock_movements.c.allocated_delta),
            ).group_by(stock_movements.c.product_id, stock_movements.c.warehouse_id)
        )
    ).all()
    from_ledger = {(int(p), int(w)): Level(int(o or 0), int(a or 0)) for p, w, o, a in ledger}
    counters = {
        (int(r.product_id), int(r.warehouse_id)): Level(int(r.on_hand), int(r.allocated))
        for r in await conn.execute(sa.select(stock_levels))
    }
    drifts = []
    for key in sorted(set(from_ledger) | set(counters)):
        a, b = counters.get(key, Level(0, 0)), from_ledger.get(key, Level(0, 0))
        if a != b:
            drifts.append(Drift(key[0], key[1], a, b))
    return drifts
