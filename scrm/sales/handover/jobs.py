"""What handovers run in the background, registered explicitly (the composition root reads these lists): sending a
recorded handover to WeCom, and polling transfer_result for customers waiting for their 24 h."""

from __future__ import annotations

from typing import Any

from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.sales.handover import services


async def send_requested(rt: Runtime, payload: dict[str, Any]) -> None:
    """handover.requested: send its pending customers (≤ 100 a call) and groups; a re-run sends only what is left."""
    await services.send_handover(rt, int(payload["handover_id"]))


async def poll_results(ctx: JobContext) -> int:
    """Every 10 minutes: how the waiting transfers stand in WeCom (taken over, refused, member full)."""
    return await services.poll_running(ctx.rt)


HANDLERS = [Handles(services.REQUESTED, send_requested)]
CRONS = [CronSpec("poll_handover_results", poll_results, minute=set(range(0, 60, 10)), second=0)]
