"""Repurchase alerts (复购预警) and churn warning (流失预警): the prediction on synthetic histories (regular, irregular,
a single purchase), the day-by-day replay that measures it, and — through the real app and the sandbox — the nightly
recompute (idempotent), alerts closed by a repurchase, at-risk flagging, the salesperson's app message, data scope."""

from __future__ import annotations

import datetime as dt
import random

import pytest
import sqlalchemy as sa
from playwright.async_api import async_playwright, expect

from fulfillment.orders import queries as orders_queries
from fulfillment.orders import services as orders
from scrm.core import outbox
from scrm.core.audit import audit_log
from scrm.core.clock import local
from scrm.crm.customers.services import merge_customers
from scrm.crm.staff import accounts
from scrm.governance.scopes.services import EVERYTHING
from scrm.sales.repurchase import domain as d
from scrm.sales.repurchase import services
from scrm.sales.repurchase.domain import AlertKind, Basis, PredictionStatus
from scrm.sales.repurchase.jobs import on_order_confirmed
from scrm.sales.repurchase.models import repurchase_alerts, repurchase_predictions
from scrm.sales.repurchase.queries import list_alerts
from tests.conftest import STAFF_PASSWORD, SandboxHarness
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_console_layout import off_screen, sign_in
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.scrm.test_sidebar import seed_follow
from tests.security.conftest import CSRF, HTML, console_login

DAY0 = dt.date(2026, 1, 5)


def every(k: int, n: int, *, start: dt.date = DAY0, jitter: int = 0, rng: random.Random | None = None) -> list[dt.date]:
    """n purchases every k days (± jitter days, never before the previous one)."""
    days, at = [], start
    for _ in range(n):
        days.append(at)
        step = k + (rng.randint(-jitter, jitter) if rng and jitter else 0)
        at += dt.timedelta(days=max(1, step))
    return days


# ---- the prediction ---------------------------------------------------------------------------------------
def test_a_regular_customer_is_due_one_interval_after_the_last_purchase() -> None:
    days = every(30, 5)
    p = d.predict(1, "WATER-550", days)
    assert (p.purchases, p.interval_days, p.basis) == (5, 30, Basis.OWN)
    assert p.next_due_on == days[-1] + dt.timedelta(days=30)
    assert p.at_risk_after == days[-1] + dt.timedelta(days=60)
    last = days[-1]
    assert p.status(last + dt.timedelta(days=26), 3) == PredictionStatus.WAITING
    assert p.status(last + dt.timedelta(days=27), 3) == PredictionStatus.DUE  # 3 days before
    assert p.status(last + dt.timedelta(days=60), 3) == PredictionStatus.DUE  # late, not yet a whole cycle skipped
    assert p.status(last + dt.timedelta(days=61), 3) == PredictionStatus.AT_RISK


def test_the_median_ignores_a_stock_up_and_a_forgotten_month() -> None:
    # gaps 30, 3 (a holiday top-up), 31, 90 (forgot), 29, 30 → the median is 30; the mean would say 35.5
    days = [DAY0]
    for gap in (30, 3, 31, 90, 29, 30):
        days.append(days[-1] + dt.timedelta(days=gap))
    assert d.usual_interval(days) == 30
    # two orders on one day are one purchase: no gap of 0
    assert d.usual_interval([DAY0, DAY0, DAY0 + dt.timedelta(days=14)]) == 14
    # only the latest gaps count: a customer who moved from monthly to weekly is weekly now
    moved = every(30, 6) + every(7, d.RECENT_GAPS + 1, start=every(30, 6)[-1] + dt.timedelta(days=7))
    assert d.usual_interval(moved) == 7


def test_an_irregular_customer_gets_the_median_and_halves_round_up() -> None:
    gaps = [10, 50, 20, 40]  # median 30 → due 30 days after the last purchase
    days = [DAY0]
    for gap in gaps:
        days.append(days[-1] + dt.timedelta(days=gap))
    p = d.predict(7, "RICE-5KG", days)
    assert p.interval_days == 30 and p.next_due_on == days[-1] + dt.timedelta(days=30)
    assert d.usual_interval([DAY0, DAY0 + dt.timedelta(days=10), DAY0 + dt.timedelta(days=21)]) == 11  # median 10.5 → 11


