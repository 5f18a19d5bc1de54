"""Repurchase alerts (复购预警), the use cases: recompute predictions from the orders and raise alerts, close them when
the customer buys again, let the salesperson mark them done or dismiss them, offer the configured coupon, and move
them with the customer on a handover. The method is in :mod:`scrm.sales.repurchase.domain`.

Guarantees: a recompute run twice (two workers, a retried job, the nightly run and an order's incremental run at
once) raises each alert once — alerts are unique per customer × SKU × kind × purchase cycle and inserted with
``ON CONFLICT DO NOTHING`` — and only a newly inserted alert writes the outbox row that reminds the salesperson.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.orders.queries import Purchase, customers_with_purchases, purchases
from scrm.campaigns.coupons.services import get_template, issue_coupon
from scrm.core import audit, outbox
from scrm.core.clock import local
from scrm.core.db import insert_ignore
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.staff.services import follows_of
from scrm.governance.scopes.services import DataScope
from scrm.sales.repurchase import domain as d
from scrm.sales.repurchase.domain import AlertClosed, AlertKind, AlertNotFound, AlertStatus, Basis, NoRepurchaseCoupon, Pair
from scrm.sales.repurchase.models import repurchase_alerts, repurchase_predictions, repurchase_settings

log = logging.getLogger(__name__)

A = repurchase_alerts.c
P = repurchase_predictions.c
ALERTS_OPENED = "repurchase.alerts_opened"  # payload {"owner_userid", "alert_ids"}: remind the salesperson (bots/notices)
CHUNK = 500  # customers written per transaction in a full recompute


# ---- settings -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepurchaseSettings:
    lead_days: int = d.DEFAULT_LEAD_DAYS
    coupon_template_id: int | None = None
    recomputed_on: dt.date | None = None


async def read_settings(conn: AsyncConnection) -> RepurchaseSettings:
    row = (await conn.execute(sa.select(repurchase_settings).where(repurchase_settings.c.id == 1))).first()
    if row is None:
        return RepurchaseSettings()
    return RepurchaseSettings(int(row.lead_days), row.coupon_template_id, row.recomputed_on)


async def get_settings(rt: Runtime) -> RepurchaseSettings:
    async with rt.db.read() as conn:
        return await read_settings(conn)


async def _ensure_settings_row(conn: AsyncConnection, dialect: str) -> None:
    await conn.execute(insert_ignore(repurchase_settings, dialect).values(id=1, lead_days=d.DEFAULT_LEAD_DAYS, updated_by=""))


async def update_settings(rt: Runtime, *, lead_days: int, coupon_template_id: int | None) -> RepurchaseSettings:
    """Set the lead time and the coupon offered with reminders (None: no coupon). The coupon template must exist and
    be active. Recorded in the audit trail with before → after."""
    d.check_lead_days(lead_days)
    if coupon_template_id is not None:
        try:
            template = await get_template(rt, coupon_template_id)
        except NotFound:
            raise InvalidInput("没有这个优惠券模板 (no such coupon template)", field="coupon_template_id") from None
        if not template.active:
            raise InvalidInput(f"优惠券“{template.name}”已停用，请选择启用中的模板 (template inactive)", field="coupon_template_id")
    now = rt.clock.now()
    actor = audit.current_actor()
    async with rt.db.write() as conn:
        before = await read_settings(conn)
        await _ensure_settings_row(conn, rt.db.dialect)
        await conn.execute(
            repurchase_settings.update()
            .where(repurchase_settings.c.id == 1)
            .values(
                lead_days=lead_days, coupon_template_id=coupon_template_id, updated_at=now, updated_by=actor.name[:64] or actor.ref[:64]
            )
        )
        await audit.record(
            conn,
            now,
            action="update",
            entity="repurchase_settings",
            entity_id=1,
            summary="修改复购预警设置",
            before={"lead_days": before.lead_days, "coupon_template_id": before.coupon_template_id},
            after={"lead_days": lead_days, "coupon_template_id": coupon_template_id},
        )
        return await read_settings(conn)


# ---- recompute ------------------------------------------------------------------------------------------
@dataclass
class RecomputeReport:
    predictions: int = 0
    opened: dict[str, int] = field(default_factory=lambda: {AlertKind.DUE: 0, AlertKind.AT_RISK: 0})
    closed: int = 0  # open alerts whose customer bought again
    superseded: int = 0  # due alerts an at-risk alert replaced


@dataclass
class _History:
    days: dict[Pair, list[dt.date]] = field(default_factory=lambda: defaultdict(list))
    orders: dict[Pair, list[tuple[dt.date, str]]] = field(default_factory=lambda: defaultdict(list))
    names: dict[Pair, str] = field(default_factory=dict)
    last_salesperson: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[Purchase]) -> _History:
        h = cls()
        for p in rows:  # by customer, then time
            day = local(p.confirmed_at).date()
            pair = (p.customer_id, p.sku)
            h.days[pair].append(day)
            h.orders[pair].append((day, p.order_number))
            h.names[pair] = p.name
            if p.salesperson_userid:
                h.last_salesperson[p.customer_id] = p.salesperson_userid
        return h

    def order_after(self, pair: Pair, day: dt.date) -> str:
        """The first order of the pair after ``day`` (the repurchase that closed a cycle)."""
        return next((number for on, number in self.orders.get(pair, []) if on > day), "")


def today_of(rt: Runtime) -> dt.date:
    return local(rt.clock.now()).date()


async def _peer_intervals(conn: AsyncConnection, skus: Collection[str], excluded: Collection[int]) -> dict[str, list[int]]:
    """Usual intervals of other customers (stored by the last recompute) for an incremental run's typical intervals."""
    if not skus:
        return {}
    q = sa.select(P.sku, P.interval_days).where(P.basis == Basis.OWN, P.sku.in_(sorted(skus)), P.customer_id.not_in(sorted(excluded)))
    found: dict[str, list[int]] = defaultdict(list)
    for r in await conn.execute(q):
        found[r.sku].append(int(r.interval_days))
    return found


