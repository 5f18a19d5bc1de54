"""Tag use cases shared by every package: find or create tags, apply and remove them with their source.

Mirroring with WeCom (corp tags, mark_tag, change_external_tag) builds on these; a tag with a ``remote_id`` is a
WeCom corp tag, one without is local-only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.db import insert_ignore, upsert
from scrm.core.errors import InvalidInput, NotFound, ServiceUnavailable
from scrm.crm.tags.models import TagSource, customer_tags, tag_groups, tags
from scrm.crm.timeline.services import Kind, add_entry

LOCAL_GROUP = "本地标签"


@dataclass(frozen=True)
class AppliedTag:
    tag_id: int
    name: str
    group: str
    source: str
    evidence: dict[str, Any]
    applied_at: dt.datetime
    remote_id: str | None


async def ensure_group(conn: AsyncConnection, dialect: str, name: str, now: dt.datetime, *, remote_id: str | None = None) -> int:
    """The tag group with this remote id (or, for local groups, this name), created if missing."""
    q = sa.select(tag_groups.c.id).where(
        tag_groups.c.remote_id == remote_id if remote_id else sa.and_(tag_groups.c.remote_id.is_(None), tag_groups.c.name == name)
    )
    row = (await conn.execute(q)).first()
    if row:
        await conn.execute(tag_groups.update().where(tag_groups.c.id == row.id).values(name=name, deleted_at=None, updated_at=now))
        return int(row.id)
    return int(
        (
            await conn.execute(tag_groups.insert().values(name=name, remote_id=remote_id, updated_at=now).returning(tag_groups.c.id))
        ).scalar_one()
    )


async def ensure_tag(
    conn: AsyncConnection,
    dialect: str,
    name: str,
    now: dt.datetime,
    *,
    group: str = LOCAL_GROUP,
    remote_id: str | None = None,
    group_remote_id: str | None = None,
) -> int:
    """The tag (by remote id, else by group + name), created if missing. Names are trimmed, 1–30 characters."""
    name = name.strip()
    if not 0 < len(name) <= 30:
        raise InvalidInput("标签名需为 1 到 30 个字 (tag names are 1–30 characters)", field="tag")
    if remote_id:
        row = (await conn.execute(sa.select(tags.c.id).where(tags.c.remote_id == remote_id))).first()
        if row:
            return int(row.id)
    group_id = await ensure_group(conn, dialect, group, now, remote_id=group_remote_id)
    await conn.execute(insert_ignore(tags, dialect).values(group_id=group_id, name=name, remote_id=remote_id, updated_at=now))
    row = (await conn.execute(sa.select(tags.c.id, tags.c.remote_id).where(tags.c.group_id == group_id, tags.c.name == name))).one()
    if remote_id and row.remote_id != remote_id:
        await conn.execute(tags.update().where(tags.c.id == row.id).values(remote_id=remote_id, deleted_at=None, updated_at=now))
    return int(row.id)


async def apply_tag(
    conn: AsyncConnection, dialect: str, *, customer_id: int, tag_id: int, source: str, evidence: dict[str, Any], now: dt.datetime
) -> bool:
    """Put a tag on a customer (or refresh its source and evidence). Returns True when it was not there before."""
    existed = (
        await conn.execute(
            sa.select(customer_tags.c.tag_id).where(customer_tags.c.customer_id == customer_id, customer_tags.c.tag_id == tag_id)
        )
    ).first() is not None
    await conn.execute(
        upsert(
            customer_tags,
            dialect,
            ["customer_id", "tag_id"],
            {"customer_id": customer_id, "tag_id": tag_id, "source": source, "evidence": evidence, "applied_at": now},
            ["source", "evidence"],
        )
    )
    if not existed:
        name = (await conn.execute(sa.select(tags.c.name).where(tags.c.id == tag_id))).scalar_one()
        await add_entry(
            conn,
            dialect,
            customer_id=customer_id,
            at=now,
            kind=Kind.TAG,
            title=f"打上标签“{name}”",
            ref=f"tag:{tag_id}:+:{now.isoformat()}",
            data={"tag_id": tag_id, "source": source, "evidence": evidence},
        )
    return not existed


async def remove_tag(conn: AsyncConnection, dialect: str, *, customer_id: int, tag_id: int, now: dt.datetime, by: str = "") -> bool:
    result = await conn.execute(customer_tags.delete().where(customer_tags.c.customer_id == customer_id, customer_tags.c.tag_id == tag_id))
    if result.rowcount:
        name = (await conn.execute(sa.select(tags.c.name).where(tags.c.id == tag_id))).scalar_one()
        await add_entry(
            conn,
            dialect,
            customer_id=customer_id,
            at=now,
            kind=Kind.TAG,
            title=f"移除标签“{name}”",
            ref=f"tag:{tag_id}:-:{now.isoformat()}",
            data={"tag_id": tag_id, "by": by},
        )
    return bool(result.rowcount)


async def tags_of(conn: AsyncConnection, customer_id: int) -> list[AppliedTag]:
    rows = await conn.execute(
        sa.select(customer_tags, tags.c.name, tags.c.remote_id, tag_groups.c.name.label("group_name"))
        .join(tags, tags.c.id == customer_tags.c.tag_id)
        .join(tag_groups, tag_groups.c.id == tags.c.group_id)
        .where(customer_tags.c.customer_id == customer_id, tags.c.deleted_at.is_(None))
        .order_by(tag_groups.c.sort, tag_groups.c.id, tags.c.sort, tags.c.id)
    )
    return [AppliedTag(int(r.tag_id), r.name, r.group_name, r.source, dict(r.evidence), r.applied_at, r.remote_id) for r in rows]


async def get_tag(conn: AsyncConnection, tag_id: int) -> Any:
    row = (await conn.execute(sa.select(tags).where(tags.c.id == tag_id, tags.c.deleted_at.is_(None)))).first()
    if row is None:
        raise NotFound("没有这个标签 (no such tag)", tag_id=tag_id)
    return row


CUSTOMER_TAG_CHANGED = "customer_tag.changed"  # outbox topic: push the change to WeCom (mark_tag) when mirrored


async def set_customer_tag(
    rt: Any, *, customer_id: int, tag_id: int, add: bool, evidence: dict[str, Any], by: str = "", source: str = TagSource.MANUAL
) -> bool:
    """Add or remove a tag on a customer and queue its mirror to WeCom, in one transaction. Returns whether
    anything changed. Used by the sidebar, the console and the API (not by the WeCom→us mirror itself); ``source``
    is a person's hand (manual) unless said otherwise."""
    from scrm.core import outbox

    now = rt.clock.now()
    async with rt.db.write() as conn:
        await get_tag(conn, tag_id)
        if add:
            changed = await apply_tag(
                conn, rt.db.dialect, customer_id=customer_id, tag_id=tag_id, source=source, evidence=evidence, now=now
            )
        else:
            changed = await remove_tag(conn, rt.db.dialect, customer_id=customer_id, tag_id=tag_id, now=now, by=by)
        if changed:
            await outbox.add(conn, CUSTOMER_TAG_CHANGED, {"customer_id": customer_id, "tag_id": tag_id, "add": add, "by": by}, now)
    return changed


