"""Numbers from the database: order and shipment numbers, the catalog version."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.models import counters
from scrm.core.db import insert_ignore


async def next_value(conn: AsyncConnection, dialect: str, name: str) -> int:
    """Increment and return a named counter inside the caller's transaction (gap-tolerant on rollback)."""
    await conn.execute(insert_ignore(counters, dialect).values(name=name, value=0))
    result = await conn.execute(
        counters.update().where(counters.c.name == name).values(value=counters.c.value + 1).returning(counters.c.value)
    )
    return int(result.scalar_one())


async def current_value(conn: AsyncConnection, name: str) -> int:
    row = (await conn.execute(sa.select(counters.c.value).where(counters.c.name == name))).first()
    return int(row.value) if row else 0