def test_a_single_purchase_borrows_the_products_typical_interval_only_with_enough_peers() -> None:
    histories: dict[tuple[int, str], list[dt.date]] = {(1, "OIL"): [DAY0]}
    for cid, k in ((2, 20), (3, 30)):
        histories[(cid, "OIL")] = every(k, 4)
    assert d.typical_intervals(histories) == {}  # 2 customers with a rhythm: too few to speak for a product
    lone = d.predict_all(histories, d.typical_intervals(histories))[0]
    assert (lone.basis, lone.interval_days, lone.next_due_on) == (Basis.NONE, None, None)
    assert lone.status(DAY0 + dt.timedelta(days=400), 3) == PredictionStatus.UNKNOWN
    assert d.alert_for(lone, DAY0 + dt.timedelta(days=400), 3) is None

    histories[(4, "OIL")] = every(40, 3)
    typicals = d.typical_intervals(histories)
    assert typicals == {"OIL": 30}  # median of 20, 30, 40
    lone = next(p for p in d.predict_all(histories, typicals) if p.customer_id == 1)
    assert (lone.basis, lone.interval_days, lone.next_due_on) == (Basis.PRODUCT, 30, DAY0 + dt.timedelta(days=30))
    # intervals of customers outside the recomputed set count as peers too
    assert d.typical_intervals({(1, "OIL"): [DAY0]}, {"OIL": [14, 15, 16]}) == {"OIL": 15}


def test_alerts_for_a_cycle_due_then_at_risk() -> None:
    p = d.predict(1, "WATER-550", every(10, 3))  # last purchase DAY0+20, due DAY0+30, at risk after DAY0+40
    last = p.last_purchase_on
    assert d.alert_for(p, last + dt.timedelta(days=6), 3) is None
    due = d.alert_for(p, last + dt.timedelta(days=7), 3)
    assert due == d.AlertPlan(AlertKind.DUE, last + dt.timedelta(days=10), last)
    risk = d.alert_for(p, last + dt.timedelta(days=21), 3)
    assert risk == d.AlertPlan(AlertKind.AT_RISK, last + dt.timedelta(days=10), last)
    assert d.alert_for(p, last + dt.timedelta(days=10), 0) == due  # lead 0: on the day itself
    assert d.closed_by_purchase(last, last + dt.timedelta(days=9)) and not d.closed_by_purchase(last, last)


# ---- measuring it ---------------------------------------------------------------------------------------
def synthetic(customers: int, k: int, jitter: int, purchases: int, seed: int) -> dict[tuple[int, str], list[dt.date]]:
    """Customers buying every k ± jitter days, starting on staggered days."""
    rng = random.Random(seed)
    return {(cid, "WATER-550"): every(k, purchases, start=DAY0 + dt.timedelta(days=rng.randint(0, k)), jitter=jitter, rng=rng)
            for cid in range(1, customers + 1)}  # fmt: skip


def test_replay_of_a_30_day_rhythm_announces_at_least_90_percent_of_repurchases() -> None:
    history = synthetic(customers=40, k=30, jitter=2, purchases=12, seed=16)
    result, _ = d.replay(history, lead_days=3)
    assert result.repurchases == 40 * 11
    assert result.recall >= 0.9, (result.alerted, result.repurchases)
    assert result.precision >= 0.9, (result.due_hits, result.due_misses)
    assert result.at_risk_alerts == 0  # nobody skipped a cycle
    assert all(0 <= lead <= 3 + 2 * 2 for lead in result.lead_days)  # lead time + the jitter either way: days ahead, not weeks


