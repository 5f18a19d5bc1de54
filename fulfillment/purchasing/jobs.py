"""Purchasing's reactions to other capabilities' events (thin: the logic is in the services)."""

from __future__ import annotations

from typing import Any

from fulfillment.purchasing.services import place_purchase_order, return_to_draft
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.governance.approvals.services import DECIDED as APPROVAL_DECIDED


async def place_on_approval(rt: Runtime, payload: dict[str, Any]) -> None:
    """A purchase order's approval was decided: approved → sent to the supplier; rejected or withdrawn → a draft
    again with the reason in its note. A repeat changes nothing (the order no longer waits)."""
    if payload.get("doc_type") != "purchase_order":
        return
    number = str(payload["doc_ref"])
    if payload["status"] == "approved":
        await place_purchase_order(rt, number, approved=True)
    else:
        comment = str(payload.get("comment") or "")
        reason = ("审批未通过" if payload["status"] == "rejected" else "审批已撤销") + (f"：{comment}" if comment else "")
        await return_to_draft(rt, number, reason=reason)


HANDLERS = [Handles(APPROVAL_DECIDED, place_on_approval)]
