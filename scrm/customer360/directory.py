"""The customer directory for staff: search / filter customers (free text or a segment expression) and one
customer's full record. Read-only; shared by the console pages (/console/customers) and the API
(/api/v1/customers). Lives in the web layer because it composes customers, tags, tagging and fulfilment reads.

Unlike the sidebar (a salesperson sees only the customers they follow), these reads are for signed-in staff and
API callers, who see every customer; the routes decide who may call them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.billing.receivables import customer_balance
from fulfillment.orders.queries import orders_of_customer
from scrm.core.clock import local
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.openapi import ApiModel
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, customer_identities, customers, follows
from scrm.crm.customers.queries import customer_matches
from scrm.crm.customers.services import get_customer, identities_of, resolve_customer
from scrm.crm.groups.models import group_members, groups
from scrm.crm.staff.models import salespeople
from scrm.crm.tags.models import customer_tags, tags
from scrm.crm.timeline.services import entries
from scrm.customer360.queries import (
    ACTIVITY_ZH,
    ADD_WAY_ZH,
    GENDER_ZH,
    KIND_ZH,
    customer_tags_json,
    notes_json,
    order_json,
    segment_and_rfm,
)
from scrm.governance.fields.services import rules_for
from scrm.governance.scopes.services import customer_in_scope, scope_for
from tagging.activity.models import customer_activity
from tagging.rfm.models import customer_order_stats, customer_rfm
from tagging.segments.sql import compile_condition
from tagging.segments.syntax import parse

PER_PAGE = 50
MAX_QUERY = 64
MAX_EXPRESSION = 2000
TAGS_SHOWN = 4
FOLLOW_STATUS_ZH = {FollowStatus.ACTIVE: "好友", FollowStatus.HALF: "待客户通过", FollowStatus.ENDED: "已结束"}
ENDED_BY_ZH = {"customer": "客户删除了销售", "salesperson": "销售删除了客户", "transfer": "已转接给其他销售"}


@dataclass(frozen=True)
class CustomerRow:
    """One line of the directory."""

    id: int
    name: str
    identity: str  # the first external_userid / openid, so staff can tell unnamed customers apart
    salespeople: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    tags_more: int = 0
    activity: str | None = None  # activity segment in Chinese
    rfm_segment: str | None = None
    orders: int = 0
    monetary_fen: int = 0
    last_seen_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "identity": self.identity,
            "salespeople": self.salespeople,
            "tags": self.tags,
            "tags_more": self.tags_more,
            "activity": self.activity,
            "rfm_segment": self.rfm_segment,
            "orders": self.orders,
            "monetary_fen": self.monetary_fen,
            "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
        }


@dataclass(frozen=True)
class DirectoryPage:
    rows: list[CustomerRow]
    page: int
    more: bool
    total: int


def directory_filter(q: str, expression: str, now: dt.datetime) -> Any:
    """The WHERE clause over ``customers``: not merged away; ``q`` matches as the customer picker's search does
    (:func:`scrm.crm.customers.queries.customer_matches`: name, remark, a phone in a custom field, identity,
    ``#id``); ``expression`` is the segment language (parse errors
    raise ``SegmentSyntaxError`` with the column). Everything is a bound parameter."""
    q = q.strip()
    expression = expression.strip()
    if len(q) > MAX_QUERY:
        raise InvalidInput(f"搜索词最多 {MAX_QUERY} 个字 (query too long)", field="q")
    if len(expression) > MAX_EXPRESSION:
        raise InvalidInput(f"客群表达式最多 {MAX_EXPRESSION} 个字符 (expression too long)", field="segment")
    c = customers.c
    conditions: list[Any] = [c.merged_into.is_(None)]
    if q:
        conditions.append(customer_matches(q))
    if expression:
        conditions.append(compile_condition(parse(expression), now))
    return sa.and_(*conditions)


async def _rows(conn: AsyncConnection, ids: list[int]) -> list[CustomerRow]:
    """The directory lines for these customers, in the given order: five batched reads, no per-row queries."""
    if not ids:
        return []
    c = customers.c
    base = {int(r.id): r for r in await conn.execute(sa.select(c.id, c.name, c.last_seen_at).where(c.id.in_(ids)))}
    identity: dict[int, str] = {}
    for r in await conn.execute(
        sa.select(customer_identities.c.customer_id, customer_identities.c.value)
        .where(customer_identities.c.customer_id.in_(ids), customer_identities.c.kind.in_(("external_userid", "openid")))
        .order_by(customer_identities.c.id)
    ):
        identity.setdefault(int(r.customer_id), r.value)
    people: dict[int, list[str]] = {}
    for r in await conn.execute(
        sa.select(follows.c.customer_id, sa.func.coalesce(sa.func.nullif(salespeople.c.name, ""), follows.c.userid).label("who"))
        .select_from(follows.outerjoin(salespeople, salespeople.c.userid == follows.c.userid))
        .where(follows.c.customer_id.in_(ids), follows.c.status.in_((FollowStatus.ACTIVE, FollowStatus.HALF)))
        .order_by(follows.c.started_at)
    ):
        people.setdefault(int(r.customer_id), []).append(r.who)
    tag_names: dict[int, list[str]] = {}
    for r in await conn.execute(
        sa.select(customer_tags.c.customer_id, tags.c.name)
        .join(tags, tags.c.id == customer_tags.c.tag_id)
        .where(customer_tags.c.customer_id.in_(ids), tags.c.deleted_at.is_(None))
        .order_by(customer_tags.c.applied_at.desc(), tags.c.id)
    ):
        tag_names.setdefault(int(r.customer_id), []).append(r.name)
    stats = {
        int(r.customer_id): r
        for r in await conn.execute(
            sa.select(customer_order_stats.c.customer_id, customer_order_stats.c.orders, customer_order_stats.c.monetary_fen).where(
                customer_order_stats.c.customer_id.in_(ids)
            )
        )
    }
    activity = {
        int(r.customer_id): r.segment
        for r in await conn.execute(
            sa.select(customer_activity.c.customer_id, customer_activity.c.segment).where(customer_activity.c.customer_id.in_(ids))
        )
    }
    rfm = {
        int(r.customer_id): r.segment
        for r in await conn.execute(
            sa.select(customer_rfm.c.customer_id, customer_rfm.c.segment).where(customer_rfm.c.customer_id.in_(ids))
        )
    }
    out = []
    for cid in ids:
        row = base.get(cid)
        if row is None:
            continue
        names = tag_names.get(cid, [])
        st = stats.get(cid)
        act = activity.get(cid)
        out.append(
            CustomerRow(
                id=cid,
                name=row.name,
                identity=identity.get(cid, ""),
                salespeople=people.get(cid, []),
                tags=names[:TAGS_SHOWN],
                tags_more=max(0, len(names) - TAGS_SHOWN),
                activity=ACTIVITY_ZH.get(act, act) if act else None,
                rfm_segment=rfm.get(cid),
                orders=int(st.orders) if st else 0,
                monetary_fen=int(st.monetary_fen) if st else 0,
                last_seen_at=row.last_seen_at,
            )
        )
    return out


async def search_customers(rt: Runtime, *, q: str = "", expression: str = "", page: int = 1, per_page: int = PER_PAGE) -> DirectoryPage:
    """One page of the directory, most recently seen first, with the total count of matches.
    Raises InvalidInput (too long) or SegmentSyntaxError (the expression does not parse)."""
    if page < 1 or page > 10_000:
        raise InvalidInput("页码必须在 1 到 10000 之间 (page out of range)", field="page")
    scope = await scope_for(rt)  # whose customers the person asking may see (the same rule everywhere)
    where = sa.and_(directory_filter(q, expression, rt.clock.now()), scope.customers(customers.c.id))
    c = customers.c
    async with rt.db.read() as conn:
        total = int((await conn.execute(sa.select(sa.func.count()).select_from(customers).where(where))).scalar_one())
        found = await conn.execute(
            sa.select(c.id).where(where).order_by(c.last_seen_at.desc(), c.id.desc()).offset((page - 1) * per_page).limit(per_page + 1)
        )
        ids = [int(r.id) for r in found]
        rows = await _rows(conn, ids[:per_page])
    return DirectoryPage(rows, page, len(ids) > per_page, total)


async def _follow_list(conn: AsyncConnection, customer_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(follows, salespeople.c.name.label("salesperson_name"))
        .select_from(follows.outerjoin(salespeople, salespeople.c.userid == follows.c.userid))
        .where(follows.c.customer_id == customer_id)
        .order_by(follows.c.started_at)
    )
    return [
        {
            "userid": r.userid,
            "name": r.salesperson_name or r.userid,
            "status": r.status,
            "status_zh": ENDED_BY_ZH.get(r.ended_by or "", "已结束")
            if r.status == FollowStatus.ENDED
            else FOLLOW_STATUS_ZH.get(r.status, r.status),
            "remark": r.remark,
            "add_way_zh": ADD_WAY_ZH.get(r.add_way, "其他"),
            "state": r.state,
            "since": r.started_at.isoformat(),
            "ended_at": r.ended_at.isoformat() if r.ended_at else None,
        }
        for r in rows
    ]


async def surviving_customer(conn: AsyncConnection, customer_id: int) -> int:
    """The customer's current id (the survivor when merged away); NotFound when there is no such customer."""
    if (await conn.execute(sa.select(customers.c.id).where(customers.c.id == customer_id))).first() is None:
        raise NotFound(f"没有这个客户：#{customer_id} (no such customer)")
    return await resolve_customer(conn, customer_id)


