"""Customer groups (客户群): membership from events and snapshots, member counts, daily activity.

Two sources write the same rows and converge in whatever order they arrive:

* events (``change_external_chat``) say who joined or left and when — applied as state transitions of the
  member row, ordered by the event's own time, so a late or repeated event changes nothing;
* snapshots (``externalcontact/groupchat/get``) give the current name, owner, notice and members with names.

The join/leave counters of :data:`group_daily_stats` move only together with a transition made in the same
transaction, so an event applied twice counts once. Message counts and active members come from the chat
archive (:func:`set_message_stats`), recomputed per day from the stored records, never incremented.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.db import insert_ignore
from scrm.crm.customers.models import customers
from scrm.crm.customers.services import ensure_customer, get_customer, update_profile
from scrm.crm.groups.domain import (
    CALLBACK_QR_SCENE,
    EXTERNAL,
    SCENE_ZH,
    GroupSnapshot,
    business_day,
    guess_member_type,
)
from scrm.crm.groups.models import group_daily_stats, group_members, groups
from scrm.crm.timeline.services import Kind, add_entry


# ---- the group row ------------------------------------------------------------------------------------------
async def ensure_group(
    conn: AsyncConnection, dialect: str, chat_id: str, now: dt.datetime, *, created_at: dt.datetime | None = None
) -> None:
    """The group row exists (details come with the next snapshot)."""
    await conn.execute(insert_ignore(groups, dialect).values(chat_id=chat_id, created_at=created_at, updated_at=now))


async def _group(conn: AsyncConnection, chat_id: str) -> Any:
    return (await conn.execute(sa.select(groups).where(groups.c.chat_id == chat_id).with_for_update())).first()


async def refresh_member_count(conn: AsyncConnection, chat_id: str, now: dt.datetime) -> int:
    """Set ``member_count`` from the active member rows (0 once dismissed); returns it."""
    count = (
        await conn.execute(sa.select(sa.func.count()).where(group_members.c.chat_id == chat_id, group_members.c.active.is_(True)))
    ).scalar_one()
    await conn.execute(groups.update().where(groups.c.chat_id == chat_id).values(member_count=int(count), updated_at=now))
    return int(count)


async def _bump(conn: AsyncConnection, dialect: str, chat_id: str, at: dt.datetime, column: str) -> None:
    day = business_day(at)
    await conn.execute(insert_ignore(group_daily_stats, dialect).values(chat_id=chat_id, day=day))
    col = group_daily_stats.c[column]
    await conn.execute(
        group_daily_stats.update().where(group_daily_stats.c.chat_id == chat_id, group_daily_stats.c.day == day).values({col: col + 1})
    )


def _label(name: str) -> str:
    return f"「{name}」" if name else ""


async def _fill_customer_name(conn: AsyncConnection, customer_id: int, name: str, now: dt.datetime) -> None:
    # Only fills a blank name: the profile sync (externalcontact/get) owns the names of followed customers.
    if name and not (await get_customer(conn, customer_id)).name:
        await update_profile(conn, customer_id, now, name=name)


# ---- membership transitions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Member:
    chat_id: str
    member_id: str
    member_type: int
    name: str
    scene: int | None


async def _customer_for(conn: AsyncConnection, dialect: str, m: _Member, now: dt.datetime) -> int | None:
    if m.member_type != EXTERNAL:
        return None
    cid = await ensure_customer(conn, dialect, kind="external_userid", value=m.member_id, now=now, name=m.name)
    await _fill_customer_name(conn, cid, m.name, now)
    return cid


async def _join_entry(conn: AsyncConnection, dialect: str, cid: int | None, group: Any, m: _Member, at: dt.datetime) -> None:
    if cid is None:
        return
    how = SCENE_ZH.get(m.scene or 0, "")
    await add_entry(
        conn,
        dialect,
        customer_id=cid,
        at=at,
        kind=Kind.GROUP,
        title=f"加入客户群{_label(group.name)}" + (f"（{how}）" if how else ""),
        ref=f"group:{m.chat_id}:join:{int(at.timestamp())}",
        data={"chat_id": m.chat_id, "join_scene": m.scene},
    )


async def _record_join(conn: AsyncConnection, dialect: str, m: _Member, at: dt.datetime, now: dt.datetime, *, authoritative: bool) -> bool:
    """Make ``m`` a member as of ``at``; True when that was a change (and so counted as a join).

    ``authoritative``: the type and scene come from a snapshot and overwrite guesses made from an event."""
    group = await _group(conn, m.chat_id)
    cid = await _customer_for(conn, dialect, m, now)
    # A dismissed group has no members: a late join is history (counted), not a current membership.
    gone = group.dismissed_at
    inserted = (
        await conn.execute(
            insert_ignore(group_members, dialect)
            .values(
                chat_id=m.chat_id,
                member_id=m.member_id,
                member_type=m.member_type,
                customer_id=cid,
                name=m.name,
                joined_at=at,
                join_scene=m.scene,
                active=gone is None,
                left_at=gone,
            )
            .returning(group_members.c.member_id)
        )
    ).scalar()
    if inserted is not None:
        await _bump(conn, dialect, m.chat_id, at, "joins")
        await _join_entry(conn, dialect, cid, group, m, at)
        return True
    row = (
        await conn.execute(
            sa.select(group_members).where(group_members.c.chat_id == m.chat_id, group_members.c.member_id == m.member_id).with_for_update()
        )
    ).one()
    blanks: dict[str, Any] = {}
    if m.name and m.name != row.name:
        blanks["name"] = m.name
    if authoritative and m.member_type != row.member_type:
        blanks["member_type"] = m.member_type
    if cid is not None and row.customer_id is None:
        blanks["customer_id"] = cid
    if m.scene is not None and (authoritative or row.join_scene is None):
        blanks["join_scene"] = m.scene
    where = (group_members.c.chat_id == m.chat_id, group_members.c.member_id == m.member_id)
    if row.active or (row.left_at is not None and at <= row.left_at and row.joined_at is not None):
        # Already a member, or this join predates a leave we already hold with its join: nothing new happened.
        if blanks:
            await conn.execute(group_members.update().where(*where).values(**blanks))
        return False
    if row.left_at is not None and at <= row.left_at:
        # The leave arrived first (events out of order): record the join that preceded it, stay inactive.
        await conn.execute(group_members.update().where(*where).values(joined_at=at, **blanks))
    else:
        await conn.execute(
            group_members.update()
            .where(*where)
            .values(joined_at=at, active=gone is None, left_at=gone, quit_scene=None, **{"join_scene": m.scene, **blanks})
        )
    await _bump(conn, dialect, m.chat_id, at, "joins")
    await _join_entry(conn, dialect, cid if cid is not None else row.customer_id, group, m, at)
    return True


async def _record_leave(conn: AsyncConnection, dialect: str, m: _Member, at: dt.datetime, now: dt.datetime, quit_scene: int | None) -> bool:
    """``m`` left (quit_scene 0) or was removed (1) at ``at``; True when that was a change (counted as a leave)."""
    group = await _group(conn, m.chat_id)
    cid = await _customer_for(conn, dialect, m, now)
    inserted = (
        await conn.execute(
            insert_ignore(group_members, dialect)
            .values(
                chat_id=m.chat_id,
                member_id=m.member_id,
                member_type=m.member_type,
                customer_id=cid,
                name=m.name,
                active=False,
                left_at=at,
                quit_scene=quit_scene,
            )
            .returning(group_members.c.member_id)
        )
    ).scalar()
    if inserted is None:
        row = (
            await conn.execute(
                sa.select(group_members)
                .where(group_members.c.chat_id == m.chat_id, group_members.c.member_id == m.member_id)
                .with_for_update()
            )
        ).one()
        # Already gone, or a leave from before the current membership (it arrived after the rejoin): no change.
        if not row.active or (row.joined_at is not None and at < row.joined_at):
            return False
        cid = cid if cid is not None else row.customer_id
        await conn.execute(
            group_members.update()
            .where(group_members.c.chat_id == m.chat_id, group_members.c.member_id == m.member_id)
            .values(active=False, left_at=at, quit_scene=quit_scene)
        )
    await _bump(conn, dialect, m.chat_id, at, "leaves")
    if cid is not None:
        verb = "被移出客户群" if quit_scene == 1 else "退出客户群"
        await add_entry(
            conn,
            dialect,
            customer_id=cid,
            at=at,
            kind=Kind.GROUP,
            title=verb + _label(group.name),
            ref=f"group:{m.chat_id}:leave:{int(at.timestamp())}",
            data={"chat_id": m.chat_id, "quit_scene": quit_scene},
        )
    return True


async def members_joined(
    conn: AsyncConnection,
    dialect: str,
    chat_id: str,
    member_ids: Iterable[str],
    *,
    at: dt.datetime,
    now: dt.datetime,
    callback_scene: int | None = None,
) -> list[str]:
    """An ``add_member`` event: these ids joined at ``at``. Returns the ids whose joining was news.

    Idempotent and order-independent: a repeat, or a join older than a leave already recorded, changes nothing
    twice. Customers are ensured for external ids (types are guessed until the next snapshot)."""
    await ensure_group(conn, dialect, chat_id, now)
    scene = CALLBACK_QR_SCENE if callback_scene == CALLBACK_QR_SCENE else None
    changed = []
    for mid in dict.fromkeys(member_ids):
        m = _Member(chat_id, mid[:128], guess_member_type(mid), "", scene)
        if await _record_join(conn, dialect, m, at, now, authoritative=False):
            changed.append(mid)
    await refresh_member_count(conn, chat_id, now)
    return changed


async def members_left(
    conn: AsyncConnection,
    dialect: str,
    chat_id: str,
    member_ids: Iterable[str],
    *,
    at: dt.datetime,
    now: dt.datetime,
    quit_scene: int | None,
) -> list[str]:
    """A ``del_member`` event: these ids left (0) or were removed (1) at ``at``. Returns the ids whose leaving
    was news; repeats and stale leaves change nothing."""
    await ensure_group(conn, dialect, chat_id, now)
    changed = []
    for mid in dict.fromkeys(member_ids):
        m = _Member(chat_id, mid[:128], guess_member_type(mid), "", None)
        if await _record_leave(conn, dialect, m, at, now, quit_scene):
            changed.append(mid)
    await refresh_member_count(conn, chat_id, now)
    return changed


@dataclass(frozen=True)
class SnapshotResult:
    joined: list[str]
    left: list[str]
    member_count: int
    stale: bool = False  # a newer snapshot was applied already: group fields were left alone


async def apply_snapshot(
    conn: AsyncConnection,
    dialect: str,
    snap: GroupSnapshot,
    now: dt.datetime,
    *,
    fetched_at: dt.datetime | None = None,
    reconcile: bool = False,
) -> SnapshotResult:
    """Bring the group in line with a ``groupchat/get`` snapshot: name, owner, notice, members with names and
    types; members we did not know join (at their join_time). With ``reconcile`` (a full sync, or an event that
    did not list its members), active members missing from the snapshot are recorded as having left.

    A snapshot older than the one applied last does not overwrite the group's fields. Idempotent."""
    fetched_at = fetched_at or now
    await ensure_group(conn, dialect, snap.chat_id, now, created_at=snap.created_at)
    group = await _group(conn, snap.chat_id)
    stale = group.synced_at is not None and fetched_at < group.synced_at
    if not stale:
        values: dict[str, Any] = {"name": snap.name, "owner_userid": snap.owner, "notice": snap.notice, "synced_at": fetched_at}
        if snap.created_at is not None:
            values["created_at"] = snap.created_at
        await conn.execute(groups.update().where(groups.c.chat_id == snap.chat_id).values(updated_at=now, **values))
    joined: list[str] = []
    for item in snap.members:
        m = _Member(snap.chat_id, item.userid, item.type, item.name, item.join_scene)
        if await _record_join(conn, dialect, m, item.join_time or fetched_at, now, authoritative=True):
            joined.append(item.userid)
    left: list[str] = []
    if reconcile and not stale:
        present = {item.userid for item in snap.members}
        active = await conn.execute(
            sa.select(group_members.c.member_id, group_members.c.member_type, group_members.c.name).where(
                group_members.c.chat_id == snap.chat_id, group_members.c.active.is_(True)
            )
        )
        for row in active.all():
            if row.member_id not in present:
                m = _Member(snap.chat_id, row.member_id, row.member_type, row.name, None)
                if await _record_leave(conn, dialect, m, fetched_at, now, None):
                    left.append(row.member_id)
    count = await refresh_member_count(conn, snap.chat_id, now)
    return SnapshotResult(joined, left, count, stale)


