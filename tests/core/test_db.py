"""The engine's connection pool against the real PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import Database


async def test_a_pooled_connection_the_server_closed_is_replaced_on_checkout(pg_database: str) -> None:
    """The pre-ping (one round trip, ``;``) finds a connection PostgreSQL has closed and the pool opens a new one:
    the next transaction works, and so does the driver connection the one-statement order placement uses."""
    db = Database(pg_database, pool_size=1)
    try:
        async with db.read() as conn:
            first = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        admin = Database(pg_database)
        try:
            async with admin.read() as other:  # the pool's idle connection is now one the server closed
                assert (await other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})).scalar_one()
        finally:
            await admin.dispose()
        async with db.read() as conn:
            second = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
        async with db.driver() as driver:
            assert await driver.fetchval("SELECT 1") == 1
    finally:
        await db.dispose()
