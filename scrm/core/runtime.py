"""The resources a request handler or a job needs, made once at start and passed down (never import-time)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp

from config import Settings
from scrm.core.clock import Clock
from scrm.core.db import Database
from scrm.core.jobs import JobQueue, Registry

T = TypeVar("T")
log = logging.getLogger(__name__)


class ResourceKey(Generic[T]):
    """A typed key for feature packages' resources (API clients, tokenizers) kept on the runtime."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ResourceKey({self.name!r})"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    jobs: JobQueue
    # the jobs, crons and outbox handlers of this process (scrm.app.runtime collects them from each capability)
    registry: Registry = field(default_factory=Registry)
    http: aiohttp.ClientSession | None = None
    _resources: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` when the runtime closes (before the job queue, HTTP session and engine)."""
        self._closers.append(closer)

    def get(self, key: ResourceKey[T]) -> T:
        try:
            return self._resources[key.name]  # type: ignore[no-any-return]
        except KeyError:
            raise LookupError(f"resource {key.name!r} is not set up in this process") from None

    def put(self, key: ResourceKey[T], value: T) -> None:
        self._resources[key.name] = value

    def has(self, key: ResourceKey[Any]) -> bool:
        return key.name in self._resources

    async def http_session(self) -> aiohttp.ClientSession:
        if self.http is None or self.http.closed:
            timeout = aiohttp.ClientTimeout(total=self.settings.http_timeout)
            self.http = aiohttp.ClientSession(timeout=timeout, trust_env=False)
        return self.http

    async def close(self) -> None:
        for closer in reversed(self._closers):
            await closer()
        self._closers.clear()
        await self.jobs.close()
        if self.http is not None and not self.http.closed:
            await self.http.close()
        await self.db.dispose()
