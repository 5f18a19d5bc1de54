"""Quotes' reactions to other capabilities' events (thin: the logic is in the services)."""

from __future__ import annotations

from typing import Any

from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import MERGED_TOPIC
from scrm.governance.approvals.services import DECIDED as APPROVAL_DECIDED
from scrm.sales.handover.services import TRANSFERRED
from scrm.sales.quotes.services import apply_approval, move_to_surviving_customer, transfer_open_quotes


async def move_quote_on_approval(rt: Runtime, payload: dict[str, Any]) -> None:
    """A quote's approval was decided: approved → sendable; rejected or withdrawn → rejected (a repeat: nothing)."""
    if payload.get("doc_type") != "quote":
        return
    await apply_approval(rt, str(payload["doc_ref"]), str(payload["status"]), str(payload.get("comment") or ""))


async def move_quotes_on_handover(rt: Runtime, payload: dict[str, Any]) -> None:
    """A customer was handed over: their open quotes follow them to the new salesperson (idempotent)."""
    await transfer_open_quotes(
        rt, customer_id=int(payload["customer_id"]), from_userid=str(payload["from_userid"]), to_userid=str(payload["to_userid"])
    )


async def move_quotes_of_merged_customer(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two customer records are one person: the merged one's quotes follow the survivor (a repeat: none left)."""
    await move_to_surviving_customer(rt, from_customer=int(payload["from"]), into_customer=int(payload["into"]))


HANDLERS = [
    Handles(APPROVAL_DECIDED, move_quote_on_approval),
    Handles(TRANSFERRED, move_quotes_on_handover),
    Handles(MERGED_TOPIC, move_quotes_of_merged_customer),
]