# ---- the tag catalogue ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagInfo:
    id: int
    name: str
    group_id: int
    group: str
    remote_id: str | None  # WeCom tag_id; None = local-only, never sent to WeCom
    group_remote_id: str | None

    @property
    def mirrored(self) -> bool:
        return self.remote_id is not None


def _tag_query() -> sa.Select[Any]:
    return sa.select(
        tags.c.id,
        tags.c.name,
        tags.c.group_id,
        tags.c.remote_id,
        tag_groups.c.name.label("group_name"),
        tag_groups.c.remote_id.label("grid"),
    ).join(tag_groups, tag_groups.c.id == tags.c.group_id)


def _info(r: Any) -> TagInfo:
    return TagInfo(int(r.id), r.name, int(r.group_id), r.group_name, r.remote_id, r.grid)


async def list_tags(conn: AsyncConnection) -> list[TagInfo]:
    """Every live tag (mirrored and local-only), in display order: groups, then tags, by sort then id."""
    q = _tag_query().where(tags.c.deleted_at.is_(None), tag_groups.c.deleted_at.is_(None))
    rows = await conn.execute(q.order_by(tag_groups.c.sort, tag_groups.c.id, tags.c.sort, tags.c.id))
    return [_info(r) for r in rows]


async def tag_info(conn: AsyncConnection, tag_id: int) -> TagInfo:
    row = (await conn.execute(_tag_query().where(tags.c.id == tag_id, tags.c.deleted_at.is_(None)))).first()
    if row is None:
        raise NotFound("没有这个标签 (no such tag)", tag_id=tag_id)
    return _info(row)