def test_replay_counts_churned_customers_as_due_alerts_nobody_answered() -> None:
    history = synthetic(customers=10, k=20, jitter=0, purchases=16, seed=1)
    churned = {(cid, "WATER-550"): every(20, 6) for cid in (101, 102)}  # stop after 100 days
    end = min(days[-1] for days in history.values())  # while the regular customers still buy
    result, by_kind = d.replay({**history, **churned}, end=end, group=lambda pair: "churned" if pair[0] > 100 else "regular")
    assert result.at_risk_alerts == 2 and result.due_misses == 2  # their due alerts were replaced by at-risk ones
    assert result.due_hits == result.alerted_due
    assert result.precision == result.due_hits / (result.due_hits + 2) < 1.0
    # every repurchase was announced but a few second purchases, made before MIN_PEERS customers had a rhythm to borrow
    assert 0 < result.repurchases - result.alerted <= d.MIN_PEERS
    churners = by_kind["churned"]
    assert (churners.due_misses, churners.at_risk_alerts, churners.at_risk_recalled) == (2, 2, 0)
    assert churners.due_alerts == churners.due_hits + 2  # every reminder answered but the last one
    assert by_kind["regular"].due_misses == 0 and by_kind["regular"].due_hits_on_time == by_kind["regular"].due_hits


# ---- the product: recompute, alerts, reminders -------------------------------------------------------------
async def buy(h: SandboxHarness, cid: int, *, on: dt.datetime, sku: str = "WATER-550", salesperson: str = "sales01") -> str:
    """The customer buys one of ``sku`` at ``on`` (the clock is set there; the order's events are handled)."""
    h.rt.clock.set(on)  # type: ignore[attr-defined]
    order = await orders.create_order(h.rt, customer_id=cid, items=[(sku, 1)], source="api", salesperson_userid=salesperson, confirm=True)
    await h.settle()
    return order.number


async def alerts(h: SandboxHarness) -> list[tuple[str, str, str, dt.date, str]]:
    async with h.rt.db.read() as conn:
        rows = await conn.execute(sa.select(repurchase_alerts).order_by(repurchase_alerts.c.id))
        return [(r.kind, r.status, r.owner_userid, r.due_on, r.resolved_by) for r in rows]


def reminders(h: SandboxHarness, userid: str = "sales01") -> list[str]:
    return [m for m in h.state.app_messages_to(userid) if "复购" in m]


async def regular_customer(
    h: SandboxHarness, ext: str = "wmRegular", name: str = "甲客户", userid: str = "sales01"
) -> tuple[int, dt.datetime]:
    """A customer of ``userid`` who bought water three times, ten days apart; returns (id, last purchase)."""
    cid = await seed_follow(h.rt, userid, ext, name=name)
    start = h.rt.clock.now()
    for i in range(3):
        await buy(h, cid, on=start + dt.timedelta(days=10 * i), salesperson=userid)
    return cid, start + dt.timedelta(days=20)


async def test_the_nightly_run_reminds_the_salesperson_once_and_a_second_run_changes_nothing(sandbox: SandboxHarness) -> None:
    h = sandbox
    _, last = await regular_customer(h)
    assert await alerts(h) == [] and reminders(h) == []  # each purchase recomputed this customer: nothing due yet
    async with h.rt.db.read() as conn:
        p = (await conn.execute(sa.select(repurchase_predictions))).one()
    assert (p.purchases, p.interval_days, p.basis, p.next_due_on) == (3, 10, "own", local(last).date() + dt.timedelta(days=10))

    h.rt.clock.set(last + dt.timedelta(days=6))  # type: ignore[attr-defined]
    report = await services.recompute_if_due(h.rt)
    assert report is not None and report.opened == {"due": 0, "at_risk": 0}  # 4 days before: not yet (lead 3)
    h.rt.clock.set(last + dt.timedelta(days=7))  # type: ignore[attr-defined]
    report = await services.recompute_if_due(h.rt)
    assert report is not None and report.opened == {"due": 1, "at_risk": 0}
    await h.settle()
    due_on = local(last).date() + dt.timedelta(days=10)
    assert await alerts(h) == [("due", "open", "sales01", due_on, "")]
    [text] = reminders(h)
    assert "甲客户" in text and "矿泉水" in text and "通常每 10 天" in text and f"预计 {due_on.month}月{due_on.day}日" in text

    assert await services.recompute_if_due(h.rt) is None  # the day's run is done
    again = await services.recompute(h.rt)  # and run anyway (a retried job, a second worker): nothing new
    assert again.opened == {"due": 0, "at_risk": 0}
    await h.settle()
    assert len(await alerts(h)) == 1 and len(reminders(h)) == 1


