"""The models are the schema: a database migrated to head and the model classes describe the same tables.

Alembic's autogenerate comparison (the one ``alembic revision --autogenerate`` would use, plus server defaults)
runs against a freshly migrated database on SQLite and on PostgreSQL and must find nothing to change. Autogenerate
does not look at CHECK constraints, so those are compared here from reflection: same names, same conditions.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from scrm.core.db import Database, Model, metadata

ROOT = Path(__file__).resolve().parents[2]


def model_modules() -> list[str]:
    """The modules migrations/env.py imports to see every table (read from the file: one list, not two)."""
    tree = ast.parse((ROOT / "migrations" / "env.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MODEL_MODULES" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError("migrations/env.py has no MODEL_MODULES")


def load_models() -> sa.MetaData:
    for name in model_modules():
        importlib.import_module(name)
    return metadata


def test_migrations_see_every_models_module() -> None:
    """A models.py that env.py does not import would be invisible to autogenerate (and to this test)."""
    found = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for package in ("scrm", "bots", "fulfillment", "tagging")
        for path in (ROOT / package).rglob("models.py")
    }
    assert found <= set(model_modules())


def test_every_table_is_a_model_class() -> None:
    """No table is declared as a bare sa.Table any more: each one on the metadata is mapped by a Model subclass."""
    target = load_models()
    mapped = {mapper.local_table.name for mapper in Model._sa_registry.mappers}  # the registry SQLModel set on Model
    assert mapped == set(target.tables)


def _empty_string_default_on_sqlite(
    context: MigrationContext,
    inspected_column: sa.Column[Any],
    metadata_column: sa.Column[Any],
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """``server_default=""`` on SQLite: the database says ``DEFAULT ''`` and so does the model, yet alembic 1.20 reports
    a change on every such column (57 of them), because its SQLite comparison unquotes ``'x'`` only when x is not
    empty (``'(.+)'``) and so compares the reflected ``('')`` with the model's bare empty string. This settles exactly
    that case as equal; any other default, or '' on one side only, is left to alembic's own comparison (None)."""
    if context.dialect.name == "sqlite" and rendered_metadata_default == "" and inspected_default in ("''", "('')"):
        return False
    return None


def _diff(sync_conn: sa.Connection, target: sa.MetaData) -> list[Any]:
    context = MigrationContext.configure(
        sync_conn,
        opts={
            # as migrations/env.py, plus server defaults (env.py leaves them to review; here they must match)
            "compare_type": True,
            "compare_server_default": _empty_string_default_on_sqlite,
            "render_as_batch": True,
            "target_metadata": target,
        },
    )
    return list(compare_metadata(context, target))


def _normalise_check(text: str) -> str:
    """PostgreSQL re-renders a CHECK (parentheses around every comparison); compare the condition, not the layout."""
    return re.sub(r"[()\s]", "", text).lower()


def _reflected_checks(sync_conn: sa.Connection, target: sa.MetaData) -> dict[str, dict[str, str]]:
    inspector = sa.inspect(sync_conn)
    return {
        table: {str(ck["name"]): _normalise_check(str(ck["sqltext"])) for ck in inspector.get_check_constraints(table)}
        for table in target.tables
    }


def _model_checks(target: sa.MetaData) -> dict[str, dict[str, str]]:
    return {
        table.name: {
            str(ck.name): _normalise_check(str(ck.sqltext))
            for ck in table.constraints
            if isinstance(ck, sa.CheckConstraint) and ck.name  # unnamed ones are SQLAlchemy's own (e.g. Boolean on SQLite: none here)
        }
        for table in target.tables.values()
    }


async def test_models_match_migrated_database(database_url: str) -> None:
    target = load_models()
    assert len(target.tables) > 50, "the model modules were not loaded"
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(_diff, target)
            reflected = await conn.run_sync(_reflected_checks, target)
    finally:
        await db.dispose()
    assert diff == []
    expected = _model_checks(target)
    assert sum(len(v) for v in expected.values()) >= 11  # today's CHECKs: the comparison is not empty
    assert reflected == expected


async def test_comparison_sees_a_changed_model(database_url: str) -> None:
    """The comparison is not vacuous: a copy of the models with a different default ('' on one side only, the case
    the SQLite work-around touches), a longer string, a nullable column and a missing index is reported in full."""
    changed = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in load_models().sorted_tables:
        table.to_metadata(changed)
    customers = changed.tables["customers"]
    customers.c.name.server_default = sa.DefaultClause("x")
    customers.c.avatar.type = sa.String(513)
    customers.c.corp_name.nullable = True
    follows = changed.tables["follows"]
    follows.indexes.remove(next(ix for ix in follows.indexes if ix.name == "ix_follows_state"))
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(_diff, changed)
    finally:
        await db.dispose()
    flat = [op for item in diff for op in (item if isinstance(item, list) else [item])]
    seen = {(op[0], op[2], op[3]) for op in flat if op[0].startswith("modify_")}
    assert seen == {
        ("modify_default", "customers", "name"),
        ("modify_type", "customers", "avatar"),
        ("modify_nullable", "customers", "corp_name"),
    }
    assert [op[1].name for op in flat if op[0] == "remove_index"] == ["ix_follows_state"]
    assert len(flat) == 4
