"""Processing of stored inbound events (outbox topic ``inbound.received``): each (channel, kind) goes to the
processor a capability registered for it (identity and dialogue in :mod:`bots.dialogue.answering`, kf news in
:mod:`bots.kf.jobs`, 客户联系 events in :mod:`bots.contacts.jobs`), listed in their ``jobs.py`` as ``PROCESSORS`` and
installed on the runtime by the composition root.

Each processor is idempotent: the event's status says whether it was processed, and replies carry an
idempotency key derived from the event id, so a job that runs twice sends one reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bots.gateway.models import inbound_events
from bots.gateway.services import mark_processed
from scrm.core.runtime import ResourceKey, Runtime

log = logging.getLogger(__name__)

Processor = Callable[[Runtime, Any], Awaitable[str | None]]


@dataclass(frozen=True)
class Processes:
    """The processor of one (channel, kind) of inbound event; it returns an optional note kept on the event."""

    channel: str
    kind: str
    func: Processor


INBOUND_PROCESSORS: ResourceKey[dict[str, Processor]] = ResourceKey("inbound_processors")


def install_processors(rt: Runtime, processes: Iterable[Processes]) -> None:
    """Install the processors (one per channel and kind: a second registration of one is a programming error)."""
    table: dict[str, Processor] = {}
    for p in processes:
        key = f"{p.channel}:{p.kind}"
        if key in table:
            raise ValueError(f"two processors for inbound {key}")
        table[key] = p.func
    rt.put(INBOUND_PROCESSORS, table)


async def process_inbound(rt: Runtime, payload: dict[str, Any]) -> None:
    inbound_id = int(payload["inbound_id"])
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(inbound_events).where(inbound_events.c.id == inbound_id))).first()
    if row is None or row.status != "pending":
        return
    func = rt.get(INBOUND_PROCESSORS).get(f"{row.channel}:{row.kind}")
    note = None if func is not None else "stored; no processing for this kind"
    if func is not None:
        note = await func(rt, row)
    async with rt.db.write() as conn:
        await mark_processed(conn, inbound_id, rt, note=note)
