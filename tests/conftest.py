"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis, a frozen clock, the runtime and the app.

PostgreSQL: one database per test process (``scrm_test_<pid>``), migrated once, emptied before each test.
SQLite: a migrated template file copied per test. Redis: the DB number of ``SCRM_TEST_REDIS`` (13 by default), flushed
around each test that uses it; under pytest-xdist each worker has a DB of its own (:func:`redis_url_for_worker`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from config import Settings, load_settings
from scrm.app.runtime import build_runtime
from scrm.core import migrate
from scrm.core.clock import UTC, FrozenClock
from scrm.core.db import Database, metadata
from scrm.core.runtime import Runtime

PG_ADMIN_DSN = os.environ.get("SCRM_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_NAME = f"scrm_test_{os.getpid()}"
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_NAME}"
# Redis DB numbers no test run may take: 0 is the user's, 14 the benchmarks' (bench/).
RESERVED_REDIS_DBS = (0, 14)


def redis_url_for_worker(base_url: str, worker: str) -> str:
    """The Redis URL of one pytest-xdist worker: ``gw0`` keeps the DB number of ``base_url``, ``gw1`` the one below it,
    and so on down; outside xdist (``worker`` empty or ``master``) ``base_url`` itself. The tests flush their DB, so
    two workers on one DB would wipe each other's queues."""
    if not worker.startswith("gw"):
        return base_url
    parts = urlsplit(base_url)
    base_db = int(parts.path.strip("/") or 0)
    db = base_db - int(worker.removeprefix("gw"))
    if db < 0 or db in RESERVED_REDIS_DBS:
        raise pytest.UsageError(
            f"SCRM_TEST_REDIS={base_url}: xdist worker {worker} would use Redis DB {db} "
            f"(never below 0 nor one of {RESERVED_REDIS_DBS}); choose a higher DB number or fewer workers (-n)"
        )
    return urlunsplit(parts._replace(path=f"/{db}"))


REDIS_URL = redis_url_for_worker(os.environ.get("SCRM_TEST_REDIS", "redis://127.0.0.1:6379/13"), os.environ.get("PYTEST_XDIST_WORKER", ""))


# Tests that start the product as servers and time their answers (the fault tests, the multi-process scale-out test):
# under pytest-xdist one worker runs them, one after another, so two such stacks never compete for the CPU at once.
SERVER_STARTING_TESTS = ("tests/fault/", "tests/scaleout/test_multiprocess.py")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist load`` (the default with ``-n``) with :data:`SERVER_STARTING_TESTS` as one unit of work: each other
    test is a unit of its own, sent to whichever worker is free. The unit with the most tests goes first, so the
    server-starting tests begin at once on one worker while the other works through the rest. (pytest-xdist's own
    ``--dist loadgroup`` cannot do it here: it renames items by ``item._nodeid``, which pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "load":
        return None  # another --dist asked for on the command line: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class ServerTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "server-starting tests" if nodeid.startswith(SERVER_STARTING_TESTS) else nodeid

    return ServerTestsTogether(config, log)


def _run(coro):  # type: ignore[no-untyped-def]
    """Session-scoped setup may be first requested from inside a test's running loop: use a thread of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"

    async def make() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await migrate.upgrade(db)
        await db.dispose()

    _run(make())
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}"')
            await conn.execute(f'CREATE DATABASE "{PG_NAME}"')
        finally:
            await conn.close()
        db = Database(PG_URL)
        await migrate.upgrade(db)
        await db.dispose()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        finally:
            await conn.close()

    _run(create())
    yield PG_URL
    _run(drop())


async def reset_database(url: str) -> None:
    """Every table on ``metadata`` empty and every sequence used back at its start, as after a fresh migration.

    It empties only what the last test wrote: ``TRUNCATE`` of all 60 tables made new files for every table and index
    and cost 0.15–0.4 s per PostgreSQL test, where a probe for rows and a ``DELETE`` of the few written tables (engine
    and connection included) cost ~35 ms. Foreign keys are not checked meanwhile (replica role): every table ends up
    empty, so none can dangle."""
    # every table is on `metadata` once scrm.app.runtime (the composition root) is imported
    tables = metadata.sorted_tables
    probe = " UNION ALL ".join(f'(SELECT {i} FROM "{t.name}" LIMIT 1)' for i, t in enumerate(tables))
    db = Database(url)
    async with db.write() as conn:
        written = [tables[i] for (i,) in (await conn.execute(sa.text(probe))).all()]
        if written:
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            for table in written:
                await conn.execute(sa.text(f'DELETE FROM "{table.name}"'))
        # A sequence never read since its last restart has no last_value: only the ones a test drew from are restarted
        # (the tables' own and order_number_seq / shipment_number_seq).
        used = await conn.execute(sa.text("SELECT schemaname, sequencename FROM pg_sequences WHERE last_value IS NOT NULL"))
        for schema, name in used.all():
            await conn.execute(sa.text(f'ALTER SEQUENCE "{schema}"."{name}" RESTART'))
    await db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> str:
    if db_backend == "postgres":
        url = request.getfixturevalue("pg_database")
        await reset_database(url)
        return url
    template = request.getfixturevalue("sqlite_template")
    target = tmp_path / "scrm.db"
    shutil.copy(template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC))


def make_settings(**overrides: object) -> Settings:
    env = {"SCRM_SANDBOX": "1", "SCRM_LOG_FORMAT": "text", "SCRM_JOB_RETRY_BASE": "0.01", "SCRM_PORT": "8080"}
    env.update({f"SCRM_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_settings(env, config_file=os.devnull)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture
async def rt(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    runtime = await build_runtime(settings, clock)
    yield runtime
    await runtime.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


SAMPLE_CATALOG = Path(__file__).resolve().parents[1] / "config" / "catalog.sample.csv"


@pytest.fixture
async def catalog(rt: Runtime) -> Runtime:
    """The runtime with the sample catalog imported (矿泉水 120箱, 可乐, 抽纸, 大米, 生抽/老抽, 花生油 10桶)."""
    from fulfillment.catalog.services import import_rows, parse_catalog_csv

    rows, errors = parse_catalog_csv(SAMPLE_CATALOG.read_text(encoding="utf-8"))
    assert not errors
    async with rt.db.write() as conn:
        await import_rows(conn, rt.db.dialect, rows, rt.clock.now())
    return rt


async def make_customer(rt: Runtime, external_userid: str) -> int:
    from scrm.crm.customers.services import ensure_customer

    async with rt.db.write() as conn:
        return await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=external_userid, now=rt.clock.now())


STAFF_PASSWORD = "correct horse 1"


class SandboxHarness:
    """The whole product on a real local port with the sandbox mounted, jobs in-process: the emulator calls our
    /callback/wecom and our sender calls the emulator, over HTTP, exactly as in ``python run.py``."""

    def __init__(self, rt: Runtime, client: TestClient, state: Any) -> None:
        self.rt = rt
        self.client = client
        self.state = state

    async def settle(self, rounds: int = 50) -> None:
        """Run jobs and the outbox relay until nothing is pending."""
        from scrm.core import outbox
        from scrm.core.jobs import InProcessQueue

        assert isinstance(self.rt.jobs, InProcessQueue)
        for _ in range(rounds):
            await self.rt.jobs.drain(30)
            if not await outbox.relay_once(self.rt):
                return
        raise AssertionError("work did not settle")

    async def customer_says(self, external_userid: str, text: str, name: str = "") -> None:
        resp = await self.client.post(
            "/sandbox/api/kf/customer-message", json={"external_userid": external_userid, "name": name, "text": text}
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body.get("delivered", True), body
        await self.settle()

    def replies(self, external_userid: str) -> list[str]:
        return list(self.state.kf_replies(external_userid))

    async def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.rt.settings.admin_token.get()}"}
        resp = await self.client.request(method, "/api/v1" + path, headers=headers, **kw)
        return resp.status, await resp.json()

    async def staff_token(self, username: str, roles: list[str], **account: Any) -> str:
        """A staff account (password ``STAFF_PASSWORD``; ``account``: wecom_userid, data_scope …) and a personal API
        token of everything its roles allow, made by the admin as a person would."""
        from scrm.crm.staff import accounts

        await accounts.create_staff(self.rt, username, STAFF_PASSWORD, roles, **account)
        status, made = await self.api("POST", "/tokens", json={"name": "测试", "staff": username})
        assert status == 201, made
        return str(made["token"])

    async def as_token(self, token: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """Call /api/v1 with a person's token: (status, JSON)."""
        resp = await self.client.request(method, "/api/v1" + path, headers={"Authorization": f"Bearer {token}"}, **kw)
        return resp.status, await resp.json()


@pytest.fixture
async def sandbox(database_url: str, clock: FrozenClock) -> AsyncIterator[SandboxHarness]:
    from aiohttp.test_utils import TestClient, TestServer

    from bots.sandbox.keys import SANDBOX_STATE
    from scrm.app.webapp import create_app
    from tests.helpers import free_port

    port = free_port()
    settings = make_settings(database_url=database_url, port=port)
    runtime = await build_runtime(settings, clock)
    await runtime.jobs.start(runtime)
    app = create_app(settings, runtime=runtime)
    async with TestClient(TestServer(app, port=port)) as client:
        async with runtime.db.write() as conn:
            from fulfillment.catalog.services import seed_sample_if_empty

            await seed_sample_if_empty(conn, runtime.db.dialect, runtime.clock.now())
        yield SandboxHarness(runtime, client, app[SANDBOX_STATE])
    await runtime.close()
