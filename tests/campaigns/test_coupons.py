"""Coupon services on real SQLite and PostgreSQL: issuing within budget and per-customer limits under
concurrency, idempotent issuing, holding with drafts, redeeming once on confirm, releasing on cancel, expiry,
issuing to a segment, and the HTTP API."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fulfillment.catalog.models import products
from fulfillment.orders import services as orders
from fulfillment.orders.models import OrderStatus
from scrm.campaigns.attention import ATTENTION_TOPIC
from scrm.campaigns.coupons import discounts as coupons_discounts
from scrm.campaigns.coupons import queries as coupon_queries
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import CouponRule, CouponUnavailable, TemplateInUse, TemplateTerms, Validity
from scrm.campaigns.coupons.models import CouponStatus, coupon_templates
from scrm.core import outbox
from scrm.core.clock import FrozenClock
from scrm.core.jobs import JobContext
from scrm.core.runtime import Runtime
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import apply_tag, ensure_tag
from tagging.segments.syntax import SegmentSyntaxError
from tests.conftest import make_customer

MAN100_10 = CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000)


@pytest.fixture
async def crt(catalog: Runtime) -> Runtime:
    coupons_discounts.install(catalog)
    return catalog


async def template(rt: Runtime, rule: CouponRule = MAN100_10, **kw: Any) -> int:
    name = kw.pop("name", "满100减10")
    if "valid_days" in kw:
        kw["validity"] = Validity(valid_days=kw.pop("valid_days"))
    return (await coupons.create_template(rt, TemplateTerms(name=name, rule=rule, **kw))).id


async def customers(rt: Runtime, n: int) -> list[int]:
    return [await make_customer(rt, f"wmCoupon{i}") for i in range(n)]


async def test_issue_is_idempotent_by_source_ref_and_ledgered(crt: Runtime) -> None:
    tid = await template(crt, valid_days=30)
    (cid,) = await customers(crt, 1)
    first = await coupons.issue_coupon(crt, tid, cid, source="referral", source_ref="referral:7:42")
    again = await coupons.issue_coupon(crt, tid, cid, source="referral", source_ref="referral:7:42")
    assert first == again and first.status == CouponStatus.ISSUED and first.label == "满100减10"
    assert first.expires_at == crt.clock.now() + dt.timedelta(days=30)
    tpl = await coupons.get_template(crt, tid)
    assert (tpl.budget.issued_count, tpl.budget.issued_fen) == (1, 1000)
    assert await coupons.ledger_of(crt, first.id) == [("issue", None, 1000)]


async def test_64_concurrent_issues_for_a_budget_of_10_issue_exactly_10(crt: Runtime) -> None:
    tid = await template(crt, budget_count=10)
    people = await customers(crt, 64)

    async def one(cid: int) -> bool:
        try:
            await coupons.issue_coupon(crt, tid, cid, source="api")
        except CouponUnavailable as exc:
            assert exc.details["reason"] == "budget"
            return False
        return True

    results = await asyncio.gather(*(one(c) for c in people))
    assert sum(results) == 10
    tpl = await coupons.get_template(crt, tid)
    assert tpl.budget.issued_count == 10
    async with crt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(coupons.coupons))).scalar_one() == 10


async def test_budget_in_fen_and_per_customer_limit_hold_under_concurrency(crt: Runtime) -> None:
    percent = CouponRule("percent", percent_off=10, max_off_fen=2000)
    by_fen = await template(crt, percent, name="9折", budget_fen=5000, per_customer_limit=100)  # cap ¥20 → 2 coupons
    (cid,) = await customers(crt, 1)
    got = await asyncio.gather(*(coupons.issue_coupon(crt, by_fen, cid, source="api") for _ in range(8)), return_exceptions=True)
    assert sum(not isinstance(g, BaseException) for g in got) == 2
    tpl = await coupons.get_template(crt, by_fen)
    assert tpl.budget.issued_fen == 4000
    limited = await template(crt, per_customer_limit=2)
    got = await asyncio.gather(*(coupons.issue_coupon(crt, limited, cid, source="api") for _ in range(16)), return_exceptions=True)
    refused = [g for g in got if isinstance(g, CouponUnavailable)]
    assert len(refused) == 14 and all(g.details["reason"] == "per_customer_limit" for g in refused)
    assert (await coupons.get_template(crt, limited)).budget.issued_count == 2


async def test_draft_holds_the_best_coupon_and_cancel_releases_it(crt: Runtime) -> None:
    small = await template(crt, CouponRule("fixed", amount_off_fen=500, threshold_fen=5000), name="满50减5")
    big = await template(crt)
    (cid,) = await customers(crt, 1)
    c_small = await coupons.issue_coupon(crt, small, cid, source="api")
    c_big = await coupons.issue_coupon(crt, big, cid, source="api")
    draft = await orders.create_order(crt, customer_id=cid, items=[("WATER-550", 3)], source="chat")
    assert (draft.subtotal_fen, draft.discount_fen, draft.total_fen) == (10800, 1000, 9800)
    # Fewer goods: the ¥100 threshold is no longer met, the ¥50 one is.
    draft = await orders.set_draft_lines(crt, draft.id, [("WATER-550", 2)], expected_version=draft.version)
    assert (draft.discount_fen, draft.total_fen) == (500, 6700)
    wallet = {c.code: c.status for c in await coupons.coupons_of_customer(crt, cid)}
    assert wallet == {c_small.code: CouponStatus.RESERVED, c_big.code: CouponStatus.ISSUED}
    await orders.cancel_order(crt, draft.id, reason="test")
    assert {c.status for c in await coupons.coupons_of_customer(crt, cid)} == {CouponStatus.ISSUED}
    events = [e for e, _, _ in await coupons.ledger_of(crt, c_big.id)]
    assert events == ["issue", "reserve", "release"]
    assert [e for e, _, _ in await coupons.ledger_of(crt, c_small.id)] == ["issue", "reserve", "release"]


async def test_concurrent_confirms_redeem_once(crt: Runtime) -> None:
    tid = await template(crt)
    (cid,) = await customers(crt, 1)
    coupon = await coupons.issue_coupon(crt, tid, cid, source="api")
    draft = await orders.create_order(crt, customer_id=cid, items=[("WATER-550", 3)], source="chat")
    other = await orders.create_order(crt, customer_id=cid, items=[("WATER-550", 4)], source="chat")
    assert other.discount_fen == 0  # the one coupon is held by the first draft

    async def confirm() -> Any:
        try:
            return await orders.confirm_order(crt, draft.id, actor="customer")
        except orders.StaleOrder:
            return None

    done = [o for o in await asyncio.gather(*(confirm() for _ in range(8))) if o is not None]
    assert done and all(o.total_fen == 9800 and o.status == OrderStatus.CONFIRMED for o in done)
    assert [e for e, _, _ in await coupons.ledger_of(crt, coupon.id)] == ["issue", "reserve", "redeem"]
    (view,) = await coupons.coupons_of_customer(crt, cid)
    assert (view.status, view.order_id, view.discount_fen) == (CouponStatus.REDEEMED, draft.id, 1000)
    # A confirmed order cancelled gives the coupon back.
    await orders.cancel_order(crt, draft.id)
    assert (await coupons.coupons_of_customer(crt, cid))[0].status == CouponStatus.ISSUED


async def test_create_confirmed_order_redeems_at_once(crt: Runtime) -> None:
    tid = await template(crt, CouponRule("fixed", amount_off_fen=300, skus=frozenset({"COLA-330"})), name="可乐立减3")
    (cid,) = await customers(crt, 1)
    coupon = await coupons.issue_coupon(crt, tid, cid, source="sidebar")
    no_cola = await orders.create_order(crt, customer_id=cid, items=[("WATER-550", 3)], source="sidebar", confirm=True)
    assert no_cola.discount_fen == 0
    order = await orders.create_order(crt, customer_id=cid, items=[("COLA-330", 1)], source="sidebar", confirm=True)
    assert (order.discount_fen, order.total_fen) == (300, 5280 - 300)
    assert [e for e, _, _ in await coupons.ledger_of(crt, coupon.id)] == ["issue", "reserve", "redeem"]


async def test_expiry_by_cron_with_the_frozen_clock(crt: Runtime, clock: FrozenClock) -> None:
    tid = await template(crt, valid_days=3)
    a, b = await customers(crt, 2)
    in_wallet = await coupons.issue_coupon(crt, tid, a, source="api")
    held = await coupons.issue_coupon(crt, tid, b, source="api")
    draft = await orders.create_order(crt, customer_id=b, items=[("WATER-550", 3)], source="chat")
    clock.advance(days=2, hours=23)
    assert await coupons_discounts.expire_coupons(crt) == 0
    clock.advance(hours=1)
    assert await coupons_discounts.expire_coupons(crt) == 1  # the held one waits for its order
    assert await coupons_discounts.expire_coupons(crt) == 0
    assert [e for e, _, _ in await coupons.ledger_of(crt, in_wallet.id)] == ["issue", "expire"]
    assert await coupons.coupons_of_customer(crt, a, usable_only=True) == []
    # The quoted draft keeps its discount until it closes; cancelled after expiry, the coupon expires.
    assert (await orders.get_order(crt, draft.id)).discount_fen == 1000
    await orders.cancel_order(crt, draft.id)
    assert [e for e, _, _ in await coupons.ledger_of(crt, held.id)] == ["issue", "reserve", "release", "expire"]
    # Issuing past the template's end is refused.
    late = await template(crt, validity=Validity(valid_until=clock.now()))
    with pytest.raises(CouponUnavailable):
        await coupons.issue_coupon(crt, late, a, source="api")


async def tagged(rt: Runtime, names: list[str], tag: str) -> list[int]:
    """Real customers carrying a real tag, so a segment expression picks exactly them."""
    ids = [await make_customer(rt, name) for name in names]
    now = rt.clock.now()
    async with rt.db.write() as conn:
        tag_id = await ensure_tag(conn, rt.db.dialect, tag, now, group="客户类型")
        for cid in ids:
            await apply_tag(conn, rt.db.dialect, customer_id=cid, tag_id=tag_id, source=TagSource.MANUAL, evidence={}, now=now)
    return ids


async def attention_rows(rt: Runtime) -> list[dict[str, Any]]:
    async with rt.db.read() as conn:
        return [dict(r.payload) for r in await conn.execute(sa.select(outbox.outbox).where(outbox.outbox.c.topic == ATTENTION_TOPIC))]


async def issue_run_rows(rt: Runtime, template_id: int) -> list[dict[str, Any]]:
    """The template's runs as recorded, oldest first, without the times."""
    times = ("created_at", "started_at", "finished_at")
    return [{k: v for k, v in r.to_json().items() if k not in times} for r in reversed(await coupons.list_issue_runs(rt, template_id))]


