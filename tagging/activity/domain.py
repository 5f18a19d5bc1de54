"""Activity segments (活跃度) on plain values: the five segments, the ``[activity]`` thresholds of
config/segments.toml and :func:`classify`, the rule (:mod:`tagging.activity.services` states it in SQL and keeps the rows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


class ActivitySegment:
    NEW = "new"  # 新客: first seen within new_days
    ACTIVE = "active"  # 活跃: a message or an order within silent_days
    SILENT = "silent"  # 沉默: quiet longer than silent_days, not yet lost
    CHURN_RISK = "churn_risk"  # 流失风险: silent, and deleted a salesperson or left our message unanswered
    LOST = "lost"  # 已流失: nothing for longer than lost_days


SEGMENT_ZH = {
    ActivitySegment.NEW: "新客",
    ActivitySegment.ACTIVE: "活跃",
    ActivitySegment.SILENT: "沉默",
    ActivitySegment.CHURN_RISK: "流失风险",
    ActivitySegment.LOST: "已流失",
}
SEGMENTS = tuple(SEGMENT_ZH)


@dataclass(frozen=True)
class ActivityConfig:
    new_days: int = 7
    silent_days: int = 30
    lost_days: int = 90
    unanswered_days: int = 3


def parse_activity_config(data: dict[str, Any]) -> ActivityConfig:
    """Validate the ``[activity]`` table of config/segments.toml; a ValueError names the key that is wrong."""
    section = data.get("activity", {})
    if not isinstance(section, dict):
        raise ValueError("[activity] must be a table")
    names = ("new_days", "silent_days", "lost_days", "unanswered_days")
    unknown = set(section) - set(names)
    if unknown:
        raise ValueError(f"[activity] unknown keys: {', '.join(sorted(unknown))}")
    values = {n: section.get(n, getattr(ActivityConfig, n)) for n in names}
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 3650:
            raise ValueError(f"[activity] {name} must be a whole number of days from 1 to 3650")
    if not values["new_days"] <= values["silent_days"] < values["lost_days"]:
        raise ValueError("[activity] needs new_days ≤ silent_days < lost_days")
    rfm_window = data.get("rfm", {}).get("window_days", 365) if isinstance(data.get("rfm"), dict) else 365
    if isinstance(rfm_window, int) and rfm_window < values["lost_days"]:
        raise ValueError("[rfm] window_days must be at least [activity] lost_days (orders older than the window are not kept)")
    return ActivityConfig(**values)


# ---- the rule ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActivityInputs:
    first_seen_at: dt.datetime
    last_message_at: dt.datetime | None = None
    last_order_at: dt.datetime | None = None
    deleted_by_customer: bool = False  # a follow ended by the customer (del_follow_user)
    last_outreach_at: dt.datetime | None = None  # our last 1:1 message to the customer


@dataclass(frozen=True)
class Cutoffs:
    new: dt.datetime
    silent: dt.datetime
    lost: dt.datetime
    unanswered: dt.datetime

    @classmethod
    def at(cls, now: dt.datetime, config: ActivityConfig) -> Cutoffs:
        def ago(days: int) -> dt.datetime:
            return now - dt.timedelta(days=days)

        return cls(ago(config.new_days), ago(config.silent_days), ago(config.lost_days), ago(config.unanswered_days))


def classify(inputs: ActivityInputs, now: dt.datetime, config: ActivityConfig) -> str:
    """The customer's segment at ``now``. Exactly one applies, checked in this order: new (first seen within
    new_days, inclusive), active (a message or an order within silent_days, inclusive), lost (message, order and
    first sighting all older than lost_days), churn risk (a deleted signal), silent."""
    cut = Cutoffs.at(now, config)
    if inputs.first_seen_at >= cut.new:
        return ActivitySegment.NEW
    seen = [t for t in (inputs.last_message_at, inputs.last_order_at) if t is not None]
    if any(t >= cut.silent for t in seen):
        return ActivitySegment.ACTIVE
    if all(t < cut.lost for t in [*seen, inputs.first_seen_at]):
        return ActivitySegment.LOST
    outreach = inputs.last_outreach_at
    unanswered = (
        outreach is not None and outreach <= cut.unanswered and (inputs.last_message_at is None or inputs.last_message_at < outreach)
    )
    return ActivitySegment.CHURN_RISK if inputs.deleted_by_customer or unanswered else ActivitySegment.SILENT
