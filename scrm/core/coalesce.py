"""Group commit for a hot write: calls that arrive while the database is busy go to it together, as one batch.

A :class:`Coalescer` takes single requests and runs them through a batch function — one statement, one commit,
one round trip for the batch — with at most ``max_in_flight`` batches at a time. There is no timer: a request that
finds a batch slot free goes at once (after the tasks already runnable have added theirs), alone if it is alone;
under load the requests that arrive while the slots are busy make up the next batch. So an idle system pays no
wait, and a busy one pays one commit per batch instead of one per request.

The batch function answers every request of the batch (in order) or raises; it must make the batch
all-or-nothing (one transaction). When it raises an error ``split_on`` says proves the batch wrote nothing — e.g. an
error the database reported for the statement — each request of the failed batch is run again alone, so the
error reaches only the caller whose request causes it and the others are unaffected. Any other error (a connection
lost: the batch may have committed) goes to every caller of the batch, as it would have without batching; nothing
is run twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")

BatchFunction = Callable[[Hashable, Sequence[Req]], Awaitable[Sequence[Res]]]


@dataclass
class _Waiting(Generic[Req, Res]):
    key: Hashable
    request: Req
    answer: asyncio.Future[Res]


class Coalescer(Generic[Req, Res]):
    """Runs ``batch(key, requests)`` for the requests of one ``key`` (e.g. the statement) that arrived meanwhile;
    at most ``max_batch`` requests a batch and ``max_in_flight`` batches at a time."""

    def __init__(
        self, batch: BatchFunction[Req, Res], *, max_batch: int, max_in_flight: int, split_on: Callable[[Exception], bool]
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._batch = batch
        self._split_on = split_on
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._waiting: list[_Waiting[Req, Res]] = []
        self._drains: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches sent (a failed one retried alone counts each retry)
        self.requests = 0

    async def submit(self, key: Hashable, request: Req) -> Res:
        """The answer to ``request`` once its batch committed (or the error its request alone raised)."""
        answer: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(key, request, answer))
        if len(self._drains) < self.max_in_flight:
            drain = asyncio.create_task(self._drain())
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await answer

    async def close(self) -> None:
        """Wait for the batches under way (their callers are waiting for them too)."""
        while self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)

    def _take(self) -> list[_Waiting[Req, Res]]:
        """The next batch: the oldest request's key, up to max_batch of its requests, oldest first."""
        key = self._waiting[0].key
        taken: list[_Waiting[Req, Res]] = []
        rest: list[_Waiting[Req, Res]] = []
        for w in self._waiting:
            (taken if w.key == key and len(taken) < self.max_batch else rest).append(w)
        self._waiting = rest
        return [w for w in taken if not w.answer.done()]  # a caller cancelled meanwhile: nothing to place for it

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # the tasks already runnable add their requests to this batch first
        while self._waiting:
            batch = self._take()
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[_Waiting[Req, Res]]) -> None:
        self.batches += 1
        self.requests += len(batch)
        try:
            answers = await self._batch(batch[0].key, [w.request for w in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"batch function answered {len(answers)} of {len(batch)} requests")
        except Exception as error:
            if len(batch) == 1 or not self._split_on(error):
                for w in batch:
                    if not w.answer.done():
                        w.answer.set_exception(error)
                return
            self.requests -= len(batch)
            for w in batch:  # the batch wrote nothing: each alone, so the error reaches only its own caller
                await self._run([w])
            return
        except BaseException:  # cancelled (shutdown): the callers must not wait for ever
            for w in batch:
                if not w.answer.done():
                    w.answer.cancel()
            raise
        for w, answer in zip(batch, answers, strict=True):
            if not w.answer.done():
                w.answer.set_result(answer)
