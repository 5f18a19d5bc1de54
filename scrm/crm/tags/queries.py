"""Read-only views of the tag catalogue for the clients (the console's pages): what a form offers to choose from."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.tags.models import tag_groups, tags


async def tag_choices(conn: AsyncConnection) -> list[tuple[int, str]]:
    """Every live tag as ``(id, "group / name")``, in display order: groups, then tags, by sort then id."""
    rows = await conn.execute(
        sa.select(tags.c.id, tags.c.name, tag_groups.c.name.label("group_name"))
        .join(tag_groups, tag_groups.c.id == tags.c.group_id)
        .where(tags.c.deleted_at.is_(None), tag_groups.c.deleted_at.is_(None))
        .order_by(tag_groups.c.sort, tag_groups.c.id, tags.c.sort, tags.c.id)
    )
    return [(int(r.id), f"{r.group_name} / {r.name}") for r in rows]
