"""Who works a lead (线索归属): claim from the pool, release, assign, invalidate, convert into a customer (and an
opportunity); a handover moving a customer's leads; the pool taking back what nobody followed up.

Every owner change is one row in ``lead_moves`` in the same transaction and is guarded by the lead's version, so
two people claiming one lead cannot both have it; a salesperson claims at most ``claim_daily_cap`` leads a business
day and cannot claim back a lead that left them less than ``reclaim_block_days`` ago.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import audit, outbox
from scrm.core.errors import DomainError, InvalidInput
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import serving_salesperson
from scrm.crm.customers.services import create_customer
from scrm.governance.scopes.services import EVERYTHING
from scrm.sales.handover.domain import HandoverKind
from scrm.sales.handover.services import request_handover
from scrm.sales.leads import domain
from scrm.sales.leads.domain import LeadSource, LeadStatus, MoveAction
from scrm.sales.leads.models import assignment_rules, lead_moves, leads
from scrm.sales.leads.services import (
    ASSIGNED_TOPIC,
    PHONE_FIELD,
    LeadNotFound,
    LeadView,
    Person,
    acting_person,
    change_guarded,
    check_member,
    clean_text,
    get_lead,
    get_pool_settings,
    load_row,
    record_move,
)
from scrm.sales.pipeline.domain import check_title
from scrm.sales.pipeline.services import MAX_AMOUNT_FEN, create_opportunity


async def _visible_row(conn: AsyncConnection, lead_id: int, person: Person) -> Any:
    """The lead's row, locked, if ``person`` may see it (another's lead answers as not found)."""
    row = await load_row(conn, lead_id, lock=True)
    if not person.sees(row.owner, row.status):
        raise LeadNotFound(f"线索 {lead_id} 不存在")
    return row


async def claims_today(conn: AsyncConnection, userid: str, now: dt.datetime) -> int:
    """How many leads this member claimed from the pool today (business day, Asia/Shanghai)."""
    query = sa.select(sa.func.count()).where(
        lead_moves.c.to_owner == userid, lead_moves.c.action == MoveAction.CLAIM, lead_moves.c.at >= domain.start_of_day(now)
    )
    return int((await conn.execute(query)).scalar_one())


async def claim_lead(rt: Runtime, lead_id: int) -> LeadView:
    """The acting salesperson takes a lead from the pool (daily cap; the previous owner waits; first come wins)."""
    person = await acting_person(rt)
    if not person.userid:
        raise InvalidInput("您的账号未绑定企业微信成员，不能领取线索（请管理员在“员工”中填写企业微信成员账号）")
    now = rt.clock.now()
    async with rt.db.write() as conn:
        if conn.dialect.name == "postgresql":  # one claim at a time per person: the daily cap holds under concurrency
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"lead-claim:{person.userid}"})
        row = await load_row(conn, lead_id, lock=True)
        settings = await get_pool_settings(conn)
        taken_today = await claims_today(conn, person.userid, now)
        domain.check_claim(
            status=row.status,
            pooled_from=row.pooled_from,
            pooled_at=row.pooled_at,
            claimer=person.userid,
            claims_today=taken_today,
            daily_cap=settings.claim_daily_cap,
            reclaim_block_days=settings.reclaim_block_days,
            now=now,
        )
        await check_member(conn, person.userid)
        changed = await change_guarded(
            conn, row, now, status=LeadStatus.OPEN, owner=person.userid, assigned_at=now, last_activity_at=now, rule_id=None
        )
        await record_move(conn, lead_id, MoveAction.CLAIM, now, person.name, frm=None, to=person.userid)
        serving = await serving_salesperson(conn, int(row.customer_id)) if row.source == LeadSource.RECYCLE and row.customer_id else None
        claimed = await get_lead(conn, int(changed.id))
    if serving and serving != person.userid:
        # The customer is still the previous salesperson's in WeCom: an on-job transfer moves them (after 24 h, unless
        # they refuse). The claim stands or falls with the request: refused, the lead goes back to the pool as it was.
        try:
            await request_handover(
                rt,
                from_userid=serving,
                to_userid=person.userid,
                kind=HandoverKind.ONJOB,
                customers=[int(claimed.customer_id or 0)],
                all_customers=False,
                scope=EVERYTHING,
            )
        except DomainError as exc:
            async with rt.db.write() as conn:
                back = await load_row(conn, lead_id, lock=True)
                await change_guarded(
                    conn, back, now, status=LeadStatus.POOL, owner=None, pooled_from=row.pooled_from, pooled_at=row.pooled_at
                )
                await record_move(
                    conn,
                    lead_id,
                    MoveAction.RELEASE,
                    now,
                    "system",
                    frm=person.userid,
                    to=None,
                    reason=f"客户转接未能发起：{exc.message}"[:200],
                )
            raise domain.PoolRefused(f"这位客户暂时不能转给您：{exc.message}") from None
    return claimed


async def release_lead(rt: Runtime, lead_id: int, reason: str) -> LeadView:
    """The owner (or their manager) gives the lead back to the pool, saying why."""
    reason = clean_text(reason, 200)
    if not reason:
        raise InvalidInput("请填写退回公海的原因", field="reason")
    person = await acting_person(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _visible_row(conn, lead_id, person)
        if row.status != LeadStatus.OPEN:
            raise domain.PoolRefused(f"线索当前为「{domain.STATUS_NAMES_ZH.get(row.status, row.status)}」，只有跟进中的线索可以退回公海")
        if not person.manages(row.owner):
            raise domain.PoolRefused("只有负责人或其上级可以把线索退回公海")
        changed = await change_guarded(
            conn, row, now, status=LeadStatus.POOL, owner=None, pooled_from=row.owner, pooled_at=now, rule_id=None
        )
        await record_move(conn, lead_id, MoveAction.RELEASE, now, person.name, frm=row.owner, to=None, reason=reason)
        return await get_lead(conn, int(changed.id))


async def assign_lead(rt: Runtime, lead_id: int, to: str, reason: str = "") -> LeadView:
    """A manager gives a lead (from the pool or from someone in their scope) to a member in their scope."""
    person = await acting_person(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _visible_row(conn, lead_id, person)
        if row.status not in (LeadStatus.OPEN, LeadStatus.POOL):
            raise domain.PoolRefused(f"线索已{domain.STATUS_NAMES_ZH.get(row.status, row.status)}，不能再分配")
        if not person.scope.everything and (to not in person.scope.userids or (row.owner is not None and not person.manages(row.owner))):
            raise domain.PoolRefused("只能在自己管理的成员之间分配线索")
        await check_member(conn, to)
        if row.owner == to:
            return await get_lead(conn, lead_id)
        changed = await change_guarded(
            conn, row, now, status=LeadStatus.OPEN, owner=to, assigned_at=now, last_activity_at=now, rule_id=None
        )
        await record_move(conn, lead_id, MoveAction.ASSIGN, now, person.name, frm=row.owner, to=to, reason=clean_text(reason, 200))
        if to != person.userid:
            await outbox.add(
                conn, ASSIGNED_TOPIC, {"lead_id": lead_id, "owner": to, "why": f"{person.name} 分配", "at": now.isoformat()}, now
            )
        return await get_lead(conn, int(changed.id))


async def invalidate_lead(rt: Runtime, lead_id: int, reason: str) -> LeadView:
    reason = clean_text(reason, 200)
    if not reason:
        raise InvalidInput("请填写标为无效的原因（如：空号、同行、重复）", field="reason")
    person = await acting_person(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _visible_row(conn, lead_id, person)
        if row.status not in (LeadStatus.OPEN, LeadStatus.POOL):
            raise domain.PoolRefused(f"线索已{domain.STATUS_NAMES_ZH.get(row.status, row.status)}")
        if row.status == LeadStatus.OPEN and not person.manages(row.owner):
            raise domain.PoolRefused("只有负责人或其上级可以把线索标为无效")
        changed = await change_guarded(conn, row, now, status=LeadStatus.INVALID, closed_reason=reason)
        await record_move(conn, lead_id, MoveAction.INVALIDATE, now, person.name, frm=row.owner, to=row.owner, reason=reason)
        return await get_lead(conn, int(changed.id))


@dataclass(frozen=True)
class OpportunityDraft:
    """The opportunity (商机) a converted lead opens, at the first stage."""

    title: str
    amount_fen: int = 0
    expected_close_on: dt.date | None = None


@dataclass(frozen=True)
class Converted:
    lead: LeadView
    opportunity_id: int | None


async def convert_lead(rt: Runtime, lead_id: int, opportunity: OpportunityDraft | None = None) -> Converted:
    """The lead becomes a customer: the customer it matched, or a new one with its name, company and phone — and,
    when asked, an opportunity for its owner at the first stage (linked to the lead; the funnel counts it from
    there). Only its owner (or their manager) converts it, and only while it is being followed up. The opportunity's
    title and amount are checked before anything changes."""
    if opportunity is not None:
        check_title(opportunity.title)
        if not 0 <= opportunity.amount_fen <= MAX_AMOUNT_FEN:
            raise InvalidInput("预计金额需为不小于 0 的金额", field="amount_fen")
    person = await acting_person(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _visible_row(conn, lead_id, person)
        if row.status != LeadStatus.OPEN:
            raise domain.PoolRefused("只有跟进中的线索可以转为客户（公海中的线索请先领取）")
        if not person.manages(row.owner):
            raise domain.PoolRefused("只有负责人或其上级可以转化线索")
        customer_id = row.customer_id
        if customer_id is None:
            fields = {PHONE_FIELD: row.phone} if row.phone else {}
            if row.region:
                fields["地区"] = row.region
            customer_id = await create_customer(
                conn, name=row.name or row.corp_name, corp_name=row.corp_name, custom_fields=fields, now=now
            )
        await change_guarded(conn, row, now, status=LeadStatus.CONVERTED, customer_id=customer_id, closed_reason="转为客户")
        await record_move(conn, lead_id, MoveAction.CONVERT, now, person.name, frm=row.owner, to=row.owner, reason=f"客户 #{customer_id}")
        await audit.record(conn, now, action="convert", entity="lead", entity_id=lead_id, summary=f"线索转为客户 #{customer_id}")
        converted = await get_lead(conn, lead_id)
    opened = None
    if opportunity is not None:
        made = await create_opportunity(
            rt,
            customer_id=customer_id,
            owner_userid=str(row.owner),
            title=opportunity.title,
            amount_fen=opportunity.amount_fen,
            expected_close_on=opportunity.expected_close_on,
            lead_id=lead_id,
            actor=person.name,
        )
        opened = made.id
    return Converted(converted, opened)


async def pool_customer(conn: AsyncConnection, *, customer_id: int, from_userid: str, days: int, now: dt.datetime) -> bool:
    """A customer ``from_userid`` has not followed up for ``days`` goes to the pool as a lead (客户回收), unless they
    already have a lead being worked or waiting there. True when pooled. In the caller's transaction."""
    open_already = (
        await conn.execute(
            sa.select(leads.c.id).where(leads.c.customer_id == customer_id, leads.c.status.in_((LeadStatus.OPEN, LeadStatus.POOL))).limit(1)
        )
    ).first()
    if open_already is not None:
        return False
    row = (
        await conn.execute(
            leads.insert()
            .values(
                source=LeadSource.RECYCLE,
                source_ref=f"{days} 天未跟进",
                customer_id=customer_id,
                status=LeadStatus.POOL,
                owner=None,
                last_activity_at=now,
                pooled_from=from_userid,
                pooled_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(leads.c.id)
        )
    ).one()
    await record_move(
        conn, int(row.id), MoveAction.RETURN, now, "system", frm=from_userid, to=None, reason=f"客户 {days} 天未跟进，进入公海"
    )
    return True


async def touch_lead(conn: AsyncConnection, lead_id: int, now: dt.datetime) -> None:
    """A follow-up happened: the pool's clock for this lead starts again."""
    await conn.execute(sa.update(leads).where(leads.c.id == lead_id).values(last_activity_at=now))


async def move_customer_leads(conn: AsyncConnection, *, customer_id: int, frm: str, to: str, now: dt.datetime, why: str) -> int:
    """A customer was handed over (交接): their open leads owned by ``frm`` go to ``to``. Idempotent."""
    rows = (
        await conn.execute(
            sa.select(leads).where(leads.c.customer_id == customer_id, leads.c.owner == frm, leads.c.status == LeadStatus.OPEN)
        )
    ).all()
    for row in rows:
        await change_guarded(conn, row, now, owner=to, assigned_at=now, last_activity_at=now)
        await record_move(conn, int(row.id), MoveAction.TRANSFER, now, "system", frm=frm, to=to, reason=why)
    return len(rows)


# ---- the pool takes back what nobody followed up ---------------------------------------------------------------
async def return_stale_leads(rt: Runtime, *, batch: int = 500) -> int:
    """Open leads with no follow-up, claim or assignment for their return period (the rule's, else the pool's) go
    back to the pool; each return is recorded. Returns how many went back. Safe to run twice or on two workers:
    a lead already returned no longer matches, and each change is guarded by the lead's version."""
    now = rt.clock.now()
    returned = 0
    async with rt.db.read() as conn:
        settings = await get_pool_settings(conn)
        overrides = {
            int(r.id): int(r.return_after_days)
            for r in await conn.execute(
                sa.select(assignment_rules.c.id, assignment_rules.c.return_after_days).where(
                    assignment_rules.c.return_after_days.is_not(None)
                )
            )
        }
    periods: list[tuple[sa.ColumnElement[bool], int]] = [(leads.c.rule_id == rule_id, days) for rule_id, days in overrides.items()]
    default = sa.or_(leads.c.rule_id.is_(None), leads.c.rule_id.not_in(list(overrides))) if overrides else sa.true()
    if settings.return_after_days:
        periods.append((default, settings.return_after_days))
    for which, days in periods:
        cutoff = now - dt.timedelta(days=days)
        while True:
            async with rt.db.write() as conn:
                rows = (
                    await conn.execute(
                        sa.select(leads)
                        .where(leads.c.status == LeadStatus.OPEN, leads.c.last_activity_at < cutoff, which)
                        .order_by(leads.c.id)
                        .limit(batch)
                    )
                ).all()
                for row in rows:
                    await change_guarded(
                        conn, row, now, status=LeadStatus.POOL, owner=None, pooled_from=row.owner, pooled_at=now, rule_id=None
                    )
                    await record_move(
                        conn, int(row.id), MoveAction.RETURN, now, "system", frm=row.owner, to=None, reason=f"{days} 天未跟进，自动回收公海"
                    )
            returned += len(rows)
            if len(rows) < batch:
                break
    return returned
