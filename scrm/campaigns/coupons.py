"""Coupon use cases (优惠券): templates, issuing (to a customer, a segment, as a referral reward, from the sidebar),
holding/redeeming/releasing with orders, expiry — every change of a coupon written to ``coupon_ledger``.

Guarantees
* No over-issue: issuing locks the template row (PostgreSQL ``FOR UPDATE``; SQLite writers are serialised by
  ``BEGIN IMMEDIATE``), checks the per-customer limit, then spends the budget with a guarded
  ``UPDATE … WHERE issued_count + 1 <= budget_count AND issued_fen + face <= budget_fen`` (and the table's CHECK
  constraint backs it up). A failed issue spends nothing.
* Idempotent issuing: the same ``source_ref`` (e.g. ``referral:<campaign>:<inviter>``) always gives one coupon.
* One order per coupon: a coupon moves issued → reserved only with ``WHERE status = 'issued'``; reserved →
  redeemed / back to issued only for the order holding it — in the order's own transaction (see
  :mod:`fulfillment.discounts`), so a confirm run twice or concurrently redeems once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.discounts import AppliedDiscount, DiscountLine
from scrm.campaigns.coupon_domain import (
    Budget,
    Candidate,
    CouponRule,
    CouponUnavailable,
    Line,
    TemplateInUse,
    TemplateTerms,
    Validity,
    best_choice,
    check_can_issue,
    expiry_for,
    usable_at,
    validate_terms,
)
from scrm.campaigns.models import CouponStatus as CS
from scrm.campaigns.models import coupon_ledger, coupon_templates, coupons
from scrm.core import outbox
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.ids import short_id
from scrm.core.jobs import JobContext, cron, job
from scrm.core.runtime import Runtime
from scrm.customers.services import MERGED_TOPIC, lock_customer, resolve_customer
from scrm.timeline.services import Kind, add_entry

SOURCES = ("segment", "referral", "sidebar", "console", "api")
T = coupon_templates.c
C = coupons.c


def _rule(r: Any) -> CouponRule:
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
        rule = _rule(r)
        budget = Budget(r.budget_count, None if r.budget_fen is None else int(r.budget_fen), int(r.issued_count), int(r.issued_fen))
        return cls(
            int(r.id), r.name, rule, budget, int(r.per_customer_limit), Validity(r.valid_from, r.valid_until, r.valid_days), bool(r.active)
        )

    @property
    def terms(self) -> TemplateTerms:
        return TemplateTerms(self.name, self.rule, self.budget.budget_count, self.budget.budget_fen, self.per_customer_limit, self.validity)

    def to_json(self) -> dict[str, Any]:
        values = _template_values(self.terms)
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


# ---- templates ------------------------------------------------------------------------------------------
def _template_values(terms: TemplateTerms) -> dict[str, Any]:
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


async def create_template(rt: Runtime, terms: TemplateTerms, *, active: bool = True) -> CouponTemplate:
    """Create a template after validating its terms (a percent coupon needs a cap; budgets positive …)."""
    validate_terms(terms)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        values = {**_template_values(terms), "active": active, "created_at": now, "updated_at": now}
        template_id = int((await conn.execute(coupon_templates.insert().values(**values).returning(T.id))).scalar_one())
        return await _template(conn, template_id)


async def update_template(rt: Runtime, template_id: int, terms: TemplateTerms, *, active: bool) -> CouponTemplate:
    """Change a template. Once coupons are out, the discount terms (kind, amounts, SKUs, stacking) are fixed —
    those coupons were promised them — and budgets cannot go below what was already issued."""
    validate_terms(terms)
    async with rt.db.write() as conn:
        current = await _template(conn, template_id, lock=True)
        if current.budget.issued_count and terms.rule != current.rule:
            raise TemplateInUse("已发放的券不能修改优惠规则，请新建模板 (discount terms are fixed once issued)", template_id=template_id)
        b = current.budget
        if (terms.budget_count is not None and terms.budget_count < b.issued_count) or (
            terms.budget_fen is not None and terms.budget_fen < b.issued_fen
        ):
            raise InvalidInput("预算不能低于已发放数量/金额 (budget below what is already issued)", field="budget_count")
        values = {**_template_values(terms), "active": active, "updated_at": rt.clock.now()}
        await conn.execute(coupon_templates.update().where(T.id == template_id).values(**values))
        return await _template(conn, template_id)


async def _template(conn: AsyncConnection, template_id: int, *, lock: bool = False) -> CouponTemplate:
    q = sa.select(coupon_templates).where(T.id == template_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound("没有这个优惠券模板 (no such coupon template)", template_id=template_id)
    return CouponTemplate.from_row(row)


async def get_template(rt: Runtime, template_id: int) -> CouponTemplate:
    async with rt.db.read() as conn:
        return await _template(conn, template_id)


async def list_templates(rt: Runtime, *, active: bool | None = None) -> list[CouponTemplate]:
    q = sa.select(coupon_templates).order_by(T.id.desc())
    if active is not None:
        q = q.where(T.active == active)
    async with rt.db.read() as conn:
        return [CouponTemplate.from_row(r) for r in await conn.execute(q)]


# ---- issuing --------------------------------------------------------------------------------------------
async def _ledger(
    conn: AsyncConnection, coupon_id: int, event: str, now: dt.datetime, *, order_id: int | None = None, amount: int = 0, actor: str = ""
) -> None:
    await conn.execute(
        coupon_ledger.insert().values(coupon_id=coupon_id, event=event, order_id=order_id, amount_fen=amount, at=now, actor=actor)
    )


async def _by_source_ref(conn: AsyncConnection, source_ref: str) -> CouponView | None:
    row = (await conn.execute(_coupon_query().where(C.source_ref == source_ref))).first()
    return _coupon(row) if row else None


async def issue_coupon(
    rt: Runtime, template_id: int, customer_id: int, *, source: str, source_ref: str | None = None, actor: str = ""
) -> CouponView:
    """Give one coupon of the template to the customer, or raise CouponUnavailable (inactive, expired, budget,
    per-customer limit). With ``source_ref`` a repeated call returns the first coupon and spends nothing more —
    referral rewards use ``referral:<campaign>:<inviter>``. Safe under any concurrency (see the module)."""
    return (await _issue(rt, template_id, customer_id, source=source, source_ref=source_ref, actor=actor))[0]


async def _issue(
    rt: Runtime, template_id: int, customer_id: int, *, source: str, source_ref: str | None, actor: str
) -> tuple[CouponView, bool]:
    if source not in SOURCES:
        raise InvalidInput(f"来源只能是 {'/'.join(SOURCES)} (unknown source)", field="source")
    if source_ref is not None and not 0 < len(source_ref) <= 96:
        raise InvalidInput("source_ref 长度须为 1–96 (source_ref must be 1–96 chars)", field="source_ref")
    now = rt.clock.now()
    try:
        async with rt.db.write() as conn:
            tpl = await _template(conn, template_id, lock=True)  # issuers of one template queue here
            if source_ref is not None and (found := await _by_source_ref(conn, source_ref)) is not None:
                return found, False
            customer_id = await lock_customer(conn, customer_id)
            held = (
                await conn.execute(
                    sa.select(sa.func.count()).where(C.template_id == template_id, C.customer_id == customer_id, C.status != CS.REVOKED)
                )
            ).scalar_one()
            face = tpl.rule.face_fen
            check_can_issue(tpl.active, tpl.validity, tpl.budget, face, int(held), tpl.per_customer_limit, now)
            spent = await conn.execute(
                coupon_templates.update()
                .where(
                    T.id == template_id,
                    sa.or_(T.budget_count.is_(None), T.issued_count + 1 <= T.budget_count),
                    sa.or_(T.budget_fen.is_(None), T.issued_fen + face <= T.budget_fen),
                )
                .values(issued_count=T.issued_count + 1, issued_fen=T.issued_fen + face, updated_at=now)
            )
            if spent.rowcount != 1:
                raise CouponUnavailable("优惠券预算已用完 (budget exhausted)", reason="budget")
            values = {
                "code": short_id(12).upper(),
                "template_id": template_id,
                "customer_id": customer_id,
                "status": CS.ISSUED,
                "source": source,
                "source_ref": source_ref,
                "issued_at": now,
                "expires_at": expiry_for(tpl.validity, now),
                "updated_at": now,
            }
            coupon_id = int((await conn.execute(coupons.insert().values(**values).returning(C.id))).scalar_one())
            await _ledger(conn, coupon_id, "issue", now, amount=face, actor=actor or source)
            await add_entry(
                conn,
                rt.db.dialect,
                customer_id=customer_id,
                at=now,
                kind=Kind.COUPON,
                title=f"获得优惠券“{tpl.name}”",
                ref=f"coupon:{coupon_id}",
                data={"coupon_id": coupon_id, "source": source},
            )
            row = (await conn.execute(_coupon_query().where(C.id == coupon_id))).one()
            return _coupon(row), True
    except IntegrityError:
        # The same source_ref issued concurrently from another template's queue: the first one stands.
        if source_ref is None:
            raise
        async with rt.db.read() as conn:
            found = await _by_source_ref(conn, source_ref)
        if found is None:
            raise
        return found, False


@dataclass
class SegmentIssue:
    issued: int = 0
    already: int = 0  # had this run's coupon already (a re-run)
    refused: int = 0  # per-customer limit reached
    budget_exhausted: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def segment_members(rt: Runtime, expr: str, batch: int) -> AsyncIterator[int]:
    """Customer ids of a segment, streamed (tagging.segments.iter_segment)."""
    from tagging import segments

    async for item in segments.iter_segment(rt, expr, batch):
        for cid in item if isinstance(item, list | tuple) else (item,):
            yield int(cid)


async def issue_to_segment(
    rt: Runtime, template_id: int, expr: str, *, run_ref: str, source: str = "segment", batch: int = 500
) -> SegmentIssue:
    """Issue one coupon to each customer of the segment, streaming (memory stays flat). ``run_ref`` names this
    distribution: re-running it skips who already got theirs. Stops when the budget runs out."""
    result = SegmentIssue()
    async for cid in segment_members(rt, expr, batch):
        try:
            _, created = await _issue(
                rt, template_id, cid, source=source, source_ref=f"seg:{run_ref}:{cid}"[:96], actor=f"segment:{run_ref}"[:64]
            )
        except CouponUnavailable as exc:
            if exc.details.get("reason") == "per_customer_limit":
                result.refused += 1
                continue
            result.budget_exhausted = exc.details.get("reason") == "budget"
            break
        if created:
            result.issued += 1
        else:
            result.already += 1
    return result


@job("coupons.issue_to_segment")
async def issue_to_segment_job(ctx: JobContext, template_id: int, expr: str, run_ref: str) -> dict[str, Any]:
    return (await issue_to_segment(ctx.rt, template_id, expr, run_ref=run_ref)).to_json()


async def revoke_coupon(rt: Runtime, coupon_id: int, *, actor: str = "") -> bool:
    """Take back a coupon still in the wallet (e.g. a referral reward whose invitee left). False when it is
    already held by an order, used, expired or revoked — those are left as they are. A revoked coupon no longer
    counts toward the per-customer limit; its budget stays spent."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        done = await conn.execute(
            coupons.update().where(C.id == coupon_id, C.status == CS.ISSUED).values(status=CS.REVOKED, updated_at=now)
        )
        if done.rowcount == 1:
            await _ledger(conn, coupon_id, "revoke", now, actor=actor)
        return bool(done.rowcount)


