"""Segment broadcasts (群发), the channel side: the facts planning needs from the channels, the
``broadcast.send`` outbox handler that delivers one chunk, and the cron that runs broadcasts batch by batch.

* Facts: 微信客服 windows (``kf_windows``) and this month's salesperson tasks that were not broadcasts (order
  notices, from ``outbound_messages``) — installed as :data:`scrm.campaigns.broadcasts.services.CHANNEL_FACTS` by the composition root.
* Sending: every recipient goes through :mod:`bots.outbound.services` under the key ``broadcast:{id}:{customer}``
  (a chunk handled twice sends once); salesperson tasks are one ``add_msg_template`` call per salesperson per
  chunk carrying many external_userids. Just before a kf send the window is checked again with the marketing
  limit (one message kept for order notices): a notice sent meanwhile wins.
* 附带邀请海报 (a broadcast with ``referral_campaign_id``): each recipient's own referral code is made (once per
  campaign and customer) and their poster's link goes into their own message; salesperson tasks then carry one
  recipient each, since one task has one text. A recipient the campaign does not take (not running, not in its
  segment) gets the message without a poster.
* A chunk of a paused broadcast is parked (a new outbox row due in :data:`PARK_SECONDS`); of a cancelled one,
  dropped (cancel already marked its recipients skipped).
* Throttling: the cron plans at most ``RATE_PER_MINUTE`` recipients per minute per broadcast.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bots.outbound import services as sender
from bots.outbound.client import MP_API, WECOM_API
from bots.outbound.models import OutboundStatus, kf_windows, outbound_messages
from scrm.campaigns.broadcasts import domain as D
from scrm.campaigns.broadcasts import queries as broadcasts_queries
from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.broadcasts.models import BroadcastStatus
from scrm.campaigns.coupons.domain import CouponUnavailable
from scrm.campaigns.coupons.services import issue_coupon
from scrm.campaigns.referral import sharing
from scrm.core import outbox
from scrm.core.errors import Conflict
from scrm.core.jobs import JobContext
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)
PARK_SECONDS = 60
RATE_PER_MINUTE = 6000  # recipients planned per minute per broadcast (WeCom kf/template APIs allow far more)
BATCH = 1000
RS = D.RecipientStatus


# ---- facts for planning --------------------------------------------------------------------------------
async def kf_windows_of(rt: Runtime, conn: AsyncConnection, external_userids: Sequence[str]) -> dict[str, D.KfWindow]:
    open_kfid = rt.settings.kf_open_kfid
    if not open_kfid or not rt.has(WECOM_API) or not external_userids:
        return {}
    rows = await conn.execute(
        sa.select(kf_windows).where(
            kf_windows.c.open_kfid == open_kfid, broadcasts.among(kf_windows.c.external_userid, external_userids, rt.db.dialect)
        )
    )
    return {r.external_userid: D.KfWindow(r.external_userid, r.last_customer_msg_at, r.sent_since_customer_msg) for r in rows.all()}


async def channel_facts(rt: Runtime, conn: AsyncConnection, external_userids: Sequence[str], since: dt.datetime) -> broadcasts.ChannelFacts:
    """Set-based: two queries for the whole batch."""
    facts = broadcasts.ChannelFacts(mp_enabled=rt.has(MP_API), tasks_enabled=rt.has(WECOM_API))
    facts.kf_windows = await kf_windows_of(rt, conn, external_userids)
    if external_userids:
        m = outbound_messages.c
        rows = await conn.execute(
            sa.select(m.recipient, sa.func.count().label("n"))
            .where(
                m.channel == "msg_template",
                m.purpose != "broadcast",  # broadcast tasks are counted from broadcast_recipients
                m.status.in_((OutboundStatus.AWAITING_SALESPERSON, OutboundStatus.SENT)),
                m.created_at >= since,
                broadcasts.among(m.recipient, external_userids, rt.db.dialect),
            )
            .group_by(m.recipient)
        )
        facts.msg_templates = {r.recipient: int(r.n) for r in rows.all()}
    return facts


# ---- sending one chunk -----------------------------------------------------------------------------------
def _outcome(result: sender.OutboundResult) -> tuple[str, str]:
    if result.status == OutboundStatus.SENT:
        return RS.SENT, ""
    if result.status == OutboundStatus.AWAITING_SALESPERSON:
        return RS.AWAITING_CONFIRMATION, ""
    if result.status == OutboundStatus.SKIPPED:
        return RS.SKIPPED, result.error_message or "skipped"
    return RS.FAILED, f"{result.error_code or ''}:{result.error_message or 'failed'}"[:64]


async def _message_text(rt: Runtime, view: broadcasts.BroadcastView, customer_ids: Sequence[int]) -> tuple[str, dict[int, str]]:
    """The broadcast text and, per customer whose coupon was refused, the recipient reason to record. With a coupon
    template each recipient gets the coupon first (idempotent per broadcast and customer: a chunk handled again
    finds the coupon, or is refused the same way) and the text says so."""
    if view.coupon_template_id is None:
        return view.text, {}

    label, not_issued = "", {}
    for cid in customer_ids:
        try:
            coupon = await issue_coupon(
                rt, view.coupon_template_id, cid, source="segment", source_ref=f"bc:{view.id}:{cid}", actor=f"broadcast:{view.id}"
            )
            label = label or coupon.label
        except CouponUnavailable as exc:  # budget or per-customer limit: the message still goes out, the miss is counted
            not_issued[cid] = D.coupon_not_issued_reason(str(exc.details.get("reason", "")))
            log.info("broadcast coupon not issued", extra={"broadcast_id": view.id, "customer_id": cid, "reason": exc.message})
    text = f"{view.text}\n🎁 优惠券「{label}」已放入您的账户，下单时说“用券”即可使用。" if label else view.text
    return text, not_issued


def _with_coupon_misses(results: list[tuple[int, str, str]], not_issued: dict[int, str]) -> list[tuple[int, str, str]]:
    """Reached recipients whose coupon was refused carry why (a skip or failure keeps its own reason)."""
    reached = (RS.SENT, RS.AWAITING_CONFIRMATION)
    return [
        (cid, status, not_issued[cid]) if cid in not_issued and status in reached and not reason else (cid, status, reason)
        for cid, status, reason in results
    ]


async def _referral_texts(rt: Runtime, view: broadcasts.BroadcastView, customer_ids: Sequence[int], text: str) -> dict[int, str]:
    """附带邀请海报: each recipient's message with their own poster link (their code made now, or the one they
    have). A recipient the campaign refuses (not running, not eligible) is left out: they get ``text`` alone. A
    WeCom failure making a code raises, so the chunk runs again later (what was sent is keyed and not resent)."""
    if view.referral_campaign_id is None:
        return {}
    out: dict[int, str] = {}
    for cid in customer_ids:
        try:
            found = await sharing.invitation(rt, view.referral_campaign_id, cid)
        except Conflict as exc:
            log.info("broadcast referral poster not attached", extra={"broadcast_id": view.id, "customer_id": cid, "reason": exc.message})
            continue
        out[cid] = f"{text}\n\n{sharing.poster_line(found)}"
    return out


async def _send_each(
    rt: Runtime,
    view: broadcasts.BroadcastView,
    channel: str,
    items: list[tuple[int, str]],
    text: str,
    not_issued: dict[int, str],
    texts: dict[int, str] | None = None,
) -> list[tuple[int, str, str]]:
    results: list[tuple[int, str, str]] = []
    quotas = D.Quotas(rt.settings.kf_window_hours, rt.settings.kf_max_messages, rt.settings.msg_template_monthly_cap)
    windows: dict[str, D.KfWindow] = {}
    if channel == D.Channel.KF:
        async with rt.db.read() as conn:
            windows = await kf_windows_of(rt, conn, [addr for _, addr in items])
    try:
        for cid, addr in items:
            key = f"broadcast:{view.id}:{cid}"
            if channel == D.Channel.KF:
                why = D.kf_reason(windows.get(addr), rt.clock.now(), quotas)
                if why is not None:
                    results.append((cid, RS.SKIPPED, why))
                    continue
                result = await sender.send_kf_text(
                    rt,
                    open_kfid=rt.settings.kf_open_kfid,
                    external_userid=addr,
                    text=(texts or {}).get(cid, text),
                    key=key,
                    purpose="broadcast",
                    customer_id=cid,
                )
            else:
                result = await sender.send_mp_template(
                    rt,
                    openid=addr,
                    template_id=rt.settings.mp_notice_template_id,
                    data={"content": {"value": (texts or {}).get(cid, text)}},
                    key=key,
                    purpose="broadcast",
                )
            results.append((cid, *_outcome(result)))
    finally:  # a rate limit mid-chunk: what went out is recorded now, the rest when the chunk runs again
        await broadcasts_queries.record_results(rt, view.id, _with_coupon_misses(results, not_issued))
    return results


async def _send_task(
    rt: Runtime, view: broadcasts.BroadcastView, userid: str, items: list[tuple[int, str]], text: str, not_issued: dict[int, str]
) -> None:
    key = f"broadcast:{view.id}:task:{userid}:{items[0][0]}-{items[-1][0]}"
    result = await sender.create_msg_template_task(
        rt, sender_userid=userid, external_userids=[addr for _, addr in items], text=text, key=key, purpose="broadcast"
    )
    status, reason = _outcome(result)
    refused = set()
    if result.error_message and result.error_message.startswith("fail_list: "):
        refused = set(result.error_message.removeprefix("fail_list: ").split(","))
    results = [(cid, RS.FAILED, "refused_by_wecom") if addr in refused else (cid, status, reason) for cid, addr in items]
    await broadcasts_queries.record_results(rt, view.id, _with_coupon_misses(results, not_issued), outbound_key=sender.storable_key(key))


async def send_chunk(rt: Runtime, payload: dict[str, Any]) -> None:
    """Deliver one chunk of a broadcast (see the module)."""
    broadcast_id = int(payload["broadcast_id"])
    items = [(int(cid), str(addr)) for cid, addr in payload["items"]]
    status, planned = await broadcasts_queries.still_planned(rt, broadcast_id, [cid for cid, _ in items])
    if status == BroadcastStatus.CANCELLED or not planned:
        return
    if status == BroadcastStatus.PAUSED:
        async with rt.db.write() as conn:  # park: the relay picks the copy up once it is due
            await outbox.add(conn, broadcasts.SEND_TOPIC, payload, rt.clock.now() + dt.timedelta(seconds=PARK_SECONDS))
        return
    items = [(cid, addr) for cid, addr in items if cid in planned]
    async with rt.db.read() as conn:
        view = await broadcasts_queries.get_broadcast(conn, broadcast_id)
    text, not_issued = await _message_text(rt, view, [cid for cid, _ in items])
    texts = await _referral_texts(rt, view, [cid for cid, _ in items], text)
    channel = str(payload["channel"])
    if channel == D.Channel.MSG_TEMPLATE:
        if texts:  # one text per task: each recipient with a poster gets a task of their own
            for item in items:
                await _send_task(rt, view, str(payload["salesperson_userid"]), [item], texts.get(item[0], text), not_issued)
        else:
            await _send_task(rt, view, str(payload["salesperson_userid"]), items, text, not_issued)
    else:
        await _send_each(rt, view, channel, items, text, not_issued, texts)


# ---- running broadcasts ----------------------------------------------------------------------------------
async def run_due_broadcasts(rt: Runtime, *, rate_per_minute: int = RATE_PER_MINUTE, batch: int = BATCH) -> int:
    """One tick: scheduled broadcasts whose time came start; each running one plans its throttled share."""
    planned = 0
    per_tick = D.batches_per_tick(rate_per_minute=rate_per_minute, batch=batch)
    for broadcast_id in await broadcasts.due_broadcasts(rt):
        try:
            planned += await broadcasts.plan_broadcast(rt, broadcast_id, batch=batch, max_batches=per_tick)
        except Exception:  # one broadcast's fault (a bug, a dropped connection) must not hold up the rest
            # A broadcast that can never run is failed by the planner itself (status, error, alert); anything
            # else may pass, so it stays running and the next tick tries it again — logged with its id.
            log.exception("broadcast planning failed", extra={"broadcast_id": broadcast_id})
    return planned


async def run_broadcasts_cron(ctx: JobContext) -> int:
    return await run_due_broadcasts(ctx.rt)


async def plan_broadcast_job(ctx: JobContext, broadcast_id: int) -> int:
    """Start planning at once (the API's start) instead of waiting for the next tick; throttled the same."""
    per_tick = D.batches_per_tick(rate_per_minute=RATE_PER_MINUTE, batch=BATCH)
    return await broadcasts.plan_broadcast(ctx.rt, broadcast_id, batch=BATCH, max_batches=per_tick)
