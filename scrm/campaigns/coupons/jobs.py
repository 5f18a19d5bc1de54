"""What scrm.campaigns.coupons runs in the background, registered explicitly: the composition root reads these lists."""

from __future__ import annotations

from scrm.campaigns.coupons.discounts import expire_coupons_cron, follow_merge
from scrm.campaigns.coupons.services import issue_to_segment_job
from scrm.core.jobs import CronSpec, JobSpec
from scrm.core.outbox import Handles
from scrm.crm.customers.services import MERGED_TOPIC

JOBS = [
    JobSpec("coupons.issue_to_segment", issue_to_segment_job),
]

CRONS = [
    CronSpec("coupons.expire", expire_coupons_cron, minute={7, 37}, second=0),
]

HANDLERS = [
    Handles(MERGED_TOPIC, follow_merge),
]
