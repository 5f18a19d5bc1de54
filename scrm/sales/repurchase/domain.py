"""Repurchase prediction (复购预警 / 流失预警), the pure part: from one customer's purchases of one product, the usual
interval, the predicted next purchase date, and which alert (if any) is due today.

The method
----------
* **Purchases** are the business-day dates (Asia/Shanghai) of the customer's orders that contain the SKU and were
  confirmed (confirmed, partly shipped, shipped or completed — drafts, holds, cancelled orders are no purchase).
  Several orders of one SKU on one day count as one purchase: a second order placed an hour later is a top-up, not
  a new cycle.
* **Usual interval** (通常间隔), with ≥ 2 purchases: the **median** of the gaps between consecutive purchases, over the
  last :data:`RECENT_GAPS` gaps, rounded to whole days (half up), at least 1. The median, not the mean: one
  holiday stock-up (a gap of 3 days) or one forgotten month (a gap of 90) does not move it, and the recent window
  follows a customer whose habit changed.
* **One purchase only**: the customer has no rhythm of their own yet, so the product's **typical interval** stands in —
  the median of the usual intervals of every customer with ≥ 2 purchases of that SKU, when at least
  :data:`MIN_PEERS` such customers exist; otherwise there is **no prediction** (basis ``none``): we would be guessing.
* **Predicted next purchase** (预计复购日) = last purchase + usual interval.
* **Due** (复购提醒): from :data:`lead_days` days before the predicted date (a console setting, default 3) the
  salesperson is reminded, once per purchase cycle (customer × SKU × last purchase — a due date that moves because the
  product's typical interval moved does not remind twice).
* **At risk** (流失预警): today is later than last purchase + 2 × usual interval: the customer skipped a whole cycle.
  The at-risk alert (a recall task for the salesperson) replaces an open due alert of the same cycle.
* A purchase of the SKU starts a new cycle: the open alert of the old one is done (the customer came back).

Everything here works on plain values (dates and ints) and does no I/O; :mod:`scrm.sales.repurchase.services` reads the
orders and stores predictions and alerts, and ``bench/repurchase.py`` replays synthetic histories day by day through the
same functions (:func:`replay`) to measure how many repurchases were announced in time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scrm.core.errors import Conflict, InvalidInput, NotFound

RECENT_GAPS = 12  # the usual interval is the median of at most this many latest gaps
MIN_PEERS = 3  # customers with a rhythm of their own needed before a product's typical interval stands in for one
AT_RISK_FACTOR = 2  # at risk once the customer is later than this many usual intervals
DEFAULT_LEAD_DAYS = 3
MAX_LEAD_DAYS = 60


class Basis:
    OWN = "own"  # the customer's own purchases (≥ 2)
    PRODUCT = "product"  # one purchase: the product's typical interval across customers
    NONE = "none"  # one purchase and too few customers with a rhythm: no prediction


class PredictionStatus:
    UNKNOWN = "unknown"  # no interval: nothing predicted
    WAITING = "waiting"  # the predicted date is further away than the lead time
    DUE = "due"  # within the lead time of the predicted date (or past it, not yet at risk)
    AT_RISK = "at_risk"  # later than last purchase + 2 × usual interval


STATUS_ZH = {"unknown": "数据不足", "waiting": "未到期", "due": "待复购", "at_risk": "流失风险"}


class AlertKind:
    DUE = "due"  # 复购提醒: the predicted date is near
    AT_RISK = "at_risk"  # 流失预警: a whole cycle skipped; the alert is the salesperson's recall task


class AlertStatus:
    OPEN = "open"  # waiting for the salesperson (or for the customer's purchase)
    DONE = "done"  # the customer bought again, or the salesperson marked the task done
    DISMISSED = "dismissed"  # the salesperson dismissed it, or an at-risk alert replaced it


KIND_ZH = {AlertKind.DUE: "复购提醒", AlertKind.AT_RISK: "流失预警"}
ALERT_STATUS_ZH = {AlertStatus.OPEN: "待处理", AlertStatus.DONE: "已完成", AlertStatus.DISMISSED: "已忽略"}
KINDS = (AlertKind.DUE, AlertKind.AT_RISK)
ALERT_STATUSES = (AlertStatus.OPEN, AlertStatus.DONE, AlertStatus.DISMISSED)


class AlertNotFound(NotFound):
    code = "repurchase_alert_not_found"


class AlertClosed(Conflict):
    code = "repurchase_alert_closed"


class NoRepurchaseCoupon(Conflict):
    code = "no_repurchase_coupon"


def check_lead_days(value: int) -> int:
    if not 0 <= value <= MAX_LEAD_DAYS:
        raise InvalidInput(f"提前提醒天数须为 0–{MAX_LEAD_DAYS} 天 (lead_days out of range)", field="lead_days")
    return value


# ---- intervals ------------------------------------------------------------------------------------------
def purchase_days(dates: Iterable[dt.date]) -> list[dt.date]:
    """Distinct purchase days, oldest first (two orders on one day are one purchase)."""
    return sorted(set(dates))


def gaps(days: Sequence[dt.date]) -> list[int]:
    return [(b - a).days for a, b in itertools.pairwise(days)]


def _median_days(values: Sequence[int]) -> int:
    return max(1, math.floor(statistics.median(values) + 0.5))


def usual_interval(days: Sequence[dt.date]) -> int | None:
    """The customer's own usual interval in days (median of the latest gaps), or None with fewer than 2 purchases."""
    between = gaps(purchase_days(days))
    return _median_days(between[-RECENT_GAPS:]) if between else None


