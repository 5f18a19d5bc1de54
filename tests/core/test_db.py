"""scrm.core.db: its helpers on SQLite and on PostgreSQL, and the connection pool against the real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from scrm.core.db import BigId, Database, UTCDateTime, insert_ignore_many
from scrm.core.runtime import Runtime

probe_metadata = sa.MetaData()
probe = sa.Table(
    "insert_ignore_many_probe",
    probe_metadata,
    sa.Column("batch_id", BigId, primary_key=True),
    sa.Column("item_id", BigId, primary_key=True),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
)


async def test_insert_ignore_many_skips_conflicts_and_sets_shared_columns(rt: Runtime) -> None:
    """The probe table lives only for this test: the test database is shared by the session, and the model/migration
    comparison in tests/core/test_models.py would see it as a table the migrations do not know."""
    try:
        await _insert_ignore_many_checks(rt)
    finally:
        async with rt.db.write() as conn:
            await conn.run_sync(probe_metadata.drop_all)


async def _insert_ignore_many_checks(rt: Runtime) -> None:
    at = dt.datetime(2026, 12, 7, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    async with rt.db.write() as conn:
        await conn.run_sync(probe_metadata.create_all)
        await insert_ignore_many(conn, probe, [{"item_id": 2, "label": "已有"}], same={"batch_id": 1, "at": at})
    rows = [
        {"item_id": 1, "label": 'quote " and \\ backslash'},
        {"item_id": 2, "label": "replaced?"},  # already there: skipped, the stored row kept
        {"item_id": 3, "label": "{braces, comma}"},
        {"item_id": 3, "label": "duplicate in the same call"},  # the first one wins
    ]
    async with rt.db.write() as conn:
        await insert_ignore_many(conn, probe, rows, same={"batch_id": 1, "at": at})
        await insert_ignore_many(conn, probe, [], same={"batch_id": 1, "at": at})  # nothing to do
        await insert_ignore_many(conn, probe, [{"item_id": 1, "label": "other batch"}], same={"batch_id": 2, "at": at})
    async with rt.db.read() as conn:
        got = (await conn.execute(sa.select(probe).order_by(probe.c.batch_id, probe.c.item_id))).all()
    assert [(r.batch_id, r.item_id, r.label) for r in got] == [
        (1, 1, 'quote " and \\ backslash'),
        (1, 2, "已有"),
        (1, 3, "{braces, comma}"),
        (2, 1, "other batch"),
    ]
    assert {r.at for r in got} == {at}  # the same instant, read back as UTC
    assert all(r.at.utcoffset() == dt.timedelta(0) for r in got)


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