# Creating a mirrored tag needs WeCom (add_corp_tag). scrm/ may not import bots/, so the WeCom side registers its
# creator here when its module loads (as processors and outbox handlers register themselves).
CorpTagCreator = Callable[[Any, str, str], Awaitable[int]]  # (rt, group name, tag name) → local tag id
_corp_tag_creator: list[CorpTagCreator] = []


def provide_corp_tag_creator(func: CorpTagCreator) -> CorpTagCreator:
    _corp_tag_creator[:] = [func]
    return func


async def create_tag(rt: Any, *, name: str, group: str = "", mirror: bool = True) -> tuple[TagInfo, bool]:
    """Create a tag, or return the existing one of that group and name; returns (tag, created).

    ``mirror=True`` makes a WeCom corp tag (add_corp_tag) and stores its remote ids, so it is pushed with mark_tag;
    ``mirror=False`` makes a local-only tag (default group 本地标签) for what WeCom's limits do not allow."""
    name, group = name.strip(), (group.strip() or ("" if mirror else LOCAL_GROUP))
    if not 0 < len(name) <= 30 or len(group) > 30:
        raise InvalidInput("标签名与分组名需为 1 到 30 个字 (tag and group names are 1–30 characters)", field="name")
    if mirror and not group:
        raise InvalidInput("企业标签需要分组名 group (a WeCom corp tag needs a group)", field="group")
    local_filter = tag_groups.c.remote_id.is_not(None) if mirror else tag_groups.c.remote_id.is_(None)
    async with rt.db.read() as conn:
        row = (
            await conn.execute(
                _tag_query().where(tags.c.name == name, tag_groups.c.name == group, local_filter, tags.c.deleted_at.is_(None))
            )
        ).first()
    if row is not None:
        return _info(row), False
    if mirror:
        if not _corp_tag_creator:
            raise ServiceUnavailable("未连接企业微信，无法创建企业标签 (WeCom is not configured: create a local tag)")
        tag_id = await _corp_tag_creator[0](rt, group, name)
    else:
        async with rt.db.write() as conn:
            tag_id = await ensure_tag(conn, rt.db.dialect, name, rt.clock.now(), group=group)
    async with rt.db.read() as conn:
        return await tag_info(conn, tag_id), True


# ---- WeCom corp tags → local mirror ---------------------------------------------------------------------------
@dataclass
class MirrorReport:
    created: int = 0
    updated: int = 0
    deleted: int = 0