async def test_a_repurchase_closes_the_open_alert_and_starts_a_new_cycle(sandbox: SandboxHarness) -> None:
    h = sandbox
    cid, last = await regular_customer(h)
    h.rt.clock.set(last + dt.timedelta(days=8))  # type: ignore[attr-defined]
    await services.recompute(h.rt)
    number = await buy(h, cid, on=last + dt.timedelta(days=9))
    [(kind, status, _, _, by)] = await alerts(h)
    assert (kind, status, by) == ("due", "done", f"order:{number}")
    async with h.rt.db.read() as conn:
        p = (await conn.execute(sa.select(repurchase_predictions))).one()
    assert p.last_purchase_on == local(last).date() + dt.timedelta(days=9) and p.purchases == 4
    assert p.interval_days == 10 and p.status == "waiting"
    # the outbox row may be handled again: nothing reopens, nothing is raised twice
    await on_order_confirmed(h.rt, {"order_id": (await orders_queries.get_order_by_number(h.rt, number)).id})
    assert [a[1] for a in await alerts(h)] == ["done"]


async def test_a_customer_past_two_intervals_is_at_risk_with_a_recall_task(sandbox: SandboxHarness) -> None:
    h = sandbox
    cid, last = await regular_customer(h)
    h.rt.clock.set(last + dt.timedelta(days=8))  # type: ignore[attr-defined]
    await services.recompute(h.rt)
    h.rt.clock.set(last + dt.timedelta(days=20))  # type: ignore[attr-defined]
    assert (await services.recompute(h.rt)).opened == {"due": 0, "at_risk": 0}  # exactly two intervals: late, not yet lost
    h.rt.clock.set(last + dt.timedelta(days=21))  # type: ignore[attr-defined]
    report = await services.recompute(h.rt)
    assert report.opened == {"due": 0, "at_risk": 1} and report.superseded == 1
    await h.settle()
    due_on = local(last).date() + dt.timedelta(days=10)
    assert await alerts(h) == [("due", "dismissed", "sales01", due_on, "system:at_risk"), ("at_risk", "open", "sales01", due_on, "")]
    assert any("流失预警" in m and "甲客户" in m and "已超过 20 天未买" in m for m in reminders(h))
    async with h.rt.db.read() as conn:
        assert (await conn.execute(sa.select(repurchase_predictions.c.status))).scalar_one() == "at_risk"
    await buy(h, cid, on=last + dt.timedelta(days=25))  # recalled
    assert [a[1] for a in await alerts(h)] == ["dismissed", "done"]


async def test_a_single_purchase_borrows_the_typical_interval_and_the_owner_is_the_follower(sandbox: SandboxHarness) -> None:
    h = sandbox
    start = h.rt.clock.now()
    for i, ext in enumerate(("wmP1", "wmP2", "wmP3")):
        cid = await seed_follow(h.rt, "sales01", ext, name=f"老客户{i}")
        for k in range(3):
            await buy(h, cid, on=start + dt.timedelta(days=(8 + 2 * i) * k))  # every 8, 10 and 12 days: typical 10
    newcomer = await seed_follow(h.rt, "sales02", "wmNew", name="新客户")
    h.state.add_member("sales02", "刘销售", position="销售")
    first = start + dt.timedelta(days=30)
    await buy(h, newcomer, on=first, salesperson="sales01")  # sold by sales01, served in WeCom by sales02
    h.rt.clock.set(first + dt.timedelta(days=7))  # type: ignore[attr-defined]
    await services.recompute(h.rt)
    await h.settle()
    async with h.rt.db.read() as conn:
        p = (await conn.execute(sa.select(repurchase_predictions).where(repurchase_predictions.c.customer_id == newcomer))).one()
        owner = (
            await conn.execute(sa.select(repurchase_alerts.c.owner_userid).where(repurchase_alerts.c.customer_id == newcomer))
        ).scalar_one()
    assert (p.purchases, p.basis, p.interval_days) == (1, "product", 10)
    assert owner == "sales02" and any("新客户" in m for m in reminders(h, "sales02"))


