"""The pipeline's reactions to other capabilities' events (thin: the logic is in the services)."""

from __future__ import annotations

from typing import Any

from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.sales.pipeline.services import transfer_open_opportunities

CUSTOMER_TRANSFERRED = "customer.transferred"  # written by the handover capability, once per customer handed over


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


HANDLERS = [Handles(CUSTOMER_TRANSFERRED, move_opportunities_on_handover)]
