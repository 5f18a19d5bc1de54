"""客户联系 events into the CRM (docs/wecom.md §3), profile enrichment from externalcontact/get, salespeople from user/get.

Every processor is idempotent: database changes are guarded (unique keys, time-guarded follow changes), the
timeline entry's ref is ``event:<inbound id>``, and every message carries an idempotency key made from the
inbound id — a callback delivered three times, or a job run twice, has the effect of one.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from bots.contacts import referral
from bots.contacts.tags import apply_follow_tags
from bots.outbound import services as sender
from bots.outbound.client import WECOM_API, ApiError, Errcode, RateLimited
from fulfillment.orders.notices import templates
from scrm.core import outbox
from scrm.core.clock import local
from scrm.core.errors import NotFound
from scrm.core.jobs import JobContext, RetryLater
from scrm.core.runtime import Runtime
from scrm.crm.channels.services import ChannelInfo, channel_for_state
from scrm.crm.customers.models import FollowStatus
from scrm.crm.customers.services import Customer, ensure_customer, find_customer, get_customer, resolve_customer
from scrm.crm.staff.services import (
    EndedBy,
    Follow,
    Salesperson,
    apply_contact_details,
    end_follow,
    ensure_salesperson,
    get_salesperson,
    start_follow,
    upsert_salesperson,
)
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import CUSTOMER_TAG_CHANGED, apply_tag, get_tag
from scrm.crm.timeline.services import Kind, add_entry
from scrm.sales.handover.services import record_transfer_failure
from scrm.sales.leads.domain import LeadSource
from scrm.sales.leads.services import NewLead, create_lead

log = logging.getLogger(__name__)

CONTACT = "change_external_contact."
ENRICH_JOB = "enrich_contact"
SALESPERSON_JOB = "refresh_salesperson"
# Used until config/notices.toml has a [welcome_default] section; {salesperson} is the salesperson's name.
DEFAULT_WELCOME = "您好，我是{salesperson}，很高兴为您服务！下单、查物流、对账，直接在这里给我发消息就好。"
WELCOME_NAMELESS = "您的专属顾问"
TRANSFER_FAIL_REASONS = {
    "customer_refused": "客户拒绝了转接",
    "customer_limit_exceed": "接替成员的客户数已达上限",
}


# ---- texts ----------------------------------------------------------------------------------------------
def welcome_text(channel: ChannelInfo | None, salesperson: str) -> str:
    """The channel code's welcome text, else the default template; ``{salesperson}`` is filled in either (plain
    replacement: a marketer's text may contain other braces)."""
    template = channel.welcome_text.strip() if channel is not None and channel.welcome_text.strip() else ""
    if not template:
        template = templates().get("welcome_default", DEFAULT_WELCOME)
    return template.replace("{salesperson}", salesperson).strip()


def connected_for(start: dt.datetime, end: dt.datetime) -> str:
    """How long a relation lasted, in words: "不到 1 小时", "5 小时", "23 天"."""
    delta = end - start
    if delta < dt.timedelta(hours=1):
        return "不到 1 小时"
    if delta < dt.timedelta(days=1):
        return f"{int(delta.total_seconds() // 3600)} 小时"
    return f"{delta.days} 天"


def customer_label(customer: Customer | None, follow: Follow | None, external_userid: str) -> str:
    name = customer.name if customer is not None else ""
    remark = follow.remark if follow is not None else ""
    if name and remark and remark != name:
        return f"{name}（备注：{remark}）"
    return name or remark or f"客户 {external_userid[-6:]}"


def churn_alert_text(customer: str, salesperson: str, follow: Follow) -> str:
    ended = follow.ended_at or follow.started_at
    if follow.started_at < ended:
        since = f"双方已联系 {connected_for(follow.started_at, ended)}（{local(follow.started_at):%Y-%m-%d} 添加）。"
    else:
        since = "添加时间未知。"
    return f"【客户流失提醒】客户「{customer}」删除了{salesperson}。\n{since}\n建议尽快通过电话等方式回访。"


