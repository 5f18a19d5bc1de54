"""What the callback gateway runs in the background: processing each stored inbound event (registered explicitly;
the composition root reads these lists)."""

from __future__ import annotations

from bots.gateway.processing import process_inbound
from bots.gateway.services import TOPIC
from scrm.core.outbox import Handles

HANDLERS = [Handles(TOPIC, process_inbound)]
