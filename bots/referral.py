"""Referral campaigns (裂变) on the WeCom side: the personal codes' contact ways, the add / leave hooks the
客户联系 processors call for an ``rf:`` state, and the inviter's progress notices.

Only one processor may exist per event kind, and ``bots/crm_events.py`` owns add_external_contact and
del_follow_user: it calls :func:`on_contact_added` inside the add's transaction (with ``was_new`` looked up before
the add created the customer) and :func:`on_follow_ended` after a del_follow_user ended the relation.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bots.channel_codes import _add_contact_way, _delete_way
from bots.notify import notify_customer
from scrm.campaigns import referral
from scrm.campaigns.referral_domain import REASON_TEXT, is_referral_state
from scrm.core import outbox
from scrm.core.runtime import Runtime
from scrm.customers.relations import follows_of

log = logging.getLogger(__name__)

__all__ = ["WeComReferralWays", "is_referral_state", "on_contact_added", "on_follow_ended", "send_progress"]


class WeComReferralWays:
    """The :class:`scrm.campaigns.referral.ContactWayMaker`: 联系我 codes via externalcontact/add_contact_way
    (type 1 for one salesperson, 2 for several; skip_verify) and del_contact_way; refusals and outages become
    domain errors (bots/channel_codes.py)."""

    async def create(self, rt: Runtime, *, state: str, userids: list[str], remark: str) -> tuple[str, str]:
        return await _add_contact_way(rt, state, remark, userids)

    async def delete(self, rt: Runtime, config_id: str) -> None:
        await _delete_way(rt, config_id)


referral.provide_contact_way_maker(WeComReferralWays())


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
    outcome = await referral.record_add(
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
    revoked = await referral.record_follow_ended(rt, invitee_customer_id=customer_id, userid=row.user_id, left_at=row.occurred_at)
    return f"{revoked} referral invite(s) revoked" if revoked else ""


@outbox.handles(referral.PROGRESS_TOPIC)
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