def typical_interval(own_intervals: Sequence[int]) -> int | None:
    """A product's typical interval: the median of its customers' usual intervals, once :data:`MIN_PEERS` have one."""
    return _median_days(own_intervals) if len(own_intervals) >= MIN_PEERS else None


# ---- predictions ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """One customer × product: what we know and what we expect."""

    customer_id: int
    sku: str
    purchases: int
    last_purchase_on: dt.date
    interval_days: int | None
    basis: str

    @property
    def next_due_on(self) -> dt.date | None:
        return self.last_purchase_on + dt.timedelta(days=self.interval_days) if self.interval_days else None

    @property
    def at_risk_after(self) -> dt.date | None:
        """The last day that is not yet at risk (last purchase + 2 × interval); at risk from the day after."""
        return self.last_purchase_on + dt.timedelta(days=AT_RISK_FACTOR * self.interval_days) if self.interval_days else None

    def status(self, today: dt.date, lead_days: int) -> str:
        due, risk = self.next_due_on, self.at_risk_after
        if due is None or risk is None:
            return PredictionStatus.UNKNOWN
        if today > risk:
            return PredictionStatus.AT_RISK
        if today >= due - dt.timedelta(days=lead_days):
            return PredictionStatus.DUE
        return PredictionStatus.WAITING


def predict(customer_id: int, sku: str, days: Sequence[dt.date], typical: int | None = None) -> Prediction:
    """The prediction of one customer × SKU from its purchase days; ``typical`` (the product's typical interval)
    stands in when there is only one purchase."""
    distinct = purchase_days(days)
    if not distinct:
        raise ValueError("a prediction needs at least one purchase")
    own = usual_interval(distinct)
    if own is not None:
        return Prediction(customer_id, sku, len(distinct), distinct[-1], own, Basis.OWN)
    if typical is not None:
        return Prediction(customer_id, sku, 1, distinct[-1], typical, Basis.PRODUCT)
    return Prediction(customer_id, sku, 1, distinct[-1], None, Basis.NONE)


Pair = tuple[int, str]  # (customer_id, sku)


def typical_intervals(histories: Mapping[Pair, Sequence[dt.date]], extra: Mapping[str, Sequence[int]] | None = None) -> dict[str, int]:
    """Each SKU's typical interval from the customers of ``histories`` with a rhythm of their own, plus ``extra``
    (usual intervals of other customers, when only some customers are recomputed)."""
    by_sku: dict[str, list[int]] = {sku: list(values) for sku, values in (extra or {}).items()}
    for (_, sku), days in histories.items():
        own = usual_interval(days)
        if own is not None:
            by_sku.setdefault(sku, []).append(own)
    return {sku: t for sku, values in by_sku.items() if (t := typical_interval(values)) is not None}


