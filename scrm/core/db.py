"""Database engine and transactions for SQLite (embedded) and PostgreSQL (production).

All tables share :data:`metadata`; they are declared as SQLModel classes on :class:`Model` (which puts them on that
metadata) and used through their ``__table__`` with SQLAlchemy Core. Writers use :meth:`Database.write`, which on
SQLite opens the transaction with ``BEGIN IMMEDIATE`` (the write lock is taken up front, so read-then-write sequences
cannot interleave) and on PostgreSQL is an ordinary transaction where guarded updates and ``FOR UPDATE`` give the same guarantees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import registry
from sqlalchemy.util.concurrency import await_
from sqlmodel import SQLModel

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware datetimes on every backend. Stored as UTC; naive values are refused."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware values")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY (the rowid) for autoincrement there.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Model(SQLModel, registry=registry(metadata=metadata)):
    """Base of every table class: ``class Customer(Model, table=True)``.

    SQLModel 0.0.50 takes the registry as a class keyword (``SQLModelMetaclass`` then sets ``_sa_registry``,
    ``metadata`` and ``__abstract__`` on this class), so every subclass with ``table=True`` lands on this module's
    :data:`metadata` and its naming convention — the one migrations/env.py compares and tests create. SQLModel's own
    default registry and ``SQLModel.metadata`` are left alone: nothing global is patched.

    How the tables are used: hot paths issue Core statements on ``Model.__table__`` (each models module also exports
    it under the old name, e.g. ``customers = Customer.__table__``); rows are not loaded as ORM objects. Columns spell
    their database type (``sa_type``), because SQLModel's inference would pick other types (``AutoString``, its own
    ``UTCDateTime`` that keeps the offset on SQLite). Server defaults go in ``sa_column_kwargs`` and fields get no
    Python default other than ``None``, so Core inserts send exactly what they did with the plain ``sa.Table``.
    """

    __table__: ClassVar[sa.Table]


class Database:
    """One engine plus the two ways to use it: ``read()`` and ``write()`` transactions."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # Every connection the pool opens stays open: an "overflow" connection would be closed again on return
            # whenever enough others are idle, and under bursty load that is a new backend (fork, auth, type codecs,
            # every prepared statement again) every few orders. The most open at once is unchanged (2 × pool_size).
            kwargs.update(pool_size=2 * pool_size, max_overflow=0, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)
        elif self.engine.dialect.driver == "asyncpg":
            _ping_in_one_round_trip(self.engine)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction; commits on success, rolls back on error."""
        async with self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect_writer(self) -> AsyncIterator[AsyncConnection]:
        """A connection for several write transactions in a row, each ``async with conn.begin()`` (same mode as
        :meth:`write`). The pool pings a connection when it is checked out, so a caller holding one between
        transactions skips those pings — and sees an error, not a fresh connection, if the database went away meanwhile."""
        async with self._writer.connect() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """The pool's driver connection itself (asyncpg on PostgreSQL), outside any SQLAlchemy transaction: each
        statement commits on its own. For a hot path written as one hand-tuned statement, where SQLAlchemy's
        per-statement work would cost more than the database's (see ``fulfillment.orders.placement``)."""
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            yield raw.driver_connection

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _ping_in_one_round_trip(engine: AsyncEngine) -> None:
    """The pool's pre-ping on asyncpg as one round trip (``;``). SQLAlchemy wraps it in BEGIN … ROLLBACK so that it
    works behind pgbouncer's transaction pooling — three round trips on every checkout, i.e. on every transaction
    of the app, for a pooler we do not run (the app connects to PostgreSQL itself). A failed ping is reported as
    SQLAlchemy's own is (the adapter's error translation), so a dead connection is still replaced on checkout."""

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            await_(dbapi_connection._connection.fetchrow(";"))
        except Exception as error:
            dbapi_connection._handle_exception(error)
        return True

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is ours to issue.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def insert_ignore(table: sa.Table, dialect: str) -> Any:
    """INSERT that silently skips rows violating a unique constraint (dedupe on natural keys)."""
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()

    return sqlite_insert(table).on_conflict_do_nothing()


async def insert_ignore_many(
    conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]], same: dict[str, Any] | None = None
) -> None:
    """:func:`insert_ignore` of many rows in one statement: ``rows`` (each with the same keys) plus the columns
    ``same`` gives one value for all of them. On PostgreSQL the rows travel as one array per column and the server
    unnests them: an executemany there is one Bind/Execute per row, and SQLAlchemy builds each row's parameters
    (together about 50 µs a row where the unnest costs a few). SQLite's executemany is a loop inside the driver and
    stays."""
    if not rows:
        return
    same = same or {}
    if conn.dialect.name != "postgresql":
        await conn.execute(insert_ignore(table, conn.dialect.name), [{**r, **same} for r in rows])
        return
    names = list(rows[0])
    arrays = [sa.bindparam(None, [r[n] for r in rows], type_=postgresql.ARRAY(table.c[n].type)) for n in names]
    unnested = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    constants = [sa.bindparam(None, v, type_=table.c[n].type).label(n) for n, v in same.items()]
    source = sa.select(*unnested.c, *constants)
    await conn.execute(pg_insert(table).from_select([*names, *same], source).on_conflict_do_nothing())


def upsert(table: sa.Table, dialect: str, keys: list[str], values: dict[str, Any], update: list[str]) -> Any:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET update-columns, the same on both backends."""
    if dialect == "postgresql":
        stmt = pg_insert(table).values(**values)
    else:
        stmt = sqlite_insert(table).values(**values)
    return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
