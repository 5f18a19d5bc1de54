"""The transactional outbox: relay, lease, handler idempotency, retries and visible final failure."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from scrm.core import outbox
from scrm.core.clock import FrozenClock
from scrm.core.jobs import InProcessQueue
from scrm.core.runtime import Runtime

handled: Counter[str] = Counter()


async def ok_handler(rt: Runtime, payload: dict[str, Any]) -> None:
    handled[payload["key"]] += 1


async def broken_handler(rt: Runtime, payload: dict[str, Any]) -> None:
    handled[payload["key"]] += 1
    raise RuntimeError("downstream is down")


async def add(rt: Runtime, topic: str, key: str) -> int:
    async with rt.db.write() as conn:
        return await outbox.add(conn, topic, {"key": key}, rt.clock.now())


async def row(rt: Runtime, oid: int) -> Any:
    async with rt.db.read() as conn:
        return (await conn.execute(sa.select(outbox.outbox).where(outbox.outbox.c.id == oid))).one()


@pytest.fixture(autouse=True)
def _reset(rt: Runtime) -> None:
    handled.clear()
    extra = {"test.ok": (ok_handler,), "test.broken": (broken_handler,)}
    rt.registry = dataclasses.replace(rt.registry, handlers={**rt.registry.handlers, **extra})


async def test_relay_dispatches_due_rows_once(rt: Runtime, clock: FrozenClock) -> None:
    assert isinstance(rt.jobs, InProcessQueue)
    await rt.jobs.start(rt)
    oid = await add(rt, "test.ok", "a")
    assert await outbox.relay_once(rt) == 1
    assert await outbox.relay_once(rt) == 0  # leased: not dispatched again while the job runs
    await rt.jobs.drain()
    assert handled["a"] == 1 and (await row(rt, oid)).done_at is not None
    await outbox.dispatch(rt, oid, final_try=False)  # a late duplicate job: nothing happens
    assert handled["a"] == 1
    clock.advance(minutes=5)
    assert await outbox.relay_once(rt) == 0 and await outbox.pending_count(rt) == 0


async def test_lost_job_is_dispatched_again_after_the_lease(rt: Runtime, clock: FrozenClock) -> None:
    oid = await add(rt, "test.ok", "b")
    assert await outbox.relay_once(rt) == 1  # enqueued, but this queue never runs it (a crashed process)
    rt.jobs = InProcessQueue(retry_base=0.01)
    await rt.jobs.start(rt)
    clock.advance(seconds=outbox.RELAY_LEASE.total_seconds() + 1)
    assert await outbox.relay_once(rt) == 1
    await rt.jobs.drain()
    assert handled["b"] == 1 and (await row(rt, oid)).done_at is not None


async def test_failures_retry_then_stay_visible_as_failed(rt: Runtime) -> None:
    await rt.jobs.close()
    rt.jobs = InProcessQueue(retry_base=0.0001)  # the same policy, compressed in time
    await rt.jobs.start(rt)
    oid = await add(rt, "test.broken", "c")
    await outbox.kick(rt, [oid])
    await rt.jobs.drain(60)
    r = await row(rt, oid)
    assert handled["c"] == 12  # dispatch_outbox's max_tries
    assert r.failed_at is not None and r.done_at is None and "downstream is down" in r.last_error
    assert await outbox.pending_count(rt) == 0


async def test_unknown_topic_fails_at_once(rt: Runtime) -> None:
    oid = await add(rt, "test.nobody", "d")
    await outbox.dispatch(rt, oid, final_try=False)
    r = await row(rt, oid)
    assert r.failed_at is not None and "no handler" in r.last_error