async def dismiss_group(conn: AsyncConnection, dialect: str, chat_id: str, *, at: dt.datetime, now: dt.datetime) -> bool:
    """The group was dismissed (解散) at ``at``: members become inactive (not counted as leaves), the count 0,
    and each customer who was in it gets a timeline entry. Returns False when it was dismissed already."""
    await ensure_group(conn, dialect, chat_id, now)
    group = await _group(conn, chat_id)
    if group.dismissed_at is not None:
        return False
    await conn.execute(groups.update().where(groups.c.chat_id == chat_id).values(dismissed_at=at, member_count=0, updated_at=now))
    rows = await conn.execute(
        sa.select(group_members.c.customer_id).where(
            group_members.c.chat_id == chat_id, group_members.c.active.is_(True), group_members.c.customer_id.is_not(None)
        )
    )
    for (cid,) in rows.all():
        await add_entry(
            conn,
            dialect,
            customer_id=int(cid),
            at=at,
            kind=Kind.GROUP,
            title=f"所在的客户群{_label(group.name)}已解散",
            ref=f"group:{chat_id}:dismissed",
            data={"chat_id": chat_id},
        )
    await conn.execute(
        group_members.update().where(group_members.c.chat_id == chat_id, group_members.c.active.is_(True)).values(active=False, left_at=at)
    )
    return True


