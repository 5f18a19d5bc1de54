"""Customers, the identities that point at them (external_userid, openid, unionid), their salespeople (follows) and
staff notes on them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class Customer(Model, table=True):
    """A customer (客户), whatever identities point at them."""

    __tablename__ = "customers"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    avatar: str = Field(sa_type=sa.String(512), sa_column_kwargs={"server_default": ""})
    gender: int = Field(sa_type=sa.SmallInteger(), sa_column_kwargs={"server_default": "0"})  # 0 unknown, 1 male, 2 female
    corp_name: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    unionid: str | None = Field(default=None, sa_type=sa.String(128))
    custom_fields: dict[str, Any] = Field(sa_type=JSON, sa_column_kwargs={"server_default": "{}"})
    merged_into: int | None = Field(default=None, foreign_key="customers.id", sa_type=BigId)  # set when identities merged into another
    first_seen_at: dt.datetime = Field(sa_type=UTCDateTime())
    last_seen_at: dt.datetime = Field(sa_type=UTCDateTime())
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


customers: sa.Table = Customer.__table__


class CustomerIdentity(Model, table=True):
    """One identity of a customer: external_userid, openid or unionid (客户身份)."""

    __tablename__ = "customer_identities"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    customer_id: int = Field(foreign_key="customers.id", index=True, sa_type=BigId)
    kind: str = Field(sa_type=sa.String(24))  # external_userid | openid | unionid
    value: str = Field(sa_type=sa.String(128))
    created_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("kind", "value"),)


customer_identities: sa.Table = CustomerIdentity.__table__


class CustomerNote(Model, table=True):
    """A note a staff member wrote on a customer (客户备注)."""

    __tablename__ = "customer_notes"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    customer_id: int = Field(foreign_key="customers.id", index=True, sa_type=BigId)
    author: str = Field(sa_type=sa.String(64))
    body: str = Field(sa_type=sa.Text())
    created_at: dt.datetime = Field(sa_type=UTCDateTime())


customer_notes: sa.Table = CustomerNote.__table__


class FollowStatus:
    ACTIVE = "active"  # the customer is in this salesperson's contacts
    HALF = "half"  # add_half_external_contact: added without the customer's confirmation yet
    ENDED = "ended"  # one side deleted the other (ended_by says who)


# 客户关系: customer ↔ salesperson, with how it began (add_way, channel state) and how it ended.
class Follow(Model, table=True):
    """A customer ↔ salesperson relationship (客户关系): how it began and how it ended."""

    __tablename__ = "follows"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    customer_id: int = Field(foreign_key="customers.id", index=True, sa_type=BigId)
    userid: str = Field(sa_type=sa.String(64))
    external_userid: str = Field(sa_type=sa.String(128))
    status: str = Field(sa_type=sa.String(16))
    remark: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    description: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})
    add_way: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    state: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})  # the contact way's state (channel code)
    started_at: dt.datetime = Field(sa_type=UTCDateTime())
    ended_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    # customer (del_follow_user) | salesperson (del_external_contact) | transfer
    ended_by: str | None = Field(default=None, sa_type=sa.String(16))
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (
        sa.UniqueConstraint("userid", "external_userid"),
        sa.Index("ix_follows_state", "state"),
    )


follows: sa.Table = Follow.__table__
