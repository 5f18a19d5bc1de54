"""Leads (线索): who is acting and what they see, a lead as the pages and API read it, the pool's settings, and
arrival — de-duplication and assignment. Owner changes (claim, release, assign, convert, the pool's return) are in
:mod:`scrm.sales.leads.ownership`.

Guarantees:
- A lead arriving for someone already known (the same customer, phone, external_userid or unionid, among leads not
  yet closed) is not created twice: the existing lead is returned and the repeat noted on it.
- A lead that matches a customer a salesperson already serves goes to that salesperson; otherwise the assignment
  rules (by priority: source, region, customer tags → round robin or by load, with a daily cap per member) place
  it, and a lead no rule can place waits in the pool.
- Every owner change is one row in ``lead_moves`` (who, when, from whom, to whom, why) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import audit, outbox
from scrm.core.db import upsert
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import customer_by_phone, first_seen, name_of, serving_salesperson
from scrm.crm.customers.services import find_customer
from scrm.crm.staff import accounts
from scrm.crm.staff.services import get_salesperson
from scrm.governance.scopes.services import DataScope, scope_for
from scrm.sales.leads import domain, rules
from scrm.sales.leads.domain import LeadSource, LeadStatus, MoveAction
from scrm.sales.leads.models import lead_moves, leads, pool_settings

ASSIGNED_TOPIC = "lead.assigned"  # a lead was given to a salesperson who did not take it themselves: tell them
DEFAULTS_SINCE = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)  # when the default pool rules were set
PHONE_FIELD = "电话"  # the custom field a converted lead's phone goes into (the customer directory searches it)


class LeadNotFound(NotFound):
    code = "lead_not_found"


# ---- who acts ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    """The person acting on leads: their name for the record, their WeCom member (None: the admin, a job) and
    whose leads they see."""

    name: str
    userid: str | None
    scope: DataScope

    def sees(self, owner: str | None, status: str) -> bool:
        return self.scope.everything or status == LeadStatus.POOL or (owner is not None and owner in self.scope.userids)

    def manages(self, owner: str | None) -> bool:
        """May change a lead owned by ``owner`` (its owner, their leads, or everyone's)."""
        return self.scope.everything or (owner is not None and owner in self.scope.userids)


async def acting_person(rt: Runtime) -> Person:
    who = audit.current_actor()
    userid: str | None = None
    if who.kind == "sidebar":
        userid = who.ref
    elif who.staff_id is not None:
        userid = (await accounts.get_staff(rt, who.staff_id)).wecom_userid or None
    return Person(who.name or who.ref, userid, await scope_for(rt, who))


# ---- views -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeadView:
    id: int
    name: str
    phone: str
    corp_name: str
    region: str
    remark: str
    source: str
    source_ref: str
    customer_id: int | None
    status: str
    owner: str | None
    assigned_at: dt.datetime | None
    last_activity_at: dt.datetime
    pooled_from: str | None
    pooled_at: dt.datetime | None
    closed_reason: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    customer_name: str = ""  # the customer's name as WeCom / WeChat gave it (a scanned lead has no name of its own)

    @property
    def status_zh(self) -> str:
        return domain.STATUS_NAMES_ZH.get(self.status, self.status)

    @property
    def source_zh(self) -> str:
        return domain.SOURCE_NAMES_ZH.get(self.source, self.source)

    @property
    def label(self) -> str:
        return self.name or self.customer_name or self.corp_name or (f"尾号{self.phone[-4:]}" if self.phone else f"线索#{self.id}")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("assigned_at", "last_activity_at", "pooled_at", "created_at", "updated_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


def lead_view(row: Any) -> LeadView:
    return LeadView(
        id=int(row.id),
        name=row.name,
        phone=row.phone,
        corp_name=row.corp_name,
        region=row.region,
        remark=row.remark,
        source=row.source,
        source_ref=row.source_ref,
        customer_id=int(row.customer_id) if row.customer_id is not None else None,
        status=row.status,
        owner=row.owner,
        assigned_at=row.assigned_at,
        last_activity_at=row.last_activity_at,
        pooled_from=row.pooled_from,
        pooled_at=row.pooled_at,
        closed_reason=row.closed_reason,
        version=int(row.version),
        created_at=row.created_at,
        updated_at=row.updated_at,
        customer_name=getattr(row, "customer_name", None) or "",
    )


def with_customer_name() -> sa.Select:
    """Leads with their customer's name (``customer_name``) for reading."""
    name = name_of(leads.c.customer_id).label("customer_name")
    return sa.select(leads, name)


async def load_row(conn: AsyncConnection, lead_id: int, *, lock: bool = False) -> Any:
    query = sa.select(leads).where(leads.c.id == lead_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise LeadNotFound(f"线索 {lead_id} 不存在")
    return row


async def get_lead(conn: AsyncConnection, lead_id: int) -> LeadView:
    row = (await conn.execute(with_customer_name().where(leads.c.id == lead_id))).first()
    if row is None:
        raise LeadNotFound(f"线索 {lead_id} 不存在")
    return lead_view(row)


async def visible_lead(rt: Runtime, lead_id: int) -> LeadView:
    """The lead, if the person acting may see it (else "not found": another's lead is not even confirmed to exist)."""
    person = await acting_person(rt)
    async with rt.db.read() as conn:
        lead = await get_lead(conn, lead_id)
    if not person.sees(lead.owner, lead.status):
        raise LeadNotFound(f"线索 {lead_id} 不存在")
    return lead


async def record_move(
    conn: AsyncConnection, lead_id: int, action: str, now: dt.datetime, actor: str, *, frm: str | None, to: str | None, reason: str = ""
) -> None:
    await conn.execute(
        lead_moves.insert().values(
            lead_id=lead_id, action=action, from_owner=frm, to_owner=to, actor=actor[:64], reason=reason[:200], at=now
        )
    )


async def change_guarded(conn: AsyncConnection, row: Any, now: dt.datetime, **values: Any) -> Any:
    """Apply ``values`` to the lead if nobody changed it since ``row`` was read (else a conflict to retry)."""
    result = await conn.execute(
        sa.update(leads)
        .where(leads.c.id == row.id, leads.c.version == row.version)
        .values(**values, version=row.version + 1, updated_at=now)
        .returning(*leads.c)
    )
    changed = result.first()
    if changed is None:
        raise domain.PoolRefused("线索刚刚被他人改动（例如已被领取），请刷新后再试")
    return changed


# ---- the pool's settings -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolSettingsView:
    return_after_days: int
    claim_daily_cap: int
    reclaim_block_days: int
    updated_at: dt.datetime
    updated_by: str
    customer_return_after_days: int = domain.DEFAULT_CUSTOMER_RETURN_AFTER_DAYS

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "updated_at": self.updated_at.isoformat()}


async def get_pool_settings(conn: AsyncConnection) -> PoolSettingsView:
    """The pool's rules: the admin's, else the defaults (:mod:`scrm.sales.leads.domain`)."""
    row = (await conn.execute(sa.select(pool_settings).where(pool_settings.c.id == 1))).first()
    if row is None:
        return PoolSettingsView(
            domain.DEFAULT_RETURN_AFTER_DAYS, domain.DEFAULT_CLAIM_DAILY_CAP, domain.DEFAULT_RECLAIM_BLOCK_DAYS, DEFAULTS_SINCE, ""
        )
    return PoolSettingsView(
        row.return_after_days, row.claim_daily_cap, row.reclaim_block_days, row.updated_at, row.updated_by, row.customer_return_after_days
    )


async def set_pool_settings(
    rt: Runtime, *, return_after_days: int, claim_daily_cap: int, reclaim_block_days: int, customer_return_after_days: int = 0
) -> PoolSettingsView:
    domain.check_settings(return_after_days, claim_daily_cap, reclaim_block_days, customer_return_after_days)
    who = audit.current_actor()
    now = rt.clock.now()
    after = {
        "return_after_days": return_after_days,
        "claim_daily_cap": claim_daily_cap,
        "reclaim_block_days": reclaim_block_days,
        "customer_return_after_days": customer_return_after_days,
    }
    async with rt.db.write() as conn:
        before = await get_pool_settings(conn)
        values = {"id": 1, **after, "updated_at": now, "updated_by": who.ref[:64]}
        await conn.execute(upsert(pool_settings, conn.dialect.name, ["id"], values, [*after, "updated_at", "updated_by"]))
        was = {k: getattr(before, k) for k in after}
        if was != after:
            old, new = audit.changed(was, after)
            await audit.record(
                conn, now, action="update", entity="lead_pool_settings", entity_id=1, summary="修改公海规则", before=old, after=new
            )
        return await get_pool_settings(conn)


# ---- arrival ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewLead:
    source: str
    name: str = ""
    phone: str = ""
    corp_name: str = ""
    region: str = ""
    remark: str = ""
    source_ref: str = ""
    customer_id: int | None = None
    external_userid: str | None = None
    unionid: str | None = None
    owner: str | None = None  # a given owner (a salesperson typing in their own lead, a manager); None: the rules decide


@dataclass(frozen=True)
class Arrived:
    lead: LeadView
    duplicate: bool  # the same person already had an open lead: that one is returned, the repeat noted on it


async def _matching_customer(conn: AsyncConnection, new: NewLead, phone: str) -> int | None:
    if new.customer_id is not None:
        return new.customer_id
    for kind, value in (("external_userid", new.external_userid), ("unionid", new.unionid)):
        if value:
            found = await find_customer(conn, kind, value)
            if found is not None:
                return found
    return await customer_by_phone(conn, phone) if phone else None


async def _open_lead_for(conn: AsyncConnection, customer_id: int | None, phone: str, new: NewLead) -> Any:
    """A lead not yet closed for the same person (by customer, phone, external_userid or unionid)."""
    same: list[sa.ColumnElement[bool]] = []
    if customer_id is not None:
        same.append(leads.c.customer_id == customer_id)
    if phone:
        same.append(leads.c.phone == phone)
    if new.external_userid:
        same.append(leads.c.external_userid == new.external_userid)
    if new.unionid:
        same.append(leads.c.unionid == new.unionid)
    if not same:
        return None
    query = sa.select(leads).where(leads.c.status.in_((LeadStatus.OPEN, LeadStatus.POOL)), sa.or_(*same)).order_by(leads.c.id).limit(1)
    return (await conn.execute(query)).first()


async def check_member(conn: AsyncConnection, userid: str) -> None:
    person = await get_salesperson(conn, userid)
    if person is None:
        raise InvalidInput(f"企业微信成员「{userid}」不存在（请先同步通讯录）", field="owner")
    if not person.active:
        raise InvalidInput(f"成员「{person.display_name}」已停用或离职，不能再接收线索", field="owner")


def clean_text(text: str, limit: int) -> str:
    return " ".join((text or "").split())[:limit]


async def create_lead(conn: AsyncConnection, new: NewLead, now: dt.datetime, *, actor: str, owner_checked: bool = False) -> Arrived:
    """Record a lead in the caller's transaction (see the module's guarantees: de-duplication, who gets it).
    ``owner_checked``: the given owner is known to serve this person (WeCom just said so), not to be checked."""
    if new.source not in domain.SOURCE_NAMES_ZH:
        raise InvalidInput(f"未知的线索来源「{new.source}」", field="source")
    phone = domain.normalize_phone(new.phone)
    name, corp = clean_text(new.name, 64), clean_text(new.corp_name, 128)
    if not (name or phone or corp or new.customer_id or new.external_userid or new.unionid):
        raise InvalidInput("线索至少需要姓名、电话或公司名之一", field="name")
    customer_id = await _matching_customer(conn, new, phone)
    existing = await _open_lead_for(conn, customer_id, phone, new)
    if existing is not None:
        note = f"再次留资（{domain.SOURCE_NAMES_ZH.get(new.source, new.source)}{'：' + new.source_ref if new.source_ref else ''}）"
        values: dict[str, Any] = {}
        if new.remark and new.remark not in existing.remark:
            values["remark"] = (existing.remark + "\n" + new.remark).strip()[:2000]
        if customer_id is not None and existing.customer_id is None:
            values["customer_id"] = customer_id
        row = await change_guarded(conn, existing, now, **values)
        await record_move(conn, int(existing.id), MoveAction.REPEAT, now, actor, frm=existing.owner, to=existing.owner, reason=note)
        return Arrived(await get_lead(conn, int(row.id)), duplicate=True)
    owner, rule_id = new.owner, None
    if owner is not None:
        if not owner_checked:
            await check_member(conn, owner)
    elif customer_id is not None:
        owner = await serving_salesperson(conn, customer_id)
    if owner is None:
        placed = await rules.assign_by_rules(conn, source=new.source, region=new.region, customer_id=customer_id, now=now)
        if placed is not None:
            owner, rule_id = placed
    values = {
        "name": name,
        "phone": phone,
        "corp_name": corp,
        "region": clean_text(new.region, 32),
        "remark": (new.remark or "").strip()[:2000],
        "source": new.source,
        "source_ref": clean_text(new.source_ref, 128),
        "customer_id": customer_id,
        "external_userid": new.external_userid or None,
        "unionid": new.unionid or None,
        "status": LeadStatus.OPEN if owner else LeadStatus.POOL,
        "owner": owner,
        "rule_id": rule_id,
        "assigned_at": now if owner else None,
        "last_activity_at": now,
        "pooled_at": None if owner else now,
        "created_at": now,
        "updated_at": now,
    }
    row = (await conn.execute(leads.insert().values(**values).returning(*leads.c))).one()
    why = (
        "分配规则"
        if rule_id
        else ("已是该销售的客户" if owner and new.owner is None else ("指定负责人" if owner else "无规则可分配，进入公海"))
    )
    await record_move(conn, int(row.id), MoveAction.CREATE, now, actor, frm=None, to=owner, reason=why)
    if owner and owner != new.owner and new.source != LeadSource.CHANNEL_CODE:
        await outbox.add(conn, ASSIGNED_TOPIC, {"lead_id": int(row.id), "owner": owner, "why": why, "at": now.isoformat()}, now)
    return Arrived(await get_lead(conn, int(row.id)), duplicate=False)


NEWCOMER_WINDOW = dt.timedelta(hours=24)


async def newcomer_lead(conn: AsyncConnection, new: NewLead, now: dt.datetime, *, owner_checked: bool = False) -> Arrived | None:
    """A lead for someone who just reached us (a first 微信客服 message, an Official Account follow): only when the
    customer was first seen within the last 24 hours and never had a lead — an old customer writing in is not a lead,
    and the same newcomer writing again is not a second one. In the caller's transaction."""
    assert new.customer_id is not None
    seen = await first_seen(conn, new.customer_id)
    if seen is None or seen < now - NEWCOMER_WINDOW:
        return None
    if (await conn.execute(sa.select(leads.c.id).where(leads.c.customer_id == new.customer_id).limit(1))).first() is not None:
        return None
    return await create_lead(conn, new, now, actor="system", owner_checked=owner_checked)


async def add_lead(rt: Runtime, new: NewLead) -> Arrived:
    """A lead typed in or posted (form, console, sidebar, API), in its own transaction, recorded in the audit trail."""
    now = rt.clock.now()
    who = audit.current_actor()
    async with rt.db.write() as conn:
        arrived = await create_lead(conn, new, now, actor=who.name or who.ref)
        if not arrived.duplicate:
            await audit.record(
                conn,
                now,
                action="create",
                entity="lead",
                entity_id=arrived.lead.id,
                summary=f"新线索 {arrived.lead.label}（{arrived.lead.source_zh}）",
            )
    return arrived


# ---- owner changes ------------------------------------------------------------------------------------------
