"""Read-only views of customers for the clients (the console's pages)."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.crm.customers.models import customers


async def customer_names(conn: AsyncConnection, ids: Collection[int]) -> dict[int, str]:
    """``id → name`` for these customers (a customer without a name maps to ""; unknown ids are left out)."""
    if not ids:
        return {}
    rows = await conn.execute(sa.select(customers.c.id, customers.c.name).where(customers.c.id.in_(list(ids))))
    return {int(r.id): r.name or "" for r in rows}
