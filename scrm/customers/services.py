"""Customer use cases: one customer per person across external_userid / openid / unionid."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.db import insert_ignore
from scrm.customers.models import customer_identities, customers

IDENTITY_KINDS = ("external_userid", "openid", "unionid")


async def find_customer(conn: AsyncConnection, kind: str, value: str) -> int | None:
    row = (
        await conn.execute(
            sa.select(customer_identities.c.customer_id).where(customer_identities.c.kind == kind, customer_identities.c.value == value)
        )
    ).first()
    return int(row.customer_id) if row else None


async def ensure_customer(conn: AsyncConnection, dialect: str, *, kind: str, value: str, now: dt.datetime, name: str = "") -> int:
    """Return the customer behind an identity, creating customer + identity on first sight.

    Safe under concurrency: the identity's unique key decides; a loser of the race deletes nothing and reads
    the winner's customer (its own orphan customer row is removed in the same transaction).
    """
    if kind not in IDENTITY_KINDS:
        raise ValueError(f"unknown identity kind {kind!r}")
    if not value:
        raise ValueError("empty identity")
    existing = await find_customer(conn, kind, value)
    if existing is not None:
        await conn.execute(sa.update(customers).where(customers.c.id == existing).values(last_seen_at=now))
        return existing
    new_id = (
        await conn.execute(
            customers.insert()
            .values(name=name, first_seen_at=now, last_seen_at=now, created_at=now, updated_at=now, custom_fields={})
            .returning(customers.c.id)
        )
    ).scalar_one()
    inserted = (
        await conn.execute(
            insert_ignore(customer_identities, dialect)
            .values(customer_id=new_id, kind=kind, value=value, created_at=now)
            .returning(customer_identities.c.id)
        )
    ).scalar()
    if inserted is None:
        await conn.execute(sa.delete(customers).where(customers.c.id == new_id))
        winner = await find_customer(conn, kind, value)
        assert winner is not None
        return winner
    return int(new_id)


async def identities_of(conn: AsyncConnection, customer_id: int) -> dict[str, list[str]]:
    rows = await conn.execute(
        sa.select(customer_identities.c.kind, customer_identities.c.value)
        .where(customer_identities.c.customer_id == customer_id)
        .order_by(customer_identities.c.id)
    )
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row.kind, []).append(row.value)
    return out
