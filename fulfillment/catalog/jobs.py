"""The catalog's reactions to other capabilities' events (thin: the logic is in the services)."""

from __future__ import annotations

from typing import Any

from fulfillment.catalog.services import update_product
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.governance.approvals.services import DECIDED as APPROVAL_DECIDED
from scrm.governance.approvals.services import get_approval


async def price_on_approval(rt: Runtime, payload: dict[str, Any]) -> None:
    """A price change was approved: the new price applies now (the chat's catalog moves on with it). Rejected or
    withdrawn: the old price stays; the requester hears why. A repeat sets the same price again (no change)."""
    if payload.get("doc_type") != "price_change" or payload.get("status") != "approved":
        return
    approval = await get_approval(rt, int(payload["approval_id"]))
    async with rt.db.write() as conn:
        await update_product(conn, str(payload["doc_ref"]), rt.clock.now(), approved=True, price_fen=int(approval.facts["new_price_fen"]))


HANDLERS = [Handles(APPROVAL_DECIDED, price_on_approval)]