async def test_issue_to_a_segment_streams_and_reruns_skip(crt: Runtime) -> None:
    await tagged(crt, ["wmOther0", "wmOther1"], "路人")  # outside the segment: never given one
    people = await tagged(crt, [f"wmVip{i}" for i in range(5)], "vip")
    tid = await template(crt, budget_count=4)
    first = await coupons.issue_to_segment(crt, tid, "tag:vip", run_ref="run1", batch=2)
    assert (first.issued, first.budget_exhausted, first.failed, first.error) == (4, True, 0, "")
    assert [cid for cid in people if await coupons.coupons_of_customer(crt, cid)] == people[:4]
    (run,) = await issue_run_rows(crt, tid)
    counts = ("status", "matched", "issued", "already", "skipped_limit", "skipped_budget", "failed", "failures", "error")
    assert [run[k] for k in counts] == ["done", 5, 4, 0, 0, 1, 0, [], None]
    again = await coupons.issue_to_segment(crt, tid, "tag:vip", run_ref="run1")
    assert (again.issued, again.already, again.budget_exhausted) == (0, 4, True)
    (rerun,) = await issue_run_rows(crt, tid)  # the same run, its counts now this pass's
    assert rerun["id"] == run["id"] and [rerun[k] for k in counts] == ["done", 5, 0, 4, 0, 1, 0, [], None]
    assert await attention_rows(crt) == []  # nothing went wrong: nobody is alerted