def predict_all(histories: Mapping[Pair, Sequence[dt.date]], typicals: Mapping[str, int]) -> list[Prediction]:
    return [predict(cid, sku, days, typicals.get(sku)) for (cid, sku), days in histories.items()]


# ---- alerts ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertPlan:
    """The alert one prediction calls for today: its kind and the cycle it belongs to."""

    kind: str
    due_on: dt.date  # the predicted purchase date of the cycle
    last_purchase_on: dt.date  # the cycle: one alert of each kind per customer × SKU × last purchase


def alert_for(p: Prediction, today: dt.date, lead_days: int) -> AlertPlan | None:
    """The alert today calls for: due within the lead time, at risk after two intervals, else none."""
    status = p.status(today, lead_days)
    if p.next_due_on is None or status not in (PredictionStatus.DUE, PredictionStatus.AT_RISK):
        return None
    kind = AlertKind.AT_RISK if status == PredictionStatus.AT_RISK else AlertKind.DUE
    return AlertPlan(kind, p.next_due_on, p.last_purchase_on)


def closed_by_purchase(alert_last_purchase_on: dt.date, latest_purchase_on: dt.date) -> bool:
    """An open alert's cycle ended: the customer bought the SKU after the purchase the alert counted from."""
    return latest_purchase_on > alert_last_purchase_on


# ---- measuring it (bench/repurchase.py and the tests) ----------------------------------------------------
@dataclass
class ReplayResult:
    """What a day-by-day replay of a purchase history found.

    recall = repurchases an open alert announced / all repurchases (every purchase but a pair's first);
    precision = due alerts the customer's purchase closed / due alerts whose fate is known (closed by a purchase, or
    replaced by an at-risk alert because none came); alerts still open when the history ends are left out;
    on-time precision counts only purchases by the predicted date + the lead time (a reminder that was not early
    for nothing)."""

    repurchases: int = 0
    alerted: int = 0  # repurchases with an open alert (due or at risk) when they happened
    alerted_due: int = 0  # … of which by a due alert
    due_alerts: int = 0
    due_hits: int = 0  # due alerts closed by the purchase they announced
    due_hits_on_time: int = 0  # … that came by the predicted date + the lead time
    due_misses: int = 0  # due alerts replaced by an at-risk alert
    at_risk_alerts: int = 0
    at_risk_recalled: int = 0  # at-risk alerts closed by a purchase
    lead_days: list[int] = field(default_factory=list)  # per alerted repurchase: days between the alert and the purchase

    @property
    def recall(self) -> float:
        return self.alerted / self.repurchases if self.repurchases else math.nan

    @property
    def precision(self) -> float:
        decided = self.due_hits + self.due_misses
        return self.due_hits / decided if decided else math.nan

    @property
    def precision_on_time(self) -> float:
        decided = self.due_hits + self.due_misses
        return self.due_hits_on_time / decided if decided else math.nan


FAR = dt.date.max


