"""``run.py worker``: an arq worker running every registered job and cron, plus the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from bots.dialogue.catalog_cache import parser_cache
from config import Settings
from scrm.app.runtime import build_registry, build_runtime
from scrm.core import outbox
from scrm.core.jobs import arq_cron, arq_function
from tagging.rules.engine import tagger_cache

JOB_COMPLETION_WAIT = 10  # seconds; systemd's TimeoutStopSec for workers must be longer (docs/deploy.md)

log = logging.getLogger(__name__)

# redis-py reports a connection lost inside a WATCHed pipeline as a WatchError (arq's start_jobs uses one; arq
# itself handles only the WatchError of a lost race, raised by EXEC, which never reaches us).
REDIS_LOST = (RedisConnectionError, RedisTimeoutError, WatchError, ConnectionError, TimeoutError)
REDIS_RETRY_SECONDS = 1.0
# A running job's in-progress key lives this long and is renewed every IN_PROGRESS_RENEW seconds while the job runs.
# arq's own choice (the longest job timeout + 10 s, 610 s here) leaves the jobs of a killed worker stranded for ten
# minutes: no other worker may start them until the key expires, and the relay's re-dispatch is refused while the
# job is still queued under its id.
IN_PROGRESS_LEASE = 30.0
IN_PROGRESS_RENEW = 10.0
# Extend a key's expiry, never shorten it (arq keeps a finished cron job's key a while longer: leave that alone).
_RENEW_SCRIPT = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 and ttl < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return ttl
"""


class ScrmWorker(Worker):
    """arq's worker, made to outlive a Redis outage.

    arq lets a Redis error in its poll loop (or in a job's bookkeeping) end ``async_run``: the process exits and
    the jobs stop until someone restarts it. Here the loop waits and polls again, so work that waited in the
    database (outbox) runs as soon as Redis is back. Jobs in flight go on; one whose result could not be recorded
    runs again later, which every job allows.

    The in-progress key of each running job is a short lease renewed while the job runs (see IN_PROGRESS_LEASE),
    so the jobs of a worker that died (SIGKILL, OOM, lost host) run again elsewhere within half a minute.
    """

    redis_down = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_progress_timeout_s = IN_PROGRESS_LEASE
        self._renewed_at = 0.0

    async def _renew_in_progress(self) -> None:
        now = self.loop.time()
        if now - self._renewed_at < IN_PROGRESS_RENEW:
            return
        self._renewed_at = now
        running = [job_id for job_id, task in self.tasks.items() if not task.done()]
        if not running:
            return
        lease_ms = int(IN_PROGRESS_LEASE * 1000)
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.eval(_RENEW_SCRIPT, 1, in_progress_key_prefix + job_id, lease_ms)
            await pipe.execute()

    async def _poll_iteration(self) -> None:
        try:
            await self._renew_in_progress()
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
    registry = build_registry()

    async def startup(ctx: dict[str, Any]) -> None:
        rt = await build_runtime(settings)
        ctx["rt"] = rt
        ctx["relay"] = asyncio.create_task(outbox.relay_forever(rt), name="outbox-relay")
        # The worker reads the customers' messages: load jieba (≈1 s) and build the parser and the tagger now, not
        # on the first message (their own warm-ups log and swallow a failure: the first use builds them then).
        ctx["warm_ups"] = [
            asyncio.create_task(parser_cache(rt).warm_up(rt), name="warm-up-parser"),
            asyncio.create_task(tagger_cache(rt).warm_up(rt), name="warm-up-tagger"),
        ]

    async def shutdown(ctx: dict[str, Any]) -> None:
        for task in [ctx.get("relay"), *ctx.get("warm_ups", [])]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if "rt" in ctx:
            await ctx["rt"].close()

    functions = [arq_function(spec, settings.job_max_tries, settings.job_retry_base) for spec in registry.jobs.values()]
    return ScrmWorker(
        functions=functions,
        cron_jobs=[arq_cron(spec) for spec in registry.crons.values()],
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name="scrm:jobs",
        on_startup=startup,
        on_shutdown=shutdown,
        # arq's defaults poll every 0.5 s and read ≤ 100 jobs: ~200 jobs/s (docs/baselines.md). Tuned up.
        max_jobs=64,
        poll_delay=0.05,
        keep_result=3600,
        burst=burst,
        handle_signals=not burst,
        # On SIGTERM stop taking jobs and let running ones finish (≤ this many seconds) before cancelling them.
        job_completion_wait=JOB_COMPLETION_WAIT,
    )


async def run_worker(settings: Settings) -> None:
    worker = make_worker(settings)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # arq answers SIGTERM / SIGINT by cancelling its main task: the normal way to stop, not an error.
    finally:
        await worker.close()
