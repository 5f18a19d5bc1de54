"""``run.py worker``: an arq worker running every registered job and cron, plus the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config import Settings
from scrm.core import outbox
from scrm.core.jobs import arq_cron, arq_function, registered_crons, registered_jobs
from scrm.web.runtime import build_runtime, load_features

log = logging.getLogger(__name__)

REDIS_LOST = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
REDIS_RETRY_SECONDS = 1.0


class ScrmWorker(Worker):
    """arq's worker, made to outlive a Redis outage.

    arq lets a Redis error in its poll loop (or in a job's bookkeeping) end ``async_run``: the process exits and
    the jobs stop until someone restarts it. Here the loop waits and polls again, so work that waited in the
    database (outbox) runs as soon as Redis is back. Jobs in flight go on; one whose result could not be recorded
    runs again later, which every job allows.
    """

    redis_down = False

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_LOST as exc:
            if not self.redis_down:
                log.warning("worker lost Redis; polling again every %.0f s", REDIS_RETRY_SECONDS, extra={"error": str(exc)})
            self.redis_down = True
            await asyncio.sleep(REDIS_RETRY_SECONDS)
            return
        if self.redis_down:
            log.warning("worker reached Redis again")
            self.redis_down = False

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except REDIS_LOST:
            # arq took a job slot (semaphore + counter) for the job whose start failed; nothing will give it back.
            self.job_counter -= 1
            self.sem.release()
            raise


def make_worker(settings: Settings, *, burst: bool = False) -> Worker:
    load_features()

    async def startup(ctx: dict[str, Any]) -> None:
        rt = await build_runtime(settings)
        ctx["rt"] = rt
        ctx["relay"] = asyncio.create_task(outbox.relay_forever(rt), name="outbox-relay")

    async def shutdown(ctx: dict[str, Any]) -> None:
        relay = ctx.get("relay")
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        if "rt" in ctx:
            await ctx["rt"].close()

    functions = [arq_function(spec, settings.job_max_tries, settings.job_retry_base) for spec in registered_jobs().values()]
    return ScrmWorker(
        functions=functions,
        cron_jobs=[arq_cron(spec) for spec in registered_crons().values()],
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name="scrm:jobs",
        on_startup=startup,
        on_shutdown=shutdown,
        # arq's defaults poll every 0.5 s and read ≤ 100 jobs: ~200 jobs/s (BASELINES.md). Tuned up.
        max_jobs=64,
        poll_delay=0.05,
        keep_result=3600,
        burst=burst,
        handle_signals=not burst,
    )


async def run_worker(settings: Settings) -> None:
    worker = make_worker(settings)
    try:
        await worker.async_run()
    finally:
        await worker.close()