# ---- queries --------------------------------------------------------------------------------------------
_TERMS = (T.name, T.kind, T.amount_off_fen, T.percent_off, T.max_off_fen, T.threshold_fen, T.skus, T.categories, T.stackable, T.valid_from)


def _coupon_query() -> sa.Select[Any]:
    """Coupons with their template's terms (no column names shared, so rows read plainly)."""
    return sa.select(coupons, *_TERMS).join(coupon_templates, T.id == C.template_id)


def _coupon(r: Any) -> CouponView:
    order_id = None if r.order_id is None else int(r.order_id)
    return CouponView(
        int(r.id),
        r.code,
        int(r.template_id),
        r.name,
        _rule(r).label,
        r.status,
        r.source,
        r.issued_at,
        r.expires_at,
        order_id,
        int(r.discount_fen),
    )


async def coupons_of_customer(rt: Runtime, customer_id: int, *, usable_only: bool = False) -> list[CouponView]:
    """The customer's coupons, newest first; ``usable_only``: in the wallet and usable now."""
    now = rt.clock.now()
    async with rt.db.read() as conn:
        cid = await resolve_customer(conn, customer_id)
        q = _coupon_query().where(C.customer_id == cid).order_by(C.id.desc())
        if usable_only:
            q = q.where(C.status == CS.ISSUED, sa.or_(C.expires_at.is_(None), C.expires_at > now))
            q = q.where(sa.or_(T.valid_from.is_(None), T.valid_from <= now))
        return [_coupon(r) for r in await conn.execute(q)]


