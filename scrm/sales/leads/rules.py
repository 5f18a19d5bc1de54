"""Assignment rules (线索分配规则): which new leads go to whom — by source, region and customer tags, round robin
or by load, with a daily cap per member — and their upkeep in the console and API."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import audit
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.staff.services import get_salesperson
from scrm.crm.tags.services import tags_of
from scrm.sales.leads import domain
from scrm.sales.leads.domain import LeadStatus, MoveAction
from scrm.sales.leads.models import assignment_rules, lead_moves, leads


async def _given_today(conn: AsyncConnection, members: list[str], now: dt.datetime) -> dict[str, int]:
    """Leads each member was given today (by the rules at arrival or by a manager)."""
    rows = await conn.execute(
        sa.select(lead_moves.c.to_owner, sa.func.count())
        .where(
            lead_moves.c.to_owner.in_(members),
            lead_moves.c.action.in_((MoveAction.CREATE, MoveAction.ASSIGN)),
            lead_moves.c.at >= domain.start_of_day(now),
        )
        .group_by(lead_moves.c.to_owner)
    )
    return {r[0]: int(r[1]) for r in rows}


async def _open_counts(conn: AsyncConnection, members: list[str]) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(leads.c.owner, sa.func.count())
        .where(leads.c.status == LeadStatus.OPEN, leads.c.owner.in_(members))
        .group_by(leads.c.owner)
    )
    return {r[0]: int(r[1]) for r in rows}


async def _active_members(conn: AsyncConnection, members: list[str]) -> set[str]:
    out = set()
    for userid in members:
        person = await get_salesperson(conn, userid)
        if person is not None and person.active:
            out.add(userid)
    return out


async def assign_by_rules(
    conn: AsyncConnection, *, source: str, region: str, customer_id: int | None, now: dt.datetime
) -> tuple[str, int] | None:
    """(member, rule id) the first matching rule gives the lead to, advancing its round-robin cursor; None: no rule
    can place it (no rule matches, or every member is inactive or at the cap)."""
    query = (
        sa.select(assignment_rules).where(assignment_rules.c.active.is_(True)).order_by(assignment_rules.c.priority, assignment_rules.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # one arrival at a time advances a rule's cursor
    tag_ids = frozenset(t.tag_id for t in await tags_of(conn, customer_id)) if customer_id is not None else frozenset()
    for row in await conn.execute(query):
        rule = domain.RuleView(
            int(row.id), row.sources, row.regions, row.tag_ids, list(row.members), row.method, int(row.daily_cap), int(row.cursor)
        )
        if not domain.rule_matches(rule, source=source, region=region, tag_ids=tag_ids):
            continue
        members = list(rule.members)
        active = await _active_members(conn, members)
        given = await _given_today(conn, members, now) if rule.daily_cap else {}
        eligible = {m: m in active and (not rule.daily_cap or given.get(m, 0) < rule.daily_cap) for m in members}
        load = await _open_counts(conn, members) if rule.method == "load" else {}
        pick = domain.pick_member(rule, eligible=eligible, open_leads=load)
        if pick is None:
            continue
        if pick.next_cursor != rule.cursor:
            await conn.execute(sa.update(assignment_rules).where(assignment_rules.c.id == rule.id).values(cursor=pick.next_cursor))
        return pick.member, rule.id
    return None


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    priority: int
    active: bool
    sources: list[str]
    regions: list[str]
    tag_ids: list[int]
    members: list[str]
    method: str
    daily_cap: int
    return_after_days: int | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def method_zh(self) -> str:
        return domain.METHOD_NAMES_ZH.get(self.method, self.method)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


def _rule(row: Any) -> Rule:
    return Rule(
        int(row.id),
        row.name,
        int(row.priority),
        bool(row.active),
        list(row.sources),
        list(row.regions),
        [int(t) for t in row.tag_ids],
        list(row.members),
        row.method,
        int(row.daily_cap),
        row.return_after_days,
        row.created_at,
        row.updated_at,
    )


async def list_rules(conn: AsyncConnection) -> list[Rule]:
    rows = await conn.execute(sa.select(assignment_rules).order_by(assignment_rules.c.priority, assignment_rules.c.id))
    return [_rule(r) for r in rows]


async def get_rule(conn: AsyncConnection, rule_id: int) -> Rule:
    row = (await conn.execute(sa.select(assignment_rules).where(assignment_rules.c.id == rule_id))).first()
    if row is None:
        raise NotFound(f"分配规则 {rule_id} 不存在")
    return _rule(row)


async def _check_members(conn: AsyncConnection, members: list[str]) -> None:
    for userid in members:
        person = await get_salesperson(conn, userid)
        if person is None:
            raise InvalidInput(f"企业微信成员「{userid}」不存在（请先同步通讯录）", field="members")
        if not person.active:
            raise InvalidInput(f"成员「{person.display_name}」已停用或离职，不能接收线索", field="members")


def _values(
    *,
    name: str,
    priority: int,
    active: bool,
    sources: list[str],
    regions: list[str],
    tag_ids: list[int],
    members: list[str],
    method: str,
    daily_cap: int,
    return_after_days: int | None,
) -> dict[str, Any]:
    domain.check_rule(name=name, members=members, method=method, daily_cap=daily_cap, return_after_days=return_after_days, sources=sources)
    return {
        "name": name.strip(),
        "priority": priority,
        "active": active,
        "sources": list(dict.fromkeys(sources)),
        "regions": [r.strip() for r in regions if r.strip()],
        "tag_ids": list(dict.fromkeys(int(t) for t in tag_ids)),
        "members": members,
        "method": method,
        "daily_cap": daily_cap,
        "return_after_days": return_after_days,
    }


async def save_rule(rt: Runtime, rule_id: int | None, **fields: Any) -> Rule:
    """Create (``rule_id`` None) or replace a rule; members must be active members of the WeCom directory."""
    values = _values(**fields)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await _check_members(conn, values["members"])
        if rule_id is None:
            new_id = (
                await conn.execute(
                    assignment_rules.insert().values(**values, cursor=0, created_at=now, updated_at=now).returning(assignment_rules.c.id)
                )
            ).scalar_one()
            rule = await get_rule(conn, int(new_id))
            await audit.record(
                conn,
                now,
                action="create",
                entity="lead_assignment_rule",
                entity_id=rule.id,
                summary=f"新建线索分配规则「{rule.name}」",
                after=values,
            )
            return rule
        before = await get_rule(conn, rule_id)
        await conn.execute(sa.update(assignment_rules).where(assignment_rules.c.id == rule_id).values(**values, updated_at=now))
        old, new = audit.changed({k: getattr(before, k) for k in values}, values)
        await audit.record(
            conn,
            now,
            action="update",
            entity="lead_assignment_rule",
            entity_id=rule_id,
            summary=f"修改线索分配规则「{values['name']}」",
            before=old,
            after=new,
        )
        return await get_rule(conn, rule_id)


async def delete_rule(rt: Runtime, rule_id: int) -> Rule:
    now = rt.clock.now()
    async with rt.db.write() as conn:
        rule = await get_rule(conn, rule_id)
        await conn.execute(sa.update(leads).where(leads.c.rule_id == rule_id).values(rule_id=None))
        await conn.execute(sa.delete(assignment_rules).where(assignment_rules.c.id == rule_id))
        await audit.record(
            conn, now, action="delete", entity="lead_assignment_rule", entity_id=rule_id, summary=f"删除线索分配规则「{rule.name}」"
        )
        return rule
