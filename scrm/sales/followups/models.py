"""The follow-up table (跟进记录): what was done with a lead or customer, and when to contact them next."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class FollowUp(Model, table=True):
    """One follow-up (跟进记录) on a lead or a customer. Its next-contact date is a to-do for ``owner`` until a later
    follow-up on the same lead or customer is recorded (``next_done_at``)."""

    __tablename__ = "follow_ups"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    lead_id: int | None = Field(default=None, foreign_key="leads.id", sa_type=BigId)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", sa_type=BigId)
    opportunity_id: int | None = Field(default=None, sa_type=BigId)  # the opportunity it was about (商机), if any
    owner: str = Field(sa_type=sa.String(64))  # the salesperson accountable (WeCom userid): reminded on the day
    author: str = Field(sa_type=sa.String(64))  # who wrote it (a person's name in the system)
    kind: str = Field(sa_type=sa.String(16))  # FollowUpKind
    body: str = Field(sa_type=sa.Text())
    next_contact_on: dt.date | None = Field(default=None, sa_type=sa.Date())  # business-local date
    next_done_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())  # a later follow-up came (or marked done)
    reminded_on: dt.date | None = Field(default=None, sa_type=sa.Date())  # the reminder was sent (once)
    created_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (
        sa.Index("ix_follow_ups_lead", "lead_id", "id"),
        sa.Index("ix_follow_ups_customer", "customer_id", "id"),
        sa.Index("ix_follow_ups_due", "owner", "next_contact_on"),
    )


follow_ups: sa.Table = FollowUp.__table__