async def ledger_of(rt: Runtime, coupon_id: int) -> list[tuple[str, int | None, int]]:
    async with rt.db.read() as conn:
        q = sa.select(coupon_ledger).where(coupon_ledger.c.coupon_id == coupon_id).order_by(coupon_ledger.c.id)
        return [(r.event, r.order_id, int(r.amount_fen)) for r in await conn.execute(q)]


# ---- with orders (fulfillment.discounts.DiscountProvider) -----------------------------------------------
async def _give_back(conn: AsyncConnection, rows: list[Any], now: dt.datetime, order_id: int) -> None:
    """Coupons an order no longer uses go back to the wallet — or expire, if their time ran out meanwhile."""
    for r in rows:
        expired = r.expires_at is not None and r.expires_at <= now
        status = CS.EXPIRED if expired else CS.ISSUED
        done = await conn.execute(
            coupons.update()
            .where(C.id == r.id, C.order_id == order_id, C.status.in_([CS.RESERVED, CS.REDEEMED]))
            .values(status=status, order_id=None, discount_fen=0, updated_at=now)
        )
        if done.rowcount == 1:
            await _ledger(conn, int(r.id), "release", now, order_id=order_id, amount=int(r.discount_fen))
            if expired:
                await _ledger(conn, int(r.id), "expire", now)