def replay(
    purchases: Mapping[Pair, Sequence[dt.date]],
    *,
    lead_days: int = DEFAULT_LEAD_DAYS,
    start: dt.date | None = None,
    end: dt.date | None = None,
    group: Callable[[Pair], str] | None = None,
) -> tuple[ReplayResult, dict[str, ReplayResult]]:
    """Replay ``purchases`` day by day the way the product lives them: each morning the nightly recompute sees every
    purchase before today (the pair's usual interval, else the product's typical interval from the customers with a
    rhythm — :func:`predict`), raises the alert :func:`alert_for` calls for, once per cycle, an at-risk alert
    replacing the due one; then the day's purchases happen, each one closing its pair's open alert. Returns the
    counts overall and per ``group(pair)`` (e.g. the customer's profile in a synthetic history).

    A pair is looked at again only on the next day its alert could change (its reminder date, the day after its
    at-risk limit, a purchase, a new typical interval): the same outcome as looking at every pair every day."""
    days_of = {pair: purchase_days(days) for pair, days in purchases.items() if days}
    total, groups = ReplayResult(), dict[str, ReplayResult]()
    if not days_of:
        return total, groups
    first = start or min(d[0] for d in days_of.values())
    last = end or max(d[-1] for d in days_of.values())
    by_day: dict[dt.date, list[Pair]] = {}
    for pair, days in days_of.items():
        for d in days:
            by_day.setdefault(d, []).append(pair)
    seen: dict[Pair, list[dt.date]] = {}
    own: dict[Pair, int | None] = {}  # each pair's usual interval, updated when it buys
    typicals: dict[str, int] = {}
    wake: dict[Pair, dt.date] = {}  # the next day the pair's alert could change
    open_alert: dict[Pair, tuple[str, dt.date, dt.date]] = {}  # pair → (kind, created on, predicted date)
    made: set[tuple[Pair, str, dt.date]] = set()  # (pair, kind, cycle)

    def tally(pair: Pair) -> list[ReplayResult]:
        if group is None:
            return [total]
        return [total, groups.setdefault(group(pair), ReplayResult())]

    today = first
    while today <= last:
        for pair in [p for p, at in wake.items() if at <= today]:
            days = seen[pair]
            interval = own[pair] or typicals.get(pair[1])
            basis = Basis.OWN if own[pair] else Basis.PRODUCT if interval else Basis.NONE
            p = Prediction(pair[0], pair[1], len(days), days[-1], interval, basis)
            status = p.status(today, lead_days)
            due, risk = p.next_due_on, p.at_risk_after
            if status == PredictionStatus.WAITING and due is not None:
                wake[pair] = due - dt.timedelta(days=lead_days)
            elif status == PredictionStatus.DUE and risk is not None:
                wake[pair] = risk + dt.timedelta(days=1)
            else:
                wake[pair] = FAR  # at risk, or nothing to predict: until a purchase or a new typical interval
            plan = alert_for(p, today, lead_days)
            if plan is None or (pair, plan.kind, plan.last_purchase_on) in made:
                continue
            made.add((pair, plan.kind, plan.last_purchase_on))
            current = open_alert.get(pair)
            for r in tally(pair):
                if plan.kind == AlertKind.AT_RISK:
                    r.at_risk_alerts += 1
                    r.due_misses += int(current is not None and current[0] == AlertKind.DUE)
                else:
                    r.due_alerts += 1
            open_alert[pair] = (plan.kind, today, plan.due_on)
        bought = by_day.get(today, [])
        for pair in bought:
            if pair in seen:
                current = open_alert.pop(pair, None)
                for r in tally(pair):
                    r.repurchases += 1
                    if current is None:
                        continue
                    r.alerted += 1
                    r.lead_days.append((today - current[1]).days)
                    if current[0] == AlertKind.DUE:
                        r.alerted_due += 1
                        r.due_hits += 1
                        r.due_hits_on_time += int(today <= current[2] + dt.timedelta(days=lead_days))
                    else:
                        r.at_risk_recalled += 1
            seen.setdefault(pair, []).append(today)
            own[pair] = usual_interval(seen[pair])
            wake[pair] = today + dt.timedelta(days=1)
        if bought:  # the same figures the nightly recompute would find tomorrow
            by_sku: dict[str, list[int]] = {}
            for (_, sku), interval in own.items():
                if interval is not None:
                    by_sku.setdefault(sku, []).append(interval)
            fresh = {sku: t for sku, values in by_sku.items() if (t := typical_interval(values)) is not None}
            if fresh != typicals:
                changed = {sku for sku in fresh.keys() | typicals.keys() if fresh.get(sku) != typicals.get(sku)}
                for pair in seen:
                    if own[pair] is None and pair[1] in changed:
                        wake[pair] = min(wake[pair], today + dt.timedelta(days=1))
                typicals = fresh
        today += dt.timedelta(days=1)
    return total, groups