# ---- activity from the chat archive --------------------------------------------------------------------------
async def record_member_activity(conn: AsyncConnection, chat_id: str, member_id: str, at: dt.datetime) -> None:
    """``member_id`` spoke in the group at ``at``: last_active_at moves forward only (unknown members: no-op)."""
    col = group_members.c.last_active_at
    await conn.execute(
        group_members.update()
        .where(group_members.c.chat_id == chat_id, group_members.c.member_id == member_id, sa.or_(col.is_(None), col < at))
        .values(last_active_at=at)
    )


async def set_message_stats(conn: AsyncConnection, dialect: str, chat_id: str, day: dt.date, *, messages: int, active_members: int) -> None:
    """Store a day's message count and distinct senders (computed by the caller from the archive)."""
    await conn.execute(insert_ignore(group_daily_stats, dialect).values(chat_id=chat_id, day=day))
    await conn.execute(
        group_daily_stats.update()
        .where(group_daily_stats.c.chat_id == chat_id, group_daily_stats.c.day == day)
        .values(messages=messages, active_members=active_members)
    )


# ---- reads ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Membership:
    """One group a customer is or was in, with their last message there (from the archive)."""

    chat_id: str
    group_name: str
    active: bool
    joined_at: dt.datetime | None
    left_at: dt.datetime | None
    last_active_at: dt.datetime | None
    member_count: int
    dismissed: bool