async def test_a_handover_moves_the_open_alerts_to_the_new_salesperson(sandbox: SandboxHarness) -> None:
    h = sandbox
    cid, last = await regular_customer(h)
    h.rt.clock.set(last + dt.timedelta(days=8))  # type: ignore[attr-defined]
    await services.recompute(h.rt)
    payload = {"customer_id": cid, "from_userid": "sales01", "to_userid": "sales02", "kind": "resigned", "handover_id": 1}
    for _ in range(2):  # delivered twice: the same effect
        async with h.rt.db.write() as conn:
            await outbox.add(conn, "customer.transferred", payload, h.rt.clock.now())
        await h.settle()
    assert [(a[1], a[2]) for a in await alerts(h)] == [("open", "sales02")]


# ---- API, console, data scope -----------------------------------------------------------------------------
async def two_salespeoples_alerts(h: SandboxHarness) -> dict[str, int]:
    """甲客户 (sales01's) and 丙客户 (sales03's) each due for water; returns customer name → alert id."""
    h.state.add_member("sales03", "孙销售", position="销售")
    start = h.rt.clock.now()
    await regular_customer(h, "wmMine", "甲客户", "sales01")
    h.rt.clock.set(start)  # type: ignore[attr-defined]
    _, last = await regular_customer(h, "wmOther", "丙客户", "sales03")
    h.rt.clock.set(last + dt.timedelta(days=8))  # type: ignore[attr-defined]
    await services.recompute(h.rt)
    await h.settle()
    async with h.rt.db.read() as conn:
        found = await list_alerts(conn, scope=EVERYTHING)
    return {a.customer_name: a.id for a in found}


async def test_the_api_shows_and_acts_on_alerts_in_the_callers_scope_only(sandbox: SandboxHarness) -> None:
    h = sandbox
    ids = await two_salespeoples_alerts(h)
    li = await h.staff_token("li", ["sales"], wecom_userid="sales01")  # own scope
    status, mine = await h.as_token(li, "GET", "/repurchase-alerts")
    assert status == 200 and [(a["customer_name"], a["kind"], a["owner"], a["interval_days"]) for a in mine["items"]] == [
        ("甲客户", "due", "sales01", 10)
    ]
    assert (await h.as_token(li, "GET", "/repurchase-alerts?kind=at_risk"))[1]["items"] == []
    assert (await h.as_token(li, "GET", "/repurchase-alerts?owner=sales03"))[1]["items"] == []
    status, body = await h.as_token(li, "GET", "/repurchase-alerts?kind=lost")
    assert status == 400 and body["error"]["details"]["field"] == "kind"

    status, body = await h.as_token(li, "POST", f"/repurchase-alerts/{ids['丙客户']}/done", json={})
    assert status == 404 and body["error"]["code"] == "repurchase_alert_not_found"  # someone else's = unknown
    status, done = await h.as_token(li, "POST", f"/repurchase-alerts/{ids['甲客户']}/done", json={})
    assert status == 200 and done["status"] == "done" and done["resolved_by"] == "li" and done["resolved_at"]
    status, body = await h.as_token(li, "POST", f"/repurchase-alerts/{ids['甲客户']}/dismiss", json={})
    assert status == 409 and body["error"]["code"] == "repurchase_alert_closed"
    assert (await h.as_token(li, "GET", "/repurchase-alerts"))[1]["items"] == []
    assert [a["status"] for a in (await h.as_token(li, "GET", "/repurchase-alerts?status=all"))[1]["items"]] == ["done"]

    status, everyone = await h.api("GET", "/repurchase-alerts?status=all")
    assert sorted(a["customer_name"] for a in everyone["items"]) == ["丙客户", "甲客户"]
    status, dismissed = await h.api("POST", f"/repurchase-alerts/{ids['丙客户']}/dismiss")
    assert status == 200 and dismissed["status"] == "dismissed"
    async with h.rt.db.read() as conn:
        trail = (
            await conn.execute(sa.select(audit_log.c.action, audit_log.c.entity_id).where(audit_log.c.entity == "repurchase_alerts"))
        ).all()
    assert sorted(trail) == sorted([("done", str(ids["甲客户"])), ("dismissed", str(ids["丙客户"]))])
    # a dismissed reminder is not raised again by the next run
    assert (await services.recompute(h.rt)).opened == {"due": 0, "at_risk": 0}