async def _mirror_group(conn: AsyncConnection, g: dict[str, Any], now: dt.datetime, report: MirrorReport) -> int:
    # WeCom sorts by "order" descending; our sort is ascending, hence the minus.
    values = {"name": str(g["group_name"])[:64], "sort": -int(g.get("order", 0) or 0), "deleted_at": None}
    row = (await conn.execute(sa.select(tag_groups).where(tag_groups.c.remote_id == str(g["group_id"])))).first()
    if row is None:
        report.created += 1
        q = tag_groups.insert().values(remote_id=str(g["group_id"]), updated_at=now, **values).returning(tag_groups.c.id)
        return int((await conn.execute(q)).scalar_one())
    if any(getattr(row, k) != v for k, v in values.items()):
        report.updated += 1
        await conn.execute(tag_groups.update().where(tag_groups.c.id == row.id).values(updated_at=now, **values))
    return int(row.id)


async def _mirror_tag(conn: AsyncConnection, group_id: int, t: dict[str, Any], now: dt.datetime, report: MirrorReport) -> None:
    remote_id, name = str(t["id"]), str(t["name"])[:64]
    values = {"name": name, "group_id": group_id, "sort": -int(t.get("order", 0) or 0), "deleted_at": None}
    row = (await conn.execute(sa.select(tags).where(tags.c.remote_id == remote_id))).first()
    clash = (
        await conn.execute(sa.select(tags).where(tags.c.group_id == group_id, tags.c.name == name, *([tags.c.id != row.id] if row else [])))
    ).first()
    if clash is not None:
        if row is None and clash.remote_id is None and clash.deleted_at is None:
            # A local-only tag of that name in the group: it becomes the mirror (customers keep it).
            report.updated += 1
            await conn.execute(tags.update().where(tags.c.id == clash.id).values(remote_id=remote_id, updated_at=now, **values))
            return
        # A deleted tag, or one renamed in WeCom since (names swap): free the name; the next pull fixes the other.
        await conn.execute(tags.update().where(tags.c.id == clash.id).values(name=f"{clash.name[:40]}#{clash.id}", updated_at=now))
    if row is None:
        report.created += 1
        await conn.execute(tags.insert().values(remote_id=remote_id, updated_at=now, **values))
    elif any(getattr(row, k) != v for k, v in values.items()):
        report.updated += 1
        await conn.execute(tags.update().where(tags.c.id == row.id).values(updated_at=now, **values))


async def mirror_corp_tags(
    conn: AsyncConnection,
    remote_groups: list[dict[str, Any]],
    now: dt.datetime,
    *,
    group_ids: Collection[str] | None = None,
    tag_ids: Collection[str] | None = None,
) -> MirrorReport:
    """Make the local mirror equal to a ``get_corp_tag_list`` answer, idempotently.

    The answer is the whole truth for its scope: everything (no ids), the ``group_ids`` groups, or the ``tag_ids``
    tags. Mirrored groups/tags in scope but missing from the answer were deleted in WeCom and get ``deleted_at``;
    local-only tags are never touched (except that a local tag whose name WeCom now uses in the same group becomes
    its mirror). Applied tags stay on customers; readers skip deleted tags."""
    report = MirrorReport()
    seen_groups: set[str] = set()
    seen_tags: set[str] = set()
    for g in remote_groups:
        gid = await _mirror_group(conn, g, now, report)
        seen_groups.add(str(g["group_id"]))
        for t in g.get("tag") or []:
            await _mirror_tag(conn, gid, t, now, report)
            seen_tags.add(str(t["id"]))
    live_tag = sa.and_(tags.c.remote_id.is_not(None), tags.c.deleted_at.is_(None), tags.c.remote_id.not_in(seen_tags or [""]))
    live_group = sa.and_(
        tag_groups.c.remote_id.is_not(None), tag_groups.c.deleted_at.is_(None), tag_groups.c.remote_id.not_in(seen_groups or [""])
    )
    if group_ids is not None:
        in_groups = sa.select(tag_groups.c.id).where(tag_groups.c.remote_id.in_(list(group_ids)))
        gone_tags: Any = sa.and_(live_tag, tags.c.group_id.in_(in_groups))
        gone_groups: Any = sa.and_(live_group, tag_groups.c.remote_id.in_(list(group_ids)))
    elif tag_ids is not None:
        gone_tags, gone_groups = sa.and_(live_tag, tags.c.remote_id.in_(list(tag_ids))), None
    else:
        gone_tags, gone_groups = live_tag, live_group
    report.deleted += (await conn.execute(tags.update().where(gone_tags).values(deleted_at=now, updated_at=now))).rowcount or 0
    if gone_groups is not None:
        report.deleted += (await conn.execute(tag_groups.update().where(gone_groups).values(deleted_at=now, updated_at=now))).rowcount or 0
        # A group deleted in WeCom takes its tags with it.
        dead = sa.select(tag_groups.c.id).where(tag_groups.c.deleted_at.is_not(None), tag_groups.c.remote_id.is_not(None))
        q = tags.update().where(tags.c.group_id.in_(dead), tags.c.deleted_at.is_(None), tags.c.remote_id.is_not(None))
        report.deleted += (await conn.execute(q.values(deleted_at=now, updated_at=now))).rowcount or 0
    return report


