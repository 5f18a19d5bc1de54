"""Read-only lookups on customers for other packages' pages (names for tables, existence checks, the picker's search)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.customers.models import FollowStatus, customer_identities, customers, follows


async def customer_name(conn: AsyncConnection, customer_id: int) -> str:
    """A customer's name, or "" when unnamed or unknown."""
    row = (await conn.execute(sa.select(customers.c.name).where(customers.c.id == customer_id))).first()
    return row.name if row is not None and row.name else ""


async def names_of(conn: AsyncConnection, ids: Collection[int]) -> dict[int, str]:
    """Names of the given customers (unknown ids left out; a name may be None for an unnamed customer)."""
    if not ids:
        return {}
    return {int(r.id): r.name for r in await conn.execute(sa.select(customers.c.id, customers.c.name).where(customers.c.id.in_(ids)))}


async def customer_exists(conn: AsyncConnection, customer_id: int) -> bool:
    return (await conn.execute(sa.select(customers.c.id).where(customers.c.id == customer_id))).first() is not None


@dataclass(frozen=True)
class CustomerChoice:
    """A customer as a picker offers them: name, the salesperson's remark, an identity to tell namesakes apart."""

    id: int
    name: str
    remark: str
    identity: str

    @property
    def label(self) -> str:
        """张三（备注：张总）· wmAbc… #12 — what the list shows."""
        text = self.name or "未命名客户"
        if self.remark and self.remark != self.name:
            text += f"（备注：{self.remark}）"
        if self.identity:
            text += f" · {self.identity[:16]}"
        return f"{text} #{self.id}"

    @property
    def value(self) -> str:
        """What the picked field holds: the name and ``#id`` (the id is what the server reads)."""
        return f"{self.name or '未命名客户'} #{self.id}"


PICK_LIMIT = 10
MAX_PICK_QUERY = 64


