"""Coupon notices: a coupon issued from the console, the API or to a segment (``coupon.issued``, written only when
the issuer asked for it) → one chat message to that customer, on the channel that reaches them (see
:func:`bots.notices.orders.notify_customer`: 微信客服 in its window, the Official Account, or a task for their
salesperson). A broadcast that carries a coupon says so in its own text and writes no such row.

The handler may run twice: the send is keyed by the coupon's code, so a repeat sends nothing new."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from bots.notices.orders import notify_customer
from fulfillment.orders import notices
from scrm.campaigns.coupons.models import CouponStatus
from scrm.campaigns.coupons.services import get_coupon, get_template
from scrm.core.clock import local
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import resolve_customer
from scrm.crm.staff.services import follows_of

log = logging.getLogger(__name__)


def _day(when: dt.datetime, now: dt.datetime) -> str:
    """12月31日, or 2027年1月5日 when it is not this year (business time)."""
    day, today = local(when), local(now)
    return f"{day.month}月{day.day}日" if day.year == today.year else f"{day.year}年{day.month}月{day.day}日"


def validity_text(expires_at: dt.datetime | None, valid_from: dt.datetime | None, now: dt.datetime) -> str:
    """What the customer reads about when the coupon can be used: 有效期至12月31日 / 长期有效, with 1月5日起可用
    first when it cannot be used yet. The expiry is exclusive: the last day shown is the one before it ends at
    midnight."""
    parts = []
    if valid_from is not None and valid_from > now:
        parts.append(f"{_day(valid_from, now)}起可用")
    if expires_at is None:
        parts.append("长期有效")
    else:
        last = expires_at - dt.timedelta(microseconds=1) if local(expires_at).time() == dt.time(0) else expires_at
        parts.append(f"有效期至{_day(last, now)}")
    return "，".join(parts)


async def _salesperson_of(rt: Runtime, customer_id: int) -> str:
    """The salesperson whose chat carries a confirm-to-send task: the customer's first live follow, if any."""
    async with rt.db.read() as conn:
        follows = await follows_of(conn, customer_id, include_ended=False)
    return follows[0].userid if follows else ""


GONE = (CouponStatus.REDEEMED, CouponStatus.EXPIRED, CouponStatus.REVOKED)  # nothing left to announce


async def on_coupon_issued(rt: Runtime, payload: dict[str, Any]) -> None:
    """Tell the customer about a coupon they were given, unless it is gone before the notice ran (used, revoked or
    expired). One held by a draft order (reserved) is still announced: the draft took it by itself. A customer
    merged meanwhile is told as the one they were merged into."""
    coupon = await get_coupon(rt, int(payload["coupon_id"]))
    if coupon.status in GONE:
        log.info("coupon notice not sent: the coupon left the wallet first", extra={"coupon": coupon.code, "status": coupon.status})
        return
    template = await get_template(rt, coupon.template_id)
    now = rt.clock.now()
    text = notices.render("coupon_issued", label=coupon.label, validity=validity_text(coupon.expires_at, template.validity.valid_from, now))
    async with rt.db.read() as conn:
        customer_id = await resolve_customer(conn, int(payload["customer_id"]))
    salesperson = await _salesperson_of(rt, customer_id)
    run_ref = str(payload.get("run_ref") or "")
    await notify_customer(
        rt,
        customer_id=customer_id,
        text=text,
        key=f"coupon:{coupon.code}:issued",
        salesperson_userid=salesperson,
        # A segment distribution: one alert per salesperson for all their customers' tasks (WeCom drops app
        # messages past 30 a minute per member; the tasks themselves are each made and recorded).
        alert_key=f"coupon-run:{coupon.template_id}:{run_ref}:{salesperson}" if run_ref else "",
    )
