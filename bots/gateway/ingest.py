"""Group commit for callbacks: many concurrent callbacks share one database transaction.

A callback must be durable before we answer 200, and a transaction costs far more than the rows in it (≈0.5 ms of
client CPU for the transaction, ≈0.3 ms per statement through the async driver). The writer takes every callback
waiting in its queue, writes them in one transaction (the events INSERT … ON CONFLICT DO NOTHING, an outbox row for
each new one), and then answers them all. No artificial delay: at low load a batch is one callback;
under load batches grow by themselves while the previous commit is in flight.

On PostgreSQL a batch is one statement (:data:`PG_STORE`, both INSERTs in a ``WITH``), run on a connection in
autocommit: the statement is its own transaction, so a batch costs one round trip, not four (BEGIN, two INSERTs,
COMMIT). It takes its rows as one array per column (``INSERT … SELECT FROM unnest(…)``), so it is the same statement
whatever the batch size: SQLAlchemy compiles it once and asyncpg prepares it once per connection. A multi-row
``VALUES`` list is a new statement for every batch, and compiling it (a bind parameter per value) had cost more
server CPU than the rest of the callback path together. Rows go in sorted by their unique key, so two processes
inserting overlapping batches (a retried callback) take the key locks in one order.

The writer keeps its database connection while callbacks keep coming (up to ``LINGER`` idle): checking one out of
the pool pings it first, and asyncpg's ping is three round trips (BEGIN, ``;``, ROLLBACK) — three times the batch's
own. A connection that died while held fails one batch (503, WeCom retries) and is replaced by a pinged one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bots.gateway.domain import Inbound
from bots.gateway.models import inbound_events
from bots.gateway.services import TOPIC
from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.outbox import FAST_PATH_GRACE
from scrm.core.runtime import ResourceKey, Runtime

log = logging.getLogger(__name__)

MAX_BATCH = 500
LINGER = 1.0  # s: the writer keeps its connection this long after a batch, for the next one

_COLUMNS = (
    "channel", "kind", "dedupe_key", "msg_type", "event", "change_type", "from_user", "external_userid", "user_id",
    "chat_id", "open_kfid", "content", "payload", "raw", "occurred_at", "received_at", "status",
)  # fmt: skip
_TIMES = frozenset({"occurred_at", "received_at"})


def _pg_store() -> Any:
    """The whole batch in one statement (so one implicit transaction, one round trip)::

        WITH stored AS (INSERT INTO inbound_events … SELECT … FROM unnest(:channel, :kind, …)
                        ON CONFLICT DO NOTHING RETURNING id, channel, dedupe_key, status),
             queued AS (INSERT INTO outbox … SELECT :topic, {"inbound_id": stored.id}, :now, :due
                        FROM stored WHERE status = 'pending' RETURNING id, inbound_id)
        SELECT channel, dedupe_key, stored.id, queued.id FROM stored LEFT JOIN queued …

    One array parameter per column (payload as JSON text, cast to JSONB here); a row per event inserted, with its
    outbox id (none for an unknown kind). The outbox rows are those :func:`scrm.core.outbox.add` writes."""
    arrays = [sa.bindparam(c, type_=ARRAY(sa.DateTime(timezone=True) if c in _TIMES else sa.Text())) for c in _COLUMNS]
    src = sa.func.unnest(*arrays).table_valued(*_COLUMNS).render_derived()
    rows = sa.select(*[sa.cast(src.c[c], JSONB) if c == "payload" else src.c[c] for c in _COLUMNS])
    t, ob = inbound_events, outbox.outbox
    stored = (
        pg_insert(t).from_select(list(_COLUMNS), rows).on_conflict_do_nothing().returning(t.c.id, t.c.channel, t.c.dedupe_key, t.c.status)
    ).cte("stored")
    news = sa.select(
        sa.bindparam("topic", type_=ob.c.topic.type),
        sa.func.jsonb_build_object(sa.literal_column("'inbound_id'"), stored.c.id),
        sa.bindparam("now", type_=ob.c.created_at.type),
        sa.bindparam("due", type_=ob.c.next_attempt_at.type),
    ).where(stored.c.status == "pending")
    inbound_id = sa.cast(ob.c.payload["inbound_id"].as_string(), sa.BigInteger()).label("inbound_id")
    queued = (
        ob.insert().from_select(["topic", "payload", "created_at", "next_attempt_at"], news).returning(ob.c.id, inbound_id).cte("queued")
    )
    return sa.select(stored.c.channel, stored.c.dedupe_key, stored.c.id, queued.c.id.label("outbox_id")).select_from(
        stored.outerjoin(queued, queued.c.inbound_id == stored.c.id)
    )


PG_STORE = _pg_store()


@dataclass(frozen=True)
class Accepted:
    duplicate: bool


class InboundWriter:
    def __init__(self, rt: Runtime, max_batch: int = MAX_BATCH, linger: float = LINGER) -> None:
        self.rt = rt
        self.max_batch = max_batch
        self.linger = linger
        self._queue: asyncio.Queue[tuple[Inbound, asyncio.Future[Accepted]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._kicks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Inbound) -> Accepted:
        """Store one callback durably (with its outbox row); returns once committed. Raises if the database
        failed, so the caller answers non-200 and WeCom retries."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="inbound-writer")
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            try:
                async with self.rt.db.connect_writer() as conn:
                    if self.rt.db.dialect == "postgresql":
                        # A batch is one statement there (PG_STORE), a transaction by itself: no BEGIN/COMMIT trips.
                        await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await self._write_while_busy(conn, batch)
            except Exception as exc:  # no connection (database down): the callbacks waiting for it fail
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                self._fail(batch, exc)

    async def _write_while_busy(self, conn: AsyncConnection, batch: list[tuple[Inbound, asyncio.Future[Accepted]]]) -> None:
        """Write batches on one connection for as long as callbacks keep coming (the pool's pre-ping, three round
        trips on asyncpg, then happens once per busy spell instead of once per batch). Returns after ``linger``
        seconds without a callback, or after a failed batch, so the next one starts on a fresh, pinged connection.
        ``batch`` holds the callbacks taken so far; the ones answered are left done."""
        while True:
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if live:
                try:
                    duplicates, outbox_ids = await self._write(conn, [item for item, _ in live])
                except asyncio.CancelledError:
                    self._fail(live, RuntimeError("shutting down"))
                    raise
                except Exception as exc:
                    self._fail(live, exc)
                    return
                for (_, fut), dup in zip(live, duplicates, strict=True):
                    if not fut.done():
                        fut.set_result(Accepted(dup))
                if outbox_ids:
                    task = asyncio.create_task(outbox.kick(self.rt, outbox_ids))
                    self._kicks.add(task)
                    task.add_done_callback(self._kicks.discard)
            batch.clear()
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), self.linger))
            except TimeoutError:
                return

    @staticmethod
    def _fail(batch: list[tuple[Inbound, asyncio.Future[Accepted]]], exc: Exception) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)

    async def _write(self, conn: AsyncConnection, items: list[Inbound]) -> tuple[list[bool], list[int]]:
        rt = self.rt
        now = rt.clock.now()
        rows: list[dict[str, Any]] = []
        first_of_key: dict[tuple[str, str], int] = {}
        for i, item in enumerate(items):
            key = (item.channel, item.dedupe_key)
            if key not in first_of_key:  # the same callback twice in one batch: one row
                first_of_key[key] = i
                rows.append(item.row(now))
        rows.sort(key=lambda r: (r["channel"], r["dedupe_key"]))
        async with conn.begin():
            if rt.db.dialect == "postgresql":
                inserted, outbox_ids = await _insert_postgresql(conn, rows, now)
            else:
                inserted, outbox_ids = await _insert_values(conn, rt.db.dialect, rows, now)
        duplicates = [
            (item.channel, item.dedupe_key) not in inserted or first_of_key[(item.channel, item.dedupe_key)] != i
            for i, item in enumerate(items)
        ]
        for item, dup in zip(items, duplicates, strict=True):
            if not dup and item.is_unknown:
                log.warning("unknown inbound kind stored", extra={"channel": item.channel, "msg_type": item.msg_type, "event": item.event})
        return duplicates, outbox_ids

    async def close(self) -> None:
        """Stop taking callbacks; let the enqueues of already-committed ones finish (bounded), so a clean shutdown
        leaves no work for the relay's slower sweep."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("shutting down"))
        if self._kicks:
            _, pending = await asyncio.wait(set(self._kicks), timeout=5)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _insert_postgresql(
    conn: AsyncConnection, rows: list[dict[str, Any]], now: dt.datetime
) -> tuple[dict[tuple[str, str], int], list[int]]:
    """The batch's events and the outbox rows of those that were new and known: ``{(channel, dedupe_key): id}`` of the
    inserted events, and the outbox ids. One statement: atomic by itself, also on a connection in autocommit."""
    params: dict[str, Any] = {c: [r[c] for r in rows] for c in _COLUMNS}
    params["payload"] = [json.dumps(p) for p in params["payload"]]  # what the JSON column's bind processor sends
    for c in _TIMES:
        if any(t.tzinfo is None for t in params[c]):
            raise ValueError("naive datetime given to the database; use timezone-aware values")
    params |= {"topic": TOPIC, "now": now, "due": now + FAST_PATH_GRACE}
    inserted: dict[tuple[str, str], int] = {}
    outbox_ids: list[int] = []
    for r in await conn.execute(PG_STORE, params):
        inserted[(r.channel, r.dedupe_key)] = int(r.id)
        if r.outbox_id is not None:
            outbox_ids.append(int(r.outbox_id))
    return inserted, outbox_ids


async def _insert_values(
    conn: AsyncConnection, dialect: str, rows: list[dict[str, Any]], now: dt.datetime
) -> tuple[dict[tuple[str, str], int], list[int]]:
    """:func:`_insert_postgresql` on SQLite: multi-row ``VALUES`` (SQLite has no arrays; embedded use, light load)."""
    result = await conn.execute(
        insert_ignore(inbound_events, dialect)
        .values(rows)
        .returning(inbound_events.c.id, inbound_events.c.channel, inbound_events.c.dedupe_key, inbound_events.c.status)
    )
    inserted: dict[tuple[str, str], int] = {}
    to_process: list[dict[str, object]] = []
    for r in result:
        inserted[(r.channel, r.dedupe_key)] = int(r.id)
        if r.status == "pending":
            to_process.append({"inbound_id": int(r.id)})
    if not to_process:
        return inserted, []
    res = await conn.execute(
        outbox.outbox.insert()
        .values([{"topic": TOPIC, "payload": p, "created_at": now, "next_attempt_at": now + FAST_PATH_GRACE} for p in to_process])
        .returning(outbox.outbox.c.id)
    )
    return inserted, [int(r.id) for r in res]


WRITER: ResourceKey[InboundWriter] = ResourceKey("inbound_writer")


def writer(rt: Runtime) -> InboundWriter:
    if not rt.has(WRITER):
        w = InboundWriter(rt)
        rt.put(WRITER, w)
        rt.on_close(w.close)
    return rt.get(WRITER)
