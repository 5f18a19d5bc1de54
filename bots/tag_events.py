"""Processing of tag_events (being built)."""
