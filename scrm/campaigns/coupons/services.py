"""Coupon use cases (优惠券): templates, issuing (to a customer, a segment, as a referral reward, from the sidebar),
holding/redeeming/releasing with orders, expiry — every change of a coupon written to ``coupon_ledger``.

Guarantees
* No over-issue: issuing locks the template row (PostgreSQL ``FOR UPDATE``; SQLite writers are serialised by
  ``BEGIN IMMEDIATE``), checks the per-customer limit, then spends the budget with a guarded
  ``UPDATE … WHERE issued_count + 1 <= budget_count AND issued_fen + face <= budget_fen`` (and the table's CHECK
  constraint backs it up). A failed issue spends nothing.
* Idempotent issuing: the same ``source_ref`` (e.g. ``referral:<campaign>:<inviter>``) always gives one coupon.
* The customer hears of it when asked (``notify``): an outbox row ``coupon.issued`` is written in the transaction
  that issues the coupon, once per coupon (a repeated ``source_ref`` finds the first coupon and writes nothing);
  ``bots.notices.coupons`` turns it into a chat message on the channel that reaches the customer.
* One order per coupon: a coupon moves issued → reserved only with ``WHERE status = 'issued'``; reserved →
  redeemed / back to issued only for the order holding it — in the order's own transaction (see
  :mod:`fulfillment.orders.discounts`), so a confirm run twice or concurrently redeems once.

Layout: this module holds the use cases; the rows and views are in :mod:`scrm.campaigns.coupons.queries`, the order
side (discount provider, expiry, merges) in :mod:`scrm.campaigns.coupons.discounts` — both re-exported here, so
``from scrm.campaigns.coupons.services import …`` stays the one import path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns.attention import raise_attention
from scrm.campaigns.coupons.domain import (
    CouponUnavailable,
    TemplateInUse,
    TemplateTerms,
    check_can_issue,
    expiry_for,
    validate_terms,
)
from scrm.campaigns.coupons.models import CouponStatus as CS
from scrm.campaigns.coupons.models import IssueRunStatus as RS
from scrm.campaigns.coupons.models import coupon_issue_runs, coupon_ledger, coupon_templates, coupons
from scrm.campaigns.coupons.queries import (
    C,
    CouponTemplate,
    CouponView,
    IssueRunView,
    T,
    coupon_query,
    coupon_view,
    issue_run,
    issue_runs,
    template_values,
    write_ledger,
)
from scrm.campaigns.coupons.queries import R as IR
from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.ids import short_id
from scrm.core.jobs import JobContext, QueueUnavailable
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import lock_customer, resolve_customer
from scrm.crm.timeline.services import Kind, add_entry
from tagging.segments import services as segments
from tagging.segments.syntax import SegmentSyntaxError, check_expression

SOURCES = ("segment", "referral", "sidebar", "console", "api")
ISSUED_TOPIC = "coupon.issued"  # payload {"coupon_id", "customer_id"[, "run_ref"]}: tell the customer (only when asked to)


# ---- templates ------------------------------------------------------------------------------------------
async def create_template(rt: Runtime, terms: TemplateTerms, *, active: bool = True) -> CouponTemplate:
    """Create a template after validating its terms (a percent coupon needs a cap; budgets positive …)."""
    validate_terms(terms)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        values = {**template_values(terms), "active": active, "created_at": now, "updated_at": now}
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
        values = {**template_values(terms), "active": active, "updated_at": rt.clock.now()}
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
async def _by_source_ref(conn: AsyncConnection, source_ref: str) -> CouponView | None:
    row = (await conn.execute(coupon_query().where(C.source_ref == source_ref))).first()
    return coupon_view(row) if row else None


async def issue_coupon(
    rt: Runtime,
    template_id: int,
    customer_id: int,
    *,
    source: str,
    source_ref: str | None = None,
    actor: str = "",
    notify: bool = False,
) -> CouponView:
    """Give one coupon of the template to the customer, or raise CouponUnavailable (inactive, expired, budget,
    per-customer limit). With ``source_ref`` a repeated call returns the first coupon and spends nothing more —
    referral rewards use ``referral:<campaign>:<inviter>``. Safe under any concurrency (see the module).
    ``notify``: the customer is told in chat (:data:`ISSUED_TOPIC`, same transaction) — off for callers whose own
    message already says so (a broadcast carrying the coupon, the salesperson in the sidebar)."""
    return (await _issue(rt, template_id, customer_id, source=source, source_ref=source_ref, actor=actor, notify=notify))[0]


async def _issue(
    rt: Runtime,
    template_id: int,
    customer_id: int,
    *,
    source: str,
    source_ref: str | None,
    actor: str,
    notify: bool = False,
    run_ref: str = "",
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
            await write_ledger(conn, coupon_id, "issue", now, amount=face, actor=actor or source)
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
            if notify:
                batch = {"run_ref": run_ref} if run_ref else {}  # a segment distribution: its notices are one batch
                await outbox.add(conn, ISSUED_TOPIC, {"coupon_id": coupon_id, "customer_id": customer_id, **batch}, now)
            row = (await conn.execute(coupon_query().where(C.id == coupon_id))).one()
            return coupon_view(row), True
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
    matched: int = 0  # segment members seen
    issued: int = 0
    already: int = 0  # had this run's coupon already (a re-run)
    refused: int = 0  # per-customer limit reached
    skipped_budget: int = 0  # members after the budget ran out (not tried)
    failed: int = 0  # a customer whose issue raised another domain error (e.g. gone meanwhile); the others go on
    budget_exhausted: bool = False
    error: str = ""  # the whole run could not go on (segment does not parse, template gone or stopped); why, in Chinese
    failures: list[str] = field(default_factory=list)  # the first few per-customer failures, "#id: message"
    run_id: int | None = None  # its coupon_issue_runs row

    @property
    def status(self) -> str:
        return RS.FAILED if self.error else RS.PARTIAL if self.failed else RS.DONE

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def counts(self) -> dict[str, Any]:
        """The run row's columns for these counts."""
        return {
            "matched": self.matched, "issued": self.issued, "already": self.already, "skipped_limit": self.refused,
            "skipped_budget": self.skipped_budget, "failed": self.failed, "failures": list(self.failures),
        }  # fmt: skip


