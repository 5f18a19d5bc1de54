"""Tables of approvals (审批): the rules a business writes, and each document's approval with its steps."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for the current step's approvers
    APPROVED = "approved"  # every step approved: the document went on
    REJECTED = "rejected"  # one approver said no: the document went back with the reason
    WITHDRAWN = "withdrawn"  # the document was cancelled (or withdrawn in WeCom) before a decision


class ApprovalRule(Model, table=True):
    """审批规则: documents of one type that meet every condition wait for the approver chain."""

    __tablename__ = "approval_rules"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    name: str = Field(sa_type=sa.String(64))
    doc_type: str = Field(sa_type=sa.String(32), index=True)  # order | credit_release
    conditions: list[dict[str, Any]] = Field(sa_type=JSON)  # [{"field": "amount_fen", "op": ">=", "value": 10000000}]
    steps: list[dict[str, Any]] = Field(sa_type=JSON)  # [{"role": "finance"} | {"lead": true} | {"member": "userid"}]
    mode: str = Field(sa_type=sa.String(16))  # sequential: every step in order | any: one approval from any step
    priority: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "100"})  # lower first; the first match applies
    active: bool = Field(sa_type=sa.Boolean(), sa_column_kwargs={"server_default": sa.true()})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    created_by: str = Field(sa_type=sa.String(64))
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())


approval_rules: sa.Table = ApprovalRule.__table__


class Approval(Model, table=True):
    """One document's approval: which rule, who asked, the steps and each decision, and its WeCom twin (sp_no)."""

    __tablename__ = "approvals"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    doc_type: str = Field(sa_type=sa.String(32))
    doc_ref: str = Field(sa_type=sa.String(64))  # the document's number (SO100001, the held order for a credit release)
    doc_summary: str = Field(sa_type=sa.String(300), sa_column_kwargs={"server_default": ""})
    facts: dict[str, Any] = Field(sa_type=JSON)  # what the rule was checked against (amount, categories …)
    rule_id: int = Field(sa_type=BigId)
    rule_name: str = Field(sa_type=sa.String(64))
    mode: str = Field(sa_type=sa.String(16))
    # [{"kind": "role"|"lead"|"member", "role"?, "userids": [...], "label", "decided_by"?, "decision"?, "comment"?, "at"?}]
    steps: list[dict[str, Any]] = Field(sa_type=JSON)
    current_step: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "0"})
    status: str = Field(sa_type=sa.String(16), index=True)
    requester_kind: str = Field(sa_type=sa.String(16))  # the audit actor kind: staff, sidebar, token, admin, system
    requester: str = Field(sa_type=sa.String(64))  # username or WeCom userid
    requester_userid: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})  # their WeCom userid, when known
    customer_id: int | None = Field(default=None, sa_type=BigId)  # the customer waiting, told of a rejection in chat
    notes: list[str] = Field(sa_type=JSON)  # what the requester was told along the way (an approver replaced …)
    sp_no: str | None = Field(default=None, sa_type=sa.String(64), unique=True)  # the WeCom 审批单号, once submitted
    version: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "1"})
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    decided_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    decision_comment: str = Field(sa_type=sa.String(500), sa_column_kwargs={"server_default": ""})

    __table_args__ = (sa.Index("ix_approvals_doc", "doc_type", "doc_ref"),)


approvals: sa.Table = Approval.__table__
