"""Tag use cases shared by every package: find or create tags, apply and remove them with their source.

Mirroring with WeCom (corp tags, mark_tag, change_external_tag) builds on these; a tag with a ``remote_id`` is a
WeCom corp tag, one without is local-only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.db import insert_ignore, upsert
from scrm.core.errors import InvalidInput, NotFound
from scrm.tags.models import customer_tags, tag_groups, tags
from scrm.timeline.services import Kind, add_entry

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
    rt: Any, *, customer_id: int, tag_id: int, add: bool, source: str, evidence: dict[str, Any], by: str = ""
) -> bool:
    """Add or remove a tag on a customer and queue its mirror to WeCom, in one transaction. Returns whether
    anything changed. Used by the sidebar, the console and the API (not by the WeCom→us mirror itself)."""
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
