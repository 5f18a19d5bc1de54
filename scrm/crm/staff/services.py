"""Salespeople (企业成员) and the follow relation (客户关系) customer ↔ salesperson.

A follow row is keyed by (userid, external_userid) and records how the relation began (add_way, the contact
way's state, started_at) and how it ended (ended_at, ended_by). Events arrive out of order and more than once,
so every change is guarded by time: an end older than the current start is stale (the customer was re-added
since) and changes nothing; a start newer than a recorded end re-opens the relation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.clock import from_timestamp
from scrm.core.db import insert_ignore
from scrm.crm.customers.models import FollowStatus, follows
from scrm.crm.customers.services import ensure_customer, link_identity, lock_customer, resolve_customer, update_profile
from scrm.crm.staff.models import salespeople


class EndedBy:
    CUSTOMER = "customer"  # del_follow_user: the customer deleted the salesperson (churn signal)
    SALESPERSON = "salesperson"  # del_external_contact: the salesperson deleted the customer
    TRANSFER = "transfer"  # del_external_contact with Source DELETE_BY_TRANSFER: handed to a colleague


_KEEP: Any = object()  # "leave this column as it is"


@dataclass(frozen=True)
class Salesperson:
    userid: str
    name: str
    department: str
    leader_userid: str | None
    active: bool
    synced_at: dt.datetime | None

    @property
    def display_name(self) -> str:
        return self.name or self.userid


@dataclass(frozen=True)
class Follow:
    id: int
    customer_id: int
    userid: str
    external_userid: str
    status: str
    remark: str
    description: str
    add_way: int
    state: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    ended_by: str | None

    @property
    def active(self) -> bool:
        return self.status != FollowStatus.ENDED


@dataclass(frozen=True)
class FollowEnd:
    follow: Follow
    changed: bool  # this call ended it (False: already ended, or the end was stale)
    known: bool  # the relation was on record before (else started_at is unknown and equals the end)


@dataclass(frozen=True)
class ContactApplied:
    customer_id: int
    merged: bool  # the unionid linked this customer to an existing one
    follows: int
    new_salespeople: list[str] = field(default_factory=list)


# ---- salespeople ---------------------------------------------------------------------------------------
def _salesperson(row: Any) -> Salesperson:
    return Salesperson(row.userid, row.name, row.department, row.leader_userid, bool(row.active), row.synced_at)


async def ensure_salesperson(conn: AsyncConnection, dialect: str, userid: str, now: dt.datetime) -> bool:
    """Make sure the member has a row (name etc. come later from user/get). Returns True if it was new."""
    if not userid:
        raise ValueError("empty userid")
    inserted = await conn.execute(
        insert_ignore(salespeople, dialect).values(userid=userid[:64], created_at=now).returning(salespeople.c.userid)
    )
    return inserted.scalar() is not None


async def upsert_salesperson(
    conn: AsyncConnection,
    dialect: str,
    userid: str,
    now: dt.datetime,
    *,
    name: str | None = None,
    department: str | None = None,
    leader_userid: Any = _KEEP,
    active: bool | None = None,
    synced: bool = False,
) -> None:
    """Create or update a salesperson; only the given fields change (``leader_userid=None`` clears the leader,
    leaving it out keeps it). ``synced`` stamps synced_at (the data came from the WeCom directory)."""
    await ensure_salesperson(conn, dialect, userid, now)
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name[:64]
    if department is not None:
        values["department"] = department[:128]
    if leader_userid is not _KEEP:
        values["leader_userid"] = (leader_userid or None) and str(leader_userid)[:64]
    if active is not None:
        values["active"] = active
    if synced:
        values["synced_at"] = now
    if values:
        await conn.execute(sa.update(salespeople).where(salespeople.c.userid == userid).values(**values))


async def set_leader(conn: AsyncConnection, dialect: str, userid: str, leader_userid: str | None, now: dt.datetime) -> None:
    """Set (or clear) whom the salesperson reports to — for directories where user/get gives no direct_leader."""
    if leader_userid == userid:
        raise ValueError("a salesperson cannot lead themselves")
    await upsert_salesperson(conn, dialect, userid, now, leader_userid=leader_userid)


async def get_salesperson(conn: AsyncConnection, userid: str) -> Salesperson | None:
    row = (await conn.execute(sa.select(salespeople).where(salespeople.c.userid == userid))).first()
    return _salesperson(row) if row else None


async def list_salespeople(conn: AsyncConnection, *, active_only: bool = True) -> list[Salesperson]:
    q = sa.select(salespeople).order_by(salespeople.c.userid)
    if active_only:
        q = q.where(salespeople.c.active.is_(True))
    return [_salesperson(r) for r in await conn.execute(q)]


# ---- follow relations ------------------------------------------------------------------------------------
def _follow(row: Any) -> Follow:
    return Follow(
        int(row.id),
        int(row.customer_id),
        row.userid,
        row.external_userid,
        row.status,
        row.remark,
        row.description,
        int(row.add_way),
        row.state,
        row.started_at,
        row.ended_at,
        row.ended_by,
    )


def _key(userid: str, external_userid: str) -> Any:
    return sa.and_(follows.c.userid == userid, follows.c.external_userid == external_userid)


async def follow_of(conn: AsyncConnection, userid: str, external_userid: str) -> Follow | None:
    row = (await conn.execute(sa.select(follows).where(_key(userid, external_userid)))).first()
    return _follow(row) if row else None


async def follows_of(conn: AsyncConnection, customer_id: int, *, include_ended: bool = True) -> list[Follow]:
    """The customer's relations (resolved through merges), active first, then by start."""
    cid = await resolve_customer(conn, customer_id)
    q = sa.select(follows).where(follows.c.customer_id == cid)
    if not include_ended:
        q = q.where(follows.c.status != FollowStatus.ENDED)
    rows = await conn.execute(q.order_by((follows.c.status == FollowStatus.ENDED).asc(), follows.c.started_at, follows.c.id))
    return [_follow(r) for r in rows]