# ---- shared steps -------------------------------------------------------------------------------------
def _field(row: Any, name: str) -> str:
    value = (row.payload or {}).get(name, "")
    return value.strip() if isinstance(value, str) else ""


async def _salesperson_name(rt: Runtime, userid: str) -> str:
    async with rt.db.read() as conn:
        person = await get_salesperson(conn, userid)
    return person.display_name if person is not None else userid


async def enqueue_enrichment(rt: Runtime, external_userid: str, reason: str) -> None:
    """Queue :func:`enrich_contact` (job id per reason, so a re-run of the same event queues it once)."""
    await rt.jobs.enqueue(ENRICH_JOB, external_userid, job_id=f"enrich:{external_userid}:{reason}")


async def _refresh_later(rt: Runtime, userids: list[str]) -> None:
    for userid in userids:
        await rt.jobs.enqueue(SALESPERSON_JOB, userid, job_id=f"salesperson:{userid}")


async def _apply_channel(conn: Any, rt: Runtime, customer_id: int, userid: str, channel: ChannelInfo, state: str) -> list[int]:
    """Put the channel's tags on the customer (source channel) and queue their mirror to WeCom."""
    applied = []
    now = rt.clock.now()
    for tag_id in channel.tag_ids:
        try:
            await get_tag(conn, tag_id)
        except NotFound:
            log.warning("channel code names a missing tag", extra={"channel": channel.name, "tag_id": tag_id})
            continue
        evidence = {"channel": channel.name, "state": state}
        added = await apply_tag(
            conn, rt.db.dialect, customer_id=customer_id, tag_id=tag_id, source=TagSource.CHANNEL, evidence=evidence, now=now
        )
        if added:
            await outbox.add(conn, CUSTOMER_TAG_CHANGED, {"customer_id": customer_id, "tag_id": tag_id, "add": True, "by": userid}, now)
            applied.append(tag_id)
    return applied


# ---- add / half add ---------------------------------------------------------------------------------------
async def _contact_added(rt: Runtime, row: Any, status: str) -> str:
    ext, userid = row.external_userid, row.user_id
    if not ext or not userid:
        return "no UserID / ExternalUserID: nothing to record"
    state = _field(row, "State")
    now = rt.clock.now()
    async with rt.db.write() as conn:
        # A referral counts only for someone never seen before: decided before this add creates the customer.
        was_new = await find_customer(conn, "external_userid", ext) is None
        customer_id = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=ext, now=now)
        new_person = await ensure_salesperson(conn, rt.db.dialect, userid, now)
        await start_follow(
            conn,
            rt.db.dialect,
            customer_id=customer_id,
            userid=userid,
            external_userid=ext,
            status=status,
            at=row.occurred_at,
            now=now,
            state=state or None,
        )
        invite_note = await referral.on_contact_added(conn, rt, row, customer_id, was_new) if state.startswith("rf:") else ""
        channel = await channel_for_state(conn, state)
        tagged = await _apply_channel(conn, rt, customer_id, userid, channel, state) if channel is not None else []
        if channel is not None and was_new:  # a new person from a channel code: a lead, already this salesperson's
            arrival = NewLead(
                source=LeadSource.CHANNEL_CODE, customer_id=customer_id, external_userid=ext, owner=userid, source_ref=channel.name
            )
            await create_lead(conn, arrival, now, actor="system", owner_checked=True)  # WeCom says they serve them
        person = await get_salesperson(conn, userid)
        who = person.display_name if person is not None else userid
        title = f"客户添加了销售 {who}" + ("（待销售确认）" if status == FollowStatus.HALF else "")
        await add_entry(
            conn,
            rt.db.dialect,
            customer_id=customer_id,
            at=row.occurred_at,
            kind=Kind.EVENT,
            title=title + (f"，来自渠道「{channel.name}」" if channel is not None else ""),
            ref=f"event:{row.id}",
            data={"userid": userid, "state": state, "status": status, "channel": channel.name if channel else None, "tags": tagged},
        )
    note = f"follow {status}; channel {channel.name if channel else '-'}; {len(tagged)} tags" + (f"; {invite_note}" if invite_note else "")
    code = _field(row, "WelcomeCode")
    if code:
        result = await sender.send_welcome_message(
            rt,
            welcome_code=code,
            # An unsynced salesperson has no name yet: the customer reads "您的专属顾问", never a userid.
            text=welcome_text(channel, person.name if person is not None and person.name else WELCOME_NAMELESS),
            key=f"welcome:{row.id}",
            deadline=row.occurred_at + sender.WELCOME_WINDOW,
            recipient=ext,
            customer_id=customer_id,
        )
        note += f"; welcome {result.status}" + (f" ({result.error_code or result.error_message})" if not result.sent else "")
    await enqueue_enrichment(rt, ext, f"event{row.id}")
    if new_person:
        await _refresh_later(rt, [userid])
    return note


