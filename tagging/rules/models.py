"""Tables of rule tagging: each rule's decaying score per customer, and which messages were already scored."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


# A rule's accumulated score on a customer. Each match adds the rule's weight; the score decays with time
# (half-life in the rules file); thresholds decide when the tag is applied and when it is removed again.
class TagScore(Model, table=True):
    """A tagging rule's decaying score on a customer (规则打分) with its evidence."""

    __tablename__ = "tag_scores"

    customer_id: int = Field(primary_key=True, sa_type=BigId)
    rule: str = Field(primary_key=True, sa_type=sa.String(64))  # the rule's id in the rules file
    score: float = Field(sa_type=sa.Float())  # score as of scored_at (decay is applied on read and update)
    scored_at: dt.datetime = Field(sa_type=UTCDateTime())
    last_message_ref: str = Field(sa_type=sa.String(96), sa_column_kwargs={"server_default": ""})  # evidence: the message
    last_words: list[str] = Field(sa_type=JSON)  # evidence: the matched words
    matches: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})


tag_scores: sa.Table = TagScore.__table__


# Which messages were already scored (a message tagged twice must not count twice).
class TaggedMessage(Model, table=True):
    """A message already scored by the tagging rules, so it counts once."""

    __tablename__ = "tagged_messages"

    ref: str = Field(primary_key=True, sa_type=sa.String(96))  # "inbound:123" / "archive:<msgid>"
    customer_id: int = Field(sa_type=BigId)
    rules_version: str = Field(sa_type=sa.String(64))
    tagged_at: dt.datetime = Field(sa_type=UTCDateTime())


tagged_messages: sa.Table = TaggedMessage.__table__
