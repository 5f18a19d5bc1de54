"""Fault tests (issue 8): the product as real processes — ``run.py serve`` with the sandbox WeCom emulator mounted,
``run.py worker`` processes, a private PostgreSQL and a private Redis — under a steady stream of callbacks and
orders, every callback delivered three times, with one fault injected mid-stream. Afterwards the invariants of
:mod:`tests.fault.checks` must hold.

Run them alone with ``python -m pytest -q -m fault``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from scrm.core.db import Database
from tests.fault.checks import check_invariants, pending_work, traffic, wait_settled
from tests.fault.driver import Driver, LoadReport
from tests.fault.stack import Stack

pytestmark = pytest.mark.fault

CUSTOMERS = 16
INTERVAL = 0.5  # a new customer every half second: ~8 s of arrivals, each sending 3 callbacks × 3 copies
SETTLE = 60.0


async def run_scenario(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: Database,
    fault: Callable[[Driver], Awaitable[None]] | None = None,
    *,
    workers: int = 2,
    customers: int = CUSTOMERS,
    tag: str = "f",
) -> LoadReport:
    stack.start_serve()
    for _ in range(workers):
        stack.start_worker()
    driver = Driver(stack.base_url, http)
    try:
        load = asyncio.create_task(driver.run(customers=customers, interval=INTERVAL, tag=tag))
        if fault is not None:
            await fault(driver)
        report = await load
    finally:
        await driver.close()
    started = time.monotonic()
    counts = await wait_settled(db, SETTLE)
    sent = await traffic(http, stack.base_url)
    findings = await check_invariants(db, report, sent)
    detail = (
        f"load: {report.summary()}\nsettle: {counts} after {time.monotonic() - started:.1f} s\nfacts: {findings.facts}\n"
        f"calls: {sent['calls']}\nlog errors: {stack.errors_in_logs()[:20]}"
    )
    print(detail)
    assert not findings.problems, "\n".join(findings.problems[:30]) + "\n" + detail + "\n" + stack.logs_tail(30)
    assert not any(counts.values()), detail
    return report


async def test_every_callback_three_times(stack: Stack, http: aiohttp.ClientSession, db: Database) -> None:
    """No fault but the duplicates: each callback twice at once and once later."""
    report = await run_scenario(stack, http, db)
    assert all(cb.accepted for cb in report.callbacks)
    assert sum(run.confirmed for run in report.customers) == CUSTOMERS


async def _pending(db: Database) -> dict[str, int]:
    return await pending_work(db)