async def customer_record(rt: Runtime, customer_id: int, *, timeline_limit: int = 50) -> dict[str, Any]:
    """Everything staff see about one customer: profile, identities, salespeople (all follows, ended ones too),
    tags with why, activity and RFM, orders, what they owe, groups, notes and the timeline. A merged-away id
    answers with the surviving record (``merged_from`` tells). NotFound when there is no such customer."""
    async with rt.db.read() as conn:
        current = await surviving_customer(conn, customer_id)
    if not await customer_in_scope(rt, await scope_for(rt), current):  # someone else's customer answers as unknown
        raise NotFound(f"没有这个客户：#{customer_id} (no such customer)")
    rules = await rules_for(rt)  # 字段权限: phone numbers shown, masked or hidden
    async with rt.db.read() as conn:
        c = await get_customer(conn, current)
        record: dict[str, Any] = {
            "id": current,
            "merged_from": customer_id if current != customer_id else None,
            "name": c.name,
            "avatar": c.avatar,
            "gender_zh": GENDER_ZH.get(c.gender, "未知"),
            "corp_name": c.corp_name,
            "custom_fields": {k: rules.phone(v) if isinstance(v, str) else v for k, v in c.custom_fields.items()},
            "first_seen_at": c.first_seen_at.isoformat(),
            "last_seen_at": c.last_seen_at.isoformat(),
            "identities": await identities_of(conn, current),
            "follows": await _follow_list(conn, current),
            "tags": await customer_tags_json(conn, current),
            "notes": await notes_json(conn, current),
            "timeline": [
                {"at": e.at.isoformat(), "kind": e.kind, "kind_zh": KIND_ZH.get(e.kind, e.kind), "title": e.title, "body": e.body}
                for e in await entries(conn, current, limit=timeline_limit)
            ],
        }
        record["activity"], record["rfm"] = await segment_and_rfm(conn, current, local(rt.clock.now()).date())
        memberships = await conn.execute(
            sa.select(groups.c.chat_id, groups.c.name)
            .join(group_members, group_members.c.chat_id == groups.c.chat_id)
            .where(group_members.c.customer_id == current, group_members.c.active.is_(True), groups.c.dismissed_at.is_(None))
            .order_by(groups.c.name)
        )
        record["groups"] = [{"chat_id": g.chat_id, "name": g.name} for g in memberships]
    record["orders"] = [order_json(o) for o in await orders_of_customer(rt, current, limit=50)]
    balance = await customer_balance(rt, current)
    record["balance_due_fen"] = balance.open_fen
    record["overdue_fen"] = balance.overdue_fen
    record["oldest_due_on"] = balance.oldest_due_on.isoformat() if balance.oldest_due_on else None
    return record


