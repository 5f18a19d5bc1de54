"""Jobs: one API, two engines.

* :class:`ArqQueue` — arq on Redis (``SCRM_REDIS_URL`` set); ``run.py worker`` processes run the jobs.
* :class:`InProcessQueue` — asyncio tasks in the serving process (embedded default).

Every job may run more than once (a crash after the work and before the acknowledgement, a duplicate enqueue):
job functions take ids, re-read state and are idempotent. A job id makes an enqueue of a job already queued or
running a no-op. Failures retry with exponential back-off up to ``max_tries``; :class:`RetryLater` asks for a
specific delay (rate limits). Cron jobs run once per tick across all workers (arq job ids keyed on the tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from arq import Retry, create_pool, func
from arq import cron as arq_cron_
from arq.connections import RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.cron import next_cron
from arq.jobs import serialize_job

if TYPE_CHECKING:
    from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Raised by a job to run again after ``defer`` seconds (e.g. WeCom 45009 rate limit)."""

    def __init__(self, defer: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {defer}s")
        self.defer = defer
        self.reason = reason


class QueueUnavailable(Exception):
    """The job backend cannot take work now (Redis down). The caller's data is safe in the database."""


@dataclass
class JobContext:
    rt: Runtime
    job_id: str
    job_try: int
    max_tries: int

    @property
    def final_try(self) -> bool:
        return self.job_try >= self.max_tries


JobFunc = Callable[..., Awaitable[Any]]
# An outbox handler: (runtime, the row's payload); see scrm.core.outbox.
OutboxHandler = Callable[["Runtime", dict[str, Any]], Awaitable[None]]

# The job being run in this task, for code deep below a job that must act differently on its last try (the
# sender settles a message as failed rather than leave it pending when nobody will try again).
_current_job: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("current_job", default=None)


def on_final_try() -> bool:
    """True inside a job on its last try (False outside jobs: a caller there decides retries itself)."""
    ctx = _current_job.get()
    return ctx is not None and ctx.final_try


async def _run_as(ctx: JobContext, func: JobFunc, *args: Any) -> Any:
    token = _current_job.set(ctx)
    try:
        return await func(ctx, *args)
    finally:
        _current_job.reset(token)


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: JobFunc
    max_tries: int | None = None
    timeout: float = 300.0


@dataclass(frozen=True)
class CronSpec:
    name: str
    func: Callable[[JobContext], Awaitable[Any]]
    # arq.cron fields; None = every value. e.g. second=0 → every minute; minute=0, second=0 → hourly.
    hour: int | set[int] | None = None
    minute: int | set[int] | None = None
    second: int | set[int] | None = 0


@dataclass(frozen=True)
class Registry:
    """Every job and cron of the running product, as the composition root collected them from each capability's
    ``jobs.py`` (``JOBS``, ``CRONS``, ``HANDLERS`` lists) — nothing registers itself by being imported."""

    jobs: Mapping[str, JobSpec] = field(default_factory=dict)
    crons: Mapping[str, CronSpec] = field(default_factory=dict)
    handlers: Mapping[str, tuple[OutboxHandler, ...]] = field(default_factory=dict)

    @classmethod
    def collect(cls, capabilities: Iterable[ModuleType]) -> Registry:
        """One registry from the capabilities' ``JOBS``, ``CRONS`` and ``HANDLERS`` lists, in the order given (outbox
        handlers of one topic run in that order). Two jobs or crons of one name are a programming error."""
        jobs: dict[str, JobSpec] = {}
        crons: dict[str, CronSpec] = {}
        handlers: dict[str, list[OutboxHandler]] = {}
        for module in capabilities:
            for spec in getattr(module, "JOBS", ()):
                if spec.name in jobs:
                    raise ValueError(f"two jobs named {spec.name!r} ({module.__name__})")
                jobs[spec.name] = spec
            for cron_spec in getattr(module, "CRONS", ()):
                if cron_spec.name in crons:
                    raise ValueError(f"two crons named {cron_spec.name!r} ({module.__name__})")
                crons[cron_spec.name] = cron_spec
            for handles in getattr(module, "HANDLERS", ()):
                handlers.setdefault(handles.topic, []).append(handles.func)
        return cls(jobs, crons, {topic: tuple(funcs) for topic, funcs in handlers.items()})

    def handlers_for(self, topic: str) -> tuple[OutboxHandler, ...]:
        return self.handlers.get(topic, ())


def backoff_seconds(job_try: int, base: float) -> float:
    return float(min(base * (2 ** max(job_try - 1, 0)), 300.0))


class JobQueue(ABC):
    backend: str

    @abstractmethod
    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer: float = 0.0) -> bool:
        """Queue a job; False when a job with this id is already queued or running. Raises QueueUnavailable."""

    async def enqueue_many(self, name: str, jobs: Sequence[tuple[str, tuple[Any, ...]]]) -> int:
        """Queue several jobs of one function, each ``(job_id, args)``, with the dedupe of :meth:`enqueue`; returns
        how many were new. Raises QueueUnavailable (some of them may be queued by then: job ids make a retry safe)."""
        added = 0
        for job_id, args in jobs:
            added += int(await self.enqueue(name, *args, job_id=job_id))
        return added

    async def start(self, rt: Runtime) -> None:  # noqa: B027 - optional hook
        """Start consuming (in-process engine); no-op for engines consumed elsewhere."""

    @abstractmethod
    async def ping(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------------------
# In-process engine
# ---------------------------------------------------------------------------------------------------------
@dataclass(order=True)
class _Item:
    name: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    job_id: str = field(compare=False)
    job_try: int = field(default=1, compare=False)


class InProcessQueue(JobQueue):
    backend = "inprocess"

    def __init__(self, concurrency: int = 8, max_tries: int = 5, retry_base: float = 1.0, registry: Registry | None = None) -> None:
        self.registry = registry  # until started; then the runtime's
        self.concurrency = concurrency
        self.max_tries = max_tries
        self.retry_base = retry_base
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._known: set[str] = set()  # queued, deferred or running
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._rt: Runtime | None = None
        self._seq = 0
        self.failed: list[tuple[str, str]] = []  # (job_id, error) — visible to tests and /metrics

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer: float = 0.0) -> bool:
        if name not in self._registry().jobs:
            raise LookupError(f"unknown job {name!r}")
        if job_id is None:
            self._seq += 1
            job_id = f"{name}:{self._seq}:{time.monotonic_ns()}"
        if job_id in self._known:
            return False
        self._known.add(job_id)
        self._schedule(_Item(name, args, job_id), defer)
        return True

    def _schedule(self, item: _Item, defer: float) -> None:
        if defer <= 0:
            self._queue.put_nowait(item)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._queue.put_nowait(item)

        handle = loop.call_later(defer, fire)
        self._timers.add(handle)

    def _registry(self) -> Registry:
        if self._rt is not None:
            return self._rt.registry
        return self.registry if self.registry is not None else Registry()

    async def start(self, rt: Runtime) -> None:
        self._rt = rt
        for i in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._work(), name=f"job-worker-{i}"))
        for spec in rt.registry.crons.values():
            self._tasks.append(asyncio.create_task(self._cron(spec), name=f"cron-{spec.name}"))

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._run(item)
            finally:
                self._queue.task_done()

    async def _run(self, item: _Item) -> None:
        assert self._rt is not None
        spec = self._registry().jobs[item.name]
        max_tries = spec.max_tries or self.max_tries
        ctx = JobContext(self._rt, item.job_id, item.job_try, max_tries)
        try:
            await asyncio.wait_for(_run_as(ctx, spec.func, *item.args), timeout=spec.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if item.job_try >= max_tries:
                self._known.discard(item.job_id)
                self.failed.append((item.job_id, f"{type(exc).__name__}: {exc}"))
                log.error("job failed for good", extra={"job_id": item.job_id, "tries": item.job_try, "error": str(exc)})
                return
            delay = exc.defer if isinstance(exc, RetryLater) else backoff_seconds(item.job_try, self.retry_base)
            log.warning("job will retry", extra={"job_id": item.job_id, "try": item.job_try, "in_s": delay, "error": str(exc)})
            self._schedule(_Item(item.name, item.args, item.job_id, item.job_try + 1), delay)
            return
        self._known.discard(item.job_id)

    async def _cron(self, spec: CronSpec) -> None:
        assert self._rt is not None
        while True:
            now = dt.datetime.now()
            nxt = next_cron(now, hour=spec.hour, minute=spec.minute, second=spec.second, microsecond=0)
            await asyncio.sleep(max((nxt - now).total_seconds(), 0.0))
            ctx = JobContext(self._rt, f"cron:{spec.name}:{nxt.isoformat()}", 1, 1)
            try:
                await spec.func(ctx)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cron job failed", extra={"cron": spec.name})

    async def drain(self, within: float = 30.0) -> None:
        """Wait until nothing is queued, deferred or running (tests, demo, shutdown)."""
        deadline = time.monotonic() + within
        while True:
            if not self._known and self._queue.empty() and not self._timers:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still pending: {sorted(self._known)[:10]}")
            await asyncio.sleep(0.005)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


# ---------------------------------------------------------------------------------------------------------
# arq engine
# ---------------------------------------------------------------------------------------------------------
# arq's enqueue_job, for many jobs in one round trip: WATCH + EXISTS + MULTI/EXEC per job costs three round trips
# and a pooled connection each, which is slower than callbacks arrive (bench.server saw the fast path fall
# 2,000 jobs behind in 10 s). The script makes the same writes (job key with arq's expiry, queue entry) under
# the same rule (nothing when the job key or its kept result exists), atomically, for a whole batch.
# KEYS: queue, then per job its job key and result key; ARGV: per job its id, serialized job, score (ms), expiry (ms).
_ENQUEUE_MANY = """
local added = 0
for i = 0, (#KEYS - 1) / 2 - 1 do
  local job_key, result_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  if redis.call('exists', job_key, result_key) == 0 then
    redis.call('psetex', job_key, ARGV[4 + 4 * i], ARGV[2 + 4 * i])
    redis.call('zadd', KEYS[1], ARGV[3 + 4 * i], ARGV[1 + 4 * i])
    added = added + 1
  end
end
return added
"""
ENQUEUE_BATCH = 500  # jobs per script call: bounds how long one call holds Redis (≈ 1 ms)


class ArqQueue(JobQueue):
    backend = "arq"

    def __init__(self, redis_url: str, queue_name: str = "scrm:jobs") -> None:
        self.redis_url = redis_url
        self.queue_name = queue_name
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                settings = RedisSettings.from_dsn(self.redis_url)
                settings.conn_retries = 0
                settings.conn_timeout = 2
                try:
                    self._pool = await create_pool(settings, default_queue_name=self.queue_name)
                except Exception as exc:
                    raise QueueUnavailable(f"Redis unavailable: {exc}") from exc
        return self._pool

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer: float = 0.0) -> bool:
        pool = await self._get_pool()
        try:
            job = await pool.enqueue_job(name, *args, _job_id=job_id, _defer_by=defer or None)
        except Exception as exc:
            raise QueueUnavailable(f"Redis unavailable: {exc}") from exc
        return job is not None

    async def enqueue_many(self, name: str, jobs: Sequence[tuple[str, tuple[Any, ...]]]) -> int:
        pool = await self._get_pool()
        added = 0
        try:
            script = pool.register_script(_ENQUEUE_MANY)
            for start in range(0, len(jobs), ENQUEUE_BATCH):
                keys: list[str] = [self.queue_name]
                argv: list[Any] = []
                now_ms = int(time.time() * 1000)
                for job_id, args in jobs[start : start + ENQUEUE_BATCH]:
                    keys += [job_key_prefix + job_id, result_key_prefix + job_id]
                    payload = serialize_job(name, args, {}, None, now_ms, serializer=pool.job_serializer)
                    argv += [job_id, payload, now_ms, pool.expires_extra_ms]
                added += int(await script(keys=keys, args=argv))
        except Exception as exc:
            raise QueueUnavailable(f"Redis unavailable: {exc}") from exc
        return added

    async def ping(self) -> None:
        pool = await self._get_pool()
        await pool.ping()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


