"""微信客服 customers' nicknames and avatars (kf/customer/batchget): without them every list, order, picking slip,
ranking and alert says "未命名客户 #N".

When a sync page stores messages from customers, :func:`queue_profile_fetch` queues one job for that page's
customers; the job (:func:`fetch_profiles`) asks WeCom only about those never fetched or last fetched more than
``kf_profile_refresh_hours`` ago, up to 100 ids per call (the API's limit), through the project's WeCom client
(token refresh, 45009/45033 back-off → the job retries later). The profile is written to the customer record (the
one every page reads) and the fetch time to ``kf_profile_fetches`` — so a chatty customer costs one call a day,
not one per message. Running the job twice is harmless: the second run finds nothing due.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bots.kf.models import kf_profile_fetches
from bots.outbound.client import WECOM_API, RateLimited
from scrm.core.db import upsert
from scrm.core.jobs import JobContext, RetryLater
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import ensure_customer, update_profile

log = logging.getLogger(__name__)

BATCH_LIMIT = 100  # kf/customer/batchget takes at most 100 external_userids per call
PROFILE_JOB = "kf_fetch_profiles"


@dataclass(frozen=True)
class KfProfile:
    """What kf/customer/batchget says about one customer."""

    external_userid: str
    nickname: str
    avatar: str
    gender: int

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> KfProfile | None:
        ext = item.get("external_userid")
        if not isinstance(ext, str) or not ext:
            return None
        gender = item.get("gender")
        return cls(ext, str(item.get("nickname") or ""), str(item.get("avatar") or ""), gender if gender in (0, 1, 2) else 0)


def batches(ids: Sequence[str], size: int = BATCH_LIMIT) -> list[list[str]]:
    """``ids`` in calls of at most ``size`` (order kept, duplicates dropped)."""
    unique = list(dict.fromkeys(ids))
    return [unique[k : k + size] for k in range(0, len(unique), size)]


async def due_for_fetch(rt: Runtime, external_userids: Iterable[str]) -> list[str]:
    """The ids never fetched, or fetched longer ago than the refresh interval (sorted)."""
    ids = sorted({e for e in external_userids if e})
    if not ids:
        return []
    fresh_after = rt.clock.now() - dt.timedelta(hours=rt.settings.kf_profile_refresh_hours)
    f = kf_profile_fetches.c
    async with rt.db.read() as conn:
        fresh = {
            r.external_userid
            for r in await conn.execute(sa.select(f.external_userid).where(f.external_userid.in_(ids), f.fetched_at > fresh_after))
        }
    return [e for e in ids if e not in fresh]


async def _store(rt: Runtime, profiles: list[KfProfile], asked: list[str]) -> int:
    """Write the nicknames and avatars on the customer records and the fetch time of every id asked about."""
    now, dialect = rt.clock.now(), rt.db.dialect
    named = 0
    found = {p.external_userid for p in profiles}
    async with rt.db.write() as conn:
        for p in profiles:
            customer_id = await ensure_customer(conn, dialect, kind="external_userid", value=p.external_userid, now=now)
            changed = await update_profile(
                conn, customer_id, now, name=p.nickname or None, avatar=p.avatar or None, gender=p.gender if p.gender else None
            )
            named += int(changed)
        for ext in asked:
            row = {"external_userid": ext, "fetched_at": now, "found": ext in found}
            await conn.execute(upsert(kf_profile_fetches, dialect, ["external_userid"], row, ["fetched_at", "found"]))
    return named


async def fetch_profiles(rt: Runtime, external_userids: Sequence[str]) -> int:
    """Fetch the due customers' profiles, 100 per call, and store them; returns how many records changed.
    A rate limit (45009/45033) raises :class:`RetryLater` after storing the batches already fetched."""
    due = await due_for_fetch(rt, external_userids)
    if not due or not rt.has(WECOM_API):
        return 0
    api = rt.get(WECOM_API)
    changed = 0
    for chunk in batches(due):
        try:
            data = await api.call("kf/customer/batchget", {"external_userid_list": chunk, "need_enter_session_context": 0})
        except RateLimited as exc:
            raise RetryLater(exc.retry_after, f"kf/customer/batchget rate limited ({exc.errcode})") from exc
        profiles = [p for p in (KfProfile.from_api(i) for i in data.get("customer_list") or [] if isinstance(i, dict)) if p]
        changed += await _store(rt, profiles, chunk)
    log.info("kf customer profiles fetched", extra={"asked": len(due), "changed": changed})
    return changed


async def fetch_profiles_job(ctx: JobContext, external_userids: list[str]) -> str:
    changed = await fetch_profiles(ctx.rt, external_userids)
    return f"{changed} customer profiles updated"


async def queue_profile_fetch(rt: Runtime, external_userids: Iterable[str]) -> None:
    """After a sync page: one job for its customers. A re-read page queues another, which finds nothing due.
    Failing to queue (Redis down) must not fail the sync that stored the messages: the customers' next messages
    queue it again (they are still due), so it is logged and left."""
    ids = sorted({e for e in external_userids if e})
    if not ids:
        return
    try:
        await rt.jobs.enqueue(PROFILE_JOB, ids)
    except Exception as exc:
        log.warning("kf profile fetch not queued; the next message will", extra={"customers": len(ids), "error": str(exc)})