async def recompute(rt: Runtime, customer_ids: Collection[int] | None = None) -> RecomputeReport:
    """Recompute the predictions of ``customer_ids`` (None: everyone — the nightly run) from their purchases and
    raise the alerts today calls for; close open alerts whose customer bought again. Idempotent (see the module).

    Memory stays bounded by :data:`CHUNK` customers' orders: the nightly run reads the purchases in chunks twice —
    first for every product's typical interval (which needs every customer), then to predict and store each chunk
    in a transaction of its own. An incremental run (one customer's order) borrows the other customers' intervals
    from the stored predictions instead."""
    now = rt.clock.now()
    today = local(now).date()
    async with rt.db.read() as conn:
        settings = await read_settings(conn)
        if customer_ids is None:
            chunks = _chunks(await customers_with_purchases(conn))
        else:
            chunks = [sorted(set(customer_ids))]
    typicals: dict[str, int] = {}
    if customer_ids is None:
        own: dict[str, list[int]] = defaultdict(list)
        for chunk in chunks:
            async with rt.db.read() as conn:
                for (_, sku), days in _History.of(await purchases(conn, customer_ids=chunk)).days.items():
                    if (interval := d.usual_interval(days)) is not None:
                        own[sku].append(interval)
        typicals = d.typical_intervals({}, own)
    report = RecomputeReport()
    for chunk in chunks:
        async with rt.db.read() as conn:
            history = _History.of(await purchases(conn, customer_ids=chunk))
            if customer_ids is not None:
                typicals = d.typical_intervals(history.days, await _peer_intervals(conn, {sku for _, sku in history.days}, chunk))
        predictions = d.predict_all(history.days, typicals)
        report.predictions += len(predictions)
        async with rt.db.write() as conn:
            await _store_predictions(conn, rt.db.dialect, chunk, predictions, history, today, settings, now)
            await _settle_alerts(conn, rt.db.dialect, chunk, predictions, history, today, settings, now, report)
    if customer_ids is None:
        async with rt.db.write() as conn:  # customers with no purchase left (their only order cancelled)
            await conn.execute(repurchase_predictions.delete().where(P.computed_at < now))
            await _ensure_settings_row(conn, rt.db.dialect)
            await conn.execute(repurchase_settings.update().where(repurchase_settings.c.id == 1).values(recomputed_on=today))
    return report


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def _store_predictions(
    conn: AsyncConnection,
    dialect: str,
    chunk: list[int],
    predictions: list[d.Prediction],
    history: _History,
    today: dt.date,
    settings: RepurchaseSettings,
    now: dt.datetime,
) -> None:
    await conn.execute(repurchase_predictions.delete().where(P.customer_id.in_(chunk), P.computed_at < now))
    if not predictions:
        return
    rows = [
        {
            "customer_id": p.customer_id,
            "sku": p.sku,
            "name": history.names.get((p.customer_id, p.sku), "")[:128],
            "purchases": p.purchases,
            "last_purchase_on": p.last_purchase_on,
            "interval_days": p.interval_days,
            "basis": p.basis,
            "next_due_on": p.next_due_on,
            "status": p.status(today, settings.lead_days),
            "computed_at": now,
        }
        for p in predictions
    ]
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(repurchase_predictions)
    update = ["name", "purchases", "last_purchase_on", "interval_days", "basis", "next_due_on", "status", "computed_at"]
    await conn.execute(stmt.on_conflict_do_update(index_elements=["customer_id", "sku"], set_={c: stmt.excluded[c] for c in update}), rows)


