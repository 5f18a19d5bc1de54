"""Tables of repurchase alerts (复购预警): each customer × product's prediction, the alerts raised from them, and the
one row of settings the console edits (lead time, the coupon offered with a reminder)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import BigId, Model, UTCDateTime


class RepurchasePrediction(Model, table=True):
    """One customer × product: purchases so far, the usual interval and the predicted next purchase (recomputed)."""

    __tablename__ = "repurchase_predictions"

    customer_id: int = Field(primary_key=True, sa_type=BigId)
    sku: str = Field(primary_key=True, sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})  # the product's name on the last order
    purchases: int = Field(sa_type=sa.Integer())  # distinct purchase days
    last_purchase_on: dt.date = Field(sa_type=sa.Date())  # business-local date
    interval_days: int | None = Field(default=None, sa_type=sa.Integer())  # NULL: too little to predict
    basis: str = Field(sa_type=sa.String(8))  # own | product | none (see domain.Basis)
    next_due_on: dt.date | None = Field(default=None, sa_type=sa.Date())
    status: str = Field(sa_type=sa.String(16), index=True)  # unknown | waiting | due | at_risk, as of computed_at
    computed_at: dt.datetime = Field(sa_type=UTCDateTime())


repurchase_predictions: sa.Table = RepurchasePrediction.__table__


class RepurchaseAlert(Model, table=True):
    """A due reminder (复购提醒) or an at-risk recall task (流失预警) for the customer's salesperson."""

    __tablename__ = "repurchase_alerts"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    kind: str = Field(sa_type=sa.String(8))  # due | at_risk
    customer_id: int = Field(index=True, sa_type=BigId)
    sku: str = Field(sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    owner_userid: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})  # the salesperson (WeCom member)
    last_purchase_on: dt.date = Field(sa_type=sa.Date())  # the cycle the alert belongs to
    interval_days: int = Field(sa_type=sa.Integer())
    due_on: dt.date = Field(sa_type=sa.Date())  # the predicted purchase date
    status: str = Field(sa_type=sa.String(16))  # open | done | dismissed
    coupon_id: int | None = Field(default=None, sa_type=BigId)  # the coupon the salesperson sent with it
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    resolved_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    resolved_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})  # order:SO… | a person | system:…

    __table_args__ = (
        # once per customer × product × purchase cycle and kind: a cron run twice raises nothing new
        sa.UniqueConstraint("customer_id", "sku", "kind", "last_purchase_on"),
        sa.Index("ix_repurchase_alerts_status_owner", "status", "owner_userid"),
    )


repurchase_alerts: sa.Table = RepurchaseAlert.__table__


class RepurchaseSettings(Model, table=True):
    """The one row (id 1) of repurchase settings the admin edits in the console, and when the nightly recompute ran."""

    __tablename__ = "repurchase_settings"

    id: int = Field(primary_key=True, sa_type=sa.Integer())
    lead_days: int = Field(sa_type=sa.Integer(), sa_column_kwargs={"server_default": "3"})  # remind N days before the date
    coupon_template_id: int | None = Field(default=None, sa_type=BigId)  # offered with reminders; NULL = none
    updated_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_by: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    recomputed_on: dt.date | None = Field(default=None, sa_type=sa.Date())  # business day of the last full recompute


repurchase_settings: sa.Table = RepurchaseSettings.__table__
