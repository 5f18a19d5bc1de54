"""Tables of tagging: rule scores with decay, per-customer order aggregates, RFM, activity, saved segments."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core.db import JSON, BigId, UTCDateTime, metadata

# A rule's accumulated score on a customer. Each match adds the rule's weight; the score decays with time
# (half-life in the rules file); thresholds decide when the tag is applied and when it is removed again.
tag_scores = sa.Table(
    "tag_scores",
    metadata,
    sa.Column("customer_id", BigId, primary_key=True),
    sa.Column("rule", sa.String(64), primary_key=True),  # the rule's id in the rules file
    sa.Column("score", sa.Float(), nullable=False),  # score as of scored_at (decay is applied on read and update)
    sa.Column("scored_at", UTCDateTime(), nullable=False),
    sa.Column("last_message_ref", sa.String(96), nullable=False, server_default=""),  # evidence: the message
    sa.Column("last_words", JSON, nullable=False),  # evidence: the matched words
    sa.Column("matches", sa.Integer(), nullable=False, server_default="0"),
)


# Which messages were already scored (a message tagged twice must not count twice).
tagged_messages = sa.Table(
    "tagged_messages",
    metadata,
    sa.Column("ref", sa.String(96), primary_key=True),  # "inbound:123" / "archive:<msgid>"
    sa.Column("customer_id", BigId, nullable=False),
    sa.Column("rules_version", sa.String(64), nullable=False),
    sa.Column("tagged_at", UTCDateTime(), nullable=False),
)