async def refuse_coupons_of(rt: Runtime, customer_id: int) -> None:
    """A row the database itself refuses for one customer (a trigger standing for a constraint nobody expected)."""
    async with rt.db.write() as conn:
        if rt.db.dialect == "postgresql":
            await conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.customer_id = {customer_id} THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            await conn.execute(sa.text("CREATE TRIGGER refuse_one BEFORE INSERT ON coupons FOR EACH ROW EXECUTE FUNCTION refuse_one()"))
        else:
            await conn.execute(
                sa.text(
                    f"CREATE TRIGGER refuse_one BEFORE INSERT ON coupons WHEN NEW.customer_id = {customer_id} "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )


async def drop_refusal(rt: Runtime) -> None:
    async with rt.db.write() as conn:
        await conn.execute(sa.text("DROP TRIGGER refuse_one" + (" ON coupons" if rt.db.dialect == "postgresql" else "")))
        if rt.db.dialect == "postgresql":
            await conn.execute(sa.text("DROP FUNCTION refuse_one()"))


async def test_one_customers_failure_leaves_the_run_partial_and_the_others_served(crt: Runtime) -> None:
    people = await tagged(crt, [f"wmVip{i}" for i in range(4)], "vip")
    tid = await template(crt)
    await coupons.issue_coupon(crt, tid, people[3], source="api")  # already holds their one
    await refuse_coupons_of(crt, people[1])
    try:
        result = await coupons.issue_to_segment(crt, tid, "tag:vip", run_ref="r1", batch=2)
    finally:
        await drop_refusal(crt)
    assert (result.status, result.issued, result.refused, result.failed, result.error) == ("partial", 2, 1, 1, "")
    assert [cid for cid in people if await coupons.coupons_of_customer(crt, cid)] == [people[0], people[2], people[3]]
    (run,) = await issue_run_rows(crt, tid)
    assert run["status"] == "partial" and run["run_ref"] == "r1" and run["segment"] == "tag:vip" and run["error"] is None
    assert (run["matched"], run["issued"], run["already"], run["skipped_limit"], run["skipped_budget"], run["failed"]) == (4, 2, 0, 1, 0, 1)
    (failure,) = run["failures"]
    assert failure.startswith(f"#{people[1]}: 数据库拒绝写入（") and "refused" in failure
    assert await attention_rows(crt) == [
        {"message": f"优惠券模板 #{tid} 按客群发放（r1）：1 位客户发放失败，如 {failure}", "key": f"coupon-segment:{tid}:r1"}
    ]


async def break_coupon_writes(rt: Runtime) -> None:
    """Every coupon insert fails with an error that is not about one customer (as when the database misbehaves)."""
    async with rt.db.write() as conn:
        if rt.db.dialect == "postgresql":
            await conn.execute(
                sa.text("CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$")
            )
            await conn.execute(sa.text("CREATE TRIGGER refuse_one BEFORE INSERT ON coupons FOR EACH ROW EXECUTE FUNCTION refuse_one()"))
        else:
            await conn.execute(sa.text("CREATE TRIGGER refuse_one BEFORE INSERT ON coupons BEGIN INSERT INTO gone_table VALUES (1); END"))


async def test_a_run_the_database_keeps_failing_is_retried_then_recorded_failed_on_its_last_try(crt: Runtime) -> None:
    await tagged(crt, ["wmVip0", "wmVip1"], "vip")
    tid = await template(crt)
    queued = await coupons.queue_issue_to_segment(crt, tid, "tag:vip", run_ref="j1")
    await break_coupon_writes(crt)
    try:
        with pytest.raises(sa.exc.DBAPIError):  # not one customer's problem: the whole try fails and is retried
            await coupons.issue_to_segment_job(JobContext(crt, "coupons.segment:j1", 1, 3), tid, "tag:vip", "j1")
        assert (await coupons.get_issue_run(crt, tid, queued.id)).status == "running"
        assert await attention_rows(crt) == []
        with pytest.raises(sa.exc.DBAPIError):
            await coupons.issue_to_segment_job(JobContext(crt, "coupons.segment:j1", 3, 3), tid, "tag:vip", "j1")
    finally:
        await drop_refusal(crt)
    run = await coupons.get_issue_run(crt, tid, queued.id)
    assert run.status == "failed" and run.error is not None and run.error.startswith("发放中断（")
    assert ("disk on fire" if crt.db.dialect == "postgresql" else "gone_table") in run.error
    assert await attention_rows(crt) == [{"message": f"优惠券模板 #{tid} 按客群发放（j1）：{run.error}", "key": f"coupon-segment:{tid}:j1"}]


async def test_a_segment_run_that_cannot_run_records_why_and_alerts_once(crt: Runtime) -> None:
    """A job queued before expressions were checked (old data): the run records the parse error and alerts; the
    service refuses to queue such an expression at all."""
    await tagged(crt, ["wmVip0"], "vip")
    tid = await template(crt)
    result = await coupons.issue_to_segment(crt, tid, "tag:vip or", run_ref="old")
    assert result.issued == 0 and "第 11 列" in result.error and "表达式不完整" in result.error
    assert await attention_rows(crt) == [
        {"message": f"优惠券模板 #{tid} 按客群发放（old）：{result.error}", "key": f"coupon-segment:{tid}:old"}
    ]
    (run,) = await issue_run_rows(crt, tid)
    assert (run["status"], run["error"], run["matched"], run["issued"]) == ("failed", result.error, 0, 0)
    gone = await coupons.issue_to_segment(crt, 999_999, "tag:vip", run_ref="gone")
    assert gone.issued == 0 and "没有这个优惠券模板" in gone.error
    async with crt.db.read() as conn:
        (lost,) = await coupon_queries.issue_runs(conn, 999_999)
    assert (lost.status, lost.error) == ("failed", gone.error)
    with pytest.raises(SegmentSyntaxError) as info:
        await coupons.queue_issue_to_segment(crt, tid, "tag:vip or", run_ref="new")
    assert info.value.details == {"column": 11, "field": "segment"}
    assert [r["run_ref"] for r in await issue_run_rows(crt, tid)] == ["old"]  # a refused expression records nothing


async def test_a_template_stopped_before_its_run_fails_the_run_with_why(crt: Runtime) -> None:
    await tagged(crt, ["wmVip0", "wmVip1"], "vip")
    tid = await template(crt)
    queued = await coupons.queue_issue_to_segment(crt, tid, " tag:vip ", run_ref="q1", requested_by="console:mk")
    assert (queued.status, queued.segment, queued.requested_by, queued.run_ref) == ("queued", "tag:vip", "console:mk", "q1")
    assert queued.started_at is None and queued.finished_at is None
    current = await coupons.get_template(crt, tid)
    await coupons.update_template(crt, tid, current.terms, active=False)  # stopped while the run waited in the queue
    result = await coupons.issue_to_segment(crt, tid, "tag:vip", run_ref="q1")
    assert (result.status, result.issued, result.error) == ("failed", 0, "该优惠券已停用 (template inactive)")
    run = await coupons.get_issue_run(crt, tid, queued.id)
    assert (run.status, run.error, run.matched, run.requested_by) == ("failed", result.error, 1, "console:mk")
    assert run.finished_at == crt.clock.now()
    assert await attention_rows(crt) == [
        {"message": f"优惠券模板 #{tid} 按客群发放（q1）：{result.error}", "key": f"coupon-segment:{tid}:q1"}
    ]


class FastWorker:
    """A queue whose worker runs the job before ``enqueue`` returns — what an idle arq worker or the in-process
    runner may do while the caller awaits its next write. ``refuse`` answers as a queue that already holds the id."""

    def __init__(self, rt: Runtime, *, refuse: bool = False) -> None:
        self.rt, self.refuse, self.ran = rt, refuse, 0

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer: float = 0.0) -> bool:
        assert name == "coupons.issue_to_segment"
        if self.refuse:
            return False
        await coupons.issue_to_segment_job(JobContext(self.rt, job_id or name, 1, 3), *args)
        self.ran += 1
        return True


