"""Segment broadcasts (群发), the pure rules: which channel may carry a marketing message to one customer, why a
customer is skipped, how deliveries are grouped into send chunks, and how fast to go. Plain values only.

Channel order for one customer (docs/wecom.md, "What this means for notifications"):

1. 微信客服 (``kf``) — only inside the window: the customer wrote less than ``kf_window_hours`` ago and fewer
   than ``kf_max_messages - 1`` messages went out since. **Order notices come first in the same budget**:
   marketing may use at most ``kf_max_messages - 1`` of the 5 messages, so one is always left for an order
   notice (a shipment notice must never find the window used up by a promotion).
2. Official Account template message (``mp_template``) — the customer is a follower (has an openid). Template
   messages may be sent at any time, so no window applies.
3. Confirm-to-send task (``msg_template``, ``add_msg_template``) for a salesperson the customer follows; the
   salesperson confirms in WeCom. WeCom lets a customer receive ``msg_template_monthly_cap`` such messages a
   month; marketing may use at most ``cap - 1`` of them (the same reservation for order notices as in kf).
4. Otherwise ``none``: skipped, with the reason of the most promising channel that was closed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scrm.campaigns.broadcasts.models import BroadcastStatus

CHINA = dt.timezone(dt.timedelta(hours=8))  # WeCom counts months in China time


# A broadcast's status as staff read it, and what each status allows: start a draft or scheduled one, resume a
# paused one, pause, cancel (services.TRANSITIONS is built from these; pages offer the buttons they allow).
STATUS_ZH = {
    BroadcastStatus.DRAFT: "草稿",
    BroadcastStatus.SCHEDULED: "已排期",
    BroadcastStatus.RUNNING: "发送中",
    BroadcastStatus.PAUSED: "已暂停",
    BroadcastStatus.DONE: "已完成",
    BroadcastStatus.CANCELLED: "已取消",
    BroadcastStatus.FAILED: "已失败",
}
STARTABLE = frozenset({BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED})
RESUMABLE = frozenset({BroadcastStatus.PAUSED})
PAUSABLE = frozenset({BroadcastStatus.SCHEDULED, BroadcastStatus.RUNNING})
CANCELLABLE = frozenset({BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED, BroadcastStatus.RUNNING, BroadcastStatus.PAUSED})
PLANNING = frozenset({BroadcastStatus.RUNNING, BroadcastStatus.PAUSED})  # recipients still being planned in batches


class Channel:
    KF = "kf"  # 微信客服 text
    MP_TEMPLATE = "mp_template"  # 公众号模板消息
    MSG_TEMPLATE = "msg_template"  # 客户群发 task the salesperson confirms
    NONE = "none"


class RecipientStatus:
    PLANNED = "planned"  # channel chosen, waiting for its send chunk
    SENT = "sent"  # the API accepted it (kf, Official Account)
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # salesperson task created, they confirm in WeCom
    SKIPPED = "skipped"  # deliberately not sent; reason says why
    FAILED = "failed"  # the API refused; reason carries the error


class SkipReason:
    KF_WINDOW_CLOSED = "kf_window_closed"  # only kf could reach them and they last wrote > 48 h ago
    KF_BUDGET_RESERVED = "kf_budget_reserved_for_notices"  # window open but only the notice message is left
    MONTHLY_CAP = "msg_template_monthly_cap"  # the salesperson task would exceed the monthly cap
    NO_CHANNEL = "no_reachable_channel"  # no kf window, no openid, no salesperson
    MERGED = "customer_merged"  # the id was merged into another customer (who is planned on their own)
    CANCELLED = "broadcast_cancelled"


# A reached recipient (sent / awaiting confirmation) whose coupon could not be issued keeps the message but carries
# why in its reason — "coupon_" + the coupon refusal (per_customer_limit, budget, inactive, expired). Empty = got it.
COUPON_NOT_ISSUED_PREFIX = "coupon_"
COUPON_NOT_ISSUED_ZH = {
    "per_customer_limit": "已达每人限领张数",
    "budget": "优惠券预算已用完",
    "inactive": "优惠券已停用",
    "expired": "优惠券已过期",
}


def coupon_not_issued_reason(coupon_reason: str) -> str:
    """The recipient reason recorded when their coupon was refused for ``coupon_reason``."""
    return f"{COUPON_NOT_ISSUED_PREFIX}{coupon_reason or 'unavailable'}"[:64]


@dataclass(frozen=True)
class KfWindow:
    """What we know of one 微信客服 conversation (kf_windows row)."""

    external_userid: str
    last_customer_msg_at: dt.datetime
    sent_since_customer_msg: int


@dataclass(frozen=True)
class FollowFact:
    userid: str  # the salesperson
    external_userid: str
    started_at: dt.datetime


@dataclass(frozen=True)
class RecipientFacts:
    """Everything the plan needs about one customer, gathered set-based for a batch."""

    customer_id: int
    merged: bool = False
    kf_windows: tuple[KfWindow, ...] = ()
    openids: tuple[str, ...] = ()
    follows: tuple[FollowFact, ...] = ()  # active follows only
    msg_templates_this_month: int = 0  # salesperson tasks (notices + broadcasts) this calendar month


@dataclass(frozen=True)
class Quotas:
    kf_window_hours: int = 48
    kf_max_messages: int = 5
    msg_template_monthly_cap: int = 4

    @property
    def kf_marketing_max(self) -> int:
        """Marketing may use all but one of the kf messages: the last one is kept for order notices."""
        return max(self.kf_max_messages - 1, 0)

    @property
    def msg_template_marketing_max(self) -> int:
        return max(self.msg_template_monthly_cap - 1, 0)


@dataclass(frozen=True)
class Delivery:
    """The plan for one recipient: channel + address, or none with the reason."""

    customer_id: int
    channel: str
    address: str = ""  # external_userid (kf, msg_template) or openid (mp_template)
    salesperson_userid: str = ""
    reason: str = ""

    @property
    def status(self) -> str:
        return RecipientStatus.SKIPPED if self.channel == Channel.NONE else RecipientStatus.PLANNED


def kf_reason(window: KfWindow | None, now: dt.datetime, quotas: Quotas) -> str | None:
    """None when a marketing message may go out in this kf conversation now; else the skip reason."""
    if window is None or window.last_customer_msg_at + dt.timedelta(hours=quotas.kf_window_hours) <= now:
        return SkipReason.KF_WINDOW_CLOSED
    if window.sent_since_customer_msg >= quotas.kf_marketing_max:
        return SkipReason.KF_BUDGET_RESERVED
    return None


def plan_recipient(facts: RecipientFacts, now: dt.datetime, quotas: Quotas) -> Delivery:
    """Choose the channel for one customer (see the module for the order and the reservation for notices)."""
    cid = facts.customer_id
    if facts.merged:
        return Delivery(cid, Channel.NONE, reason=SkipReason.MERGED)
    kf_closed: str | None = None
    for window in sorted(facts.kf_windows, key=lambda w: w.last_customer_msg_at, reverse=True):
        why = kf_reason(window, now, quotas)
        if why is None:
            return Delivery(cid, Channel.KF, address=window.external_userid)
        kf_closed = kf_closed or why
    if facts.openids:
        return Delivery(cid, Channel.MP_TEMPLATE, address=sorted(facts.openids)[0])
    if facts.follows:
        if facts.msg_templates_this_month >= quotas.msg_template_marketing_max:
            return Delivery(cid, Channel.NONE, reason=SkipReason.MONTHLY_CAP)
        owner = min(facts.follows, key=lambda f: (f.started_at, f.userid))  # the longest relationship sends
        return Delivery(cid, Channel.MSG_TEMPLATE, address=owner.external_userid, salesperson_userid=owner.userid)
    if kf_closed == SkipReason.KF_BUDGET_RESERVED:
        return Delivery(cid, Channel.NONE, reason=kf_closed)
    return Delivery(cid, Channel.NONE, reason=SkipReason.KF_WINDOW_CLOSED if facts.kf_windows else SkipReason.NO_CHANNEL)


def month_start(now: dt.datetime) -> dt.datetime:
    """Start of the calendar month (China time) containing ``now``, as an aware datetime in UTC."""
    local = now.astimezone(CHINA)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


# ---- send chunks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendChunk:
    """One ``broadcast.send`` outbox row: recipients of one channel (and one salesperson for tasks)."""

    channel: str
    salesperson_userid: str
    items: tuple[tuple[int, str], ...]  # (customer_id, address)

    def to_payload(self, broadcast_id: int) -> dict[str, object]:
        return {
            "broadcast_id": broadcast_id,
            "channel": self.channel,
            "salesperson_userid": self.salesperson_userid,
            "items": [[cid, addr] for cid, addr in self.items],
        }


def chunk_deliveries(deliveries: Iterable[Delivery], *, size: int = 200) -> list[SendChunk]:
    """Group planned deliveries: per channel, and per salesperson for tasks (one add_msg_template call per
    salesperson per chunk carries many external_userids); at most ``size`` recipients per chunk."""
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for d in deliveries:
        if d.channel == Channel.NONE:
            continue
        groups.setdefault((d.channel, d.salesperson_userid), []).append((d.customer_id, d.address))
    chunks: list[SendChunk] = []
    for (channel, userid), items in sorted(groups.items()):
        for i in range(0, len(items), size):
            chunks.append(SendChunk(channel, userid, tuple(items[i : i + size])))
    return chunks


# ---- totals and throttling ------------------------------------------------------------------------------
@dataclass
class PlanTotals:
    """Counts of the plan so far (broadcasts.totals): recipients, per channel, skipped per reason."""

    recipients: int = 0
    channels: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> PlanTotals:
        data = data or {}
        return cls(
            int(data.get("recipients", 0) or 0),  # type: ignore[call-overload]
            dict(data.get("channels") or {}),  # type: ignore[call-overload]
            dict(data.get("skipped") or {}),  # type: ignore[call-overload]
        )

    def add(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            self.recipients += 1
            self.channels[d.channel] = self.channels.get(d.channel, 0) + 1
            if d.reason:
                self.skipped[d.reason] = self.skipped.get(d.reason, 0) + 1

    def to_json(self) -> dict[str, object]:
        return {"recipients": self.recipients, "channels": dict(self.channels), "skipped": dict(self.skipped)}


def batches_per_tick(*, rate_per_minute: int, batch: int, tick_seconds: int = 60) -> int:
    """How many planning batches one cron tick may run so that at most ``rate_per_minute`` recipients are
    planned (and so handed to the senders) per minute; at least one, so a broadcast always moves."""
    if rate_per_minute <= 0 or batch <= 0:
        raise ValueError("rate_per_minute and batch must be positive")
    return max(1, math.floor(rate_per_minute * tick_seconds / 60 / batch))


def eta_seconds(*, remaining: int, rate_per_minute: int) -> int:
    """Seconds until ``remaining`` recipients are planned at the throttled rate."""
    return 0 if remaining <= 0 else math.ceil(remaining * 60 / max(rate_per_minute, 1))