async def test_the_configured_coupon_is_offered_and_sent_once_per_alert(sandbox: SandboxHarness) -> None:
    h = sandbox
    ids = await two_salespeoples_alerts(h)
    li = await h.staff_token("li", ["sales"], wecom_userid="sales01")
    status, body = await h.as_token(li, "POST", f"/repurchase-alerts/{ids['甲客户']}/coupon", json={})
    assert status == 409 and body["error"]["code"] == "no_repurchase_coupon"
    status, tpl = await h.api("POST", "/coupon-templates", json={"name": "复购满100减10", "kind": "fixed", "amount_off_fen": 1000,
                                                                 "threshold_fen": 10000})  # fmt: skip
    assert status == 201
    await services.update_settings(h.rt, lead_days=3, coupon_template_id=int(tpl["id"]))
    status, sent = await h.as_token(li, "POST", f"/repurchase-alerts/{ids['甲客户']}/coupon", json={})
    assert status == 200 and sent["coupon_id"] and sent["status"] == "open"
    again = (await h.as_token(li, "POST", f"/repurchase-alerts/{ids['甲客户']}/coupon", json={}))[1]
    assert again["coupon_id"] == sent["coupon_id"]  # pressed twice: one coupon
    await h.settle()
    status, wallet = await h.api("GET", "/customers/wmMine/coupons")
    assert [c["name"] for c in wallet["items"]] == ["复购满100减10"]
    # the customer is told on the channel that reaches them: here a confirm-to-send task for sales01
    assert any("确认发送" in m and "满100减10" in m for m in h.state.app_messages_to("sales01"))
    assert (await h.as_token(li, "POST", f"/repurchase-alerts/{ids['丙客户']}/coupon", json={}))[0] == 404
    # the next reminder names the coupon the salesperson may send
    h.rt.clock.advance(days=13)  # type: ignore[attr-defined]  # last purchase + 21 days
    await services.recompute(h.rt)  # 甲客户 is at risk now
    await h.settle()
    assert any("流失预警" in m and "复购满100减10" in m for m in reminders(h))