async def test_a_run_finished_before_enqueue_returned_shows_done_and_a_rerun_is_queued_again(
    crt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the reset of a finished run to queued was written after enqueue returned: a job that had already
    finished was shown as queued for good (seen in the sandbox, in-process jobs)."""
    await tagged(crt, ["wmVip0", "wmVip1"], "vip")
    tid = await template(crt)
    fast = FastWorker(crt)
    monkeypatch.setattr(crt, "jobs", fast)
    first = await coupons.queue_issue_to_segment(crt, tid, "tag:vip", run_ref="fast")
    assert (first.status, first.issued, fast.ran) == ("done", 2, 1)
    await tagged(crt, ["wmVip2"], "vip")
    again = await coupons.queue_issue_to_segment(crt, tid, "tag:vip", run_ref="fast")  # asked again: runs again
    assert (again.id, again.status, again.issued, fast.ran) == (first.id, "done", 1, 2)  # only the newcomer
    monkeypatch.setattr(crt, "jobs", FastWorker(crt, refuse=True))
    kept = await coupons.queue_issue_to_segment(crt, tid, "tag:vip", run_ref="fast")
    assert (kept.status, kept.issued, kept.finished_at) == ("done", 1, again.finished_at)  # nothing queued: unchanged


async def test_terms_are_fixed_once_issued(crt: Runtime) -> None:
    tid = await template(crt, budget_count=5)
    (cid,) = await customers(crt, 1)
    await coupons.issue_coupon(crt, tid, cid, source="api")
    changed = TemplateTerms(name="满100减20", rule=CouponRule("fixed", amount_off_fen=2000, threshold_fen=10000), budget_count=5)
    with pytest.raises(TemplateInUse):
        await coupons.update_template(crt, tid, changed, active=True)
    renamed = await coupons.update_template(crt, tid, TemplateTerms(name="新名字", rule=MAN100_10, budget_count=8), active=False)
    assert (renamed.name, renamed.budget.budget_count, renamed.active) == ("新名字", 8, False)
    with pytest.raises(CouponUnavailable):
        await coupons.issue_coupon(crt, tid, cid, source="api")


async def test_revoke_only_takes_back_a_coupon_in_the_wallet(crt: Runtime) -> None:
    tid = await template(crt)  # one per customer
    (cid,) = await customers(crt, 1)
    kept = await coupons.issue_coupon(crt, tid, cid, source="referral", source_ref="referral:1:1")
    assert await coupons.revoke_coupon(crt, kept.id, actor="referral")
    assert not await coupons.revoke_coupon(crt, kept.id)
    assert (await coupons.coupons_of_customer(crt, cid))[0].status == CouponStatus.REVOKED
    assert [e for e, _, _ in await coupons.ledger_of(crt, kept.id)] == ["issue", "revoke"]
    # Taken back, it no longer counts toward the limit: a later reward can be granted.
    again = await coupons.issue_coupon(crt, tid, cid, source="referral", source_ref="referral:1:1:again")
    assert again.status == CouponStatus.ISSUED
    draft = await orders.create_order(crt, customer_id=cid, items=[("WATER-550", 3)], source="chat")
    assert not await coupons.revoke_coupon(crt, again.id)  # held by a draft: the customer's now
    assert draft.discount_fen == 1000


async def test_api(crt: Runtime) -> None:
    from scrm.campaigns.coupons import web as coupons_web
    from scrm.core.http.errors import error_middleware
    from scrm.core.http.keys import RUNTIME

    app = web.Application(middlewares=[error_middleware])
    app[RUNTIME] = crt
    coupons_web.setup_routes(app)
    await make_customer(crt, "wmApi")
    async with TestClient(TestServer(app)) as client:
        body = {"name": "饮料9折", "kind": "percent", "percent_off": 10, "max_off_fen": 2000, "budget_count": 2, "valid_days": 7}
        resp = await client.post("/api/v1/coupon-templates", json=body)
        assert resp.status == 201, await resp.text()
        tpl = await resp.json()
        assert tpl["label"] == "9折 最高减20"
        resp = await client.post("/api/v1/coupon-templates", json={"name": "x", "kind": "percent", "percent_off": 10})
        assert resp.status == 400 and (await resp.json())["error"]["details"]["field"] == "max_off_fen"
        resp = await client.patch(f"/api/v1/coupon-templates/{tpl['id']}", json={"budget_count": 3})
        assert resp.status == 200 and (await resp.json())["budget_count"] == 3
        issue = {"template_id": tpl["id"], "customer": "wmApi", "source_ref": "k1"}
        first = await client.post("/api/v1/coupons/issue", json=issue)
        second = await client.post("/api/v1/coupons/issue", json=issue)
        assert first.status == 201 and (await first.json())["code"] == (await second.json())["code"]
        resp = await client.post("/api/v1/coupons/issue", json={"template_id": tpl["id"], "customer": "nobody"})
        assert resp.status == 404
        resp = await client.post("/api/v1/coupons/issue", json={"template_id": tpl["id"]})
        assert resp.status == 400
        # a segment that does not parse is refused with its column before anything is queued
        resp = await client.post("/api/v1/coupons/issue", json={"template_id": tpl["id"], "segment": "tag:vip and not"})
        err = (await resp.json())["error"]
        assert resp.status == 400 and err["code"] == "segment_syntax" and err["details"] == {"column": 16, "field": "segment"}
        assert err["message"].startswith("客群表达式有误，第 16 列：")
        resp = await client.post("/api/v1/coupons/issue", json={"template_id": 999_999, "segment": "tag:vip"})
        assert resp.status == 404
        resp = await client.post("/api/v1/coupons/issue", json={"template_id": tpl["id"], "segment": "tag:vip", "source_ref": "s1"})
        queued = await resp.json()
        status_url = f"/api/v1/coupon-templates/{tpl['id']}/issue-runs/{queued['run_id']}"
        assert resp.status == 202 and queued == {
            "queued": True,
            "run_ref": "s1",
            "run_id": queued["run_id"],
            "status": "queued",
            "status_url": status_url,
        }
        run = await (await client.get(status_url)).json()
        assert (run["status"], run["segment"], run["requested_by"], run["issued"], run["error"]) == ("queued", "tag:vip", "api", 0, None)
        await coupons.issue_to_segment(crt, tpl["id"], "tag:vip", run_ref="s1")  # what the worker runs
        listed = await (await client.get(f"/api/v1/coupon-templates/{tpl['id']}/issue-runs")).json()
        assert [(r["id"], r["status"], r["matched"]) for r in listed["items"]] == [(queued["run_id"], "done", 0)]
        assert (await client.get(f"/api/v1/coupon-templates/{tpl['id']}/issue-runs/{queued['run_id'] + 1}")).status == 404
        assert (await client.get("/api/v1/coupon-templates/999999/issue-runs")).status == 404
        wallet = await (await client.get("/api/v1/customers/wmApi/coupons?usable=true")).json()
        assert [c["label"] for c in wallet["items"]] == ["9折 最高减20"]
        resp = await client.patch(f"/api/v1/coupon-templates/{tpl['id']}", json={"percent_off": 20})
        assert resp.status == 409 and (await resp.json())["error"]["code"] == "template_in_use"
        resp = await client.delete(f"/api/v1/coupon-templates/{tpl['id']}")
        assert (await resp.json())["active"] is False
    async with crt.db.read() as conn:
        assert (await conn.execute(sa.select(coupon_templates.c.issued_count))).scalar_one() == 1
        assert (await conn.execute(sa.select(sa.func.count()).select_from(products))).scalar_one() > 0


async def test_concurrent_orders_never_share_one_coupon(crt: Runtime) -> None:
    tid = await template(crt)
    (cid,) = await customers(crt, 1)
    coupon = await coupons.issue_coupon(crt, tid, cid, source="api")
    placed = await asyncio.gather(
        *(orders.create_order(crt, customer_id=cid, items=[("WATER-550", 3)], source="sidebar", confirm=True) for _ in range(8))
    )
    assert sorted(o.discount_fen for o in placed) == [0] * 7 + [1000]
    assert [e for e, _, _ in await coupons.ledger_of(crt, coupon.id)] == ["issue", "reserve", "redeem"]
