"""Reads of leads for the console, the sidebar and the API: lists in a person's data scope, a lead's moves, counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.customers.queries import named_like
from scrm.crm.staff.models import salespeople
from scrm.governance.scopes.services import DataScope
from scrm.sales.leads import domain
from scrm.sales.leads.domain import LeadStatus
from scrm.sales.leads.models import lead_moves, leads
from scrm.sales.leads.services import LeadView, lead_view, with_customer_name

PAGE = 50


def in_scope(scope: DataScope) -> sa.ColumnElement[bool]:
    """Leads a scope sees: its members' leads, and the pool (every salesperson may look there to claim)."""
    if scope.everything:
        return sa.true()
    mine = leads.c.owner.in_(sorted(scope.userids)) if scope.userids else sa.false()
    return sa.or_(mine, leads.c.status == LeadStatus.POOL)


@dataclass(frozen=True)
class LeadPage:
    items: list[LeadView]
    next_before: int | None  # pass as ``before`` for the next page (None: no more)


async def list_leads(
    conn: AsyncConnection,
    scope: DataScope,
    *,
    status: str | None = None,
    owner: str | None = None,
    source: str | None = None,
    q: str = "",
    before: int | None = None,
    limit: int = PAGE,
) -> LeadPage:
    """Leads newest first in ``scope``, filtered; keyset pages by id."""
    query = with_customer_name().where(in_scope(scope))
    if status:
        query = query.where(leads.c.status == status)
    if owner:
        query = query.where(leads.c.owner == owner)
    if source:
        query = query.where(leads.c.source == source)
    q = q.strip()
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            sa.or_(
                leads.c.name.like(pattern, escape="\\"),
                leads.c.corp_name.like(pattern, escape="\\"),
                leads.c.customer_id.in_(named_like(pattern)),
                leads.c.phone.like(pattern, escape="\\"),
            )
        )
    if before is not None:
        query = query.where(leads.c.id < before)
    rows = (await conn.execute(query.order_by(leads.c.id.desc()).limit(limit + 1))).all()
    items = [lead_view(r) for r in rows[:limit]]
    return LeadPage(items, items[-1].id if len(rows) > limit else None)


async def status_counts(conn: AsyncConnection, scope: DataScope) -> dict[str, int]:
    rows = await conn.execute(sa.select(leads.c.status, sa.func.count()).where(in_scope(scope)).group_by(leads.c.status))
    counts = dict.fromkeys(domain.STATUS_NAMES_ZH, 0)
    counts.update({r[0]: int(r[1]) for r in rows})
    return counts


@dataclass(frozen=True)
class Move:
    action: str
    from_owner: str | None
    to_owner: str | None
    actor: str
    reason: str
    at: dt.datetime

    @property
    def action_zh(self) -> str:
        return domain.MOVE_NAMES_ZH.get(self.action, self.action)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "from_owner": self.from_owner,
            "to_owner": self.to_owner,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


async def moves_of(conn: AsyncConnection, lead_id: int) -> list[Move]:
    rows = await conn.execute(sa.select(lead_moves).where(lead_moves.c.lead_id == lead_id).order_by(lead_moves.c.id))
    return [Move(r.action, r.from_owner, r.to_owner, r.actor, r.reason, r.at) for r in rows]


async def member_names(conn: AsyncConnection) -> dict[str, str]:
    """WeCom member → display name, for every member (inactive ones too: old leads name them)."""
    rows = await conn.execute(sa.select(salespeople.c.userid, salespeople.c.name))
    return {r.userid: r.name or r.userid for r in rows}