MAX_FAILURES_KEPT = 20
QUEUE_DOWN = "任务队列暂不可用，发放未开始，请稍后重试"  # the run is recorded as failed with this


async def segment_members(rt: Runtime, expr: str, batch: int) -> AsyncIterator[int]:
    """Customer ids of a segment, streamed (tagging.segments.services.iter_segment)."""

    async for item in segments.iter_segment(rt, expr, batch):
        for cid in item if isinstance(item, list | tuple) else (item,):
            yield int(cid)


async def _record_run(rt: Runtime, template_id: int, expr: str, run_ref: str, requested_by: str) -> int:
    """The run's row: written once per (template, run_ref) as queued; the id of the one that stands."""
    now = rt.clock.now()
    values = {
        "template_id": template_id, "run_ref": run_ref[:96], "segment": expr, "requested_by": requested_by[:64],
        "status": RS.QUEUED, "failures": [], "created_at": now, "updated_at": now,
    }  # fmt: skip
    async with rt.db.write() as conn:
        await conn.execute(insert_ignore(coupon_issue_runs, rt.db.dialect).values(**values))
        q = sa.select(IR.id).where(IR.template_id == template_id, IR.run_ref == run_ref[:96])
        return int((await conn.execute(q)).scalar_one())


async def get_issue_run(rt: Runtime, template_id: int, run_id: int) -> IssueRunView:
    async with rt.db.read() as conn:
        run = await issue_run(conn, template_id, run_id)
    if run is None:
        raise NotFound("没有这个发放批次 (no such distribution)", template_id=template_id, run_id=run_id)
    return run


async def list_issue_runs(rt: Runtime, template_id: int, *, limit: int = 20) -> list[IssueRunView]:
    """A template's distributions to segments, newest first (NotFound for an unknown template)."""
    async with rt.db.read() as conn:
        await _template(conn, template_id)
        return await issue_runs(conn, template_id, limit=limit)


