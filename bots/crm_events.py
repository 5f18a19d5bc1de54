"""Processing of crm_events (being built)."""
