"""Follow-ups (跟进记录): record what was done with a lead or a customer and when to contact them next; remind the
salesperson on that day.

Guarantees:
- A follow-up is recorded only on a lead or customer the person may see, and on a lead only while it is being
  worked (a lead in the pool is claimed first). Its next-contact date is today or later (business day, Asia/Shanghai).
- Recording a follow-up closes the earlier open next-contacts on the same lead or customer (they happened), restarts
  the lead's pool clock, and adds a line to the customer's timeline — all in one transaction.
- Each due next-contact is reminded once (``reminded_on`` is set in the transaction that queues the reminder).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.orders.queries import sold_since
from scrm.core import audit, outbox
from scrm.core.clock import local
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import customer_exists, sole_followers_since
from scrm.crm.timeline.services import Kind, add_entry
from scrm.governance.scopes.services import customer_in_scope
from scrm.sales.followups.domain import KIND_NAMES_ZH
from scrm.sales.followups.models import follow_ups
from scrm.sales.leads import ownership
from scrm.sales.leads import services as leads
from scrm.sales.leads.domain import LeadStatus
from scrm.sales.leads.models import leads as leads_table

DUE_TOPIC = "follow_up.due"  # one salesperson's follow-ups due today: remind them (payload: owner, ids, day)
MAX_AHEAD = dt.timedelta(days=366)


class FollowUpNotFound(NotFound):
    code = "follow_up_not_found"


@dataclass(frozen=True)
class FollowUpView:
    id: int
    lead_id: int | None
    customer_id: int | None
    opportunity_id: int | None
    owner: str
    author: str
    kind: str
    body: str
    next_contact_on: dt.date | None
    next_done_at: dt.datetime | None
    reminded_on: dt.date | None
    created_at: dt.datetime

    @property
    def kind_zh(self) -> str:
        return KIND_NAMES_ZH.get(self.kind, self.kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lead_id": self.lead_id,
            "customer_id": self.customer_id,
            "opportunity_id": self.opportunity_id,
            "owner": self.owner,
            "author": self.author,
            "kind": self.kind,
            "body": self.body,
            "next_contact_on": self.next_contact_on.isoformat() if self.next_contact_on else None,
            "next_done_at": self.next_done_at.isoformat() if self.next_done_at else None,
            "reminded_on": self.reminded_on.isoformat() if self.reminded_on else None,
            "created_at": self.created_at.isoformat(),
        }


def follow_up_view(row: Any) -> FollowUpView:
    return FollowUpView(
        id=int(row.id),
        lead_id=row.lead_id,
        customer_id=row.customer_id,
        opportunity_id=row.opportunity_id,
        owner=row.owner,
        author=row.author,
        kind=row.kind,
        body=row.body,
        next_contact_on=row.next_contact_on,
        next_done_at=row.next_done_at,
        reminded_on=row.reminded_on,
        created_at=row.created_at,
    )


def business_day(now: dt.datetime) -> dt.date:
    return local(now).date()


def check_next_contact(day: dt.date | None, now: dt.datetime) -> None:
    if day is None:
        return
    today = business_day(now)
    if day < today:
        raise InvalidInput(f"下次联系日期 {day:%Y-%m-%d} 已经过去，请选今天（{today:%Y-%m-%d}）或以后的日期", field="next_contact_on")
    if day > today + MAX_AHEAD:
        raise InvalidInput("下次联系日期最多排到一年以后", field="next_contact_on")


@dataclass(frozen=True)
class NewFollowUp:
    kind: str
    body: str
    lead_id: int | None = None
    customer_id: int | None = None
    opportunity_id: int | None = None
    next_contact_on: dt.date | None = None


async def record_follow_up(rt: Runtime, new: NewFollowUp) -> FollowUpView:
    """Record a follow-up by the person acting (see the module's guarantees)."""
    if new.kind not in KIND_NAMES_ZH:
        raise InvalidInput(f"跟进方式只能是：{'、'.join(f'{k}（{v}）' for k, v in KIND_NAMES_ZH.items())}", field="kind")
    body = (new.body or "").strip()
    if not body:
        raise InvalidInput("请写下跟进内容", field="body")
    if len(body) > 2000:
        raise InvalidInput("跟进内容最多 2000 字", field="body")
    if (new.lead_id is None) == (new.customer_id is None):
        raise InvalidInput("跟进记录需指定线索（lead_id）或客户（customer_id）之一", field="lead_id")
    now = rt.clock.now()
    check_next_contact(new.next_contact_on, now)
    person = await leads.acting_person(rt)
    customer_id, owner = new.customer_id, person.userid
    if new.lead_id is not None:
        lead = await leads.visible_lead(rt, new.lead_id)
        if lead.status != LeadStatus.OPEN:
            raise InvalidInput(
                "公海中的线索请先领取再跟进" if lead.status == LeadStatus.POOL else f"线索已{lead.status_zh}，不再跟进", field="lead_id"
            )
        if not person.manages(lead.owner):
            raise leads.LeadNotFound(f"线索 {lead.id} 不存在")
        owner, customer_id = lead.owner, lead.customer_id
    else:
        assert customer_id is not None
        async with rt.db.read() as conn:
            exists = await customer_exists(conn, customer_id)
        if not exists or not await customer_in_scope(rt, person.scope, customer_id):
            raise NotFound(f"客户 {customer_id} 不存在")
    if not owner:
        raise InvalidInput("请用绑定了企业微信成员的账号记录客户跟进（提醒会发到该成员的企业微信）")
    async with rt.db.write() as conn:
        same = follow_ups.c.lead_id == new.lead_id if new.lead_id is not None else follow_ups.c.customer_id == customer_id
        await conn.execute(
            sa.update(follow_ups)
            .where(same, follow_ups.c.next_contact_on.is_not(None), follow_ups.c.next_done_at.is_(None))
            .values(next_done_at=now)
        )
        row = (
            await conn.execute(
                follow_ups.insert()
                .values(
                    lead_id=new.lead_id,
                    customer_id=customer_id,
                    opportunity_id=new.opportunity_id,
                    owner=owner,
                    author=person.name[:64],
                    kind=new.kind,
                    body=body,
                    next_contact_on=new.next_contact_on,
                    created_at=now,
                )
                .returning(*follow_ups.c)
            )
        ).one()
        if new.lead_id is not None:
            await ownership.touch_lead(conn, new.lead_id, now)
        if customer_id is not None:
            nxt = f"；下次联系 {new.next_contact_on:%m月%d日}" if new.next_contact_on else ""
            await add_entry(
                conn,
                rt.db.dialect,
                customer_id=customer_id,
                at=now,
                kind=Kind.NOTE,
                title=f"跟进（{KIND_NAMES_ZH[new.kind]}）· {person.name}{nxt}",
                body=body,
                ref=f"follow_up:{row.id}",
                data={"follow_up_id": int(row.id), "kind": new.kind, "owner": owner},
            )
        return follow_up_view(row)


async def complete_follow_up(rt: Runtime, follow_up_id: int) -> FollowUpView:
    """Mark a next-contact done without a new record (e.g. the visit was cancelled by the customer)."""
    person = await leads.acting_person(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(follow_ups).where(follow_ups.c.id == follow_up_id))).first()
        if row is None or not person.manages(row.owner):
            raise FollowUpNotFound(f"跟进记录 {follow_up_id} 不存在")
        if row.next_contact_on is None or row.next_done_at is not None:
            return follow_up_view(row)
        done = (
            await conn.execute(
                sa.update(follow_ups).where(follow_ups.c.id == follow_up_id).values(next_done_at=now).returning(*follow_ups.c)
            )
        ).one()
        await audit.record(conn, now, action="complete", entity="follow_up", entity_id=follow_up_id, summary="下次联系标为已完成")
        return follow_up_view(done)


