"""The two job engines pass the same tests: run, job-id dedupe, retries with back-off, RetryLater, final failure."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from arq.connections import RedisSettings
from arq.worker import Worker

from scrm.core.clock import FrozenClock
from scrm.core.db import Database
from scrm.core.jobs import ArqQueue, InProcessQueue, JobContext, JobQueue, JobSpec, Registry, RetryLater, arq_function
from scrm.core.runtime import Runtime
from tests.conftest import make_settings

runs: Counter[str] = Counter()
tries_seen: dict[str, list[int]] = {}


async def record(ctx: JobContext, key: str) -> None:
    runs[key] += 1
    tries_seen.setdefault(key, []).append(ctx.job_try)


async def flaky(ctx: JobContext, key: str, failures: int) -> None:
    runs[key] += 1
    if runs[key] <= failures:
        raise RuntimeError(f"failure {runs[key]}")


async def rate_limited(ctx: JobContext, key: str) -> None:
    runs[key] += 1
    if runs[key] == 1:
        raise RetryLater(0.05, "45009")


async def slow(ctx: JobContext, key: str) -> None:
    await asyncio.sleep(0.2)
    runs[key] += 1


SPECS = [
    JobSpec("test_record", record, max_tries=3),
    JobSpec("test_flaky", flaky, max_tries=4),
    JobSpec("test_rate_limited", rate_limited, max_tries=3),
    JobSpec("test_slow", slow, max_tries=1),
]
REGISTRY = Registry(jobs={spec.name: spec for spec in SPECS})

Run = Callable[[], Awaitable[None]]


@pytest.fixture(params=["inprocess", "arq"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[JobQueue, Run]]:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")
    db = Database(settings.database_url)
    runs.clear()
    tries_seen.clear()
    if request.param == "inprocess":
        queue: JobQueue = InProcessQueue(concurrency=4, max_tries=3, retry_base=0.01)
        rt = Runtime(settings, db, FrozenClock(), queue, REGISTRY)
        await queue.start(rt)

        async def run() -> None:
            assert isinstance(queue, InProcessQueue)
            await queue.drain(10)

        yield queue, run
        await rt.close()
        return
    redis_url = request.getfixturevalue("redis_url")
    queue = ArqQueue(redis_url)
    rt = Runtime(settings, db, FrozenClock(), queue, REGISTRY)

    async def startup(ctx: dict[str, object]) -> None:
        ctx["rt"] = rt

    async def run_arq() -> None:
        worker = Worker(
            functions=[arq_function(spec, 3, 0.01) for spec in SPECS],
            redis_settings=RedisSettings.from_dsn(redis_url),
            queue_name="scrm:jobs",
            on_startup=startup,
            burst=True,
            poll_delay=0.01,
            handle_signals=False,
        )
        try:
            await asyncio.wait_for(worker.async_run(), 20)
        finally:
            await worker.close()

    yield queue, run_arq
    await rt.close()


async def test_job_runs_once(engine: tuple[JobQueue, Run]) -> None:
    queue, run = engine
    assert await queue.enqueue("test_record", "a", job_id="rec-a")
    await run()
    assert runs["a"] == 1
    assert tries_seen["a"] == [1]


async def test_same_job_id_while_queued_is_a_no_op(engine: tuple[JobQueue, Run]) -> None:
    queue, run = engine
    assert await queue.enqueue("test_slow", "s", job_id="slow-1")
    assert not await queue.enqueue("test_slow", "s", job_id="slow-1")
    await run()
    assert runs["s"] == 1


async def test_failures_retry_with_backoff_until_success(engine: tuple[JobQueue, Run]) -> None:
    queue, run = engine
    await queue.enqueue("test_flaky", "f", 2, job_id="flaky-1")
    await run()
    assert runs["f"] == 3  # two failures, then success


async def test_final_failure_stops_retrying(engine: tuple[JobQueue, Run]) -> None:
    queue, run = engine
    await queue.enqueue("test_flaky", "g", 99, job_id="flaky-2")
    await run()
    assert runs["g"] == 4  # max_tries of the job, then given up (and logged), not retried forever


async def test_retry_later_defers(engine: tuple[JobQueue, Run]) -> None:
    queue, run = engine
    await queue.enqueue("test_rate_limited", "r", job_id="rl-1")
    await run()
    assert runs["r"] == 2


async def test_unknown_job_is_refused_in_process() -> None:
    queue = InProcessQueue()
    with pytest.raises(LookupError):
        await queue.enqueue("no_such_job")


async def test_enqueue_many_queues_each_once_and_skips_known_ids(engine: tuple[JobQueue, Run]) -> None:
    queue, run = engine
    assert await queue.enqueue("test_record", "m1", job_id="many-1")
    added = await queue.enqueue_many("test_record", [("many-1", ("m1",)), ("many-2", ("m2",)), ("many-3", ("m3",)), ("many-2", ("m2",))])
    assert added == 2  # many-1 was queued already; many-2 twice in one call is one job
    await run()
    assert runs == Counter({"m1": 1, "m2": 1, "m3": 1})
    assert tries_seen["m2"] == [1]


async def test_enqueue_many_after_the_run_is_a_no_op_while_the_result_is_kept(redis_url: str, tmp_path: Path) -> None:
    """arq's rule: a job id whose result is still kept is not queued again — the script keeps it."""
    import redis.asyncio as aioredis

    queue = ArqQueue(redis_url)
    try:
        assert await queue.enqueue_many("test_record", [(f"batch-{i}", (f"b{i}",)) for i in range(1200)]) == 1200  # > one script call
        client = aioredis.Redis.from_url(redis_url)
        try:
            assert await client.zcard("scrm:jobs") == 1200
            assert await client.pttl("arq:job:batch-7") > 23 * 3600 * 1000  # arq's expiry: a day
            await client.set("arq:result:batch-done", b"kept")
        finally:
            await client.aclose()
        assert await queue.enqueue_many("test_record", [("batch-done", ("x",)), ("batch-0", ("b0",))]) == 0
    finally:
        await queue.close()
