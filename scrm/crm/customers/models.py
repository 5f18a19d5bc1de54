"""Customers, the identities that point at them (external_userid, openid, unionid), and staff notes on them."""

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