def open_todo() -> sa.ColumnElement[bool]:
    """A next-contact still to do: not done, and — when it is about a lead — the lead is still being worked by the
    same salesperson (a lead back in the pool, converted or handed on is no longer their to-do)."""
    lead = leads_table.alias("todo_lead")  # its own name: a caller may join leads for the names
    lead_still_theirs = (
        sa.select(lead.c.id)
        .where(lead.c.id == follow_ups.c.lead_id, lead.c.status == LeadStatus.OPEN, lead.c.owner == follow_ups.c.owner)
        .correlate(follow_ups)
        .exists()
    )
    return sa.and_(
        follow_ups.c.next_contact_on.is_not(None),
        follow_ups.c.next_done_at.is_(None),
        sa.or_(follow_ups.c.lead_id.is_(None), lead_still_theirs),
    )


async def queue_due_reminders(rt: Runtime) -> int:
    """Queue one reminder per salesperson for their next-contacts due today or overdue and not yet reminded; mark
    them reminded in the same transaction. Returns how many follow-ups were covered."""
    now = rt.clock.now()
    today = business_day(now)
    async with rt.db.write() as conn:
        rows = (
            await conn.execute(
                sa.select(follow_ups.c.id, follow_ups.c.owner)
                .where(open_todo(), follow_ups.c.next_contact_on <= today, follow_ups.c.reminded_on.is_(None))
                .order_by(follow_ups.c.owner, follow_ups.c.next_contact_on, follow_ups.c.id)
            )
        ).all()
        by_owner: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            by_owner[r.owner].append(int(r.id))
        for owner, ids in by_owner.items():
            await outbox.add(conn, DUE_TOPIC, {"owner": owner, "ids": ids, "day": today.isoformat()}, now)
        if rows:
            await conn.execute(sa.update(follow_ups).where(follow_ups.c.id.in_([int(r.id) for r in rows])).values(reminded_on=today))
    return len(rows)