async def is_following(conn: AsyncConnection, userid: str, customer_id: int) -> bool:
    """True while the salesperson has a live (active or half) relation with the customer — the sidebar's rule
    for who may see whom."""
    cid = await resolve_customer(conn, customer_id)
    q = sa.select(follows.c.id).where(follows.c.customer_id == cid, follows.c.userid == userid, follows.c.status != FollowStatus.ENDED)
    return (await conn.execute(q.limit(1))).first() is not None


async def start_follow(
    conn: AsyncConnection,
    dialect: str,
    *,
    customer_id: int,
    userid: str,
    external_userid: str,
    status: str,
    at: dt.datetime,
    now: dt.datetime,
    add_way: int | None = None,
    state: str | None = None,
    remark: str | None = None,
    description: str | None = None,
) -> Follow:
    """The relation began (add_external_contact → active, add_half_external_contact → half) at ``at``.

    Idempotent. Never downgrades active to half; re-opens an ended relation only when ``at`` is after its end
    (a late duplicate of the first add changes nothing)."""
    if status not in (FollowStatus.ACTIVE, FollowStatus.HALF):
        raise ValueError(f"a follow starts active or half, not {status!r}")
    cid = await lock_customer(conn, customer_id)
    details: dict[str, Any] = {"add_way": add_way, "state": state, "remark": remark, "description": description}
    details = {k: v for k, v in details.items() if v is not None and v != ""}
    await conn.execute(
        insert_ignore(follows, dialect).values(
            customer_id=cid, userid=userid, external_userid=external_userid, status=status, started_at=at, updated_at=now, **details
        )
    )
    row = (await conn.execute(sa.select(follows).where(_key(userid, external_userid)))).one()
    values: dict[str, Any] = {}
    if row.status == FollowStatus.ENDED:
        if row.ended_at is None or at > row.ended_at:
            values = {"status": status, "started_at": at, "ended_at": None, "ended_by": None, **details}
    elif row.status == FollowStatus.HALF and status == FollowStatus.ACTIVE:
        values = {"status": FollowStatus.ACTIVE, **details}
    elif details and any(getattr(row, k) != v for k, v in details.items()):
        values = dict(details)
    if int(row.customer_id) != cid:
        values["customer_id"] = cid
    if values:
        await conn.execute(sa.update(follows).where(follows.c.id == row.id).values(**values, updated_at=now))
        row = (await conn.execute(sa.select(follows).where(follows.c.id == row.id))).one()
    return _follow(row)


async def end_follow(
    conn: AsyncConnection,
    dialect: str,
    *,
    customer_id: int,
    userid: str,
    external_userid: str,
    ended_by: str,
    at: dt.datetime,
    now: dt.datetime,
) -> FollowEnd:
    """The relation ended at ``at`` (del_follow_user / del_external_contact). Idempotent; an end older than the
    relation's current start is stale and changes nothing. A relation never seen begins and ends at ``at``."""
    cid = await lock_customer(conn, customer_id)
    known = (await conn.execute(sa.select(follows.c.id).where(_key(userid, external_userid)))).first() is not None
    if not known:
        await conn.execute(
            insert_ignore(follows, dialect).values(
                customer_id=cid,
                userid=userid,
                external_userid=external_userid,
                status=FollowStatus.ENDED,
                started_at=at,
                ended_at=at,
                ended_by=ended_by,
                updated_at=now,
            )
        )
        row = (await conn.execute(sa.select(follows).where(_key(userid, external_userid)))).one()
        return FollowEnd(_follow(row), True, False)
    changed = await conn.execute(
        sa.update(follows)
        .where(_key(userid, external_userid), follows.c.status != FollowStatus.ENDED, follows.c.started_at <= at)
        .values(status=FollowStatus.ENDED, ended_at=at, ended_by=ended_by, updated_at=now)
    )
    row = (await conn.execute(sa.select(follows).where(_key(userid, external_userid)))).one()
    return FollowEnd(_follow(row), changed.rowcount == 1, True)


