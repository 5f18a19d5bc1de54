"""The group-commit coalescer with plain values: who goes together, and where an error goes."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence

import pytest

from scrm.core.coalesce import Coalescer


class Refused(Exception):
    """What the 'database' reports for a bad request: the batch wrote nothing (a statement error)."""


class Lost(Exception):
    """A lost connection: the batch may have been written."""


def refused(error: Exception) -> bool:
    return isinstance(error, Refused)


class Store:
    """A batch function over a list: all-or-nothing per batch, like one transaction."""

    def __init__(self, *, lose: bool = False) -> None:
        self.rows: list[int] = []
        self.batches: list[list[int]] = []
        self.lose = lose
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, key: Hashable, batch: Sequence[int]) -> list[int]:
        self.batches.append(list(batch))
        await self.gate.wait()
        await asyncio.sleep(0.001)
        if any(n < 0 for n in batch):
            raise (Lost if self.lose else Refused)(f"refused {batch}")
        self.rows += batch
        return [n * 10 for n in batch]


async def test_alone_when_idle_together_when_busy() -> None:
    store = Store()
    c: Coalescer[int, int] = Coalescer(store.write, max_batch=100, max_in_flight=1, split_on=refused)
    assert await c.submit("k", 1) == 10
    assert store.batches == [[1]]  # nobody else: it went at once, alone
    store.gate.clear()
    first = asyncio.create_task(c.submit("k", 2))
    await asyncio.sleep(0.01)  # 2 is under way (its slot is busy): the next ones wait for it
    rest = [asyncio.create_task(c.submit("k", n)) for n in range(3, 9)]
    await asyncio.sleep(0.01)
    store.gate.set()
    assert [await t for t in [first, *rest]] == [n * 10 for n in range(2, 9)]
    assert store.batches[1:] == [[2], [3, 4, 5, 6, 7, 8]]  # one batch of all that waited, in arrival order
    await c.close()


async def test_batches_are_limited_per_key_and_in_size() -> None:
    store = Store()
    c: Coalescer[int, int] = Coalescer(store.write, max_batch=3, max_in_flight=1, split_on=refused)
    keys = ["a", "b", "a", "a", "a", "b"]
    answers = await asyncio.gather(*(c.submit(k, n) for n, k in enumerate(keys, 1)))
    assert answers == [n * 10 for n in range(1, 7)]
    assert store.batches == [[1, 3, 4], [2, 6], [5]]  # the oldest request's key first, at most 3 a batch
    assert (c.batches, c.requests) == (3, 6)


async def test_at_most_max_in_flight_batches_at_once() -> None:
    running = 0
    most = 0

    async def write(key: Hashable, batch: Sequence[int]) -> list[int]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.005)
        running -= 1
        return list(batch)

    c: Coalescer[int, int] = Coalescer(write, max_batch=2, max_in_flight=3, split_on=refused)
    assert await asyncio.gather(*(c.submit("k", n) for n in range(40))) == list(range(40))
    assert most == 3


async def test_a_refused_request_fails_alone_and_the_rest_of_its_batch_is_written() -> None:
    store = Store()
    c: Coalescer[int, int] = Coalescer(store.write, max_batch=10, max_in_flight=1, split_on=refused)
    results = await asyncio.gather(*(c.submit("k", n) for n in (1, 2, -3, 4)), return_exceptions=True)
    assert results[:2] == [10, 20] and results[3] == 40
    assert isinstance(results[2], Refused) and str(results[2]) == "refused [-3]"  # its own error, from its own retry
    assert sorted(store.rows) == [1, 2, 4]  # the failed batch wrote nothing, each retry once
    assert store.batches == [[1, 2, -3, 4], [1], [2], [-3], [4]]


async def test_an_error_that_may_have_written_the_batch_is_not_retried() -> None:
    store = Store(lose=True)
    c: Coalescer[int, int] = Coalescer(store.write, max_batch=10, max_in_flight=1, split_on=refused)
    results = await asyncio.gather(*(c.submit("k", n) for n in (1, -2, 3)), return_exceptions=True)
    assert all(isinstance(r, Lost) for r in results)  # every caller hears it; nothing runs twice
    assert store.batches == [[1, -2, 3]]


async def test_a_caller_that_gave_up_before_its_batch_left_is_not_placed() -> None:
    store = Store()
    store.gate.clear()
    c: Coalescer[int, int] = Coalescer(store.write, max_batch=10, max_in_flight=1, split_on=refused)
    busy = asyncio.create_task(c.submit("k", 1))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(c.submit("k", 2))
    kept = asyncio.create_task(c.submit("k", 3))
    await asyncio.sleep(0.01)
    gone.cancel()
    store.gate.set()
    assert (await busy, await kept) == (10, 30)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert store.rows == [1, 3]


def test_limits_must_allow_a_batch() -> None:
    with pytest.raises(ValueError):
        Coalescer(Store().write, max_batch=0, max_in_flight=1, split_on=refused)
