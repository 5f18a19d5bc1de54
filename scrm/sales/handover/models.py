"""Tables of handovers (交接): one handover of a member's customers (and groups) to another member, and each
customer's and group's transfer with its WeCom status."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


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
