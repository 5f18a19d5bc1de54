"""客户群 callbacks (``change_external_chat``) into the groups package, and the ``groupchat/get`` enrichment.

A processor records what the event itself says (who joined or left, and when; that the group was dismissed) and,
in the same transaction, asks for a refresh through the outbox (topic ``group.refresh``): the handler calls
``externalcontact/groupchat/get`` and applies the snapshot — names, owner, notice, member types. The events carry
ids only, and change_name / change_owner / change_notice carry no new value at all, so the snapshot is how those
arrive. Everything is idempotent (see :mod:`scrm.crm.groups.services`): a callback delivered three times, or a
refresh run twice, leaves one state.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from bots.contacts import referral
from bots.outbound.client import WECOM_API, ApiError, Errcode, RateLimited
from scrm.core import outbox
from scrm.core.jobs import JobContext, RetryLater
from scrm.core.runtime import Runtime
from scrm.crm.groups import services as groups
from scrm.crm.groups.domain import parse_group_chat
from scrm.crm.groups.models import groups as groups_table

log = logging.getLogger(__name__)

REFRESH_TOPIC = "group.refresh"  # payload {"chat_id", "reconcile"}: fetch groupchat/get and apply it
# Answers after which asking again cannot help: the group is gone, or the app may not see it.
GONE = {Errcode.INVALID_CHAT_ID, Errcode.NOT_EXTERNAL_CONTACT}
REFUSED = {Errcode.NOT_AUTHORISED, Errcode.IP_NOT_WHITELISTED}


def _int(payload: dict[str, Any], name: str) -> int | None:
    value = str(payload.get(name, "")).strip()
    return int(value) if value.isdecimal() else None


async def _request_refresh(rt: Runtime, conn: Any, chat_id: str, *, reconcile: bool = False) -> int:
    return await outbox.add(conn, REFRESH_TOPIC, {"chat_id": chat_id, "reconcile": reconcile}, rt.clock.now(), kicked=True)


async def group_created(rt: Runtime, row: Any) -> str:
    async with rt.db.write() as conn:
        await groups.ensure_group(conn, rt.db.dialect, row.chat_id, rt.clock.now(), created_at=row.occurred_at)
        oid = await _request_refresh(rt, conn, row.chat_id)
    await outbox.kick(rt, [oid])
    return "group created; details requested (groupchat/get)"


async def group_updated(rt: Runtime, row: Any) -> str:
    detail = str(row.payload.get("UpdateDetail", "")).strip()
    ids = [i for i in row.payload.get("MemChangeList") or [] if isinstance(i, str)]
    now, dialect = rt.clock.now(), rt.db.dialect
    note = f"{detail or 'update'}; refreshed"
    refresh = True
    async with rt.db.write() as conn:
        if detail == "add_member" and ids:
            # Before the members are recorded: a group referral counts only people no customer record held yet.
            invite_note = await referral.on_group_members_joined(conn, rt, row, ids)
            joined = await groups.members_joined(
                conn, dialect, row.chat_id, ids, at=row.occurred_at, now=now, callback_scene=_int(row.payload, "JoinScene")
            )
            note = f"{len(joined)} of {len(ids)} joined (JoinScene {row.payload.get('JoinScene', '?')}); names requested{invite_note}"
        elif detail == "del_member" and ids:
            left = await groups.members_left(
                conn, dialect, row.chat_id, ids, at=row.occurred_at, now=now, quit_scene=_int(row.payload, "QuitScene")
            )
            note = f"{len(left)} of {len(ids)} left (QuitScene {row.payload.get('QuitScene', '?')})"
            refresh = False  # a leave needs no names; the count is ours
        else:
            await groups.ensure_group(conn, dialect, row.chat_id, now)
        # Member changes without their list: only a snapshot compared with what we hold can tell who.
        reconcile = detail in ("add_member", "del_member") and not ids
        oid = await _request_refresh(rt, conn, row.chat_id, reconcile=reconcile) if refresh else None
    if oid is not None:
        await outbox.kick(rt, [oid])
    if detail == "del_member" and ids:
        revoked = await referral.on_group_members_left(rt, row, ids)
        note += f"; {revoked} referral invite(s) revoked" if revoked else ""
    return note


async def group_dismissed(rt: Runtime, row: Any) -> str:
    async with rt.db.write() as conn:
        changed = await groups.dismiss_group(conn, rt.db.dialect, row.chat_id, at=row.occurred_at, now=rt.clock.now())
    return "group dismissed" if changed else "group was dismissed already"


async def refresh_group_chat(rt: Runtime, chat_id: str, *, reconcile: bool = False) -> str:
    """Fetch ``groupchat/get`` (with names) and apply it. A dismissed or vanished group is left alone; a rate
    limit asks to be retried in a minute; other refusals are logged, not retried (no retry storms)."""
    if not rt.has(WECOM_API):
        return "WeCom API not configured"
    async with rt.db.read() as conn:
        dismissed = (await conn.execute(sa.select(groups_table.c.dismissed_at).where(groups_table.c.chat_id == chat_id))).scalar()
    if dismissed is not None:
        return "group dismissed; not fetched"
    fetched_at = rt.clock.now()
    try:
        data = await rt.get(WECOM_API).call("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})
    except RateLimited as exc:
        raise RetryLater(exc.retry_after, str(exc)) from exc
    except ApiError as exc:
        if exc.errcode in GONE or exc.errcode in REFUSED:
            log.warning("groupchat/get refused; group left as it is", extra={"chat_id": chat_id, "errcode": exc.errcode})
            return f"groupchat/get errcode {exc.errcode}"
        raise
    snap = parse_group_chat(data.get("group_chat") or {})
    async with rt.db.write() as conn:
        result = await groups.apply_snapshot(conn, rt.db.dialect, snap, rt.clock.now(), fetched_at=fetched_at, reconcile=reconcile)
    return f"{result.member_count} members; {len(result.joined)} new, {len(result.left)} gone"


async def on_refresh_requested(rt: Runtime, payload: dict[str, Any]) -> None:
    await refresh_group_chat(rt, str(payload["chat_id"]), reconcile=bool(payload.get("reconcile")))


async def refresh_group_chat_job(ctx: JobContext, chat_id: str, reconcile: bool = False) -> None:
    """Enqueue-able form (job id ``groupchat:<chat_id>`` recommended) for repair tools and the initial sync."""
    await refresh_group_chat(ctx.rt, chat_id, reconcile=reconcile)
