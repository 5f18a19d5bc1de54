"""微信客服 (kf) sync: pull ``kf/sync_msg`` from the stored cursor, store each message once, advance the cursor.

A ``kf_msg_or_event`` callback carries no message, only "there is news". :func:`request_sync` records the news
(``request_seq += 1``); :func:`run_sync` takes a lease on the open_kfid's cursor row so one process syncs at a
time, and a request that arrives while a sync runs makes the holder go round once more instead of being lost.
Each page's messages and the new cursor are written in one transaction: a crash re-reads at most one page, and
msgid dedupe makes the re-read harmless.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

import sqlalchemy as sa

from bots.gateway.domain import normalize_kf
from bots.gateway.services import insert_inbound
from bots.kf.models import kf_cursors
from bots.kf.profiles import queue_profile_fetch
from bots.outbound.client import WECOM_API
from bots.outbound.services import record_customer_message
from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.ids import short_id
from scrm.core.jobs import JobContext
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)

# Renewed with every page (one sync_msg call and one transaction), so it only has to outlast one page. A process
# that dies holding it blocks the kf channel until it lapses: keep it short.
LEASE = dt.timedelta(seconds=30)
TOKEN_LIFE = dt.timedelta(minutes=9)
PAGE_LIMIT = 1000
MAX_PAGES_PER_PASS = 100  # bound one pass; a remaining backlog is picked up by the next request/sweep


async def request_sync(rt: Runtime, open_kfid: str, token: str = "") -> int:
    """Record that WeCom told us there is news for ``open_kfid`` (the token speeds up sync_msg for 10 min);
    returns the request's number (see :func:`sync_covers`)."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(insert_ignore(kf_cursors, rt.db.dialect).values(open_kfid=open_kfid))
        values: dict[str, Any] = {"request_seq": kf_cursors.c.request_seq + 1, "requested_at": now}
        if token:
            values["callback_token"] = token
        await conn.execute(sa.update(kf_cursors).where(kf_cursors.c.open_kfid == open_kfid).values(**values))
        seq = (await conn.execute(sa.select(kf_cursors.c.request_seq).where(kf_cursors.c.open_kfid == open_kfid))).scalar_one()
    return int(seq)


async def sync_covers(rt: Runtime, open_kfid: str, seq: int) -> bool:
    """Whether a completed sync pass started after request ``seq`` was recorded (so it read that news)."""
    async with rt.db.read() as conn:
        synced = (await conn.execute(sa.select(kf_cursors.c.synced_seq).where(kf_cursors.c.open_kfid == open_kfid))).scalar()
    return synced is not None and int(synced) >= seq


async def lease_wait(rt: Runtime, open_kfid: str) -> float:
    """Seconds until the current holder's lease lapses (0 when nobody holds it)."""
    async with rt.db.read() as conn:
        until = (await conn.execute(sa.select(kf_cursors.c.lease_until).where(kf_cursors.c.open_kfid == open_kfid))).scalar()
    return max((until - rt.clock.now()).total_seconds(), 0.0) if until is not None else 0.0


