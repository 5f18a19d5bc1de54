"""Repurchase alerts as the console, the API and the notices read them: one view per alert, filtered by the reader's
data scope (a salesperson sees their customers' alerts and the ones they own)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.customers.queries import names_of
from scrm.governance.scopes.services import DataScope
from scrm.sales.repurchase.domain import ALERT_STATUS_ZH, KIND_ZH, AlertKind, AlertStatus
from scrm.sales.repurchase.models import repurchase_alerts

A = repurchase_alerts.c
LIMIT = 200


@dataclass(frozen=True)
class AlertView:
    id: int
    kind: str
    customer_id: int
    customer_name: str
    sku: str
    name: str
    owner_userid: str
    last_purchase_on: dt.date
    interval_days: int
    due_on: dt.date
    status: str
    coupon_id: int | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_by: str

    @property
    def kind_zh(self) -> str:
        return KIND_ZH.get(self.kind, self.kind)

    @property
    def status_zh(self) -> str:
        return ALERT_STATUS_ZH.get(self.status, self.status)

    @property
    def at_risk_after(self) -> dt.date:
        return self.last_purchase_on + dt.timedelta(days=2 * self.interval_days)

    @property
    def product(self) -> str:
        return self.name or self.sku

    @property
    def customer(self) -> str:
        return self.customer_name or f"客户#{self.customer_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "customer_id": self.customer_id,
            "customer_name": self.customer_name,
            "sku": self.sku,
            "product_name": self.name,
            "owner": self.owner_userid,
            "last_purchase_on": self.last_purchase_on.isoformat(),
            "interval_days": self.interval_days,
            "due_on": self.due_on.isoformat(),
            "status": self.status,
            "coupon_id": self.coupon_id,
            "created_at": self.created_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by,
        }


def _view(r: Any, names: dict[int, str]) -> AlertView:
    return AlertView(
        int(r.id), r.kind, int(r.customer_id), names.get(int(r.customer_id)) or "", r.sku, r.name, r.owner_userid, r.last_purchase_on,
        int(r.interval_days), r.due_on, r.status, r.coupon_id, r.created_at, r.resolved_at, r.resolved_by,
    )  # fmt: skip


async def list_alerts(
    conn: AsyncConnection,
    *,
    scope: DataScope,
    kind: str = "",
    status: str = AlertStatus.OPEN,
    owner: str = "",
    limit: int = LIMIT,
) -> list[AlertView]:
    """Alerts in ``scope``, optionally of one kind / status ("" = any) / owner: at-risk first, then by due date."""
    q = sa.select(repurchase_alerts).where(scope.orders(A.customer_id, A.owner_userid))
    if kind:
        q = q.where(A.kind == kind)
    if status:
        q = q.where(A.status == status)
    if owner:
        q = q.where(A.owner_userid == owner)
    q = q.order_by((A.kind == AlertKind.AT_RISK).desc(), A.due_on, A.id).limit(limit)
    rows = (await conn.execute(q)).all()
    names = await names_of(conn, {int(r.customer_id) for r in rows})
    return [_view(r, names) for r in rows]


async def alerts_by_id(conn: AsyncConnection, ids: Collection[int]) -> list[AlertView]:
    """Alerts by id (the notices' read), at-risk first, then by due date."""
    if not ids:
        return []
    q = sa.select(repurchase_alerts).where(A.id.in_(sorted(set(ids)))).order_by((A.kind == AlertKind.AT_RISK).desc(), A.due_on, A.id)
    rows = (await conn.execute(q)).all()
    names = await names_of(conn, {int(r.customer_id) for r in rows})
    return [_view(r, names) for r in rows]


async def get_alert(conn: AsyncConnection, alert_id: int, scope: DataScope) -> AlertView | None:
    row = (await conn.execute(sa.select(repurchase_alerts).where(A.id == alert_id, scope.orders(A.customer_id, A.owner_userid)))).first()
    if row is None:
        return None
    return _view(row, await names_of(conn, [int(row.customer_id)]))