async def move_customer_follow_ups(conn: AsyncConnection, *, customer_id: int, frm: str, to: str) -> int:
    """A customer was handed over: their open next-contacts become the new salesperson's to-dos."""
    result = await conn.execute(
        sa.update(follow_ups)
        .where(
            follow_ups.c.customer_id == customer_id,
            follow_ups.c.owner == frm,
            follow_ups.c.next_done_at.is_(None),
            follow_ups.c.next_contact_on.is_not(None),
        )
        .values(owner=to, reminded_on=None)
    )
    return int(result.rowcount or 0)


POOL_BATCH = 5000  # customers looked at per night (the next night takes the rest)


async def pool_idle_customers(rt: Runtime) -> int:
    """Customers their (only) salesperson has neither followed up nor sold to for the pool's customer period go to
    the pool (:func:`scrm.sales.leads.ownership.pool_customer`). Off while the period is 0. Returns how many."""
    now = rt.clock.now()
    async with rt.db.read() as conn:
        days = (await leads.get_pool_settings(conn)).customer_return_after_days
        if not days:
            return 0
        since = now - dt.timedelta(days=days)
        pairs = await sole_followers_since(conn, since, limit=POOL_BATCH)
        if not pairs:
            return 0
        followed = {
            (int(r.customer_id), r.owner)
            for r in await conn.execute(
                sa.select(follow_ups.c.customer_id, follow_ups.c.owner)
                .where(follow_ups.c.customer_id.in_(sorted({c for c, _ in pairs})), follow_ups.c.created_at >= since)
                .distinct()
            )
        }
        sold = await sold_since(conn, pairs, since)
    pooled = 0
    for customer_id, userid in pairs:
        if (customer_id, userid) in followed or (customer_id, userid) in sold:
            continue
        async with rt.db.write() as conn:
            pooled += await ownership.pool_customer(conn, customer_id=customer_id, from_userid=userid, days=days, now=now)
    return pooled
