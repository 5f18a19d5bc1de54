"""Processing of stored inbound events (outbox topic ``inbound.received``): identity, dialogue, kf sync.

Each processor is idempotent: the event's status says whether it was processed, and replies carry an
idempotency key derived from the event id, so a job that runs twice sends one reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from bots.dialogue import router
from bots.dialogue.session import customer_lease, load_state, save_state
from bots.gateway.models import inbound_events
from bots.gateway.services import TOPIC, mark_processed
from bots.kf.services import LEASE as KF_LEASE
from bots.kf.services import lease_wait, request_sync, run_sync, sync_covers
from bots.outbound import services as sender
from scrm.core import outbox
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import ensure_customer

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
    seq = await request_sync(rt, open_kfid, str(row.payload.get("Token", "")))
    stored = await run_sync(rt, open_kfid)
    deadline = time.monotonic() + KF_LEASE.total_seconds() + 5
    while not await sync_covers(rt, open_kfid, seq) and time.monotonic() < deadline:
        # Another process holds the sync lease and goes round once more for this news — unless it died: then the
        # news is ours to read once its lease lapses (else only the once-a-minute sweep would, much later).
        await asyncio.sleep(min(max(await lease_wait(rt, open_kfid), 0.2), 1.0))
        stored += await run_sync(rt, open_kfid)
    return f"synced {stored} new kf messages"


async def _customer(rt: Runtime, kind: str, value: str) -> int:
    async with rt.db.write() as conn:
        return await ensure_customer(conn, rt.db.dialect, kind=kind, value=value, now=rt.clock.now())


Send = Callable[[Any, router.Reply, int], Awaitable[sender.OutboundResult]]


async def answer_in_order(rt: Runtime, row: Any, customer_id: int, send: Send) -> str:
    """Answer every pending text of this customer up to ``row`` in id order, holding the customer's lease.

    Each answer: run the dialogue with the saved state, save the state, send the reply (idempotency key
    ``reply:<event id>``), mark the event processed. A re-run after a crash repeats no side effect: order changes
    carry the event id as their ref, and the reply key makes the sender send once.
    """
    note = ""
    async with customer_lease(rt, customer_id):
        async with rt.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(inbound_events)
                    .where(
                        inbound_events.c.channel == row.channel,
                        inbound_events.c.kind == row.kind,
                        inbound_events.c.from_user == row.from_user,
                        inbound_events.c.status == "pending",
                        inbound_events.c.id <= row.id,
                    )
                    .order_by(inbound_events.c.id)
                )
            ).all()
        for item in rows:
            state = await load_state(rt, customer_id)
            turn = router.Turn(
                rt,
                row.channel,
                customer_id,
                item.content,
                item.id,
                external_userid=item.external_userid,
                openid=item.from_user if row.channel == "mp" else "",
                open_kfid=item.open_kfid,
                state=state,
            )
            reply = await router.respond(turn)
            await save_state(rt, customer_id, turn.state)
            result = await send(item, reply, customer_id)
            note = f"intent {reply.meta.get('intent', '?')}; reply {result.status}"
            async with rt.db.write() as conn:
                await mark_processed(conn, item.id, rt, note=note)
    return note


@processor("kf", "kf.customer.text")
async def kf_customer_text(rt: Runtime, row: Any) -> str:
    customer_id = await _customer(rt, "external_userid", row.external_userid)

    async def send(item: Any, reply: router.Reply, cid: int) -> sender.OutboundResult:
        return await sender.send_kf_text(
            rt,
            open_kfid=item.open_kfid,
            external_userid=item.external_userid,
            text=reply.text,
            key=f"reply:{item.id}",
            purpose="reply",
            customer_id=cid,
        )

    return await answer_in_order(rt, row, customer_id, send)


@processor("kf", "kf.event.enter_session")
async def kf_enter_session(rt: Runtime, row: Any) -> str:
    if row.external_userid:
        await _customer(rt, "external_userid", row.external_userid)
    return "customer entered the session"


@processor("mp", "message.text")
async def mp_text(rt: Runtime, row: Any) -> str:
    customer_id = await _customer(rt, "openid", row.from_user)

    async def send(item: Any, reply: router.Reply, cid: int) -> sender.OutboundResult:
        return await sender.send_mp_custom_text(rt, openid=item.from_user, text=reply.text, key=f"reply:{item.id}", purpose="reply")

    return await answer_in_order(rt, row, customer_id, send)


@processor("mp", "event.subscribe")
async def mp_subscribe(rt: Runtime, row: Any) -> str:
    await _customer(rt, "openid", row.from_user)
    result = await sender.send_mp_custom_text(rt, openid=row.from_user, text=router.help_text(), key=f"welcome:{row.id}", purpose="welcome")
    return f"welcomed: {result.status}"
