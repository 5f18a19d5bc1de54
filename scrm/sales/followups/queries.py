"""Reads of follow-ups: a lead's or customer's history, a salesperson's to-dos (due today, overdue, coming)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.customers.queries import name_of
from scrm.governance.scopes.services import DataScope
from scrm.sales.followups.models import follow_ups
from scrm.sales.followups.services import FollowUpView, follow_up_view, open_todo
from scrm.sales.leads.domain import LeadStatus
from scrm.sales.leads.models import leads
from scrm.sales.leads.services import LeadView, lead_view, with_customer_name


async def history(
    conn: AsyncConnection, *, lead_id: int | None = None, customer_id: int | None = None, limit: int = 100
) -> list[FollowUpView]:
    """Newest first: a lead's follow-ups, or a customer's (including those written on their lead)."""
    where = follow_ups.c.lead_id == lead_id if lead_id is not None else follow_ups.c.customer_id == customer_id
    rows = await conn.execute(sa.select(follow_ups).where(where).order_by(follow_ups.c.id.desc()).limit(limit))
    return [follow_up_view(r) for r in rows]


@dataclass(frozen=True)
class Todo:
    follow_up: FollowUpView
    subject: str  # the lead's or customer's name
    overdue_days: int  # 0 = due today; negative = days ahead

    @property
    def href_kind(self) -> str:
        return "lead" if self.follow_up.lead_id is not None else "customer"


def _scope_condition(scope: DataScope) -> sa.ColumnElement[bool]:
    if scope.everything:
        return sa.true()
    return follow_ups.c.owner.in_(sorted(scope.userids)) if scope.userids else sa.false()


def _with_subject(*where: sa.ColumnElement[bool]) -> sa.Select:
    subject = sa.func.coalesce(
        sa.func.nullif(leads.c.name, ""), sa.func.nullif(leads.c.corp_name, ""), name_of(follow_ups.c.customer_id), ""
    )
    return (
        sa.select(follow_ups, subject.label("subject"))
        .select_from(follow_ups.outerjoin(leads, leads.c.id == follow_ups.c.lead_id))
        .where(*where)
        .order_by(follow_ups.c.next_contact_on, follow_ups.c.id)
    )


async def todos(conn: AsyncConnection, scope: DataScope, today: dt.date, *, until: dt.date | None = None, limit: int = 200) -> list[Todo]:
    """Open next-contacts in ``scope`` due on or before ``until`` (default: today), oldest first."""
    query = _with_subject(open_todo(), _scope_condition(scope), follow_ups.c.next_contact_on <= (until or today)).limit(limit)
    return [Todo(follow_up_view(r), r.subject or "", (today - r.next_contact_on).days) for r in await conn.execute(query)]


async def todos_by_id(conn: AsyncConnection, ids: list[int], today: dt.date) -> list[Todo]:
    """These next-contacts, if still open (a reminder lists only what is still to do)."""
    query = _with_subject(open_todo(), follow_ups.c.id.in_(ids))
    return [Todo(follow_up_view(r), r.subject or "", (today - r.next_contact_on).days) for r in await conn.execute(query)]


async def overdue_count(conn: AsyncConnection, scope: DataScope, today: dt.date) -> int:
    query = (
        sa.select(sa.func.count()).select_from(follow_ups).where(open_todo(), _scope_condition(scope), follow_ups.c.next_contact_on < today)
    )
    return int((await conn.execute(query)).scalar_one())


async def untouched_leads(conn: AsyncConnection, scope: DataScope, *, limit: int = 20) -> tuple[list[LeadView], int]:
    """Open leads in ``scope`` nobody has followed up yet (新线索, newest first), and how many there are."""
    if scope.everything:
        mine: sa.ColumnElement[bool] = sa.true()
    else:
        mine = leads.c.owner.in_(sorted(scope.userids)) if scope.userids else sa.false()
    never = ~sa.select(follow_ups.c.id).where(follow_ups.c.lead_id == leads.c.id).correlate(leads).exists()
    where = sa.and_(leads.c.status == LeadStatus.OPEN, mine, never)
    rows = await conn.execute(with_customer_name().where(where).order_by(leads.c.id.desc()).limit(limit))
    total = (await conn.execute(sa.select(sa.func.count()).select_from(leads).where(where))).scalar_one()
    return [lead_view(r) for r in rows], int(total)
