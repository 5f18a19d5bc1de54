"""``run.py worker``: an arq worker running every registered job and cron, plus the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker

from config import Settings
from scrm.core import outbox
from scrm.core.jobs import arq_cron, arq_function, registered_crons, registered_jobs
from scrm.web.runtime import build_runtime, load_features

JOB_COMPLETION_WAIT = 10  # seconds; systemd's TimeoutStopSec for workers must be longer (docs/deploy.md)


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
    return Worker(
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
