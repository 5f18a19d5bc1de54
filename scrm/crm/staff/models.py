"""Tables of people who work here: console accounts (staff) and the corp's salespeople (企业成员)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


# Staff accounts for the console: password hashes with a real KDF (scrypt), roles per account.
class StaffUser(Model, table=True):
    """A console login (员工账号) with its roles."""

    __tablename__ = "staff_users"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    username: str = Field(unique=True, sa_type=sa.String(64))
    display_name: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    password_hash: str = Field(sa_type=sa.String(256))
    roles: list[str] = Field(sa_type=JSON)  # ["admin"] | ["marketer"] | ["operations"] | ["finance"] …
    # The same person as a WeCom member (企业成员 userid): their approvals reach them in WeCom, and "the requester's
    # lead" of what they ask for is their 直属上级 there.
    wecom_userid: str | None = Field(default=None, unique=True, sa_type=sa.String(64))
    data_scope: str = Field(sa_type=sa.String(8), sa_column_kwargs={"server_default": "all"})  # own | team | all (数据范围)
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})
    session_version: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})  # bump to revoke all sessions
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    last_login_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())


staff_users: sa.Table = StaffUser.__table__


# 企业成员: the salespeople (members of the corp) and whom they report to (for churn alerts).
class Salesperson(Model, table=True):
    """A member of the corp (企业成员) who serves customers, and their leader."""

    __tablename__ = "salespeople"

    userid: str = Field(primary_key=True, sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    department: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    leader_userid: str | None = Field(default=None, sa_type=sa.String(64))  # 直属上级, told when one of this person's customers leaves
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})
    synced_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: dt.datetime = Field(sa_type=UTCDateTime())


salespeople: sa.Table = Salesperson.__table__
