"""Tables of handovers (交接): one handover of a member's customers (and groups) to another member, and each
customer's and group's transfer with its WeCom status."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class HandoverKind(enum.StrEnum):
    ONJOB = "onjob"  # 在职转接: the member still works here; each customer at most twice in 90 days
    RESIGNED = "resigned"  # 离职继承: the member left; their customers wait in WeCom's unassigned list


class HandoverStatus(enum.StrEnum):
    RUNNING = "running"  # some customer is still being sent or waits for its 24 h
    DONE = "done"  # every customer and group has its outcome


class TransferStatus(enum.StrEnum):
    PENDING = "pending"  # recorded, not yet sent to WeCom
    WAITING = "waiting"  # WeCom started it: the takeover member gets the customer after 24 h unless they refuse
    SUCCESS = "success"  # taken over: follows, open orders and other owned rows moved
    REFUSED = "refused"  # the customer refused: they stay with the handover member
    LIMIT_EXCEEDED = "limit_exceeded"  # transferred twice in 90 days already (40128), or the takeover member is full
    FAILED = "failed"  # WeCom refused it (errcode says why)


class Handover(Model, table=True):
    """交接: ``from_userid``'s customers (all or chosen) handed to ``to_userid``."""

    __tablename__ = "handovers"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    kind: str = Field(sa_type=sa.String(16))
    from_userid: str = Field(sa_type=sa.String(64), index=True)
    to_userid: str = Field(sa_type=sa.String(64), index=True)
    status: str = Field(sa_type=sa.String(16), index=True)
    requested_by: str = Field(sa_type=sa.String(64))  # who asked (the audit actor's name)
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())


handovers: sa.Table = Handover.__table__


class HandoverCustomer(Model, table=True):
    """One customer of a handover and where their WeCom transfer stands."""

    __tablename__ = "handover_customers"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    handover_id: int = Field(foreign_key="handovers.id", sa_type=BigId)
    customer_id: int = Field(sa_type=BigId, index=True)
    external_userid: str = Field(sa_type=sa.String(128))
    status: str = Field(sa_type=sa.String(16))
    errcode: int | None = Field(default=None, sa_type=sa.Integer())
    reason: str = Field(sa_type=sa.String(200), sa_column_kwargs={"server_default": ""})
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (
        sa.UniqueConstraint("handover_id", "external_userid"),
        sa.Index("ix_handover_customers_status", "status", "external_userid"),
    )


handover_customers: sa.Table = HandoverCustomer.__table__


class HandoverGroup(Model, table=True):
    """One customer group (客户群) owned by the handover member, and whether its owner changed."""

    __tablename__ = "handover_groups"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    handover_id: int = Field(foreign_key="handovers.id", sa_type=BigId)
    chat_id: str = Field(sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    status: str = Field(sa_type=sa.String(16))  # pending | success | failed
    errcode: int | None = Field(default=None, sa_type=sa.Integer())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("handover_id", "chat_id"),)


handover_groups: sa.Table = HandoverGroup.__table__
