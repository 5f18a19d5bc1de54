"""What bots.dialogue runs in the background, registered explicitly: the composition root reads these lists."""

from __future__ import annotations

from bots.dialogue.answering import kf_customer_text, kf_enter_session, mp_subscribe, mp_text
from bots.dialogue.inquiries import STAFF_ALERT, staff_alert_requested
from bots.gateway.processing import Processes
from scrm.core.outbox import Handles

HANDLERS = [Handles(STAFF_ALERT, staff_alert_requested)]

PROCESSORS = [
    Processes("kf", "kf.customer.text", kf_customer_text),
    Processes("kf", "kf.event.enter_session", kf_enter_session),
    Processes("mp", "message.text", mp_text),
    Processes("mp", "event.subscribe", mp_subscribe),
]
