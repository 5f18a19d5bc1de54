"""What bots.notices runs in the background, registered explicitly: the composition root reads these lists."""

from __future__ import annotations

from bots.notices.billing import on_attention, on_campaign_attention, on_credit_hold, on_dunning
from bots.notices.broadcasts import plan_broadcast_job, run_broadcasts_cron, send_chunk
from bots.notices.coupons import on_coupon_issued
from bots.notices.orders import (
    on_backorder_filled,
    on_order_awaiting_approval,
    on_order_cancelled,
    on_order_confirmed,
    on_order_delivered,
    on_order_shipped,
    on_stock_low,
)
from bots.notices.repurchase import on_alerts_opened
from bots.notices.sales import on_follow_ups_due, on_lead_assigned
from scrm.campaigns.attention import ATTENTION_TOPIC
from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.coupons.services import ISSUED_TOPIC as COUPON_ISSUED
from scrm.core.jobs import CronSpec, JobSpec
from scrm.core.outbox import Handles
from scrm.sales.followups.services import DUE_TOPIC as FOLLOW_UP_DUE
from scrm.sales.leads.services import ASSIGNED_TOPIC
from scrm.sales.repurchase.services import ALERTS_OPENED as REPURCHASE_ALERTS_OPENED

HANDLERS = [
    Handles(broadcasts.SEND_TOPIC, send_chunk),
    Handles("billing.dunning", on_dunning),
    Handles("billing.credit_hold", on_credit_hold),
    Handles("billing.attention", on_attention),
    Handles(ATTENTION_TOPIC, on_campaign_attention),
    Handles("order.confirmed", on_order_confirmed),
    Handles("order.shipped", on_order_shipped),
    Handles("order.delivered", on_order_delivered),
    Handles("order.cancelled", on_order_cancelled),
    Handles("order.awaiting_approval", on_order_awaiting_approval),
    Handles("order.backorder_filled", on_backorder_filled),
    Handles("stock.low", on_stock_low),
    Handles(COUPON_ISSUED, on_coupon_issued),
    Handles(ASSIGNED_TOPIC, on_lead_assigned),
    Handles(FOLLOW_UP_DUE, on_follow_ups_due),
    Handles(REPURCHASE_ALERTS_OPENED, on_alerts_opened),
]

CRONS = [
    CronSpec("broadcasts.run", run_broadcasts_cron, second=0),
]

JOBS = [
    JobSpec("broadcasts.plan", plan_broadcast_job),
]
