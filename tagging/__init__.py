"""Tags from chat (explainable keyword/intent rules), activity segments, RFM, and the segment language."""
