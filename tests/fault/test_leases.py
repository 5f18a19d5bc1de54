"""A lease orphaned by a database failure is given back as soon as the database answers again — not when it lapses.

The dialogue lease (``bots.dialogue.session.customer_lease``) makes one process answer a customer's messages in
order. When PostgreSQL goes away while a process holds it, releasing it fails too; waiting for the lease to lapse
left the customer unanswered for its whole length (the fault test's PostgreSQL restart). The clock here is frozen,
so the lease never lapses: only the release can free it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from bots.dialogue.session import customer_lease
from scrm.app.runtime import build_runtime
from scrm.core.clock import FrozenClock
from scrm.core.jobs import RetryLater
from scrm.crm.customers.services import ensure_customer
from tests.conftest import make_settings
from tests.services import PrivatePostgres

RELEASED_WITHIN = 3.0  # seconds after the database is back


class DatabaseWentAway(Exception):
    pass


async def test_dialogue_lease_orphaned_by_a_database_restart_is_released_when_it_is_back(
    private_pg: PrivatePostgres, fault_database: str
) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    rt = await build_runtime(make_settings(database_url=private_pg.url(fault_database)), clock)
    try:
        async with rt.db.write() as conn:
            customer_id = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value="wmLease01", now=clock.now())
        with pytest.raises(DatabaseWentAway):
            async with customer_lease(rt, customer_id):
                await asyncio.to_thread(private_pg.stop, "immediate")
                raise DatabaseWentAway  # what the answering block would have met
        await asyncio.to_thread(private_pg.start)
        back = time.monotonic()
        while True:
            try:
                async with customer_lease(rt, customer_id):
                    break
            except RetryLater:
                assert time.monotonic() - back < RELEASED_WITHIN, "the orphaned lease was not given back after the restart"
                await asyncio.sleep(0.1)
            except Exception:  # the pool's first connections after the restart
                assert time.monotonic() - back < RELEASED_WITHIN, "the database did not answer again"
                await asyncio.sleep(0.1)
    finally:
        await rt.close()