async def test_the_console_page_lists_the_scope_and_marks_alerts(sandbox: SandboxHarness) -> None:
    h, c = sandbox, sandbox.client
    ids = await two_salespeoples_alerts(h)
    await accounts.create_staff(h.rt, "li", STAFF_PASSWORD, ["sales"], wecom_userid="sales01")
    resp = await c.post("/console/login", data={"username": "li", "password": STAFF_PASSWORD}, allow_redirects=False)
    assert resp.status == 303
    page = await c.get("/console/repurchase", headers=HTML)
    text = await page.text()
    assert page.status == 200 and "甲客户" in text and "丙客户" not in text and "复购提醒" in text and "10 天" in text
    assert "/console/repurchase/settings" not in text  # the settings are the admin's
    csrf = CSRF.search(text)
    assert csrf
    resp = await c.post(f"/console/repurchase/{ids['甲客户']}/dismiss", data={"csrf_token": csrf.group(1)}, allow_redirects=False)
    assert resp.status == 303
    resp = await c.post(f"/console/repurchase/{ids['丙客户']}/done", data={"csrf_token": csrf.group(1)}, allow_redirects=False)
    assert resp.status == 404 or (resp.status == 303 and "没有这条" in (await (await c.get("/console/repurchase", headers=HTML)).text()))
    resp = await c.post("/console/repurchase/settings", data={"csrf_token": csrf.group(1), "lead_days": "5"}, allow_redirects=False)
    assert resp.status == 403
    assert [(a[0], a[1]) for a in await alerts(h)] == [("due", "dismissed"), ("due", "open")]

    admin_csrf = await console_login(c, h.rt.settings)
    text = await (await c.get("/console/repurchase", headers=HTML)).text()
    assert "丙客户" in text and "/console/repurchase/settings" in text
    resp = await c.post("/console/repurchase/settings", data={"csrf_token": admin_csrf, "lead_days": "99"}, allow_redirects=False)
    assert resp.status == 303 and (await services.get_settings(h.rt)).lead_days == 3  # refused: out of range
    resp = await c.post("/console/repurchase/settings", data={"csrf_token": admin_csrf, "lead_days": "5", "coupon_template_id": ""},
                        allow_redirects=False)  # fmt: skip
    assert resp.status == 303 and (await services.get_settings(h.rt)).lead_days == 5


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_the_page_fits_desktop_and_tablet(sandbox: SandboxHarness) -> None:
    require_chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    h = sandbox
    await two_salespeoples_alerts(h)
    server = str(h.client.make_url("")).rstrip("/")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for width in (1280, 768):
                page = await browser.new_page(viewport={"width": width, "height": 900}, locale="zh-CN")
                await sign_in(page, server, h.rt)
                await page.goto(server + "/console/repurchase")
                await expect(page.locator("h1")).to_have_text("复购预警")
                await page.screenshot(path=str(SCREENSHOTS / f"repurchase-{width}.png"), full_page=True)
                assert await off_screen(page, "form.toolbar button, form.row button") == [], width
                table = await page.locator(".table-wrap").bounding_box()
                done = await page.get_by_role("button", name="完成").first.bounding_box()
                assert table and done and done["x"] + done["width"] <= table["x"] + table["width"] + 0.5, (width, table, done)
                await page.get_by_role("button", name="完成").first.click()
                await expect(page.locator(".flash")).to_have_text("已标记完成")
                await page.close()
        finally:
            await browser.close()
    assert [a[1] for a in await alerts(h)] == ["done", "done"]  # one marked at each width


async def test_two_records_merged_into_one_customer_are_predicted_as_one(sandbox: SandboxHarness) -> None:
    h = sandbox
    start = h.rt.clock.now()
    older = await seed_follow(h.rt, "sales01", "wmOlder", name="老记录")
    newer = await seed_follow(h.rt, "sales01", "wmNewer", name="新记录")
    for days in (0, 10):
        await buy(h, older, on=start + dt.timedelta(days=days))
    h.rt.clock.set(start + dt.timedelta(days=17))  # type: ignore[attr-defined]
    await services.recompute(h.rt)
    number = await buy(h, newer, on=start + dt.timedelta(days=20))  # the same person, seen under another record
    async with h.rt.db.write() as conn:
        assert await merge_customers(conn, h.rt.db.dialect, newer, older, h.rt.clock.now()) == older
    await h.settle()
    async with h.rt.db.read() as conn:
        rows = (await conn.execute(sa.select(repurchase_predictions))).all()
    assert [(r.customer_id, r.purchases, r.interval_days) for r in rows] == [(older, 3, 10)]
    assert [(k, s, by) for k, s, _, _, by in await alerts(h)] == [("due", "done", f"order:{number}")]
