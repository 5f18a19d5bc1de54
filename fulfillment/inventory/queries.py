"""Reads of the stock ledger for pages: a product's recent movements."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.inventory.models import MovementKind, stock_movements

KIND_ZH = {
    MovementKind.RECEIPT: "入库",
    MovementKind.ALLOCATION: "分配",
    MovementKind.RELEASE: "释放",
    MovementKind.SHIPMENT: "发货",
    MovementKind.ADJUSTMENT: "调整",
}


@dataclass(frozen=True)
class MovementRow:
    id: int
    kind: str
    on_hand_delta: int
    allocated_delta: int
    order_id: int | None
    reference: str
    created_at: dt.datetime

    @property
    def kind_zh(self) -> str:
        return KIND_ZH.get(self.kind, self.kind)


async def recent_movements(conn: AsyncConnection, product_id: int, *, limit: int = 30) -> list[MovementRow]:
    """The product's last ``limit`` ledger rows, newest first."""
    m = stock_movements.c
    q = sa.select(stock_movements).where(m.product_id == product_id).order_by(m.id.desc()).limit(limit)
    return [
        MovementRow(int(r.id), r.kind, int(r.on_hand_delta), int(r.allocated_delta), r.order_id, r.reference, r.created_at)
        for r in await conn.execute(q)
    ]
