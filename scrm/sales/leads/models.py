"""Tables of leads (线索), every move of a lead between owners and the pool, assignment rules and the pool's
settings."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class Lead(Model, table=True):
    """A prospect (线索): who they are, where they came from, who works them."""

    __tablename__ = "leads"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    phone: str = Field(sa_type=sa.String(20), sa_column_kwargs={"server_default": ""})  # digits only, +86 removed
    corp_name: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    region: str = Field(sa_type=sa.String(32), sa_column_kwargs={"server_default": ""})  # 地区 (e.g. 上海, 华东), for assignment
    remark: str = Field(sa_type=sa.Text(), sa_column_kwargs={"server_default": ""})  # what they asked for
    source: str = Field(sa_type=sa.String(16))  # LeadSource
    source_ref: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})  # channel name, form name, file …
    customer_id: int | None = Field(default=None, foreign_key="customers.id", sa_type=BigId)  # the customer it is (or became)
    external_userid: str | None = Field(default=None, sa_type=sa.String(128))
    unionid: str | None = Field(default=None, sa_type=sa.String(128))
    status: str = Field(sa_type=sa.String(16))  # LeadStatus
    owner: str | None = Field(default=None, sa_type=sa.String(64))  # the salesperson (WeCom userid); None in the pool
    rule_id: int | None = Field(default=None, sa_type=BigId)  # the assignment rule that placed it (its return period applies)
    assigned_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    # The pool's clock: the last follow-up, claim or assignment. No follow-up for N days → back to the pool.
    last_activity_at: dt.datetime = Field(sa_type=UTCDateTime())
    pooled_from: str | None = Field(default=None, sa_type=sa.String(64))  # the owner before it went to the pool
    pooled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    closed_reason: str = Field(sa_type=sa.String(200), sa_column_kwargs={"server_default": ""})  # why invalid / converted how
    version: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (
        sa.Index("ix_leads_status_owner", "status", "owner"),
        sa.Index("ix_leads_status_activity", "status", "last_activity_at"),
        sa.Index("ix_leads_phone", "phone"),
        sa.Index("ix_leads_customer", "customer_id"),
        sa.Index("ix_leads_external_userid", "external_userid"),
        sa.Index("ix_leads_unionid", "unionid"),
    )


leads: sa.Table = Lead.__table__


class LeadMove(Model, table=True):
    """One move of a lead (线索流转记录): every owner change, pool return and claim, with who did it and why."""

    __tablename__ = "lead_moves"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    lead_id: int = Field(foreign_key="leads.id", sa_type=BigId)
    action: str = Field(sa_type=sa.String(16))  # MoveAction
    from_owner: str | None = Field(default=None, sa_type=sa.String(64))
    to_owner: str | None = Field(default=None, sa_type=sa.String(64))
    actor: str = Field(sa_type=sa.String(64))  # who did it (a person's name in the system, or "system")
    reason: str = Field(sa_type=sa.String(200), sa_column_kwargs={"server_default": ""})
    at: dt.datetime = Field(sa_type=UTCDateTime())

    __table_args__ = (
        sa.Index("ix_lead_moves_lead", "lead_id", "id"),
        sa.Index("ix_lead_moves_to_action_at", "to_owner", "action", "at"),  # a member's claims / assignments today (caps)
    )


lead_moves: sa.Table = LeadMove.__table__


class AssignmentRule(Model, table=True):
    """A rule that gives new leads to salespeople (线索分配规则): which leads (sources, regions, customer tags), to whom,
    how, and at most how many a day each. Rules are tried by priority; a lead no rule can place goes to the pool."""

    __tablename__ = "lead_assignment_rules"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(sa_type=sa.String(64))
    priority: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "100"})  # lower first
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})
    sources: list[str] = Field(sa_type=JSON, sa_column_kwargs={"server_default": "[]"})  # empty = any source
    regions: list[str] = Field(sa_type=JSON, sa_column_kwargs={"server_default": "[]"})  # empty = any region
    tag_ids: list[int] = Field(sa_type=JSON, sa_column_kwargs={"server_default": "[]"})  # the customer has one of them; empty = any
    members: list[str] = Field(sa_type=JSON)  # WeCom userids, in round-robin order
    method: str = Field(sa_type=sa.String(16))  # AssignMethod
    daily_cap: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # new leads per member per day; 0 = no cap
    return_after_days: int | None = Field(default=None, sa_type=sa.Integer())  # this rule's pool return period (None: the default)
    cursor: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})  # round robin: the next member's index
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


assignment_rules: sa.Table = AssignmentRule.__table__


class PoolSettings(Model, table=True):
    """The public pool's rules (公海规则), one row: when leads return, how many a salesperson may claim a day, how long
    the previous owner must wait before claiming a lead back."""

    __tablename__ = "lead_pool_settings"

    id: int = Field(primary_key=True, sa_type=sa.Integer())  # always 1
    return_after_days: int = Field(sa_type=sa.Integer())  # no follow-up for this many days → back to the pool (0 = never)
    claim_daily_cap: int = Field(sa_type=sa.Integer())  # claims per salesperson per day (0 = no cap)
    reclaim_block_days: int = Field(sa_type=sa.Integer())  # the previous owner may not claim it back for this many days
    # a customer with no follow-up and no order from their salesperson for this many days goes to the pool (0 = never)
    customer_return_after_days: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})


pool_settings: sa.Table = PoolSettings.__table__
