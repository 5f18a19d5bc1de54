"""Whether a database is at the schema the code needs — read without alembic.

Every server and worker checks this at start; alembic itself (with mako and pygments, ≈10 MiB a process) is only
needed to migrate (:mod:`scrm.core.migrate`, ``run.py migrate``). The head is read from the migration files'
``revision`` / ``down_revision`` assignments, the database's revision from alembic's ``alembic_version`` table —
the same two facts alembic compares (``tests/core/test_revisions.py`` checks they agree).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import sqlalchemy as sa

from scrm.core.db import Database

VERSIONS_DIR = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def _assigned(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
                return ast.literal_eval(node.value)
    return None


@functools.cache
def head_revisions() -> tuple[str, ...]:
    """The revisions no migration builds on (one, in a straight chain)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        revision = _assigned(tree, "revision")
        if not isinstance(revision, str):
            continue
        revisions.add(revision)
        down = _assigned(tree, "down_revision")
        parents.update([down] if isinstance(down, str) else list(down or ()))  # type: ignore[call-overload]
    return tuple(sorted(revisions - parents))


def head_revision() -> str | None:
    heads = head_revisions()
    return heads[0] if len(heads) == 1 else None


async def current_revision(db: Database) -> str | None:
    """The revision stamped in the database (None when it has none: empty, never migrated)."""
    async with db.engine.connect() as conn:

        def read(sync: sa.Connection) -> str | None:
            if not sa.inspect(sync).has_table("alembic_version"):
                return None
            return sync.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

        return await conn.run_sync(read)


async def is_current(db: Database) -> bool:
    head = head_revision()
    return head is not None and await current_revision(db) == head
