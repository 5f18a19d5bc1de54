"""Read-only views of the sales team for the clients (the console's pages): what a form offers to choose from."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.staff.models import salespeople


async def salesperson_choices(conn: AsyncConnection) -> list[tuple[str, str]]:
    """Active salespeople as ``(userid, name)`` by userid; a member without a name shows as their userid."""
    rows = await conn.execute(
        sa.select(salespeople.c.userid, salespeople.c.name).where(salespeople.c.active.is_(True)).order_by(salespeople.c.userid)
    )
    return [(r.userid, r.name or r.userid) for r in rows]