class CustomerFollow(ApiModel):
    userid: str
    name: str
    status: str
    status_zh: str
    remark: str
    add_way_zh: str
    state: str
    since: dt.datetime
    ended_at: dt.datetime | None


class CustomerTag(ApiModel):
    tag_id: int
    name: str
    group: str
    source: str
    source_zh: str
    why: str
    applied_at: dt.datetime | None


class CustomerNote(ApiModel):
    id: int
    author: str
    author_name: str
    body: str
    created_at: dt.datetime | None


class TimelineEntry(ApiModel):
    at: dt.datetime
    kind: str
    kind_zh: str
    title: str
    body: str


class RecordRfm(ApiModel):
    segment: str
    r: int
    f: int
    m: int
    recency_days: int
    frequency: int
    monetary_fen: int
    computed_on: dt.date


class CustomerGroup(ApiModel):
    chat_id: str
    name: str


class CustomerOrderLine(ApiModel):
    sku: str
    name: str
    unit: str
    qty: int
    line_total_fen: int
    backordered_qty: int


class CustomerOrder(ApiModel):
    number: str
    status: str
    status_zh: str
    total_fen: int
    source: str
    created_at: dt.datetime | None
    lines: list[CustomerOrderLine]
    tracking_numbers: list[str]


class CustomerRecord(ApiModel):
    id: int
    merged_from: int | None = Field(description="the id asked for, when it was merged into this customer")
    name: str
    avatar: str
    gender_zh: str
    corp_name: str
    custom_fields: dict[str, str]
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    identities: dict[str, list[str]] = Field(description="kind (external_userid, openid, unionid) → values")
    follows: list[CustomerFollow]
    tags: list[CustomerTag]
    notes: list[CustomerNote]
    timeline: list[TimelineEntry]
    activity: str | None = Field(description="activity segment in Chinese")
    rfm: RecordRfm | None
    groups: list[CustomerGroup]
    orders: list[CustomerOrder]
    balance_due_fen: int
    overdue_fen: int
    oldest_due_on: dt.date | None


async def customer_record_view(rt: Runtime, customer_id: int) -> CustomerRecord:
    """:func:`customer_record` as its typed value (the console's customer page; the API answers the JSON itself)."""
    return CustomerRecord.model_validate(await customer_record(rt, customer_id))