async def memberships_of(conn: AsyncConnection, customer_id: int) -> list[Membership]:
    """The customer's groups: current ones first, then by most recent join. Rows written under a customer id
    since merged into this one count too (merge chains are one hop long)."""
    merged = sa.select(customers.c.id).where(customers.c.merged_into == customer_id)
    rows = await conn.execute(
        sa.select(group_members, groups.c.name.label("group_name"), groups.c.member_count, groups.c.dismissed_at)
        .join(groups, groups.c.chat_id == group_members.c.chat_id)
        .where(sa.or_(group_members.c.customer_id == customer_id, group_members.c.customer_id.in_(merged)))
        .order_by(group_members.c.active.desc(), group_members.c.joined_at.desc(), group_members.c.chat_id)
    )
    return [
        Membership(
            r.chat_id,
            r.group_name,
            bool(r.active),
            r.joined_at,
            r.left_at,
            r.last_active_at,
            int(r.member_count),
            r.dismissed_at is not None,
        )
        for r in rows
    ]


# ---- owners (群主), for handovers ------------------------------------------------------------------------------
async def groups_owned_by(conn: AsyncConnection, userid: str) -> list[tuple[str, str]]:
    """``(chat_id, name)`` of the groups ``userid`` owns and that still exist, by chat id."""
    rows = await conn.execute(
        sa.select(groups.c.chat_id, groups.c.name)
        .where(groups.c.owner_userid == userid, groups.c.dismissed_at.is_(None))
        .order_by(groups.c.chat_id)
    )
    return [(r.chat_id, r.name or "") for r in rows]


async def set_group_owner(conn: AsyncConnection, chat_id: str, owner_userid: str, now: dt.datetime) -> bool:
    """WeCom moved the group to a new owner (groupchat/transfer, onjob_transfer). Returns True if it changed."""
    result = await conn.execute(
        groups.update()
        .where(groups.c.chat_id == chat_id, groups.c.owner_userid != owner_userid)
        .values(owner_userid=owner_userid, updated_at=now)
    )
    return bool(result.rowcount)