# ---- tags a customer carries in WeCom → customer_tags -----------------------------------------------------
@dataclass
class TagDiff:
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # remote ids not mirrored yet: pull corp tags, then call again


async def reconcile_wecom_tags(
    conn: AsyncConnection, dialect: str, *, customer_id: int, userid: str, remote_tag_ids: Collection[str], now: dt.datetime
) -> TagDiff:
    """Make what WeCom shows on one follow (salesperson ``userid`` ↔ customer) true locally.

    Tags shown are applied with source ``wecom`` and evidence ``{"followers": [userid, …]}`` (the follows that carry
    them; WeCom keeps tags per follow). A ``wecom`` tag no longer shown on this follow loses the follower and leaves
    the customer when no follower carries it. Tags of any other source are never changed here. Pass no ids when the
    follow ended. Idempotent: a second call with the same ids changes nothing."""
    diff = TagDiff()
    wanted = {str(r) for r in remote_tag_ids}
    known: dict[int, str] = {}
    if wanted:
        rows = await conn.execute(sa.select(tags.c.id, tags.c.remote_id).where(tags.c.remote_id.in_(wanted), tags.c.deleted_at.is_(None)))
        known = {int(r.id): r.remote_id for r in rows}
    diff.unknown = sorted(wanted - set(known.values()))
    current = {
        int(r.tag_id): r
        for r in await conn.execute(
            sa.select(customer_tags.c.tag_id, customer_tags.c.source, customer_tags.c.evidence).where(
                customer_tags.c.customer_id == customer_id
            )
        )
    }

    async def set_followers(tag_id: int, followers: list[str]) -> None:
        await conn.execute(
            customer_tags.update()
            .where(customer_tags.c.customer_id == customer_id, customer_tags.c.tag_id == tag_id)
            .values(evidence={"followers": sorted(followers)})
        )

    for tag_id in known:
        cur = current.get(tag_id)
        if cur is None:
            await apply_tag(
                conn, dialect, customer_id=customer_id, tag_id=tag_id, source=TagSource.WECOM, evidence={"followers": [userid]}, now=now
            )
            diff.added.append(tag_id)
        elif cur.source == TagSource.WECOM and userid not in (cur.evidence or {}).get("followers", [userid]):
            await set_followers(tag_id, [*cur.evidence["followers"], userid])
    for tag_id, cur in current.items():
        if cur.source != TagSource.WECOM or tag_id in known:
            continue
        # Evidence without a follower list (written elsewhere) counts as carried by this follow.
        followers = list((cur.evidence or {}).get("followers", [userid]))
        if userid not in followers:
            continue
        followers.remove(userid)
        if followers:
            await set_followers(tag_id, followers)
        else:
            await remove_tag(conn, dialect, customer_id=customer_id, tag_id=tag_id, now=now, by="wecom")
            diff.removed.append(tag_id)
    return diff