class CouponDiscounts:
    """The coupon side of :class:`fulfillment.discounts.DiscountProvider`."""

    async def hold(
        self, conn: AsyncConnection, dialect: str, *, order_id: int, customer_id: int, lines: list[DiscountLine], now: dt.datetime
    ) -> AppliedDiscount:
        plain = [Line(ln.sku, ln.category, ln.line_total_fen) for ln in lines]
        excluded: set[int] = set()
        for _ in range(5):  # a coupon taken by another order meanwhile (PostgreSQL) → choose again without it
            q = _coupon_query().where(
                C.customer_id == customer_id,
                sa.or_(C.status == CS.ISSUED, sa.and_(C.status == CS.RESERVED, C.order_id == order_id)),
            )
            rows = [r for r in await conn.execute(q) if int(r.id) not in excluded]
            mine = {int(r.id): r for r in rows if r.status == CS.RESERVED}
            cands = [
                Candidate(int(r.id), int(r.template_id), _rule(r), r.expires_at)
                for r in rows
                if int(r.id) in mine or usable_at(r.expires_at, r.valid_from, now)
            ]
            choice = best_choice(cands, plain)
            chosen = {c.coupon_id: amt for c, amt in zip(choice.coupons, choice.amounts, strict=True)}
            await _give_back(conn, [r for cid, r in mine.items() if cid not in chosen], now, order_id)
            lost = False
            for cid, amount in chosen.items():
                if cid in mine:
                    await conn.execute(coupons.update().where(C.id == cid).values(discount_fen=amount, updated_at=now))
                    continue
                took = await conn.execute(
                    coupons.update()
                    .where(C.id == cid, C.status == CS.ISSUED)
                    .values(status=CS.RESERVED, order_id=order_id, discount_fen=amount, updated_at=now)
                )
                if took.rowcount != 1:
                    excluded.add(cid)
                    lost = True
                    break
                await _ledger(conn, cid, "reserve", now, order_id=order_id, amount=amount)
            if not lost:
                return await self.held(conn, order_id=order_id)
        return await self.held(conn, order_id=order_id)

    async def held(self, conn: AsyncConnection, *, order_id: int) -> AppliedDiscount:
        q = _coupon_query().where(C.order_id == order_id, C.status.in_([CS.RESERVED, CS.REDEEMED])).order_by(C.id)
        views = [_coupon(r) for r in await conn.execute(q)]
        return AppliedDiscount(sum(v.discount_fen for v in views), tuple(v.code for v in views), tuple(v.label for v in views))

    async def redeem(self, conn: AsyncConnection, dialect: str, *, order_id: int, now: dt.datetime) -> None:
        rows = (await conn.execute(sa.select(coupons).where(C.order_id == order_id, C.status == CS.RESERVED))).all()
        for r in rows:
            done = await conn.execute(
                coupons.update()
                .where(C.id == r.id, C.order_id == order_id, C.status == CS.RESERVED)
                .values(status=CS.REDEEMED, updated_at=now)
            )
            if done.rowcount == 1:
                await _ledger(conn, int(r.id), "redeem", now, order_id=order_id, amount=int(r.discount_fen))

    async def release(self, conn: AsyncConnection, dialect: str, *, order_id: int, now: dt.datetime) -> None:
        rows = (await conn.execute(sa.select(coupons).where(C.order_id == order_id, C.status.in_([CS.RESERVED, CS.REDEEMED])))).all()
        await _give_back(conn, list(rows), now, order_id)


