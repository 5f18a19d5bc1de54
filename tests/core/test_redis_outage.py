"""Nothing accepted is lost: with Redis down a callback is still stored and answered 200; the work waits in the
outbox and runs (in an arq worker) once Redis is back. Uses a private redis-server so the shared one stays up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bots.gateway.crypto import CallbackCrypto
from bots.gateway.models import inbound_events
from scrm.app.runtime import build_runtime
from scrm.app.webapp import create_app
from scrm.app.worker import make_worker
from scrm.core import outbox
from scrm.core.clock import FrozenClock
from tests.conftest import make_settings
from tests.helpers import envelope, text_xml
from tests.services import PrivateRedis, in_ci, redis_server_binary

pytestmark = [
    pytest.mark.redis,
    # Outside CI a machine without redis-server skips; in CI (CI=true) the fixture fails instead (.ci/run installs it).
    pytest.mark.skipif(redis_server_binary() is None and not in_ci(), reason="redis-server is not installed: cannot run a private Redis"),
]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if redis_server_binary() is None:
        pytest.fail("CI=true: these tests need redis-server (.ci/run installs it)", pytrace=False)
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


async def test_callback_accepted_while_redis_is_down_and_processed_when_back(database_url: str, private_redis: PrivateRedis) -> None:
    import datetime as dt

    clock = FrozenClock(dt.datetime.now(dt.UTC))
    settings = make_settings(database_url=database_url, redis_url=private_redis.url)
    rt = await build_runtime(settings, clock)
    crypto = CallbackCrypto(settings.wecom_token.get(), settings.wecom_aes_key.get(), settings.wecom_corp_id)
    try:
        async with TestClient(TestServer(create_app(settings, runtime=rt))) as client:
            # Redis is not running at all.
            now = clock.timestamp()
            query, body = envelope(crypto, text_xml("zhangsan", "在吗", 9001, now), timestamp=now)
            resp = await client.post("/callback/wecom", params=query, data=body)
            assert resp.status == 200
            ready = await client.get("/readyz")
            assert ready.status == 503 and (await ready.json())["checks"]["redis"].startswith("error")
        async with rt.db.read() as conn:
            row = (await conn.execute(sa.select(inbound_events))).one()
        assert row.status == "pending"
        assert await outbox.pending_count(rt) == 1
        assert await outbox.relay_once(rt) == 0  # not due yet, and Redis still down anyway

        private_redis.start()
        clock.advance(seconds=11)
        assert await outbox.relay_once(rt) == 1
        worker = make_worker(settings, burst=True)
        try:
            await asyncio.wait_for(worker.async_run(), 30)
        finally:
            await worker.close()
        async with rt.db.read() as conn:
            row = (await conn.execute(sa.select(inbound_events))).one()
        assert row.status == "processed"
        assert await outbox.pending_count(rt) == 0
    finally:
        await rt.close()


@pytest.mark.parametrize("loss", ["enqueue_refused", "queued_then_lost"])
async def test_accepted_callback_whose_job_is_lost_is_processed(database_url: str, private_redis: PrivateRedis, loss: str) -> None:
    """The callback path's enqueue is dropped — Redis goes away just before it (the arq pool is open, the enqueue
    raises), or it succeeds and Redis then restarts empty — yet the callback, answered 200, is processed: its outbox
    row is swept again by the relay after the grace period and a worker runs it."""
    import datetime as dt

    import redis.asyncio as aioredis

    clock = FrozenClock(dt.datetime.now(dt.UTC))
    private_redis.start()
    settings = make_settings(database_url=database_url, redis_url=private_redis.url)
    rt = await build_runtime(settings, clock)
    crypto = CallbackCrypto(settings.wecom_token.get(), settings.wecom_aes_key.get(), settings.wecom_corp_id)
    try:
        await rt.jobs.ping()  # the pool is open and connected before the loss
        async with TestClient(TestServer(create_app(settings, runtime=rt))) as client:
            if loss == "enqueue_refused":
                private_redis.stop()
            now = clock.timestamp()
            query, body = envelope(crypto, text_xml("lisi", "在吗", 9101, now), timestamp=now)
            resp = await client.post("/callback/wecom", params=query, data=body)
            assert resp.status == 200
            await asyncio.sleep(0.5)  # the fast path runs after the answer
        if loss == "queued_then_lost":
            probe = aioredis.Redis.from_url(private_redis.url)
            try:
                assert await probe.zcard("scrm:jobs") == 1  # the fast path did queue it …
            finally:
                await probe.aclose()
            private_redis.stop()  # … and a restart without persistence loses it
        private_redis.start()
        assert await outbox.pending_count(rt) == 1
        assert await outbox.relay_once(rt) == 0  # within the grace period the fast path is trusted
        clock.advance(seconds=outbox.FAST_PATH_GRACE.total_seconds() + 1)
        assert await outbox.relay_once(rt) == 1
        worker = make_worker(settings, burst=True)
        try:
            await asyncio.wait_for(worker.async_run(), 30)
        finally:
            await worker.close()
        async with rt.db.read() as conn:
            row = (await conn.execute(sa.select(inbound_events))).one()
        assert row.status == "processed"
        assert await outbox.pending_count(rt) == 0
    finally:
        await rt.close()