def arq_function(spec: JobSpec, default_max_tries: int, retry_base: float) -> Any:
    """Wrap a registered job for arq: our retry policy on top of arq's Retry."""
    max_tries = spec.max_tries or default_max_tries

    async def run(ctx: dict[str, Any], *args: Any) -> Any:
        jctx = JobContext(ctx["rt"], ctx["job_id"], ctx["job_try"], max_tries)
        try:
            return await _run_as(jctx, spec.func, *args)
        except RetryLater as exc:
            if jctx.final_try:
                raise
            raise Retry(defer=exc.defer) from exc
        except Exception as exc:
            if jctx.final_try:
                log.error("job failed for good", extra={"job_id": jctx.job_id, "tries": jctx.job_try, "error": str(exc)})
                raise
            raise Retry(defer=backoff_seconds(jctx.job_try, retry_base)) from exc

    run.__qualname__ = run.__name__ = spec.name
    # arq's own max_tries is one above ours so our final try is the one that records the failure.
    return func(run, name=spec.name, max_tries=max_tries + 1, timeout=spec.timeout)


CRON_RESULT_KEEP = 3600  # seconds a cron tick's result (hence its job id) is kept in Redis: longer than any worker lag


def arq_cron(spec: CronSpec) -> Any:
    async def run(ctx: dict[str, Any]) -> Any:
        return await spec.func(JobContext(ctx["rt"], ctx["job_id"], 1, 1))

    run.__qualname__ = run.__name__ = spec.name
    # Every worker enqueues each tick under the same job id (``unique``); the first enqueue wins while the job
    # is queued or running. arq keeps no result for cron jobs by default, so a worker whose loop lagged past
    # the end of a short cron job would enqueue — and run — the same tick again. The kept result closes that.
    return arq_cron_(run, name=spec.name, hour=spec.hour, minute=spec.minute, second=spec.second, unique=True, keep_result=CRON_RESULT_KEEP)


def make_queue(settings: Any, registry: Registry | None = None) -> JobQueue:
    if settings.redis_url:
        return ArqQueue(settings.redis_url)
    return InProcessQueue(settings.job_concurrency, settings.job_max_tries, settings.job_retry_base, registry)
