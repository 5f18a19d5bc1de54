"""Migration 0011_campaign_runs on real SQLite and PostgreSQL: a failed broadcast's reason, kept in ``totals["error"]``
before broadcasts had an error column, is moved to the column (and out of the totals); other broadcasts keep theirs."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from scrm.core import migrate
from scrm.core.db import JSON, Database, UTCDateTime
from tests.conftest import PG_ADMIN_DSN

REVISION = "0011_campaign_runs"


@pytest.fixture
async def empty_database(db_backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if db_backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"
        return
    name = f"scrm_mig_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


def broadcasts_table(*extra: sa.ColumnClause[object]) -> sa.TableClause:
    """The broadcasts table as this test writes and reads it (its columns as of either revision)."""
    names = ("name", "segment_expression", "text", "status", "created_by")
    times = (sa.column("created_at", UTCDateTime()), sa.column("updated_at", UTCDateTime()))
    return sa.table("broadcasts", sa.column("id", sa.Integer()), *map(sa.column, names), sa.column("totals", JSON), *times, *extra)


async def test_a_failed_broadcasts_reason_moves_from_totals_to_its_column(empty_database: str) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(empty_database))
    before = script.get_revision(REVISION).down_revision
    assert isinstance(before, str)
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    common = {"segment_expression": "orders >= 1", "text": "hi", "created_by": "", "created_at": at, "updated_at": at}
    db = Database(empty_database)
    try:
        await migrate.upgrade(db, before)
        async with db.engine.begin() as conn:
            await conn.execute(
                broadcasts_table().insert(),
                [
                    {**common, "name": "旧群发", "status": "failed", "totals": {"recipients": 2, "error": "客群表达式无法解析：第 9 列"}},
                    {**common, "name": "好群发", "status": "done", "totals": {"recipients": 3}},
                ],
            )
        await migrate.upgrade(db)
        table = broadcasts_table(sa.column("error", sa.Text()))
        async with db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(table.c.name, table.c.error, table.c.totals).order_by(table.c.id))).all()
    finally:
        await db.dispose()
    assert [tuple(r) for r in rows] == [("旧群发", "客群表达式无法解析：第 9 列", {"recipients": 2}), ("好群发", None, {"recipients": 3})]