async def owner_of(conn: AsyncConnection, customer_id: int, last_salesperson: str) -> str:
    """The customer's salesperson: the one who sold the last order if they still serve the customer, else the first
    member still following them (WeCom relation), else the last order's salesperson, else nobody ("")."""
    try:
        serving = [f.userid for f in await follows_of(conn, customer_id, include_ended=False)]
    except NotFound:  # orders of a customer record that is gone: the order's salesperson, not a failed night
        serving = []
    if last_salesperson and last_salesperson in serving:
        return last_salesperson
    return serving[0] if serving else last_salesperson


async def _settle_alerts(
    conn: AsyncConnection,
    dialect: str,
    chunk: list[int],
    predictions: list[d.Prediction],
    history: _History,
    today: dt.date,
    settings: RepurchaseSettings,
    now: dt.datetime,
    report: RecomputeReport,
) -> None:
    latest = {(p.customer_id, p.sku): p for p in predictions}
    raised = {  # the alerts of these customers' current cycles that exist already (open or not): nothing to insert
        (int(r.customer_id), r.sku, r.kind, r.last_purchase_on)
        for r in await conn.execute(sa.select(A.customer_id, A.sku, A.kind, A.last_purchase_on).where(A.customer_id.in_(chunk)))
        if (p := latest.get((int(r.customer_id), r.sku))) is not None and r.last_purchase_on == p.last_purchase_on
    }
    open_rows = (await conn.execute(sa.select(A.id, A.customer_id, A.sku, A.kind, A.last_purchase_on).where(
        A.customer_id.in_(chunk), A.status == AlertStatus.OPEN))).all()  # fmt: skip
    for r in open_rows:
        pair = (int(r.customer_id), r.sku)
        p = latest.get(pair)
        if p is not None and d.closed_by_purchase(r.last_purchase_on, p.last_purchase_on):
            number = history.order_after(pair, r.last_purchase_on)
            report.closed += await _resolve(conn, int(r.id), AlertStatus.DONE, f"order:{number}" if number else "order", now)
    opened: dict[str, list[int]] = defaultdict(list)
    owners: dict[int, str] = {}
    for pair, p in latest.items():
        plan = d.alert_for(p, today, settings.lead_days)
        if plan is None or p.interval_days is None or (*pair, plan.kind, plan.last_purchase_on) in raised:
            continue
        cid = pair[0]
        if cid not in owners:
            owners[cid] = await owner_of(conn, cid, history.last_salesperson.get(cid, ""))
        inserted = await conn.execute(
            insert_ignore(repurchase_alerts, dialect)
            .values(
                kind=plan.kind,
                customer_id=cid,
                sku=p.sku,
                name=history.names.get(pair, "")[:128],
                owner_userid=owners[cid],
                last_purchase_on=plan.last_purchase_on,
                interval_days=p.interval_days,
                due_on=plan.due_on,
                status=AlertStatus.OPEN,
                created_at=now,
                resolved_by="",
            )
            .returning(A.id)
        )
        alert_id = inserted.scalar()
        if alert_id is None:
            continue  # this cycle's alert of this kind exists already (a second run, or dismissed)
        report.opened[plan.kind] += 1
        opened[owners[cid]].append(int(alert_id))
        if plan.kind == AlertKind.AT_RISK:  # the recall task replaces the reminder nobody answered
            superseded = await conn.execute(
                repurchase_alerts.update()
                .where(A.customer_id == cid, A.sku == p.sku, A.kind == AlertKind.DUE, A.status == AlertStatus.OPEN)
                .values(status=AlertStatus.DISMISSED, resolved_at=now, resolved_by="system:at_risk")
            )
            report.superseded += superseded.rowcount or 0
    for owner, alert_ids in opened.items():
        if owner:
            await outbox.add(conn, ALERTS_OPENED, {"owner_userid": owner, "alert_ids": alert_ids}, now)
        else:
            log.info("repurchase alerts without a salesperson (no follow, no order salesperson)", extra={"alert_ids": alert_ids[:20]})


async def _resolve(conn: AsyncConnection, alert_id: int, status: str, by: str, now: dt.datetime) -> int:
    result = await conn.execute(
        repurchase_alerts.update()
        .where(A.id == alert_id, A.status == AlertStatus.OPEN)
        .values(status=status, resolved_at=now, resolved_by=by[:64])
    )
    return int(result.rowcount or 0)


async def recompute_if_due(rt: Runtime) -> RecomputeReport | None:
    """The nightly recompute, once per business day (the cron ticks hourly; the first tick of a day runs it)."""
    async with rt.db.read() as conn:
        settings = await read_settings(conn)
    if settings.recomputed_on is not None and settings.recomputed_on >= today_of(rt):
        return None
    return await recompute(rt)


