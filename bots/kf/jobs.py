"""What the 微信客服 (kf) channel runs in the background, registered explicitly (the composition root reads these)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bots.gateway.processing import Processes
from bots.kf.profiles import PROFILE_JOB, fetch_profiles_job
from bots.kf.services import LEASE as KF_LEASE
from bots.kf.services import kf_sync_sweep, lease_wait, request_sync, run_sync, sync_covers
from scrm.core.jobs import CronSpec, JobSpec
from scrm.core.runtime import Runtime


async def kf_news(rt: Runtime, row: Any) -> str:
    open_kfid = row.open_kfid or rt.settings.kf_open_kfid
    seq = await request_sync(rt, open_kfid, str(row.payload.get("Token", "")))
    stored = await run_sync(rt, open_kfid)
    deadline = time.monotonic() + KF_LEASE.total_seconds() + 5
    while not await sync_covers(rt, open_kfid, seq) and time.monotonic() < deadline:
        # Another process holds the sync lease and goes round once more for this news — unless it died: then the
        # news is ours to read once its lease lapses (else only the once-a-minute sweep would, much later).
        await asyncio.sleep(min(max(await lease_wait(rt, open_kfid), 0.2), 1.0))
        stored += await run_sync(rt, open_kfid)
    return f"synced {stored} new kf messages"


PROCESSORS = [Processes("wecom", "kf_msg_or_event", kf_news)]


CRONS = [
    CronSpec("kf_sync_sweep", kf_sync_sweep, second=30),
]

JOBS = [
    JobSpec(PROFILE_JOB, fetch_profiles_job),  # 微信客服 customers' nicknames and avatars (kf/customer/batchget)
]
