"""Referral campaigns (裂变) on the WeCom side: the personal codes' contact ways (and, for group campaigns, 加入群聊
join ways), the add / leave hooks the 客户联系 and 客户群 processors call, and the inviter's progress notices.

Only one processor may exist per event kind, and ``bots/contacts/customers.py`` owns add_external_contact and
del_follow_user: it calls :func:`on_contact_added` inside the add's transaction (with ``was_new`` looked up before
the add created the customer) and :func:`on_follow_ended` after a del_follow_user ended the relation.

Group campaigns: ``bots/contacts/groups.py`` owns change_external_chat. On add_member by QR code (JoinScene 3) it
calls :func:`on_group_members_joined` in the event's transaction, before the members are recorded (so "new" means
no customer had that external_userid before the join); that writes a ``referral.group_join`` outbox row, whose
handler reads ``groupchat/get`` — the event carries no state, the member list does (``member_list[].state``) —
and attributes each external member who came through an ``rf:`` join code. On del_member it calls
:func:`on_group_members_left`, which revokes like del_follow_user.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bots.contacts.channel_codes import _add_contact_way, _call, _delete_way
from bots.notices.orders import notify_customer
from bots.outbound.client import WECOM_API, ApiError, RateLimited
from scrm.campaigns.referral import invites as referral_invites
from scrm.campaigns.referral.domain import REASON_TEXT, is_referral_state
from scrm.core import outbox
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import ensure_customer, find_customer
from scrm.crm.staff.services import follows_of

log = logging.getLogger(__name__)

GROUP_JOIN_TOPIC = "referral.group_join"  # {"chat_id", "member_ids", "new_ids", "joined_at"}: attribute group joins
SCENE_QR = 2  # add_join_way scene: 1 = mini-program button, 2 = QR code
JOIN_SCENE_QR = 3  # change_external_chat JoinScene: 3 = joined by scanning a QR code


class WeComReferralWays:
    """The :class:`scrm.campaigns.referral.ContactWayMaker`: 联系我 codes via externalcontact/add_contact_way
    (type 1 for one salesperson, 2 for several; skip_verify) and del_contact_way; refusals and outages become
    domain errors (bots/contacts/channel_codes.py)."""

    async def create(self, rt: Runtime, *, state: str, userids: list[str], remark: str) -> tuple[str, str]:
        return await _add_contact_way(rt, state, remark, userids)

    async def delete(self, rt: Runtime, config_id: str) -> None:
        await _delete_way(rt, config_id)


class WeComGroupJoinWays:
    """The :class:`scrm.campaigns.referral.JoinWayMaker`: 加入群聊 QR codes via externalcontact/groupchat/add_join_way
    (scene 2, the campaign's groups, the code's state; auto_create_room off — a personal code leads into the
    campaign's groups only) and get_join_way for the QR code; del_join_way to remove one."""

    async def create(self, rt: Runtime, *, state: str, chat_ids: list[str], remark: str) -> tuple[str, str]:
        body = {"scene": SCENE_QR, "remark": remark[:30], "auto_create_room": 0, "chat_id_list": chat_ids[:5], "state": state}
        config_id = str((await _call(rt, "externalcontact/groupchat/add_join_way", body))["config_id"])
        way = (await _call(rt, "externalcontact/groupchat/get_join_way", {"config_id": config_id})).get("join_way") or {}
        return config_id, str(way.get("qr_code", ""))

    async def delete(self, rt: Runtime, config_id: str) -> None:
        await _delete_way(rt, config_id, path="externalcontact/groupchat/del_join_way", what="入群方式")


def _state(row: Any) -> str:
    value = (row.payload or {}).get("State", "")
    return value.strip() if isinstance(value, str) else ""


async def on_contact_added(conn: AsyncConnection, rt: Runtime, row: Any, customer_id: int, was_new: bool) -> str:
    """In the add's transaction (add_external_contact / add_half_external_contact with an ``rf:`` state):
    attribute the new customer to the inviter. ``was_new``: no customer had this external_userid before the
    add. Returns a note for the event."""
    state = _state(row)
    if not is_referral_state(state):
        return ""
    outcome = await referral_invites.record_add(
        conn,
        rt.db.dialect,
        state=state,
        invitee_customer_id=customer_id,
        userid=row.user_id,
        added_at=row.occurred_at,
        was_new=was_new,
        now=rt.clock.now(),
    )
    if outcome is None:
        return f"referral code {state} unknown"
    why = f" ({REASON_TEXT.get(outcome.reason, outcome.reason)})" if outcome.reason else ""
    return f"referral invite {outcome.status}{why} for inviter {outcome.inviter_customer_id}"


async def on_follow_ended(rt: Runtime, row: Any, customer_id: int) -> str:
    """After del_follow_user ended the relation: revoke the invite(s) of this invitee with this salesperson."""
    revoked = await referral_invites.record_follow_ended(rt, invitee_customer_id=customer_id, userid=row.user_id, left_at=row.occurred_at)
    return f"{revoked} referral invite(s) revoked" if revoked else ""


# ---- group campaigns: joins and leaves ---------------------------------------------------------------------
async def on_group_members_joined(conn: AsyncConnection, rt: Runtime, row: Any, member_ids: list[str]) -> str:
    """In the add_member event's transaction, *before* the members are recorded: for a QR-code join (JoinScene 3)
    note which of the ids no customer held yet, and ask (outbox) for the attribution, which needs groupchat/get.
    Returns a note for the event."""
    scene = str((row.payload or {}).get("JoinScene", "")).strip()
    if scene != str(JOIN_SCENE_QR) or not member_ids:
        return ""
    new_ids = [m for m in member_ids if await find_customer(conn, "external_userid", m) is None]
    payload = {"chat_id": row.chat_id, "member_ids": member_ids, "new_ids": new_ids, "joined_at": row.occurred_at.isoformat()}
    await outbox.add(conn, GROUP_JOIN_TOPIC, payload, rt.clock.now())
    return "; referral attribution requested"


async def attribute_group_joins(rt: Runtime, payload: dict[str, Any]) -> None:
    """Read the group's member list (groupchat/get) and attribute each external member of the event who joined
    through a personal join code (an ``rf:`` state) to its inviter, one transaction each. Idempotent (an
    invitee is attributed once per campaign); a vanished group or a refusal is logged, not retried."""
    if not rt.has(WECOM_API):
        return
    chat_id, wanted, new = str(payload["chat_id"]), set(payload["member_ids"]), set(payload.get("new_ids") or ())
    joined_at = dt.datetime.fromisoformat(str(payload["joined_at"]))
    try:
        data = await rt.get(WECOM_API).call("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})
    except RateLimited:
        raise  # the outbox runs the row again later
    except ApiError as exc:
        log.warning("groupchat/get refused; group joins not attributed", extra={"chat_id": chat_id, "errcode": exc.errcode})
        return
    for member in (data.get("group_chat") or {}).get("member_list") or []:
        ext, state = str(member.get("userid", "")), str(member.get("state", "") or "").strip()
        if ext not in wanted or member.get("type") != 2 or not is_referral_state(state):
            continue
        async with rt.db.write() as conn:
            invitee = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=ext, now=rt.clock.now())
            outcome = await referral_invites.record_add(
                conn, rt.db.dialect, state=state, invitee_customer_id=invitee, userid="", added_at=joined_at,
                was_new=ext in new, now=rt.clock.now(), chat_id=chat_id,
            )  # fmt: skip
        log.info(
            "group referral join",
            extra={"chat_id": chat_id, "state": state, "status": outcome.status if outcome else "unknown code"},
        )


async def on_group_members_left(rt: Runtime, row: Any, member_ids: list[str]) -> int:
    """After a del_member was recorded: revoke the group-campaign invites of these members for this group (as
    del_follow_user does for contact codes). Returns how many were revoked."""
    revoked = 0
    for ext in member_ids:
        async with rt.db.read() as conn:
            customer_id = await find_customer(conn, "external_userid", ext)
        if customer_id is not None:
            revoked += await referral_invites.record_group_left(
                rt, invitee_customer_id=customer_id, chat_id=row.chat_id, left_at=row.occurred_at
            )
    return revoked


async def send_progress(rt: Runtime, payload: dict[str, Any]) -> None:
    """Tell the inviter their progress on a channel that can reach them (kf → Official Account → a task for
    their salesperson); recorded either way, once per key."""
    customer_id = int(payload["customer_id"])
    async with rt.db.read() as conn:
        active = await follows_of(conn, customer_id, include_ended=False)
    await notify_customer(
        rt,
        customer_id=customer_id,
        text=str(payload["text"]),
        key=str(payload["key"]),
        salesperson_userid=active[0].userid if active else "",
        purpose="referral",
    )