async def contact_added(rt: Runtime, row: Any) -> str:
    return await _contact_added(rt, row, FollowStatus.ACTIVE)


async def contact_half_added(rt: Runtime, row: Any) -> str:
    return await _contact_added(rt, row, FollowStatus.HALF)


async def _event_entry(conn: Any, rt: Runtime, row: Any, title: str, data: dict[str, Any]) -> int:
    """Ensure the event's customer and put the event on their timeline (ref ``event:<id>``: once)."""
    customer_id = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=row.external_userid, now=rt.clock.now())
    await add_entry(
        conn, rt.db.dialect, customer_id=customer_id, at=row.occurred_at, kind=Kind.EVENT, title=title, ref=f"event:{row.id}", data=data
    )
    return customer_id


async def contact_edited(rt: Runtime, row: Any) -> str:
    if not row.external_userid:
        return "no ExternalUserID: nothing to record"
    who = await _salesperson_name(rt, row.user_id) if row.user_id else "销售"
    async with rt.db.write() as conn:
        await _event_entry(conn, rt, row, f"销售 {who} 编辑了客户资料", {"userid": row.user_id})
    await enqueue_enrichment(rt, row.external_userid, f"event{row.id}")
    return "profile refresh queued"


# ---- ends ---------------------------------------------------------------------------------------------------
async def _end(rt: Runtime, row: Any, ended_by: str, title: str) -> tuple[int, Follow, bool]:
    async with rt.db.write() as conn:
        customer_id = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=row.external_userid, now=rt.clock.now())
        await ensure_salesperson(conn, rt.db.dialect, row.user_id, rt.clock.now())
        end = await end_follow(
            conn,
            rt.db.dialect,
            customer_id=customer_id,
            userid=row.user_id,
            external_userid=row.external_userid,
            ended_by=ended_by,
            at=row.occurred_at,
            now=rt.clock.now(),
        )
        await add_entry(
            conn,
            rt.db.dialect,
            customer_id=customer_id,
            at=row.occurred_at,
            kind=Kind.EVENT,
            title=title,
            ref=f"event:{row.id}",
            data={"userid": row.user_id, "ended_by": ended_by, "changed": end.changed},
        )
    # This event is the one that ended the relation (also true when a crashed run already recorded it).
    ours = end.follow.status == FollowStatus.ENDED and end.follow.ended_by == ended_by and end.follow.ended_at == row.occurred_at
    if ours:
        # Tags WeCom kept on that relation are gone with it (manual and rule tags stay).
        await apply_follow_tags(rt, customer_id=customer_id, userid=row.user_id, remote_tag_ids=[])
    return customer_id, end.follow, ours


