"""What scrm.campaigns.referral runs in the background, registered explicitly: the composition root reads these lists."""

from __future__ import annotations

from scrm.campaigns.referral.invites import on_customer_merged, qualify_cron
from scrm.campaigns.referral.rewards import attribute_first_order, settle_goal
from scrm.campaigns.referral.services import GOAL_TOPIC
from scrm.core.jobs import CronSpec
from scrm.core.outbox import Handles
from scrm.crm.customers.services import MERGED_TOPIC

HANDLERS = [
    Handles(MERGED_TOPIC, on_customer_merged),
    Handles(GOAL_TOPIC, settle_goal),
    Handles("order.confirmed", attribute_first_order),
]

CRONS = [
    CronSpec("referral_qualify", qualify_cron, second=45),
]
