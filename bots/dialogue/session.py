"""Per-customer conversation state and the lease that makes the bot answer one customer's messages in order.

Messages of one customer may be synced in one page and processed by several workers at once; "要3箱矿泉水" and
"确认" must still be answered in that order. The processor takes the customer's lease and answers every pending
message of that customer in id order; a second processor that finds the lease taken backs off until it expires
(or finds its message already answered). A block that failed because the database went away (a restart) gives the
lease back as soon as the database answers again, rather than leave the customer unanswered for the whole lease.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa

from bots.dialogue.models import dialog_sessions
from scrm.core.db import insert_ignore
from scrm.core.ids import short_id
from scrm.core.jobs import RetryLater
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=15)
RELEASE_RETRY_SECONDS = 0.25  # how often an orphaned lease's release is tried again while the database is away
STATE_TTL = dt.timedelta(hours=2)  # a question the customer never answered is forgotten after this


@asynccontextmanager
async def customer_lease(rt: Runtime, customer_id: int) -> AsyncIterator[str]:
    """Hold the customer's dialogue lease for the block; raises RetryLater when another process holds it."""
    owner = short_id(16)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(insert_ignore(dialog_sessions, rt.db.dialect).values(customer_id=customer_id, state={}, updated_at=now))
        got = await conn.execute(
            dialog_sessions.update()
            .where(
                dialog_sessions.c.customer_id == customer_id,
                sa.or_(dialog_sessions.c.lease_until.is_(None), dialog_sessions.c.lease_until < now),
            )
            .values(lease_until=now + LEASE, lease_owner=owner)
        )
        if got.rowcount != 1:
            until = (
                await conn.execute(sa.select(dialog_sessions.c.lease_until).where(dialog_sessions.c.customer_id == customer_id))
            ).scalar()
            wait = max((until - now).total_seconds(), 0.0) if until else 0.0
            raise RetryLater(min(wait, 2.0) + 0.05, "customer dialogue busy")
    try:
        yield owner
    finally:
        try:
            await _release(rt, customer_id, owner)
        except Exception as exc:
            # The database is what failed: give the lease back as soon as it answers again.
            log.warning("dialogue lease not released; retrying in the background", extra={"customer_id": customer_id, "error": str(exc)})
            _release_when_possible(rt, customer_id, owner)


async def _release(rt: Runtime, customer_id: int, owner: str) -> None:
    async with rt.db.write() as conn:
        await conn.execute(
            dialog_sessions.update()
            .where(dialog_sessions.c.customer_id == customer_id, dialog_sessions.c.lease_owner == owner)
            .values(lease_until=None, lease_owner=None)
        )


_releasing: set[asyncio.Task[None]] = set()


def _release_when_possible(rt: Runtime, customer_id: int, owner: str) -> None:
    """Retry the release until it succeeds or the lease would have lapsed anyway (the owner check makes a late
    release harmless: a lease taken over by someone else is not theirs to lose)."""

    async def retry() -> None:
        deadline = time.monotonic() + LEASE.total_seconds()
        while time.monotonic() < deadline:
            await asyncio.sleep(RELEASE_RETRY_SECONDS)
            try:
                await _release(rt, customer_id, owner)
                return
            except Exception as exc:
                log.debug("dialogue lease not released yet", extra={"customer_id": customer_id, "error": str(exc)})

    task = asyncio.create_task(retry(), name=f"dialogue-lease-release-{owner}")
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)


async def load_state(rt: Runtime, customer_id: int) -> dict[str, Any]:
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(dialog_sessions).where(dialog_sessions.c.customer_id == customer_id))).first()
    if row is None or not row.state:
        return {}
    if row.updated_at + STATE_TTL < rt.clock.now():
        return {}
    return dict(row.state)


async def save_state(rt: Runtime, customer_id: int, state: dict[str, Any]) -> None:
    async with rt.db.write() as conn:
        await conn.execute(
            dialog_sessions.update().where(dialog_sessions.c.customer_id == customer_id).values(state=state, updated_at=rt.clock.now())
        )