def install(rt: Runtime) -> None:
    """Composition: orders take coupon discounts from here."""
    from fulfillment import discounts

    discounts.install(rt, CouponDiscounts())


# ---- expiry and merges ----------------------------------------------------------------------------------
async def expire_coupons(rt: Runtime, *, batch: int = 500) -> int:
    """Coupons in wallets past their end become expired (held ones wait for their order). Returns how many."""
    total = 0
    while True:
        now = rt.clock.now()
        async with rt.db.write() as conn:
            ids = [
                int(r.id)
                for r in await conn.execute(sa.select(C.id).where(C.status == CS.ISSUED, C.expires_at <= now).order_by(C.id).limit(batch))
            ]
            for cid in ids:
                done = await conn.execute(
                    coupons.update().where(C.id == cid, C.status == CS.ISSUED).values(status=CS.EXPIRED, updated_at=now)
                )
                if done.rowcount == 1:
                    await _ledger(conn, cid, "expire", now, actor="system")
                    total += 1
        if len(ids) < batch:
            return total


@cron("coupons.expire", minute={7, 37}, second=0)
async def expire_coupons_cron(ctx: JobContext) -> int:
    return await expire_coupons(ctx.rt)


@outbox.handles(MERGED_TOPIC)
async def follow_merge(rt: Runtime, payload: dict[str, Any]) -> None:
    """Coupons follow a customer merged into another (idempotent)."""
    async with rt.db.write() as conn:
        await conn.execute(coupons.update().where(C.customer_id == int(payload["from"])).values(customer_id=int(payload["into"])))