async def queue_issue_to_segment(
    rt: Runtime, template_id: int, expr: str, *, run_ref: str, requested_by: str = "", notify: bool = True
) -> IssueRunView:
    """Check a distribution before it is queued — the template exists (NotFound) and the expression parses
    (SegmentSyntaxError with the column, field ``segment``) — record it (``coupon_issue_runs``, status queued; one
    row per template and ``run_ref``), then queue :func:`issue_to_segment` as the job ``coupons.issue_to_segment``
    (job id per template and ``run_ref``, so queuing twice runs once). Returns the run as recorded. When the queue
    is down the run is recorded as failed with why and QueueUnavailable is raised. The API and the console both
    go through here. ``notify`` (同时通知客户): each customer who gets a coupon is told in chat, one notice each."""
    expr = check_expression(expr, "segment")
    await get_template(rt, template_id)
    run_id = await _record_run(rt, template_id, expr, run_ref, requested_by)
    # A finished run asked again runs again (re-running skips who has one): it is put back to queued *before* the
    # job is queued — the job may start and finish before enqueue returns (in-process jobs, a fast worker), and a
    # reset written after it would leave a done run showing "queued" for good. When the queue does not take the job
    # (the same job id is still there), the reset is taken back.
    reset_at = rt.clock.now()
    finished = (RS.DONE, RS.PARTIAL, RS.FAILED)
    async with rt.db.write() as conn:
        before = (await conn.execute(sa.select(IR.status, IR.segment, IR.error, IR.finished_at).where(IR.id == run_id))).one()
        if before.status in finished:
            await conn.execute(
                coupon_issue_runs.update()
                .where(IR.id == run_id)
                .values(status=RS.QUEUED, segment=expr, error=None, finished_at=None, updated_at=reset_at)
            )
    try:
        job_id = f"coupons.segment:{template_id}:{run_ref}"
        queued = await rt.jobs.enqueue("coupons.issue_to_segment", template_id, expr, run_ref, notify, job_id=job_id)
    except QueueUnavailable:
        await _finish_run(rt, run_id, SegmentIssue(error=QUEUE_DOWN))
        raise
    if not queued and before.status in finished:
        async with rt.db.write() as conn:
            await conn.execute(
                coupon_issue_runs.update()
                .where(IR.id == run_id, IR.status == RS.QUEUED, IR.updated_at == reset_at)
                .values(status=before.status, segment=before.segment, error=before.error, finished_at=before.finished_at)
            )
    return await get_issue_run(rt, template_id, run_id)


async def _start_run(rt: Runtime, template_id: int, expr: str, run_ref: str) -> int:
    run_id = await _record_run(rt, template_id, expr, run_ref, "")  # a job queued before runs were recorded has none
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(
            coupon_issue_runs.update()
            .where(IR.id == run_id)
            .values(status=RS.RUNNING, **SegmentIssue().counts(), error=None, started_at=now, finished_at=None, updated_at=now)
        )
    return run_id


async def _progress(rt: Runtime, run_id: int, result: SegmentIssue) -> None:
    async with rt.db.write() as conn:
        await conn.execute(coupon_issue_runs.update().where(IR.id == run_id).values(**result.counts(), updated_at=rt.clock.now()))


