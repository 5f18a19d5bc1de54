"""Console sign-in rate limit: failed attempts counted per client address and per username, in a sliding window.

Two counters, because each alone has a hole: per address alone lets a botnet guess one account's password from many
addresses; per username alone lets one address try every account. Limits: ``PER_CLIENT`` (5 failures in 5 min per
address) and ``PER_USERNAME`` (10 failures in 15 min per account, from anywhere). Either one full → 429 with
``Retry-After`` until its oldest failure ages out. A successful sign-in clears both counters. The per-username
limit means someone can keep an account locked by failing on purpose; the window is short and the admin-token
sign-in and other staff accounts stay open, which we accept over unlimited guessing.

Where the counters live: in Redis when ``SCRM_REDIS_URL`` is set, so every ``run.py serve`` process behind a load
balancer shares them (one sorted set per key, scored by the attempt time, trimmed to the window and expiring with
it); otherwise in this process (the embedded single-process setup). Not in the database: no migration may add a
table for it, and no existing table fits counters that are written on every failed attempt and expire by
themselves. If Redis is down the in-process counters take over (logged): sign-in keeps working, still limited
per process, rather than locking everyone out or allowing unlimited attempts. Time comes from the runtime's
clock, so tests control it.

The address is ``request.remote``: behind a proxy, make it the real client address (aiohttp's forwarded-header
middleware for a trusted proxy), or every client shares the proxy's counter.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    max_failures: int
    window: dt.timedelta


PER_CLIENT = Limit(5, dt.timedelta(minutes=5))
PER_USERNAME = Limit(10, dt.timedelta(minutes=15))


class FailureStore(Protocol):
    async def retry_after(self, key: str, limit: Limit, now: dt.datetime) -> int: ...
    async def failed(self, key: str, limit: Limit, now: dt.datetime) -> None: ...
    async def clear(self, key: str) -> None: ...
    async def close(self) -> None: ...


class MemoryFailures:
    """Failure times per key in this process; at most ``max_keys`` keys (the oldest is forgotten first)."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._failures: dict[str, deque[dt.datetime]] = {}

    def _recent(self, key: str, window: dt.timedelta, now: dt.datetime) -> deque[dt.datetime]:
        times = self._failures.get(key, deque())
        while times and now - times[0] >= window:
            times.popleft()
        return times

    async def retry_after(self, key: str, limit: Limit, now: dt.datetime) -> int:
        times = self._recent(key, limit.window, now)
        if len(times) < limit.max_failures:
            return 0
        return max(1, int((times[-limit.max_failures] + limit.window - now).total_seconds()))

    async def failed(self, key: str, limit: Limit, now: dt.datetime) -> None:
        if key not in self._failures and len(self._failures) >= self.max_keys:
            for k in [k for k, times in self._failures.items() if not times or now - times[-1] >= limit.window]:
                del self._failures[k]
            if len(self._failures) >= self.max_keys:  # still full: forget the oldest key rather than grow
                del self._failures[next(iter(self._failures))]
        times = self._recent(key, limit.window, now)
        times.append(now)
        self._failures[key] = times

    async def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    async def close(self) -> None:
        self._failures.clear()


class RedisFailures:
    """One sorted set per key (member: a random id, score: the attempt's unix time), shared by every process."""

    PREFIX = "scrm:console-login:"

    def __init__(self, redis_url: str, fallback: MemoryFailures | None = None) -> None:
        self.redis_url = redis_url
        self.fallback = fallback or MemoryFailures()
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        return self._client

    async def retry_after(self, key: str, limit: Limit, now: dt.datetime) -> int:

        ts, name = now.timestamp(), self.PREFIX + key
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(name, "-inf", ts - limit.window.total_seconds())
                pipe.zrange(name, -limit.max_failures, -limit.max_failures, withscores=True)
                pipe.zcard(name)
                _, nth_newest, count = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("login limiter: Redis unavailable, counting in this process", extra={"error": str(exc)})
            return await self.fallback.retry_after(key, limit, now)
        if count < limit.max_failures or not nth_newest:
            return await self.fallback.retry_after(key, limit, now)
        return max(1, int(nth_newest[0][1] + limit.window.total_seconds() - ts))

    async def failed(self, key: str, limit: Limit, now: dt.datetime) -> None:

        ts, name = now.timestamp(), self.PREFIX + key
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.zadd(name, {secrets.token_hex(8): ts})
                pipe.zremrangebyscore(name, "-inf", ts - limit.window.total_seconds())
                pipe.expire(name, int(limit.window.total_seconds()) + 1)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("login limiter: Redis unavailable, counting in this process", extra={"error": str(exc)})
            await self.fallback.failed(key, limit, now)

    async def clear(self, key: str) -> None:

        await self.fallback.clear(key)
        try:
            await self._redis().delete(self.PREFIX + key)
        except (RedisError, OSError) as exc:
            log.warning("login limiter: Redis unavailable", extra={"error": str(exc)})

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _username_key(username: str) -> str:
    return "user:" + (username.strip().casefold() or "admin")


class LoginLimiter:
    """The two sliding-window counters of a sign-in attempt (see the module docstring)."""

    def __init__(self, store: FailureStore, *, per_client: Limit = PER_CLIENT, per_username: Limit = PER_USERNAME) -> None:
        self.store = store
        self.per_client = per_client
        self.per_username = per_username

    @classmethod
    def for_settings(cls, redis_url: str) -> LoginLimiter:
        return cls(RedisFailures(redis_url) if redis_url else MemoryFailures())

    async def retry_after(self, client: str, username: str, now: dt.datetime) -> int:
        """Seconds until this client may try this username again; 0 when it may try now."""
        by_client = await self.store.retry_after("ip:" + client, self.per_client, now)
        by_user = await self.store.retry_after(_username_key(username), self.per_username, now)
        return max(by_client, by_user)

    async def failed(self, client: str, username: str, now: dt.datetime) -> None:
        await self.store.failed("ip:" + client, self.per_client, now)
        await self.store.failed(_username_key(username), self.per_username, now)

    async def succeeded(self, client: str, username: str) -> None:
        await self.store.clear("ip:" + client)
        await self.store.clear(_username_key(username))

    async def close(self) -> None:
        await self.store.close()
