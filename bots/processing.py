"""Processing of stored inbound events (outbox topic ``inbound.received``): identity, dialogue, kf sync.

Each processor is idempotent: the event's status says whether it was processed, and replies carry an
idempotency key derived from the event id, so a job that runs twice sends one reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from bots.dialog import router
from bots.inbound import TOPIC, mark_processed
from bots.kf.sync import request_sync, run_sync
from bots.models import inbound_events
from bots.outbound import sender
from scrm.core import outbox
from scrm.core.runtime import Runtime
from scrm.customers.services import ensure_customer

log = logging.getLogger(__name__)

Processor = Callable[[Runtime, Any], Awaitable[str | None]]
_processors: dict[str, Processor] = {}


def processor(channel: str, kind: str) -> Callable[[Processor], Processor]:
    """Register the processor of ``channel:kind``; it returns an optional note kept on the event."""

    def deco(func: Processor) -> Processor:
        _processors[f"{channel}:{kind}"] = func
        return func

    return deco


@outbox.handles(TOPIC)
async def process_inbound(rt: Runtime, payload: dict[str, Any]) -> None:
    inbound_id = int(payload["inbound_id"])
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(inbound_events).where(inbound_events.c.id == inbound_id))).first()
    if row is None or row.status != "pending":
        return
    func = _processors.get(f"{row.channel}:{row.kind}")
    note = None if func is not None else "stored; no processing for this kind"
    if func is not None:
        note = await func(rt, row)
    async with rt.db.write() as conn:
        await mark_processed(conn, inbound_id, rt, note=note)


@processor("wecom", "kf_msg_or_event")
async def kf_news(rt: Runtime, row: Any) -> str:
    open_kfid = row.open_kfid or rt.settings.kf_open_kfid
    await request_sync(rt, open_kfid, str(row.payload.get("Token", "")))
    stored = await run_sync(rt, open_kfid)
    return f"synced {stored} new kf messages"


async def _customer(rt: Runtime, kind: str, value: str) -> int:
    async with rt.db.write() as conn:
        return await ensure_customer(conn, rt.db.dialect, kind=kind, value=value, now=rt.clock.now())


@processor("kf", "kf.customer.text")
async def kf_customer_text(rt: Runtime, row: Any) -> str:
    customer_id = await _customer(rt, "external_userid", row.external_userid)
    turn = router.Turn(rt, "kf", customer_id, row.content, row.id, external_userid=row.external_userid,
                       open_kfid=row.open_kfid)
    reply = await router.respond(turn)
    result = await sender.send_kf_text(
        rt, open_kfid=row.open_kfid, external_userid=row.external_userid, text=reply.text,
        key=f"reply:{row.id}", purpose="reply", customer_id=customer_id,
    )
    return f"replied: {result.status}"


@processor("kf", "kf.event.enter_session")
async def kf_enter_session(rt: Runtime, row: Any) -> str:
    if row.external_userid:
        await _customer(rt, "external_userid", row.external_userid)
    return "customer entered the session"


@processor("mp", "message.text")
async def mp_text(rt: Runtime, row: Any) -> str:
    customer_id = await _customer(rt, "openid", row.from_user)
    turn = router.Turn(rt, "mp", customer_id, row.content, row.id, openid=row.from_user)
    reply = await router.respond(turn)
    result = await sender.send_mp_custom_text(rt, openid=row.from_user, text=reply.text, key=f"reply:{row.id}",
                                              purpose="reply")
    return f"replied: {result.status}"


@processor("mp", "event.subscribe")
async def mp_subscribe(rt: Runtime, row: Any) -> str:
    await _customer(rt, "openid", row.from_user)
    result = await sender.send_mp_custom_text(rt, openid=row.from_user, text=router.help_text(),
                                              key=f"welcome:{row.id}", purpose="welcome")
    return f"welcomed: {result.status}"
