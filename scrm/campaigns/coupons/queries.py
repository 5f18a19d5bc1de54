"""Coupon rows and their views (优惠券): the template and coupon dataclasses, the joined coupon query, the ledger
write. Shared by :mod:`scrm.campaigns.coupons.services` (templates, issuing) and :mod:`scrm.campaigns.coupons.discounts` (orders,
expiry); neither of those imports the other's internals."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns.coupons.domain import Budget, CouponRule, TemplateTerms, Validity
from scrm.campaigns.coupons.models import coupon_issue_runs, coupon_ledger, coupon_templates, coupons

T = coupon_templates.c
C = coupons.c
R = coupon_issue_runs.c


def rule_of(r: Any) -> CouponRule:
    """The discount terms from a template row (or a coupon row joined with its template's terms)."""
    return CouponRule(
        r.kind,
        int(r.amount_off_fen),
        int(r.percent_off),
        None if r.max_off_fen is None else int(r.max_off_fen),
        int(r.threshold_fen),
        frozenset(r.skus or ()),
        frozenset(r.categories or ()),
        bool(r.stackable),
    )


@dataclass(frozen=True)
class CouponTemplate:
    id: int
    name: str
    rule: CouponRule
    budget: Budget
    per_customer_limit: int
    validity: Validity
    active: bool

    @classmethod
    def from_row(cls, r: Any) -> CouponTemplate:
        rule = rule_of(r)
        budget = Budget(r.budget_count, None if r.budget_fen is None else int(r.budget_fen), int(r.issued_count), int(r.issued_fen))
        return cls(
            int(r.id), r.name, rule, budget, int(r.per_customer_limit), Validity(r.valid_from, r.valid_until, r.valid_days), bool(r.active)
        )

    @property
    def terms(self) -> TemplateTerms:
        return TemplateTerms(self.name, self.rule, self.budget.budget_count, self.budget.budget_fen, self.per_customer_limit, self.validity)

    def to_json(self) -> dict[str, Any]:
        values = template_values(self.terms)
        times = {k: values[k].isoformat() if values[k] else None for k in ("valid_from", "valid_until")}
        issued = {"issued_count": self.budget.issued_count, "issued_fen": self.budget.issued_fen}
        return {"id": self.id, "label": self.rule.label, **values, **times, **issued, "active": self.active}


@dataclass(frozen=True)
class CouponView:
    id: int
    code: str
    template_id: int
    name: str
    label: str
    status: str
    source: str
    issued_at: dt.datetime
    expires_at: dt.datetime | None
    order_id: int | None
    discount_fen: int

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "id"}
        return {**out, "issued_at": self.issued_at.isoformat(), "expires_at": self.expires_at.isoformat() if self.expires_at else None}


def template_values(terms: TemplateTerms) -> dict[str, Any]:
    r, v = terms.rule, terms.validity
    return {
        "name": terms.name.strip(),
        "kind": r.kind,
        "amount_off_fen": r.amount_off_fen,
        "percent_off": r.percent_off,
        "max_off_fen": r.max_off_fen,
        "threshold_fen": r.threshold_fen,
        "skus": sorted(r.skus),
        "categories": sorted(r.categories),
        "stackable": r.stackable,
        "budget_count": terms.budget_count,
        "budget_fen": terms.budget_fen,
        "per_customer_limit": terms.per_customer_limit,
        "valid_from": v.valid_from,
        "valid_until": v.valid_until,
        "valid_days": v.valid_days,
    }


async def write_ledger(
    conn: AsyncConnection, coupon_id: int, event: str, now: dt.datetime, *, order_id: int | None = None, amount: int = 0, actor: str = ""
) -> None:
    await conn.execute(
        coupon_ledger.insert().values(coupon_id=coupon_id, event=event, order_id=order_id, amount_fen=amount, at=now, actor=actor)
    )


_TERMS = (T.name, T.kind, T.amount_off_fen, T.percent_off, T.max_off_fen, T.threshold_fen, T.skus, T.categories, T.stackable, T.valid_from)


def coupon_query() -> sa.Select[Any]:
    """Coupons with their template's terms (no column names shared, so rows read plainly)."""
    return sa.select(coupons, *_TERMS).join(coupon_templates, T.id == C.template_id)


def coupon_view(r: Any) -> CouponView:
    order_id = None if r.order_id is None else int(r.order_id)
    return CouponView(
        int(r.id),
        r.code,
        int(r.template_id),
        r.name,
        rule_of(r).label,
        r.status,
        r.source,
        r.issued_at,
        r.expires_at,
        order_id,
        int(r.discount_fen),
    )


async def ledger_stats(conn: AsyncConnection, template_id: int | None = None) -> dict[int, dict[str, tuple[int, int]]]:
    """Per template: ``event → (count, amount_fen)`` from the coupon ledger (one template's when ``template_id``)."""
    q = (
        sa.select(C.template_id, coupon_ledger.c.event, sa.func.count(), sa.func.coalesce(sa.func.sum(coupon_ledger.c.amount_fen), 0))
        .select_from(coupon_ledger.join(coupons, C.id == coupon_ledger.c.coupon_id))
        .group_by(C.template_id, coupon_ledger.c.event)
    )
    if template_id is not None:
        q = q.where(C.template_id == template_id)
    out: dict[int, dict[str, tuple[int, int]]] = {}
    for tid, event, n, fen in await conn.execute(q):
        out.setdefault(int(tid), {})[event] = (int(n), int(fen))
    return out


# ---- distributions to a segment (coupon_issue_runs) -------------------------------------------------------
@dataclass(frozen=True)
class IssueRunView:
    """One distribution to a segment and what came of it (see models.IssueRunStatus)."""

    id: int
    template_id: int
    run_ref: str
    segment: str
    requested_by: str
    status: str
    matched: int
    issued: int
    already: int
    skipped_limit: int
    skipped_budget: int
    failed: int
    failures: list[str]
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def from_row(cls, r: Any) -> IssueRunView:
        counts = (int(r.matched), int(r.issued), int(r.already), int(r.skipped_limit), int(r.skipped_budget), int(r.failed))
        return cls(
            int(r.id), int(r.template_id), r.run_ref, r.segment, r.requested_by, r.status, *counts, list(r.failures or []), r.error,
            r.created_at, r.started_at, r.finished_at,
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k in ("created_at", "started_at", "finished_at"):
            out[k] = out[k].isoformat() if out[k] else None
        return out


async def issue_runs(conn: AsyncConnection, template_id: int, *, limit: int = 20) -> list[IssueRunView]:
    """A template's distributions to segments, newest first."""
    q = sa.select(coupon_issue_runs).where(R.template_id == template_id).order_by(R.id.desc()).limit(limit)
    return [IssueRunView.from_row(r) for r in await conn.execute(q)]


async def issue_run(conn: AsyncConnection, template_id: int, run_id: int) -> IssueRunView | None:
    q = sa.select(coupon_issue_runs).where(R.template_id == template_id, R.id == run_id)
    row = (await conn.execute(q)).first()
    return IssueRunView.from_row(row) if row else None