async def _finish_run(rt: Runtime, run_id: int, result: SegmentIssue, *, alert: str = "", key: str = "") -> None:
    """Record the outcome on the run and, when ``alert``, queue the alert to operations — one transaction."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(
            coupon_issue_runs.update()
            .where(IR.id == run_id)
            .values(status=result.status, **result.counts(), error=result.error or None, finished_at=now, updated_at=now)
        )
        if alert:
            await raise_attention(conn, message=alert, key=key, now=now)


async def issue_to_segment(
    rt: Runtime, template_id: int, expr: str, *, run_ref: str, source: str = "segment", batch: int = 500, notify: bool = True
) -> SegmentIssue:
    """Issue one coupon to each customer of the segment, streaming (memory stays flat). ``run_ref`` names this
    distribution: re-running it skips who already got theirs. When the budget runs out the rest are counted in
    ``skipped_budget``, not tried.

    The run is an item of its own (``coupon_issue_runs``): running, with counts written per batch, then done,
    partial or failed. One customer's failure does not stop the rest: a refusal by the per-customer limit is
    counted in ``refused``, any other domain error (or a row the database refuses for that customer) in ``failed``
    with the first messages in ``failures`` — the run ends partial. A run that cannot go on at all (the expression
    does not parse — queued before expressions were checked —, the template is gone, stopped or expired) ends
    failed with why in ``error``. Either way operations get one alert (``campaigns.attention``) per run, written
    with the outcome.

    ``notify``: every coupon issued writes its own ``coupon.issued`` notice in its transaction — one message per
    customer, delivered by the outbox relay through the one sender (its rate-limit back-off applies); a re-run
    tells nobody twice, since only a newly issued coupon writes one."""
    result = SegmentIssue()
    result.run_id = run_id = await _start_run(rt, template_id, expr, run_ref)
    try:
        await get_template(rt, template_id)
        async for cid in segment_members(rt, expr, batch):
            result.matched += 1
            if result.budget_exhausted:
                result.skipped_budget += 1
                continue
            try:
                _, created = await _issue(
                    rt,
                    template_id,
                    cid,
                    source=source,
                    source_ref=f"seg:{run_ref}:{cid}"[:96],
                    actor=f"segment:{run_ref}"[:64],
                    notify=notify,
                    run_ref=run_ref,
                )
            except CouponUnavailable as exc:
                why = exc.details.get("reason")
                if why == "per_customer_limit":
                    result.refused += 1
                elif why == "budget":
                    result.budget_exhausted = True
                    result.skipped_budget += 1
                else:  # stopped or out of its validity: nobody else can get one either
                    result.error = exc.message
                    break
            except (DomainError, IntegrityError) as exc:
                result.failed += 1
                if len(result.failures) < MAX_FAILURES_KEPT:
                    why = exc.message if isinstance(exc, DomainError) else f"数据库拒绝写入（{type(exc.orig).__name__}: {exc.orig}）"
                    result.failures.append(f"#{cid}: {why}"[:300])
            else:
                result.issued += int(created)
                result.already += int(not created)
            if result.matched % batch == 0:
                await _progress(rt, run_id, result)
    except (SegmentSyntaxError, NotFound) as exc:
        result.error = exc.message
    alert = ""
    if result.error or result.failed:
        what = result.error or f"{result.failed} 位客户发放失败，如 {result.failures[0]}"
        alert = f"优惠券模板 #{template_id} 按客群发放（{run_ref}）：{what}"
    await _finish_run(rt, run_id, result, alert=alert, key=f"coupon-segment:{template_id}:{run_ref}")
    return result


async def issue_to_segment_job(ctx: JobContext, template_id: int, expr: str, run_ref: str, notify: bool = True) -> dict[str, Any]:
    """The job; an unexpected error (the database down …) is retried, and on the last try recorded on the run as
    failed and alerted before it is raised. A job queued before ``notify`` existed notifies (the default)."""
    try:
        return (await issue_to_segment(ctx.rt, template_id, expr, run_ref=run_ref, notify=notify)).to_json()
    except Exception as exc:
        if ctx.final_try:
            run_id = await _record_run(ctx.rt, template_id, expr, run_ref, "")
            why = f"发放中断（{type(exc).__name__}: {exc}）"[:500]
            alert = f"优惠券模板 #{template_id} 按客群发放（{run_ref}）：{why}"
            await _finish_run(ctx.rt, run_id, SegmentIssue(error=why), alert=alert, key=f"coupon-segment:{template_id}:{run_ref}")
        raise


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
            await write_ledger(conn, coupon_id, "revoke", now, actor=actor)
        return bool(done.rowcount)


# ---- queries --------------------------------------------------------------------------------------------
async def coupons_of_customer(rt: Runtime, customer_id: int, *, usable_only: bool = False) -> list[CouponView]:
    """The customer's coupons, newest first; ``usable_only``: in the wallet and usable now."""
    now = rt.clock.now()
    async with rt.db.read() as conn:
        cid = await resolve_customer(conn, customer_id)
        q = coupon_query().where(C.customer_id == cid).order_by(C.id.desc())
        if usable_only:
            q = q.where(C.status == CS.ISSUED, sa.or_(C.expires_at.is_(None), C.expires_at > now))
            q = q.where(sa.or_(T.valid_from.is_(None), T.valid_from <= now))
        return [coupon_view(r) for r in await conn.execute(q)]


async def get_coupon(rt: Runtime, coupon_id: int) -> CouponView:
    """One coupon with its template's terms (NotFound when there is none)."""
    async with rt.db.read() as conn:
        row = (await conn.execute(coupon_query().where(C.id == coupon_id))).first()
    if row is None:
        raise NotFound("没有这张优惠券 (no such coupon)", coupon_id=coupon_id)
    return coupon_view(row)


async def ledger_of(rt: Runtime, coupon_id: int) -> list[tuple[str, int | None, int]]:
    async with rt.db.read() as conn:
        q = sa.select(coupon_ledger).where(coupon_ledger.c.coupon_id == coupon_id).order_by(coupon_ledger.c.id)
        return [(r.event, r.order_id, int(r.amount_fen)) for r in await conn.execute(q)]