async def _acquire(rt: Runtime, open_kfid: str, owner: str) -> int | None:
    """Take the lease; returns the request_seq this pass covers, or None when another process holds it."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(insert_ignore(kf_cursors, rt.db.dialect).values(open_kfid=open_kfid))
        result = await conn.execute(
            sa.update(kf_cursors)
            .where(
                kf_cursors.c.open_kfid == open_kfid,
                sa.or_(kf_cursors.c.lease_until.is_(None), kf_cursors.c.lease_until < now),
            )
            .values(lease_until=now + LEASE, lease_owner=owner)
        )
        if result.rowcount != 1:
            return None
        seq = (await conn.execute(sa.select(kf_cursors.c.request_seq).where(kf_cursors.c.open_kfid == open_kfid))).scalar_one()
        return int(seq)


async def _release(rt: Runtime, open_kfid: str, owner: str, covered_seq: int | None) -> bool:
    """Drop the lease; when ``covered_seq`` is given, record it as synced. True if more requests came meanwhile."""
    values: dict[str, Any] = {"lease_until": None, "lease_owner": None}
    if covered_seq is not None:
        values.update(synced_seq=covered_seq, synced_at=rt.clock.now())
    async with rt.db.write() as conn:
        await conn.execute(
            sa.update(kf_cursors).where(kf_cursors.c.open_kfid == open_kfid, kf_cursors.c.lease_owner == owner).values(**values)
        )
        row = (await conn.execute(sa.select(kf_cursors).where(kf_cursors.c.open_kfid == open_kfid))).one()
    return bool(row.request_seq > row.synced_seq)


async def _pull_pages(rt: Runtime, open_kfid: str, owner: str) -> int:
    api = rt.get(WECOM_API)
    stored = 0
    for _ in range(MAX_PAGES_PER_PASS):
        async with rt.db.read() as conn:
            state = (await conn.execute(sa.select(kf_cursors).where(kf_cursors.c.open_kfid == open_kfid))).one()
        body: dict[str, Any] = {"cursor": state.cursor, "limit": PAGE_LIMIT, "voice_format": 0, "open_kfid": open_kfid}
        # The callback's token speeds up sync_msg but lives 10 minutes; a stale one would be refused.
        fresh = state.requested_at is not None and state.requested_at > rt.clock.now() - TOKEN_LIFE
        if state.callback_token and fresh:
            body["token"] = state.callback_token
        # wechatpy's kf helper omits open_kfid; the raw call carries it (docs/wecom.md §4).
        data = await api.call("kf/sync_msg", body)
        outbox_ids: list[int] = []
        writers: set[str] = set()  # customers who wrote on this page: their profiles are fetched when due
        now = rt.clock.now()
        async with rt.db.write() as conn:
            for msg in data.get("msg_list") or []:
                if not isinstance(msg, dict):
                    continue
                msg.setdefault("open_kfid", open_kfid)
                item = normalize_kf(msg, now)
                result = await insert_inbound(conn, rt.db.dialect, item, rt)
                if result.outbox_id is not None:
                    outbox_ids.append(result.outbox_id)
                    stored += 1
                if result.inbound_id is not None and item.kind.startswith("kf.customer.") and item.external_userid:
                    await record_customer_message(conn, open_kfid=open_kfid, external_userid=item.external_userid, at=item.occurred_at)
                    writers.add(item.external_userid)
            moved = await conn.execute(
                sa.update(kf_cursors)
                .where(kf_cursors.c.open_kfid == open_kfid, kf_cursors.c.lease_owner == owner)
                .values(cursor=str(data.get("next_cursor") or state.cursor), lease_until=now + LEASE)
            )
            if moved.rowcount != 1:
                # Our lease expired and someone else took over: roll back this page, they will read it.
                raise LeaseLost(open_kfid)
        await outbox.kick(rt, outbox_ids)
        await queue_profile_fetch(rt, writers)
        if not int(data.get("has_more") or 0):
            break
    return stored


class LeaseLost(Exception):
    pass


_releasing: set[asyncio.Task[None]] = set()


def _release_when_possible(rt: Runtime, open_kfid: str, owner: str) -> None:
    async def retry() -> None:
        deadline = time.monotonic() + LEASE.total_seconds()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            try:
                await _release(rt, open_kfid, owner, None)
                return
            except Exception as exc:
                log.debug("kf sync lease not released yet", extra={"open_kfid": open_kfid, "error": str(exc)})

    task = asyncio.create_task(retry(), name=f"kf-lease-release-{owner}")
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)


async def run_sync(rt: Runtime, open_kfid: str) -> int:
    """Sync until nothing is pending; returns how many new messages were stored. Returns 0 at once when another
    process holds the lease (it will cover our request)."""
    total = 0
    while True:
        owner = short_id(16)
        covered = await _acquire(rt, open_kfid, owner)
        if covered is None:
            return total
        try:
            total += await _pull_pages(rt, open_kfid, owner)
        except BaseException:
            try:
                await _release(rt, open_kfid, owner, None)
            except Exception:
                # The database is what failed (a restart): give the lease back as soon as it answers again,
                # rather than leave every kf notice waiting for the lease to lapse.
                _release_when_possible(rt, open_kfid, owner)
            raise
        if not await _release(rt, open_kfid, owner, covered):
            return total


async def kf_sync_sweep(ctx: JobContext) -> None:
    """Once a minute: finish any sync whose request was not covered (a process died mid-sync)."""
    rt = ctx.rt
    if not rt.has(WECOM_API):
        return
    async with rt.db.read() as conn:
        rows = (await conn.execute(sa.select(kf_cursors.c.open_kfid).where(kf_cursors.c.request_seq > kf_cursors.c.synced_seq))).all()
    for row in rows:
        try:
            await run_sync(rt, row.open_kfid)
        except Exception:
            log.exception("kf sync sweep failed", extra={"open_kfid": row.open_kfid})
