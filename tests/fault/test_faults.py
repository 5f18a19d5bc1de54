"""Fault tests (issue 8): the product as real processes — ``run.py serve`` with the sandbox WeCom emulator mounted,
``run.py worker`` processes, a private PostgreSQL and a private Redis — under a steady stream of callbacks and
orders, every callback delivered three times, with one fault injected mid-stream. Afterwards the invariants of
:mod:`tests.fault.checks` must hold.

Run them alone with ``python -m pytest -q -m fault``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from scrm.core.db import Database
from tests.fault.checks import check_invariants, traffic, wait_settled
from tests.fault.driver import Driver, LoadReport
from tests.fault.stack import ROOT, Stack

pytestmark = pytest.mark.fault

CUSTOMERS = 12
INTERVAL = 0.5  # a new customer every half second: 6 s of arrivals, each sending 3 callbacks × 3 copies
SETTLE = 60.0
# The most a customer may wait for the bot's answer to the order text (driver's prompt_wait):
RESTART_BOUND = 20.0  # PostgreSQL down 4 s, then job back-off (1, 2, 4 … s) and WeCom's retries of the kf notice
KILL_BOUND = 45.0  # the killed worker's arq in-progress lease (30 s) lapses, then the job runs again


async def run_scenario(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: Database,
    fault: Callable[[Driver], Awaitable[None]] | None = None,
    *,
    workers: int = 2,
    customers: int = CUSTOMERS,
    tag: str = "f",
    prompt_wait: float = 25.0,
) -> LoadReport:
    stack.start_serve(wait=False)  # the processes start side by side (each loads the code and jieba for seconds)
    for _ in range(workers):
        stack.start_worker()
    await asyncio.to_thread(stack.wait_serving)
    await asyncio.to_thread(stack.wait_workers_ready)
    driver = Driver(stack.base_url, http)
    try:
        load = asyncio.create_task(driver.run(customers=customers, interval=INTERVAL, tag=tag, prompt_wait=prompt_wait))
        if fault is not None:
            await fault(driver)
        report = await load
    finally:
        await driver.close()
    started = time.monotonic()
    counts = await wait_settled(db, SETTLE)
    assert stack.serve is not None and stack.serve.alive(), f"run.py serve exited: {stack.exit_codes()}\n{stack.logs_tail()}"
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
    # The operator's own check agrees: `python run.py stock reconcile`.
    command = [sys.executable, "run.py", "stock", "reconcile"]
    done = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "no drift" in done.stdout, done.stdout + done.stderr


async def test_redis_stopped_and_started_again(stack: Stack, http: aiohttp.ClientSession, db: Database) -> None:
    """Redis goes away for 5 s mid-stream (and comes back empty: no persistence). Callbacks are still accepted
    (the work waits in the database) and everything is done once Redis is back."""

    async def fault(driver: Driver) -> None:
        await asyncio.sleep(3)
        stack.redis.stop()
        await asyncio.sleep(5)
        stack.redis.start()

    report = await run_scenario(stack, http, db, fault, tag="r")
    assert all(cb.accepted for cb in report.callbacks)
    assert all(w.alive() for w in stack.workers), "a worker died with Redis:\n" + stack.logs_tail()


async def test_worker_killed_mid_job(stack: Stack, http: aiohttp.ClientSession, db: Database) -> None:
    """A worker is SIGKILLed while jobs are in flight (kf sends are slowed so some are); a replacement starts, as a
    supervisor would start one. The abandoned jobs run again, nothing twice."""
    import redis.asyncio as aioredis

    async def fault(driver: Driver) -> None:
        slow = {"path": "kf/send_msg", "errcode": 0, "times": 1000, "delay": 0.4}
        async with http.post(f"{stack.base_url}/sandbox/api/faults", json=slow) as resp:
            assert resp.status == 200
        client = aioredis.Redis.from_url(stack.redis.url)
        try:
            deadline = time.monotonic() + 20
            await asyncio.sleep(3)
            in_flight = 0
            while time.monotonic() < deadline and not in_flight:
                in_flight = len(await client.keys("arq:in-progress:*"))
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        assert in_flight, "no job was in flight to kill"
        stack.kill_worker(stack.workers[0])
        await asyncio.sleep(1)
        stack.start_worker()

    # The killed worker's jobs wait for their in-progress lease (30 s) to lapse, and a dialogue lease it held (15 s,
    # running alongside): every customer still gets the bot's answer — within KILL_BOUND of writing the order — and
    # confirms.
    report = await run_scenario(stack, http, db, fault, tag="k", prompt_wait=KILL_BOUND)
    assert all(run.confirmed for run in report.customers), report.summary()
    assert report.slowest_prompt <= KILL_BOUND, report.summary()


async def test_postgres_restarted(stack: Stack, http: aiohttp.ClientSession, db: Database) -> None:
    """PostgreSQL stops hard (immediate: like a crash) mid-stream and is back 4 s later. Callbacks during the
    outage answer non-200, WeCom (the driver) retries, and every message is stored and handled once."""

    async def fault(driver: Driver) -> None:
        await asyncio.sleep(3)
        await asyncio.to_thread(stack.pg.stop, "immediate")
        await asyncio.sleep(4)
        await asyncio.to_thread(stack.pg.start)

    report = await run_scenario(stack, http, db, fault, tag="p", prompt_wait=RESTART_BOUND)
    tries = [s for cb in report.callbacks for copy in cb.statuses for s in copy]
    assert any(s != 200 for s in tries), "no callback met the outage"
    assert all(cb.accepted for cb in report.callbacks)
    # The kf channel and the dialogue do not stall after the restart: a kf sync pass and a dialogue lease orphaned by
    # the outage are given back as soon as the database answers, so every customer gets the bot's answer within
    # RESTART_BOUND of writing the order (the outage is 4 s) and confirms.
    assert all(run.confirmed for run in report.customers), report.summary()
    assert report.slowest_prompt <= RESTART_BOUND, report.summary()


async def test_wecom_answers_45009_42001_busy_and_hangs(stack: Stack, http: aiohttp.ClientSession, db: Database) -> None:
    """The emulated WeCom rate-limits (45009), expires the access token (42001), is busy (-1) and hangs past the
    client's timeout, on the APIs the stream uses. Every notice ends sent once or recorded failed with a reason."""
    schedule = [
        ("kf/send_msg", 45009, 2, 0.0),
        ("kf/send_msg", -1, 3, 0.0),
        ("kf/send_msg", 0, 2, 3.0),  # processed, but the answer comes after the client gave up
        ("message/send", 45009, 1, 0.0),
        ("message/send", -1, 9, 0.0),  # busy for longer than the client's own two quick retries
        ("message/send", 0, 2, 3.0),
        ("kf/sync_msg", -1, 3, 0.0),
        ("kf/sync_msg", 0, 1, 3.0),
        ("externalcontact/send_welcome_msg", 45009, 1, 0.0),
        ("externalcontact/send_welcome_msg", 0, 1, 3.0),
        ("externalcontact/get", -1, 3, 0.0),
    ]

    async def fault(driver: Driver) -> None:
        await asyncio.sleep(2)
        for path, errcode, times, delay in schedule:
            async with http.post(
                f"{stack.base_url}/sandbox/api/faults", json={"path": path, "errcode": errcode, "times": times, "delay": delay}
            ) as resp:
                assert resp.status == 200
        await asyncio.sleep(3)
        async with http.post(f"{stack.base_url}/sandbox/api/tokens/expire") as resp:
            assert resp.status == 200

    await run_scenario(stack, http, db, fault, tag="w")
