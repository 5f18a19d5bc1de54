"""Cron ticks run once across several ``run.py worker`` processes (real Redis, arq's own enqueue path).

Each worker enqueues every tick under the id ``<name>:<tick ms>``; these tests play the second worker whose
loop lagged, enqueueing a tick another worker already ran. The multi-process test in ``tests/scaleout`` does
the same with real worker processes.
"""

from __future__ import annotations

import datetime as dt

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.utils import to_unix_ms
from arq.worker import Worker

from scrm.core.jobs import CRON_RESULT_KEEP, CronSpec, JobContext, arq_cron

pytestmark = pytest.mark.redis
QUEUE = "scrm:test-cron-once"


async def test_a_tick_enqueued_again_after_it_ran_is_refused(redis_url: str) -> None:
    runs: list[str] = []

    async def tick(ctx: JobContext) -> None:
        runs.append(ctx.job_id)

    far_hour = (dt.datetime.now().hour + 12) % 24  # never due during the test: only our enqueues run it
    spec = CronSpec("test.cron_once", tick, hour=far_hour, minute=0, second=0)
    settings = RedisSettings.from_dsn(redis_url)
    pool = await create_pool(settings, default_queue_name=QUEUE)
    job_id = f"{spec.name}:{to_unix_ms(dt.datetime(2026, 11, 23, far_hour, tzinfo=dt.UTC))}"  # arq's cron job id
    try:
        assert await pool.enqueue_job(spec.name, _job_id=job_id) is not None
        # A second worker in the same window: refused while the job is queued.
        assert await pool.enqueue_job(spec.name, _job_id=job_id) is None
        worker = Worker(
            functions=[], cron_jobs=[arq_cron(spec)], redis_settings=settings, queue_name=QUEUE, burst=True, poll_delay=0.01,
            ctx={"rt": None}, handle_signals=False,
        )  # fmt: skip
        try:
            await worker.main()
        finally:
            await worker.close()
        assert runs == [job_id]
        # A worker whose loop lagged past the end of the job enqueues the same tick: still refused.
        assert await pool.enqueue_job(spec.name, _job_id=job_id) is None
        ttl = await pool.ttl(f"arq:result:{job_id}")
        assert CRON_RESULT_KEEP - 60 < ttl <= CRON_RESULT_KEEP
    finally:
        await pool.aclose()
