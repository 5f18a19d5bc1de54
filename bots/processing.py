"""Processing of stored inbound events (outbox topic ``inbound.received``)."""
