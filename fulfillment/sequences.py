"""Numbers from the database: order and shipment numbers, the catalog version."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field

from scrm.core.db import Model, insert_ignore


class Counter(Model, table=True):
    """A named counter handing out numbers (编号计数器), e.g. order and shipment numbers on SQLite."""

    __tablename__ = "counters"

    name: str = Field(primary_key=True, sa_type=sa.String(32))
    value: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"server_default": "0"})


counters: sa.Table = Counter.__table__

# On PostgreSQL these come from sequences (no row lock held until commit, so concurrent orders do not queue on
# one counter row); SQLite serialises writers anyway and uses the counters table.
PG_SEQUENCES = {"order": "order_number_seq", "shipment": "shipment_number_seq"}


async def next_value(conn: AsyncConnection, dialect: str, name: str) -> int:
    """The next number of a named counter (gap-tolerant: a rolled-back transaction may skip one)."""
    if dialect == "postgresql" and name in PG_SEQUENCES:
        return int((await conn.execute(sa.select(sa.func.nextval(PG_SEQUENCES[name])))).scalar_one())
    await conn.execute(insert_ignore(counters, dialect).values(name=name, value=0))
    result = await conn.execute(
        counters.update().where(counters.c.name == name).values(value=counters.c.value + 1).returning(counters.c.value)
    )
    return int(result.scalar_one())


async def current_value(conn: AsyncConnection, name: str) -> int:
    row = (await conn.execute(sa.select(counters.c.value).where(counters.c.name == name))).first()
    return int(row.value) if row else 0
