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


# The rules themselves live in the database, versioned: every save (from the console, an import, a roll back, the
# seed from config/tag_rules.toml on first start) is a new row; the highest version is the one in force. Processes
# compare the highest version number with the one they built their tagger from on each message, so a save is in
# force everywhere on the next message, with no file written in the code tree.
class TagRuleVersion(Model, table=True):
    """One version of the chat tagging rules (标签规则版本): the TOML text, who saved it, when and how."""

    __tablename__ = "tag_rule_versions"

    version: int = Field(primary_key=True, sa_type=sa.Integer(), sa_column_kwargs={"autoincrement": False})  # 1, 2, 3 …
    text: str = Field(sa_type=sa.Text())  # the rules as TOML (tagging.rules.domain.parse_rules reads it)
    digest: str = Field(sa_type=sa.String(16))  # domain.version_of(text): the RuleSet.version recorded on tagged messages
    rules: int = Field(sa_type=sa.Integer())  # how many rules the text has
    action: str = Field(sa_type=sa.String(16))  # seed | save | import | rollback
    restored_from: int | None = Field(default=None, sa_type=sa.Integer(), nullable=True)  # a roll back: the version restored
    created_by: str = Field(sa_type=sa.String(64))  # console:<user>, cli, system
    created_at: dt.datetime = Field(sa_type=UTCDateTime())


tag_rule_versions: sa.Table = TagRuleVersion.__table__