async def customer_deleted_salesperson(rt: Runtime, row: Any) -> str:
    """The customer deleted the salesperson: end the relation and alert the salesperson and their leader."""
    if not row.external_userid or not row.user_id:
        return "no UserID / ExternalUserID: nothing to record"
    person = await _salesperson(rt, row.user_id)
    who = person.display_name if person is not None else row.user_id
    customer_id, follow, ours = await _end(rt, row, EndedBy.CUSTOMER, f"客户删除了销售 {who}")
    if ours and follow.state.startswith("rf:"):
        await referral.on_follow_ended(rt, row, customer_id)
    if not ours:
        return "stale or repeated end: no alert"
    async with rt.db.read() as conn:
        customer = await get_customer(conn, customer_id)
    recipients = [row.user_id] + ([person.leader_userid] if person is not None and person.leader_userid else [])
    text = churn_alert_text(customer_label(customer, follow, row.external_userid), f"销售 {who}", follow)
    result = await sender.send_app_message(rt, touser=list(dict.fromkeys(recipients)), text=text, key=f"churn:{row.id}", purpose="alert")
    return f"follow ended by customer; churn alert {result.status} to {','.join(recipients)}"


async def salesperson_deleted_customer(rt: Runtime, row: Any) -> str:
    if not row.external_userid or not row.user_id:
        return "no UserID / ExternalUserID: nothing to record"
    who = await _salesperson_name(rt, row.user_id)
    if _field(row, "Source") == "DELETE_BY_TRANSFER":
        ended_by, title = EndedBy.TRANSFER, f"客户已从销售 {who} 转接给其他同事"
    else:
        ended_by, title = EndedBy.SALESPERSON, f"销售 {who} 删除了客户"
    _, _, ours = await _end(rt, row, ended_by, title)
    return f"follow ended by {ended_by}" + ("" if ours else " (already ended or stale)")


async def transfer_failed(rt: Runtime, row: Any) -> str:
    """A customer transfer (在职/离职继承) to this salesperson failed: timeline entry and an alert to them."""
    if not row.external_userid or not row.user_id:
        return "no UserID / ExternalUserID: nothing to record"
    code = _field(row, "FailReason")
    reason = TRANSFER_FAIL_REASONS.get(code, f"原因：{code or '未知'}")
    who = await _salesperson_name(rt, row.user_id)
    async with rt.db.write() as conn:
        customer_id = await _event_entry(conn, rt, row, f"转接给销售 {who} 失败：{reason}", {"userid": row.user_id, "fail_reason": code})
        customer = await get_customer(conn, customer_id)
    # A handover of ours waiting for this customer ends refused / over the limit (a transfer made elsewhere: none).
    handover_id = await record_transfer_failure(rt, takeover_userid=row.user_id, external_userid=row.external_userid, fail_reason=code)
    name = customer_label(customer, None, row.external_userid)
    text = f"【客户转接失败】客户「{name}」转接给您未成功：{reason}。"
    result = await sender.send_app_message(rt, touser=[row.user_id], text=text, key=f"transfer_fail:{row.id}", purpose="alert")
    return f"transfer failed ({code}); handover {handover_id or '-'}; alert {result.status}"


# ---- enrichment and salespeople from the API --------------------------------------------------------------
@dataclass(frozen=True)
class EnrichResult:
    status: str  # enriched | not_customer | api_error
    customer_id: int | None = None
    merged: bool = False
    errcode: int | None = None


async def enrich_customer(rt: Runtime, external_userid: str) -> EnrichResult:
    """Fetch externalcontact/get (all follow_user pages) and store it (:func:`apply_contact_details`): profile,
    unionid (→ merge), follow relations, salespeople. 84061 (not a customer of the corp) is recorded on the
    timeline once a day and not retried; other refusals are logged and not retried; rate limits → RetryLater;
    outages and "busy" raise for the job to retry."""
    api = rt.get(WECOM_API)
    try:
        data = await api.call("externalcontact/get", params={"external_userid": external_userid}, method="GET")
        follow_users = list(data.get("follow_user") or [])
        cursor = str(data.get("next_cursor") or "")
        while cursor:
            more = await api.call("externalcontact/get", params={"external_userid": external_userid, "cursor": cursor}, method="GET")
            follow_users.extend(more.get("follow_user") or [])
            cursor = str(more.get("next_cursor") or "")
    except RateLimited as exc:
        raise RetryLater(exc.retry_after, f"externalcontact/get rate limited ({exc.errcode})") from exc
    except ApiError as exc:
        if exc.errcode == Errcode.BUSY:
            raise
        return await _record_enrich_failure(rt, external_userid, exc)
    contact = dict(data.get("external_contact") or {})
    contact.setdefault("external_userid", external_userid)
    async with rt.db.write() as conn:
        applied = await apply_contact_details(conn, rt.db.dialect, contact, follow_users, rt.clock.now())
    # The tags each salesperson has on this customer in WeCom, mirrored with source "wecom".
    for follow_user in follow_users:
        remote = [str(t.get("tag_id")) for t in follow_user.get("tags") or [] if t.get("tag_id") and int(t.get("type", 1)) == 1]
        if follow_user.get("userid"):
            await apply_follow_tags(rt, customer_id=applied.customer_id, userid=str(follow_user["userid"]), remote_tag_ids=remote)
    await _refresh_later(rt, applied.new_salespeople)
    return EnrichResult("enriched", applied.customer_id, applied.merged)


