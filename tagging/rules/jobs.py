"""Where tagging listens: stored customer messages (outbox topics) and the daily decay (cron). Thin: each handler
reads what the message was and calls :func:`tagging.rules.services.tag_message`, which is idempotent per message, so a
row handled twice scores once. Several handlers per topic are allowed; these run beside the others.
"""

from __future__ import annotations

import logging
from typing import Any

from scrm.core.jobs import CronSpec, JobContext
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.crm.archive.services import TOPIC as ARCHIVE_TOPIC
from scrm.crm.customers.services import MERGED_TOPIC
from tagging.rules.services import CustomerText, archive_customer_text, decay_scores, inbound_customer_text, merge_scores, tag_message

log = logging.getLogger(__name__)

INBOUND_TOPIC = "inbound.received"  # bots.gateway.services.TOPIC (tagging may not import bots)


async def _tag(rt: Runtime, item: CustomerText | None) -> None:
    if item is None:
        return
    outcome = await tag_message(rt, item.customer_id, item.text, item.ref, item.at)
    if outcome.applied or outcome.removed:
        log.info(
            "rule tags changed",
            extra={"customer_id": outcome.customer_id, "ref": item.ref, "applied": list(outcome.applied), "removed": list(outcome.removed)},
        )


async def tag_inbound_text(rt: Runtime, payload: dict[str, Any]) -> None:
    """A customer's kf or Official Account text → rule tags (other inbound kinds are ignored)."""
    await _tag(rt, await inbound_customer_text(rt, int(payload["inbound_id"])))


async def tag_archive_text(rt: Runtime, payload: dict[str, Any]) -> None:
    """A customer's text in the chat archive (1:1 or group) → rule tags."""
    await _tag(rt, await archive_customer_text(rt, str(payload["msgid"])))


async def move_scores_of_merged_customer(rt: Runtime, payload: dict[str, Any]) -> None:
    """Scores follow a customer merged into another (their tags moved with the merge itself)."""
    await merge_scores(rt, int(payload["from"]), int(payload["into"]))


# Daily, at a quiet hour (19:40 UTC ≈ 03:40 in China when the worker runs on UTC). One run per tick across workers.
async def tag_score_decay(ctx: JobContext) -> None:
    """Take off rule tags whose score decayed below the rule's remove_threshold."""
    report = await decay_scores(ctx.rt)
    log.info("tag scores decayed", extra={"checked": report.checked, "removed": report.removed, "pruned": report.pruned})


HANDLERS = [
    Handles(INBOUND_TOPIC, tag_inbound_text),
    Handles(ARCHIVE_TOPIC, tag_archive_text),
    Handles(MERGED_TOPIC, move_scores_of_merged_customer),
]

CRONS = [
    CronSpec("tag_score_decay", tag_score_decay, hour=19, minute=40, second=0),
]
