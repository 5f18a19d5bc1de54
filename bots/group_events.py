"""Processing of group_events (being built)."""