async def _record_enrich_failure(rt: Runtime, external_userid: str, exc: ApiError) -> EnrichResult:
    missing = exc.errcode == Errcode.NOT_EXTERNAL_CONTACT
    log.warning("customer profile could not be fetched", extra={"external_userid": external_userid, "errcode": exc.errcode})
    now = rt.clock.now()
    async with rt.db.write() as conn:
        found = await find_customer(conn, "external_userid", external_userid)
        customer_id = await resolve_customer(conn, found) if found is not None else None
        if customer_id is not None:
            title = "企业微信中查不到该客户（84061），资料未更新" if missing else f"客户资料获取失败（错误码 {exc.errcode}）"
            await add_entry(
                conn,
                rt.db.dialect,
                customer_id=customer_id,
                at=now,
                kind=Kind.EVENT,
                title=title,
                ref=f"enrich:{exc.errcode}:{local(now):%Y-%m-%d}",
                data={"errcode": exc.errcode, "errmsg": exc.errmsg[:200]},
            )
    return EnrichResult("not_customer" if missing else "api_error", customer_id, errcode=exc.errcode)


async def enrich_contact(ctx: JobContext, external_userid: str) -> str:
    result = await enrich_customer(ctx.rt, external_userid)
    return result.status


async def refresh_salesperson(rt: Runtime, userid: str) -> Salesperson | None:
    """Name, department, status and leader (``direct_leader``) of a member from user/get. A directory that gives
    no direct_leader keeps the leader set by hand. Unknown member / no permission → logged, None."""
    try:
        data = await rt.get(WECOM_API).call("user/get", params={"userid": userid}, method="GET")
    except RateLimited as exc:
        raise RetryLater(exc.retry_after, f"user/get rate limited ({exc.errcode})") from exc
    except ApiError as exc:
        if exc.errcode == Errcode.BUSY:
            raise
        log.warning("member details could not be fetched", extra={"userid": userid, "errcode": exc.errcode})
        return None
    fields: dict[str, Any] = {
        "name": str(data.get("name") or ""),
        "department": ",".join(str(d) for d in data.get("department") or []),
    }
    if "direct_leader" in data:
        leaders = [str(u) for u in data.get("direct_leader") or [] if u and u != userid]
        fields["leader_userid"] = leaders[0] if leaders else None
    if "status" in data:
        fields["active"] = data.get("status") == 1
    async with rt.db.write() as conn:
        await upsert_salesperson(conn, rt.db.dialect, userid, rt.clock.now(), synced=True, **fields)
        return await get_salesperson(conn, userid)


async def refresh_salesperson_job(ctx: JobContext, userid: str) -> None:
    await refresh_salesperson(ctx.rt, userid)


async def _salesperson(rt: Runtime, userid: str) -> Salesperson | None:
    """The salesperson as we know them, refreshed from user/get first if never synced (the churn alert needs the
    leader)."""
    async with rt.db.read() as conn:
        person = await get_salesperson(conn, userid)
    if person is None or person.synced_at is None:
        person = await refresh_salesperson(rt, userid) or person
    return person
