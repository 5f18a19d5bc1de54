"""The pipeline's reactions to other capabilities' events (thin: the logic is in the services)."""

from __future__ import annotations

from typing import Any

from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import MERGED_TOPIC
from scrm.sales.handover.services import TRANSFERRED
from scrm.sales.pipeline.services import move_to_surviving_customer, transfer_open_opportunities


async def move_opportunities_on_handover(rt: Runtime, payload: dict[str, Any]) -> None:
    """A customer was handed over: their open opportunities follow them to the new salesperson (idempotent)."""
    kind = "离职继承" if payload.get("kind") == "resigned" else "在职转接"
    await transfer_open_opportunities(
        rt,
        customer_id=int(payload["customer_id"]),
        from_userid=str(payload["from_userid"]),
        to_userid=str(payload["to_userid"]),
        note=f"{kind}（交接单 #{payload.get('handover_id', '')}）",
    )


async def move_opportunities_of_merged_customer(rt: Runtime, payload: dict[str, Any]) -> None:
    """Two customer records are one person: the merged one's opportunities follow the survivor (a repeat: none left)."""
    await move_to_surviving_customer(rt, from_customer=int(payload["from"]), into_customer=int(payload["into"]))


HANDLERS = [
    Handles(TRANSFERRED, move_opportunities_on_handover),
    Handles(MERGED_TOPIC, move_opportunities_of_merged_customer),
]