# ---- events ---------------------------------------------------------------------------------------------
async def close_on_repurchase(rt: Runtime, *, customer_id: int, skus: Collection[str], bought_at: dt.datetime, number: str) -> int:
    """A purchase of ``skus`` closes the customer's open alerts of those SKUs whose cycle it ends (counted from an
    earlier purchase day): status done, resolved by the order. Returns how many closed; a repeat closes nothing."""
    if not skus:
        return 0
    day = local(bought_at).date()
    now = rt.clock.now()
    async with rt.db.write() as conn:
        result = await conn.execute(
            repurchase_alerts.update()
            .where(A.customer_id == customer_id, A.sku.in_(sorted(set(skus))), A.status == AlertStatus.OPEN, A.last_purchase_on < day)
            .values(status=AlertStatus.DONE, resolved_at=now, resolved_by=f"order:{number}"[:64])
        )
        return int(result.rowcount or 0)


async def move_to_owner(rt: Runtime, *, customer_id: int, from_userid: str, to_userid: str) -> int:
    """A handover: the customer's open alerts owned by ``from_userid`` (or by nobody) move to ``to_userid``."""
    async with rt.db.write() as conn:
        result = await conn.execute(
            repurchase_alerts.update()
            .where(A.customer_id == customer_id, A.status == AlertStatus.OPEN, A.owner_userid.in_([from_userid, ""]))
            .values(owner_userid=to_userid)
        )
        return int(result.rowcount or 0)


async def forget_merged(rt: Runtime, *, from_id: int) -> None:
    """Two customer records became one: the old record's open alerts are dismissed and its predictions dropped (the
    surviving record's recompute, which sees the moved orders, raises what is still due)."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(
            repurchase_alerts.update()
            .where(A.customer_id == from_id, A.status == AlertStatus.OPEN)
            .values(status=AlertStatus.DISMISSED, resolved_at=now, resolved_by="system:merged")
        )
        await conn.execute(repurchase_predictions.delete().where(P.customer_id == from_id))


# ---- the salesperson's actions --------------------------------------------------------------------------
async def _alert_row(conn: AsyncConnection, alert_id: int, scope: DataScope, *, lock: bool = False) -> Any:
    q = sa.select(repurchase_alerts).where(A.id == alert_id, scope.orders(A.customer_id, A.owner_userid))
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        raise AlertNotFound("没有这条复购预警 (no such repurchase alert)", alert_id=alert_id)
    return row


async def resolve_alert(rt: Runtime, alert_id: int, *, status: str, scope: DataScope) -> int:
    """The salesperson marks an open alert done (contacted, recalled) or dismisses it. Out of scope answers as not
    found; an alert already closed is AlertClosed. Returns the alert id."""
    if status not in (AlertStatus.DONE, AlertStatus.DISMISSED):
        raise InvalidInput("状态只能是 done 或 dismissed (status)", field="status")
    actor = audit.current_actor()
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _alert_row(conn, alert_id, scope, lock=True)
        if row.status != AlertStatus.OPEN or not await _resolve(conn, alert_id, status, actor.name or actor.ref, now):
            raise AlertClosed(f"这条预警已{d.ALERT_STATUS_ZH.get(row.status, row.status)} (the alert is closed)", alert_id=alert_id)
        await audit.record(
            conn,
            now,
            action=status,
            entity="repurchase_alerts",
            entity_id=alert_id,
            summary=f"{d.KIND_ZH[row.kind]} 客户#{row.customer_id} {row.name or row.sku} → {d.ALERT_STATUS_ZH[status]}",
            before={"status": row.status},
            after={"status": status},
        )
    return alert_id


async def send_coupon(rt: Runtime, alert_id: int, *, scope: DataScope, source: str) -> int:
    """Give the customer of an open alert the coupon configured for repurchase reminders; the customer is told on
    the channel that reaches them (``coupon.issued``). Once per alert (keyed ``repurchase:<alert id>``): a second
    press returns the same coupon. Returns the coupon id."""
    async with rt.db.read() as conn:
        settings = await read_settings(conn)
        row = await _alert_row(conn, alert_id, scope)
    if settings.coupon_template_id is None:
        raise NoRepurchaseCoupon("未设置复购提醒优惠券，请管理员在“复购预警”页设置 (no repurchase coupon configured)")
    if row.status != AlertStatus.OPEN:
        raise AlertClosed(f"这条预警已{d.ALERT_STATUS_ZH.get(row.status, row.status)} (the alert is closed)", alert_id=alert_id)
    actor = audit.current_actor()
    coupon = await issue_coupon(
        rt,
        settings.coupon_template_id,
        int(row.customer_id),
        source=source,
        source_ref=f"repurchase:{alert_id}",
        actor=actor.name or actor.ref,
        notify=True,
    )
    async with rt.db.write() as conn:
        await conn.execute(repurchase_alerts.update().where(A.id == alert_id).values(coupon_id=coupon.id))
    return int(coupon.id)
