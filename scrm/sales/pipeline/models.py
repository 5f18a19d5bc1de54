"""Tables of the sales pipeline (销售漏斗): the configurable opportunity stages, the opportunities (商机) and every
stage change an opportunity went through."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class OpportunityStage(Model, table=True):
    """A stage of the pipeline (商机阶段): its order on the board, its win probability, and whether it closes the
    opportunity as won (赢单) or lost (输单). The admin edits them in the console."""

    __tablename__ = "opportunity_stages"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    key: str = Field(sa_type=sa.String(32), unique=True)  # stable code the API uses: initial, qualified, quoted …
    name: str = Field(sa_type=sa.String(32))  # 初步接触
    position: int = Field(sa_type=sa.Integer())  # order on the board, ascending
    probability_pct: int = Field(sa_type=sa.Integer())  # 0..100
    is_won: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.false()})
    is_lost: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.false()})
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})


opportunity_stages: sa.Table = OpportunityStage.__table__


class Opportunity(Model, table=True):
    """商机: a chance to sell to one customer, owned by a salesperson (WeCom userid), moving through the stages."""

    __tablename__ = "opportunities"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    customer_id: int = Field(sa_type=BigId, index=True)
    lead_id: int | None = Field(default=None, sa_type=BigId)  # the lead (线索) it came from, when it did
    owner_userid: str = Field(sa_type=sa.String(64), index=True)
    title: str = Field(sa_type=sa.String(100))
    stage: str = Field(sa_type=sa.String(32))  # opportunity_stages.key
    amount_fen: int = Field(sa_type=sa.BigInteger())
    expected_close_on: dt.date | None = Field(default=None, sa_type=sa.Date())  # business-local date
    probability_pct: int = Field(sa_type=sa.Integer())  # the stage's, unless overridden
    probability_overridden: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.false()})
    products: list[str] = Field(sa_type=JSON)  # SKUs of interest
    close_reason: str = Field(sa_type=sa.String(300), sa_column_kwargs={"server_default": ""})  # 赢单/输单原因
    closed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    version: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    created_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


opportunities: sa.Table = Opportunity.__table__


class OpportunityChange(Model, table=True):
    """One change of an opportunity's stage (or owner): who, when, from what to what, and why."""

    __tablename__ = "opportunity_history"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    opportunity_id: int = Field(sa_type=BigId, index=True)
    event: str = Field(sa_type=sa.String(16))  # created | stage | owner
    from_value: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    to_value: str = Field(sa_type=sa.String(64))
    actor: str = Field(sa_type=sa.String(64))
    note: str = Field(sa_type=sa.String(300), sa_column_kwargs={"server_default": ""})
    at: dt.datetime = Field(sa_type=UTCDateTime())
    data: dict[str, Any] = Field(sa_type=JSON)


opportunity_history: sa.Table = OpportunityChange.__table__
