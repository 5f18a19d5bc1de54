"""The start-up schema check reads the head and the database's revision without alembic: the same answers as
alembic's (scrm/core/migrate.py) on an empty and on a migrated database."""

from __future__ import annotations

from pathlib import Path

from scrm.core import migrate, revisions
from scrm.core.db import Database


def test_the_head_is_alembics() -> None:
    assert revisions.head_revisions() == (migrate.head_revision(),)
    assert revisions.head_revision() == migrate.head_revision()


async def test_the_database_revision_is_alembics(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'scrm.db'}")
    try:
        assert await revisions.current_revision(db) is None and not await revisions.is_current(db)
        await migrate.upgrade(db, "0002")
        assert await revisions.current_revision(db) == "0002" == await migrate.current_revision(db)
        assert not await revisions.is_current(db)
        await migrate.upgrade(db)
        assert await revisions.current_revision(db) == await migrate.current_revision(db) == migrate.head_revision()
        assert await revisions.is_current(db)
    finally:
        await db.dispose()
