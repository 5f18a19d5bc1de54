"""SCRM: customers, salespeople, groups, tags, campaigns, the sidebar and the console."""
