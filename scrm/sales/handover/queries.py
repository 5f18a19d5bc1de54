"""Reads of handovers for the API and the console: one handover with each customer's and group's transfer, the list
with counts per status, and the words a notice uses. Within the person's data scope: a handover is theirs to see when
its handover or takeover member is in it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.errors import NotFound
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import names_of
from scrm.crm.staff.services import get_salesperson
from scrm.governance.scopes.services import DataScope
from scrm.sales.handover.domain import ERRCODE_ZH, HandoverKind, TransferStatus
from scrm.sales.handover.models import handover_customers, handover_groups, handovers

MAX_LIST = 200


# ---- views --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomerTransfer:
    customer_id: int
    external_userid: str
    name: str
    status: str
    errcode: int | None
    reason: str
    finished_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "external_userid": self.external_userid,
            "name": self.name,
            "status": self.status,
            "errcode": self.errcode,
            "reason": self.reason,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True)
class GroupTransfer:
    chat_id: str
    name: str
    status: str
    errcode: int | None

    def to_json(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "name": self.name, "status": self.status, "errcode": self.errcode}


@dataclass(frozen=True)
class HandoverView:
    id: int
    kind: str
    from_userid: str
    to_userid: str
    from_name: str
    to_name: str
    status: str
    requested_by: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    counts: dict[str, int]
    customers: list[CustomerTransfer] = field(default_factory=list)
    groups: list[GroupTransfer] = field(default_factory=list)

    def to_json(self, *, detail: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "from": self.from_userid,
            "to": self.to_userid,
            "from_name": self.from_name,
            "to_name": self.to_name,
            "status": self.status,
            "requested_by": self.requested_by,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "counts": self.counts,
        }
        if detail:
            out["customers"] = [c.to_json() for c in self.customers]
            out["groups"] = [g.to_json() for g in self.groups]
        return out


async def member_name(conn: AsyncConnection, userid: str) -> str:
    person = await get_salesperson(conn, userid)
    return person.display_name if person is not None else userid


async def _counts(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {i: dict.fromkeys(TransferStatus, 0) | {"total": 0} for i in ids}
    if not ids:
        return out
    hc = handover_customers.c
    rows = await conn.execute(
        sa.select(hc.handover_id, hc.status, sa.func.count()).where(hc.handover_id.in_(ids)).group_by(hc.handover_id, hc.status)
    )
    for handover_id, status, n in rows:
        out[int(handover_id)][status] = int(n)
        out[int(handover_id)]["total"] += int(n)
    return out


async def _view(conn: AsyncConnection, row: Any, counts: dict[str, int], *, detail: bool) -> HandoverView:
    customers: list[CustomerTransfer] = []
    groups: list[GroupTransfer] = []
    if detail:
        hc = handover_customers.c
        rows = await conn.execute(sa.select(handover_customers).where(hc.handover_id == row.id).order_by(hc.id))
        found = rows.all()
        labels = await names_of(conn, [int(r.customer_id) for r in found])
        customers = [
            CustomerTransfer(
                int(r.customer_id), r.external_userid, labels.get(int(r.customer_id)) or "", r.status, r.errcode, r.reason, r.finished_at
            )
            for r in found
        ]
        hg = handover_groups.c
        groups = [
            GroupTransfer(g.chat_id, g.name, g.status, g.errcode)
            for g in await conn.execute(sa.select(handover_groups).where(hg.handover_id == row.id).order_by(hg.id))
        ]
    from_name, to_name = await member_name(conn, row.from_userid), await member_name(conn, row.to_userid)
    return HandoverView(
        int(row.id), row.kind, row.from_userid, row.to_userid, from_name, to_name, row.status, row.requested_by,
        row.created_at, row.finished_at, counts, customers, groups,
    )  # fmt: skip


def _visible(scope: DataScope) -> sa.ColumnElement[bool]:
    if scope.everything:
        return sa.true()
    if not scope.userids:
        return sa.false()
    people = sorted(scope.userids)
    return sa.or_(handovers.c.from_userid.in_(people), handovers.c.to_userid.in_(people))


async def get_handover(rt: Runtime, handover_id: int, scope: DataScope) -> HandoverView:
    """One handover with each customer's and group's status; NotFound outside the scope (from or to in it)."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(handovers).where(handovers.c.id == handover_id, _visible(scope)))).first()
        if row is None:
            raise NotFound("没有找到这次交接 (handover not found)", handover_id=handover_id)
        counts = await _counts(conn, [handover_id])
        return await _view(conn, row, counts[handover_id], detail=True)


async def list_handovers(rt: Runtime, scope: DataScope, *, limit: int = MAX_LIST) -> list[HandoverView]:
    """Handovers newest first, with counts per status (no per-customer rows)."""
    async with rt.db.read() as conn:
        rows = (await conn.execute(sa.select(handovers).where(_visible(scope)).order_by(handovers.c.id.desc()).limit(limit))).all()
        counts = await _counts(conn, [int(r.id) for r in rows])
        return [await _view(conn, r, counts[int(r.id)], detail=False) for r in rows]


def finished_text(view: HandoverView) -> str:
    """The members' notice when a handover is over: how many customers moved, how many did not and why."""
    c = view.counts
    kind = "离职继承" if view.kind == HandoverKind.RESIGNED else "在职转接"
    text = f"【客户交接】{kind} #{view.id}：{view.from_name} 的 {c['total']} 位客户中，{c['success']} 位已转交给 {view.to_name}"
    others = [(c["refused"], "客户拒绝"), (c["limit_exceeded"], "超出转接限制"), (c["failed"], "失败")]
    rest = "，".join(f"{label} {n} 位" for n, label in others if n)
    groups = sum(1 for g in view.groups if g.status == "success")
    return text + (f"；{rest}" if rest else "") + (f"；{groups} 个客户群已转交" if groups else "") + "。"


def errcode_text(errcode: int | None) -> str:
    """What a WeCom errcode means for a transfer, in words (for pages)."""
    if errcode is None:
        return ""
    return ERRCODE_ZH.get(errcode, f"错误码 {errcode}")
