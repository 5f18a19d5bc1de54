"""Read-only lookups on customers for other packages' pages (names for tables, existence checks)."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.customers.models import customers


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
