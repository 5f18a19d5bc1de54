"""Answering customers: each stored customer text (微信客服 or Official Account) goes through the dialogue in
order, holding the customer's lease, and the reply goes out through the sender; new kf sessions and OA
followers become customers (and followers are welcomed)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bots.dialogue import router
from bots.dialogue.reading import INTENT_ZH, TurnReading
from bots.dialogue.session import customer_lease, load_state, save_state
from bots.gateway.models import inbound_events
from bots.gateway.services import mark_processed
from bots.outbound import services as sender
from bots.outbound.media import Image
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import ensure_customer, resolve_customer
from scrm.crm.timeline.services import Kind, add_entry
from scrm.sales.leads.domain import LeadSource
from scrm.sales.leads.services import NewLead, newcomer_lead

log = logging.getLogger(__name__)


async def _customer(rt: Runtime, kind: str, value: str, *, lead_source: str, first_words: str = "") -> int:
    """The customer behind this identity; a newcomer is also a new lead (线索: a first 微信客服 message or Official
    Account follow), given out by the assignment rules or left in the pool."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        customer_id = await ensure_customer(conn, rt.db.dialect, kind=kind, value=value, now=now)
        first = NewLead(
            source=lead_source,
            customer_id=customer_id,
            external_userid=value if kind == "external_userid" else None,
            remark=first_words.strip()[:200],
            source_ref="首次咨询" if first_words else "",
        )
        await newcomer_lead(conn, first, now)
        return customer_id


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
            reading = turn.scratch.get("reading")
            understood = f"; understood {reading.understanding.intent}" if isinstance(reading, TurnReading) else ""
            pictured = f"; image {reply.meta['image']}" if "image" in reply.meta else ""
            note = f"intent {reply.meta.get('intent', '?')}{understood}; reply {result.status}{pictured}"
            async with rt.db.write() as conn:
                if isinstance(reading, TurnReading):
                    await _record_reading(conn, rt, item, customer_id, reading)
                await mark_processed(conn, item.id, rt, note=note)
    return note


async def _record_reading(conn: AsyncConnection, rt: Runtime, item: Any, customer_id: int, reading: TurnReading) -> None:
    """The bot's reading of a message on the customer's timeline — intent, matched spans and why — so staff can
    see why it answered as it did. One entry per message (ref), however often the message is processed."""
    understood = reading.understanding
    await add_entry(
        conn,
        rt.db.dialect,
        customer_id=await resolve_customer(conn, customer_id),
        at=item.occurred_at,
        kind=Kind.EVENT,
        title=f"机器人理解：{INTENT_ZH.get(understood.intent, understood.intent)}（{understood.intent}）",
        body="；".join(str(e) for e in understood.evidence)[:1000],
        ref=f"understanding:{item.id}",
        data={
            "intent": understood.intent,
            "lines": [list(line) for line in understood.lines],
            "evidence": [str(e) for e in understood.evidence][:20],
        },
    )


def _text_after_image(reply: router.Reply, image: sender.OutboundResult, item: Any) -> str:
    """The text that follows the reply's picture: the one written to go beside it when the picture went out, else
    the reply's own text (which carries the picture's link)."""
    reply.meta["image"] = image.status
    assert reply.image is not None
    if image.sent:
        return reply.image.text
    log.info(
        "reply picture not sent; the text carries its link instead",
        extra={"inbound_id": item.id, "status": image.status, "reason": image.error_message},
    )
    return reply.text


async def kf_customer_text(rt: Runtime, row: Any) -> str:
    customer_id = await _customer(rt, "external_userid", row.external_userid, lead_source=LeadSource.KF, first_words=row.content)

    async def send(item: Any, reply: router.Reply, cid: int) -> sender.OutboundResult:
        text = reply.text
        if reply.image is not None:  # the picture first (its own key), then the text
            image = await sender.send_kf_image(
                rt,
                open_kfid=item.open_kfid,
                external_userid=item.external_userid,
                image=Image(reply.image.png, reply.image.filename),
                key=f"reply:{item.id}:image",
                purpose="reply",
                customer_id=cid,
            )
            text = _text_after_image(reply, image, item)
        return await sender.send_kf_text(
            rt,
            open_kfid=item.open_kfid,
            external_userid=item.external_userid,
            text=text,
            key=f"reply:{item.id}",
            purpose="reply",
            customer_id=cid,
        )

    return await answer_in_order(rt, row, customer_id, send)


async def kf_enter_session(rt: Runtime, row: Any) -> str:
    if row.external_userid:
        await _customer(rt, "external_userid", row.external_userid, lead_source=LeadSource.KF)
    return "customer entered the session"


async def mp_text(rt: Runtime, row: Any) -> str:
    customer_id = await _customer(rt, "openid", row.from_user, lead_source=LeadSource.MP, first_words=row.content)

    async def send(item: Any, reply: router.Reply, cid: int) -> sender.OutboundResult:
        text = reply.text
        if reply.image is not None:  # the picture first (its own key), then the text
            image = await sender.send_mp_custom_image(
                rt, openid=item.from_user, image=Image(reply.image.png, reply.image.filename), key=f"reply:{item.id}:image", purpose="reply"
            )
            text = _text_after_image(reply, image, item)
        return await sender.send_mp_custom_text(rt, openid=item.from_user, text=text, key=f"reply:{item.id}", purpose="reply")

    return await answer_in_order(rt, row, customer_id, send)


async def mp_subscribe(rt: Runtime, row: Any) -> str:
    await _customer(rt, "openid", row.from_user, lead_source=LeadSource.MP)
    result = await sender.send_mp_custom_text(
        rt, openid=row.from_user, text=router.help_text(rt), key=f"welcome:{row.id}", purpose="welcome"
    )
    return f"welcomed: {result.status}"
