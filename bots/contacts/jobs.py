"""What bots.contacts runs in the background, registered explicitly: the composition root reads these lists."""

from __future__ import annotations

from bots.contacts.customers import (
    CONTACT,
    ENRICH_JOB,
    SALESPERSON_JOB,
    contact_added,
    contact_edited,
    contact_half_added,
    customer_deleted_salesperson,
    enrich_contact,
    refresh_salesperson_job,
    salesperson_deleted_customer,
    transfer_failed,
)
from bots.contacts.groups import (
    REFRESH_TOPIC,
    group_created,
    group_dismissed,
    group_updated,
    on_refresh_requested,
    refresh_group_chat_job,
)
from bots.contacts.handover import tell_members
from bots.contacts.referral import GROUP_JOIN_TOPIC, attribute_group_joins, send_progress
from bots.contacts.tags import on_tag_change, push_customer_tag
from bots.contacts.timeline import message_to_timeline, order_cancelled, order_confirmed, order_delivered, order_shipped, payment_recorded
from bots.gateway.domain import TAG_CHANGES
from bots.gateway.processing import Processes
from scrm.campaigns.referral import services as referral_services
from scrm.core.jobs import JobSpec
from scrm.core.outbox import Handles
from scrm.crm.tags.services import CUSTOMER_TAG_CHANGED
from scrm.sales.handover import services as handover_services

PROCESSORS = [
    Processes("wecom", "change_external_chat.create", group_created),
    Processes("wecom", "change_external_chat.update", group_updated),
    Processes("wecom", "change_external_chat.dismiss", group_dismissed),
    Processes("wecom", CONTACT + "add_external_contact", contact_added),
    Processes("wecom", CONTACT + "add_half_external_contact", contact_half_added),
    Processes("wecom", CONTACT + "edit_external_contact", contact_edited),
    Processes("wecom", CONTACT + "del_follow_user", customer_deleted_salesperson),
    Processes("wecom", CONTACT + "del_external_contact", salesperson_deleted_customer),
    Processes("wecom", CONTACT + "transfer_fail", transfer_failed),
    *(Processes("wecom", f"change_external_tag.{change}", on_tag_change) for change in sorted(TAG_CHANGES)),
]

HANDLERS = [
    Handles(REFRESH_TOPIC, on_refresh_requested),
    Handles(CUSTOMER_TAG_CHANGED, push_customer_tag),
    Handles("inbound.received", message_to_timeline),
    Handles("order.confirmed", order_confirmed),
    Handles("order.shipped", order_shipped),
    Handles("order.delivered", order_delivered),
    Handles("order.cancelled", order_cancelled),
    Handles("billing.payment_recorded", payment_recorded),
    Handles(GROUP_JOIN_TOPIC, attribute_group_joins),
    Handles(referral_services.PROGRESS_TOPIC, send_progress),
    Handles(handover_services.FINISHED, tell_members),
]

JOBS = [
    JobSpec("refresh_group_chat", refresh_group_chat_job, max_tries=8),
    JobSpec(ENRICH_JOB, enrich_contact, max_tries=6, timeout=120),
    JobSpec(SALESPERSON_JOB, refresh_salesperson_job, max_tries=6, timeout=60),
]
