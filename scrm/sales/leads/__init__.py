"""Leads (线索) and the public pool (公海): where prospects come from, who works them, and when they go back."""
