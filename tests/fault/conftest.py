"""Fixtures of the fault tests: a private PostgreSQL cluster (one per session, a database per test), a private
redis-server per test, and the product running as real processes on them.

The fault tests run in the normal suite (``python -m pytest -q``) and alone with ``-m fault``. Without the server
binaries (initdb/pg_ctl, redis-server) they are skipped on a developer's machine, saying which binary is missing —
and fail in CI (``CI=true``), where a missing tool is a broken setup (``.ci/run`` installs them), not a reason to
run nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from scrm.core import migrate
from scrm.core.db import Database
from tests.conftest import _run
from tests.fault.stack import Stack
from tests.services import PrivatePostgres, PrivateRedis, in_ci, missing_binaries

_numbers = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = missing_binaries()
    for item in items:
        if "tests/fault/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.fault)
            if missing and not in_ci():
                item.add_marker(pytest.mark.skip(reason="fault tests need " + " and ".join(missing) + " on this machine"))


@pytest.fixture(scope="session", autouse=True)
def fault_tools() -> None:
    """In CI a fault test without its tools fails (outside CI it was skipped at collection)."""
    missing = missing_binaries()
    if missing:
        pytest.fail("CI=true: the fault tests need " + " and ".join(missing) + " (.ci/run installs them)", pytrace=False)


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def fault_database(private_pg: PrivatePostgres) -> str:
    """A fresh, migrated database on the private cluster (started again if a test left it stopped)."""
    if not private_pg.running():
        private_pg.start()
    name = f"fault_{next(_numbers)}"

    async def create() -> None:
        conn = await asyncpg.connect(private_pg.admin_dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        db = Database(private_pg.url(name))
        await migrate.upgrade(db)
        await db.dispose()

    _run(create())
    return name


@pytest.fixture
def fault_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(private_pg: PrivatePostgres, fault_database: str, fault_redis: PrivateRedis, tmp_path: Path) -> Iterator[Stack]:
    logs = tmp_path / "logs"
    logs.mkdir()
    s = Stack(private_pg, fault_redis, fault_database, logs)
    yield s
    s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def db(private_pg: PrivatePostgres, fault_database: str) -> AsyncIterator[Database]:
    database = Database(private_pg.url(fault_database))
    yield database
    await database.dispose()