async def sync_follow(
    conn: AsyncConnection, dialect: str, *, customer_id: int, external_userid: str, item: dict[str, Any], now: dt.datetime
) -> Follow | None:
    """Apply one ``follow_user`` item of externalcontact/get (or ``follow_info`` of batch/get_by_user): remark,
    description, add_way, state, createtime. WeCom lists the relation, so it exists: unknown → active; ended
    before ``createtime`` → re-opened; ended after it → left ended (the listing is older than our end event)."""
    userid = str(item.get("userid") or "")
    if not userid:
        return None
    created = item.get("createtime")
    has_created = isinstance(created, int | str) and str(created).isdecimal() and int(created) > 0
    started = from_timestamp(str(created)) if has_created else now
    add_way = item.get("add_way")
    existing = await follow_of(conn, userid, external_userid)
    # A half relation (the salesperson has not confirmed yet) is listed too; only add_external_contact completes it.
    status = FollowStatus.HALF if existing is not None and existing.status == FollowStatus.HALF else FollowStatus.ACTIVE
    follow = await start_follow(
        conn,
        dialect,
        customer_id=customer_id,
        userid=userid,
        external_userid=external_userid,
        status=status,
        at=started,
        now=now,
        add_way=int(add_way) if isinstance(add_way, int | str) and str(add_way).lstrip("-").isdecimal() else None,
        state=str(item["state"])[:64] if item.get("state") else None,
    )
    # remark / description may legitimately be cleared in WeCom: take them as given, not only when non-empty.
    values: dict[str, Any] = {"remark": str(item.get("remark") or "")[:128], "description": str(item.get("description") or "")}
    if follow.active and has_created and follow.started_at != started:
        values["started_at"] = started  # WeCom's createtime is the relation's start; the event time only near it
    if any(getattr(follow, k) != v for k, v in values.items()):
        await conn.execute(sa.update(follows).where(follows.c.id == follow.id).values(**values, updated_at=now))
        follow = _follow((await conn.execute(sa.select(follows).where(follows.c.id == follow.id))).one())
    return follow


async def apply_contact_details(
    conn: AsyncConnection, dialect: str, contact: dict[str, Any], follow_users: list[dict[str, Any]], now: dt.datetime
) -> ContactApplied:
    """Store what WeCom says about a customer (``external_contact`` + ``follow_user`` of externalcontact/get):
    profile (name, avatar, gender, corp_name), unionid (merging with an Official Account / kf customer that has
    it), follow relations and salespeople rows for members not seen before. One call, one transaction; the
    result names the surviving customer. Used by the enrichment job and by the initial sync."""
    external_userid = str(contact.get("external_userid") or "")
    if not external_userid:
        raise ValueError("external_contact without external_userid")
    cid = await ensure_customer(conn, dialect, kind="external_userid", value=external_userid, now=now)
    merged = False
    unionid = str(contact.get("unionid") or "")
    if unionid:
        survivor = await link_identity(conn, dialect, cid, "unionid", unionid, now)
        merged, cid = survivor != cid, survivor
    gender = contact.get("gender")
    await update_profile(
        conn,
        cid,
        now,
        name=str(contact["name"]) if contact.get("name") else None,
        avatar=str(contact["avatar"]) if contact.get("avatar") else None,
        gender=int(gender) if isinstance(gender, int) else None,
        corp_name=str(contact.get("corp_full_name") or contact.get("corp_name") or "") or None,
    )
    new_people: list[str] = []
    count = 0
    for item in follow_users:
        userid = str(item.get("userid") or "")
        if not userid:
            continue
        if await ensure_salesperson(conn, dialect, userid, now):
            new_people.append(userid)
        if await sync_follow(conn, dialect, customer_id=cid, external_userid=external_userid, item=item, now=now):
            count += 1
    return ContactApplied(cid, merged, count, new_people)


async def team_of(conn: AsyncConnection, userid: str, *, max_depth: int = 10) -> set[str]:
    """``userid`` and everyone who reports to them, directly or through others (the 直属上级 chain from WeCom)."""
    team, frontier = {userid}, {userid}
    for _ in range(max_depth):
        rows = await conn.execute(sa.select(salespeople.c.userid).where(salespeople.c.leader_userid.in_(sorted(frontier))))
        frontier = {r.userid for r in rows} - team
        if not frontier:
            break
        team |= frontier
    return team