def _contains(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def customer_matches(q: str) -> sa.ColumnElement[bool]:
    """The one customer search (the 客户 directory and the customer picker both use it): the name, a salesperson's
    remark or a custom field (a phone number typed there, 3+ digits) contains ``q``, or an identity
    (external_userid / openid / unionid) or ``#id`` is ``q``. ``q`` is stripped and non-empty; bound parameters."""
    c = customers.c
    pattern = _contains(q)
    by_remark = sa.select(follows.c.customer_id).where(follows.c.remark.like(pattern, escape="\\"))
    by_identity = sa.select(customer_identities.c.customer_id).where(customer_identities.c.value == q)
    options: list[sa.ColumnElement[bool]] = [c.name.like(pattern, escape="\\"), c.id.in_(by_remark), c.id.in_(by_identity)]
    number = q.removeprefix("#")
    if number.isdecimal() and len(number) < 19:
        options.append(c.id == int(number))
    if len(number) >= 3 and number.isdecimal():  # a phone number (or part of one) kept in a custom field
        options.append(sa.cast(c.custom_fields, sa.Text).like(pattern, escape="\\"))
    return sa.or_(*options)


async def pick_customers(conn: AsyncConnection, q: str, *, limit: int = PICK_LIMIT) -> list[CustomerChoice]:
    """Customers (not merged away) matching ``q`` (:func:`customer_matches`: name, remark, a phone in a custom
    field, identity, ``#id``) — most recently seen first. Everything is a bound parameter."""
    q = q.strip()[:MAX_PICK_QUERY]
    if not q:
        return []
    c = customers.c
    found = (
        await conn.execute(
            sa.select(c.id, c.name)
            .where(c.merged_into.is_(None), customer_matches(q))
            .order_by(c.last_seen_at.desc(), c.id.desc())
            .limit(limit)
        )
    ).all()
    ids = [int(r.id) for r in found]
    remarks: dict[int, str] = {}
    identities: dict[int, str] = {}
    if ids:
        for r in await conn.execute(
            sa.select(follows.c.customer_id, follows.c.remark)
            .where(follows.c.customer_id.in_(ids), follows.c.remark != "")
            .order_by(follows.c.id)
        ):
            remarks.setdefault(int(r.customer_id), r.remark)
        for r in await conn.execute(
            sa.select(customer_identities.c.customer_id, customer_identities.c.value)
            .where(customer_identities.c.customer_id.in_(ids))
            .order_by(customer_identities.c.id)
        ):
            identities.setdefault(int(r.customer_id), r.value)
    return [CustomerChoice(int(r.id), r.name or "", remarks.get(int(r.id), ""), identities.get(int(r.id), "")) for r in found]


async def customer_by_identity(conn: AsyncConnection, value: str) -> int | None:
    """The customer one of whose identities (external_userid / openid / unionid) is ``value``, if any."""
    row = (await conn.execute(sa.select(customer_identities.c.customer_id).where(customer_identities.c.value == value).limit(1))).first()
    return int(row.customer_id) if row is not None else None


def followed_by(userids: Collection[str]) -> sa.Select[tuple[int]]:
    """The ids of customers any of these salespeople serves now (an active or half-added follow): a data scope's
    customers, as a subquery for ``customers.c.id.in_(…)``."""
    f = follows.c
    return sa.select(f.customer_id).where(f.userid.in_(sorted(userids)), f.status.in_((FollowStatus.ACTIVE, FollowStatus.HALF)))


async def served_by(conn: AsyncConnection, customer_id: int, userids: Collection[str]) -> bool:
    """Whether any of these salespeople serves this customer now."""
    found = (await conn.execute(followed_by(userids).where(follows.c.customer_id == customer_id).limit(1))).first()
    return found is not None


@dataclass(frozen=True)
class ServedCustomer:
    """A customer a salesperson serves now (an active follow), as a handover lists them."""

    customer_id: int
    external_userid: str
    name: str
    remark: str


async def customers_served_by(conn: AsyncConnection, userid: str) -> list[ServedCustomer]:
    """The customers ``userid`` serves now (active follows), by customer id."""
    f = follows.c
    rows = await conn.execute(
        sa.select(f.customer_id, f.external_userid, f.remark, customers.c.name)
        .join(customers, customers.c.id == f.customer_id)
        .where(f.userid == userid, f.status == FollowStatus.ACTIVE)
        .order_by(f.customer_id, f.external_userid)
    )
    return [ServedCustomer(int(r.customer_id), r.external_userid, r.name or "", r.remark or "") for r in rows]


async def sole_followers_since(conn: AsyncConnection, before: dt.datetime, *, limit: int) -> list[tuple[int, str]]:
    """``(customer id, salesperson)`` for customers one salesperson alone serves now (an active follow), a relation
    begun before ``before`` — the customers that salesperson answers for alone."""
    f = follows.c
    live = sa.select(f.customer_id).where(f.status == FollowStatus.ACTIVE).group_by(f.customer_id).having(sa.func.count() == 1)
    rows = await conn.execute(
        sa.select(f.customer_id, f.userid)
        .where(f.status == FollowStatus.ACTIVE, f.started_at < before, f.customer_id.in_(live))
        .order_by(f.customer_id)
        .limit(limit)
    )
    return [(int(r.customer_id), r.userid) for r in rows]


async def customer_by_phone(conn: AsyncConnection, phone: str) -> int | None:
    """The one customer whose custom fields hold this phone number (digits, 7 or more); two or more: ambiguous, none."""
    if len(phone) < 7:
        return None
    pattern = "%" + phone + "%"
    rows = (
        await conn.execute(
            sa.select(customers.c.id)
            .where(customers.c.merged_into.is_(None), sa.cast(customers.c.custom_fields, sa.Text).like(pattern))
            .limit(2)
        )
    ).all()
    return int(rows[0].id) if len(rows) == 1 else None


async def serving_salesperson(conn: AsyncConnection, customer_id: int) -> str | None:
    """The salesperson serving this customer in WeCom now (the longest-standing relation not ended)."""
    f = follows.c
    row = (
        await conn.execute(
            sa.select(f.userid).where(f.customer_id == customer_id, f.status != FollowStatus.ENDED).order_by(f.started_at, f.id).limit(1)
        )
    ).first()
    return row.userid if row is not None else None


async def first_seen(conn: AsyncConnection, customer_id: int) -> dt.datetime | None:
    return (await conn.execute(sa.select(customers.c.first_seen_at).where(customers.c.id == customer_id))).scalar()


def name_of(customer_id: sa.ColumnElement[int]) -> sa.ScalarSelect[str]:
    """A customer's name as a scalar subquery on another table's customer id column (NULL when none)."""
    return sa.select(customers.c.name).where(customers.c.id == customer_id).scalar_subquery()


def named_like(pattern: str) -> sa.Select[tuple[int]]:
    """The ids of customers whose name is LIKE ``pattern`` (escaped with a backslash), for ``…in_(…)``."""
    return sa.select(customers.c.id).where(customers.c.name.like(pattern, escape="\\"))
