"""Table of the bot dialogue: one conversation state and answering lease per customer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


# One row per customer in conversation with the bot: what the bot is waiting for (e.g. which of two products
# was meant) and a short lease so one process answers a customer's messages at a time, in order.
class DialogSession(Model, table=True):
    """The bot's conversation state with one customer (对话会话) and who holds its answering lease."""

    __tablename__ = "dialog_sessions"

    customer_id: int = Field(primary_key=True, sa_type=BigId)
    state: dict[str, Any] = Field(sa_type=JSON)
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())
    lease_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    lease_owner: str | None = Field(default=None, sa_type=sa.String(32))


dialog_sessions: sa.Table = DialogSession.__table__
