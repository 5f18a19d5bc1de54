"""Segment broadcasts (群发) — use cases: create / schedule / start / pause / cancel, batch planning, results.

Planning streams the segment in customer-id order from ``broadcasts.cursor_customer_id``; one batch is one
transaction that (a) gathers the channel facts of the batch with set-based queries, (b) writes its
``broadcast_recipients`` rows (insert-ignore: planning a batch again changes nothing), (c) advances the cursor and
the plan totals, and (d) writes ``broadcast.send`` outbox rows, one per send chunk. Memory is one batch, whatever
the segment size. Several planners of one broadcast serialise on the broadcast row (PostgreSQL ``FOR UPDATE``,
SQLite ``BEGIN IMMEDIATE``) and the one that finds the cursor moved stops.

Facts owned by the channels (微信客服 windows, salesperson tasks already sent this month) live in ``bots/``;
``scrm`` must not import it, so the channel package's :data:`ChannelFactsSource` is installed on the runtime as
:data:`CHANNEL_FACTS` by the composition root.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns.attention import raise_attention
from scrm.campaigns.broadcasts import domain as D
from scrm.campaigns.broadcasts.models import BroadcastStatus as BS
from scrm.campaigns.broadcasts.models import broadcast_recipients, broadcasts
from scrm.campaigns.broadcasts.queries import (
    BroadcastView,
    among,
)
from scrm.campaigns.broadcasts.queries import load as _load
from scrm.campaigns.broadcasts.queries import view_of as _view
from scrm.campaigns.coupons.models import coupon_templates
from scrm.campaigns.referral.services import get_campaign as get_referral_campaign
from scrm.core import outbox
from scrm.core.db import insert_ignore_many
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.runtime import ResourceKey, Runtime
from scrm.crm.customers.models import FollowStatus, customer_identities, customers, follows
from tagging.segments import services as segments
from tagging.segments.syntax import SegmentSyntaxError, check_expression

B, R = broadcasts.c, broadcast_recipients.c
SEND_TOPIC = "broadcast.send"
CHUNK_SIZE = 200  # recipients per broadcast.send row (and per add_msg_template call)
TEXT_MAX = 2000


@dataclass
class ChannelFacts:
    """Channel-owned facts of one batch, keyed by external_userid."""

    kf_windows: dict[str, D.KfWindow] = field(default_factory=dict)
    msg_templates: dict[str, int] = field(default_factory=dict)  # tasks this month outside broadcasts (notices)
    mp_enabled: bool = True  # the Official Account is configured (else openids do not count)
    tasks_enabled: bool = True  # WeCom 客户联系 is configured (else follows do not count)


# (rt, conn, external_userids, month_start) → the channel facts of those customers
ChannelFactsSource = Callable[[Runtime, AsyncConnection, Sequence[str], dt.datetime], Awaitable[ChannelFacts]]
# The channel package's fact gatherer (bots.notices.broadcasts.channel_facts), installed by the composition root.
CHANNEL_FACTS: ResourceKey[ChannelFactsSource] = ResourceKey("broadcast_channel_facts")


# ---- create / edit / lifecycle -----------------------------------------------------------------------
def _parse_when(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput("scheduled_at 须为 ISO 8601 时间 (must be ISO 8601)", field="scheduled_at") from None
    if when.tzinfo is None:
        raise InvalidInput("scheduled_at 须带时区 (needs a time zone)", field="scheduled_at")
    return when


def _text(data: dict[str, Any], name: str, max_len: int, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidInput(f"{name} 须为 1–{max_len} 个字符 (required text)", field=name)
    return value.strip()


async def _check_template(conn: AsyncConnection, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("coupon_template_id 必须是整数 (must be an integer)", field="coupon_template_id")
    found = (await conn.execute(sa.select(coupon_templates.c.id).where(coupon_templates.c.id == value))).first()
    if found is None:
        raise NotFound("没有这个优惠券模板 (no such coupon template)", field="coupon_template_id")
    return value


async def _check_referral(conn: AsyncConnection, value: Any) -> int | None:
    """附带邀请海报: the referral campaign must exist (whether it runs is checked per recipient when sending)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("referral_campaign_id 必须是整数 (must be an integer)", field="referral_campaign_id")
    await get_referral_campaign(conn, value)
    return value


async def create_broadcast(rt: Runtime, data: dict[str, Any], *, actor: str = "") -> BroadcastView:
    """A draft broadcast, or a scheduled one when ``scheduled_at`` is given. Nothing is planned yet. The segment
    must parse (SegmentSyntaxError with the column otherwise): an expression the planner cannot run is never stored."""
    name = _text(data, "name", 64, required=True)
    segment = check_expression(_text(data, "segment", 4000, required=True) or "", "segment")
    text = _text(data, "text", TEXT_MAX, required=True)
    when = _parse_when(data.get("scheduled_at"))
    now = rt.clock.now()
    async with rt.db.write() as conn:
        template_id = await _check_template(conn, data.get("coupon_template_id"))
        referral_id = await _check_referral(conn, data.get("referral_campaign_id"))
        new_id = (
            await conn.execute(
                broadcasts.insert()
                .values(
                    name=name, segment_expression=segment, text=text, coupon_template_id=template_id,
                    referral_campaign_id=referral_id,
                    status=BS.SCHEDULED if when else BS.DRAFT, scheduled_at=when, totals={},
                    created_by=actor[:64], created_at=now, updated_at=now,
                )
                .returning(B.id)
            )
        ).scalar_one()  # fmt: skip
        return _view(await _load(conn, int(new_id)))


EDITABLE = {"name", "segment", "text", "coupon_template_id", "scheduled_at", "referral_campaign_id"}


async def update_broadcast(rt: Runtime, broadcast_id: int, data: dict[str, Any]) -> BroadcastView:
    """Change a broadcast not yet started (draft / scheduled); refused (409) once planning began."""
    unknown = set(data) - EDITABLE
    if unknown:
        raise InvalidInput(f"不能修改 {sorted(unknown)} (not editable)", field=sorted(unknown)[0])
    values: dict[str, Any] = {}
    for key, column, limit in (("name", "name", 64), ("segment", "segment_expression", 4000), ("text", "text", TEXT_MAX)):
        if key in data:
            values[column] = _text(data, key, limit, required=True)
    if "segment_expression" in values:
        values["segment_expression"] = check_expression(values["segment_expression"], "segment")
    if "scheduled_at" in data:
        values["scheduled_at"] = _parse_when(data["scheduled_at"])
        values["status"] = BS.SCHEDULED if values["scheduled_at"] else BS.DRAFT
    async with rt.db.write() as conn:
        row = await _load(conn, broadcast_id, lock=True)
        if row.status not in (BS.DRAFT, BS.SCHEDULED) or row.cursor_customer_id is not None:
            raise Conflict("群发已开始，不能修改 (already started)", status=row.status)
        if "coupon_template_id" in data:
            values["coupon_template_id"] = await _check_template(conn, data["coupon_template_id"])
        if "referral_campaign_id" in data:
            values["referral_campaign_id"] = await _check_referral(conn, data["referral_campaign_id"])
        await conn.execute(broadcasts.update().where(B.id == broadcast_id).values(**values, updated_at=rt.clock.now()))
        return _view(await _load(conn, broadcast_id))


TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "start": (set(D.STARTABLE | D.RESUMABLE), BS.RUNNING),
    "pause": (set(D.PAUSABLE), BS.PAUSED),
    "cancel": (set(D.CANCELLABLE), BS.CANCELLED),
}


async def _transition(rt: Runtime, broadcast_id: int, action: str) -> BroadcastView:
    allowed, target = TRANSITIONS[action]
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load(conn, broadcast_id, lock=True)
        if row.status == target:
            return _view(row)  # idempotent: pausing a paused broadcast is fine
        if row.status not in allowed:
            raise Conflict(f"当前状态 {row.status} 不能 {action} (not allowed in this status)", status=row.status, action=action)
        values: dict[str, Any] = {"status": target, "updated_at": now}
        if target == BS.RUNNING and row.started_at is None:
            values["started_at"] = now
        if target == BS.CANCELLED:
            values["finished_at"] = now
            await conn.execute(
                broadcast_recipients.update()
                .where(R.broadcast_id == broadcast_id, R.status == D.RecipientStatus.PLANNED)
                .values(status=D.RecipientStatus.SKIPPED, reason=D.SkipReason.CANCELLED)
            )
        await conn.execute(broadcasts.update().where(B.id == broadcast_id, B.status == row.status).values(**values))
        return _view(await _load(conn, broadcast_id))


async def start_broadcast(rt: Runtime, broadcast_id: int) -> BroadcastView:
    """Run now (or resume a paused one from its cursor)."""
    return await _transition(rt, broadcast_id, "start")


async def pause_broadcast(rt: Runtime, broadcast_id: int) -> BroadcastView:
    """Stop planning further batches; chunks already handed to senders wait until it runs again."""
    return await _transition(rt, broadcast_id, "pause")


async def cancel_broadcast(rt: Runtime, broadcast_id: int) -> BroadcastView:
    """Stop for good: recipients still planned become skipped ("broadcast_cancelled")."""
    return await _transition(rt, broadcast_id, "cancel")


async def due_broadcasts(rt: Runtime) -> list[int]:
    """Scheduled broadcasts whose time has come become running; returns every running broadcast's id."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(
            broadcasts.update()
            .where(B.status == BS.SCHEDULED, B.scheduled_at <= now)
            .values(status=BS.RUNNING, started_at=sa.func.coalesce(B.started_at, now), updated_at=now)
        )
        return [int(i) for i in (await conn.execute(sa.select(B.id).where(B.status == BS.RUNNING).order_by(B.id))).scalars()]


# ---- planning ----------------------------------------------------------------------------------------
async def _segment_after(conn: AsyncConnection, expr: str, after: int | None, limit: int, now: dt.datetime) -> list[int]:
    """The next ``limit`` customer ids of the segment above ``after``: the segment language's own SELECT (id order)
    as a keyset page, so each batch reads only its own rows, however far into the segment it is."""
    q = segments.segment_select(segments.parse(expr), now, above=after)
    return [int(i) for i in (await conn.execute(q.limit(limit))).scalars().all()]


async def _gather_facts(rt: Runtime, conn: AsyncConnection, ids: list[int], now: dt.datetime) -> list[D.RecipientFacts]:
    since, dialect = D.month_start(now), conn.dialect.name

    async def rows(query: Any) -> Sequence[Any]:
        # All at once: iterating a result fetches it row by row, a third of a batch's Python time.
        return (await conn.execute(query)).all()

    c, ci, fw = customers.c, customer_identities.c, follows.c
    merged = {int(r.id) for r in await rows(sa.select(c.id).where(among(c.id, ids, dialect), c.merged_into.is_not(None)))}
    idents: dict[int, dict[str, list[str]]] = {}
    # Every kind is read and the wanted ones kept here: given `kind IN (…)` SQLite walked the whole (kind, value)
    # unique index, every identity of every customer, once per batch — not the batch's customers by customer_id.
    for r in await rows(sa.select(ci.customer_id, ci.kind, ci.value).where(among(ci.customer_id, ids, dialect))):
        if r.kind in ("external_userid", "openid"):
            idents.setdefault(int(r.customer_id), {}).setdefault(r.kind, []).append(r.value)
    fol: dict[int, list[D.FollowFact]] = {}
    active = sa.select(fw.customer_id, fw.userid, fw.external_userid, fw.started_at).where(
        among(fw.customer_id, ids, dialect), fw.status == FollowStatus.ACTIVE
    )
    for fr in await rows(active):
        fol.setdefault(int(fr.customer_id), []).append(D.FollowFact(fr.userid, fr.external_userid, fr.started_at))
    # Salesperson tasks of broadcasts this month: only broadcasts alive this month can have any (PK lookups).
    recent = sa.select(B.id).where(sa.or_(B.finished_at.is_(None), B.finished_at >= since))
    counted = (D.RecipientStatus.PLANNED, D.RecipientStatus.AWAITING_CONFIRMATION, D.RecipientStatus.SENT)
    task_counts = (
        sa.select(R.customer_id, sa.func.count().label("n"))
        .where(
            R.broadcast_id.in_(recent),
            R.customer_id.between(min(ids), max(ids)),  # bounds the primary-key scan (see plan_batch's `existing`)
            among(R.customer_id, ids, dialect),
            R.channel == D.Channel.MSG_TEMPLATE,
            R.status.in_(counted),
            R.planned_at >= since,
        )
        .group_by(R.customer_id)
    )
    tasks: dict[int, int] = {int(r.customer_id): int(r.n) for r in await rows(task_counts)}
    externals = sorted(
        {e for v in idents.values() for e in v.get("external_userid", [])} | {f.external_userid for v in fol.values() for f in v}
    )
    channel = await rt.get(CHANNEL_FACTS)(rt, conn, externals, since)
    out = []
    for cid in ids:
        exts = idents.get(cid, {}).get("external_userid", [])
        follow_exts = [f.external_userid for f in fol.get(cid, [])]
        out.append(
            D.RecipientFacts(
                customer_id=cid,
                merged=cid in merged,
                kf_windows=tuple(channel.kf_windows[e] for e in exts if e in channel.kf_windows),
                openids=tuple(idents.get(cid, {}).get("openid", [])) if channel.mp_enabled else (),
                follows=tuple(fol.get(cid, [])) if channel.tasks_enabled else (),
                msg_templates_this_month=tasks.get(cid, 0) + sum(channel.msg_templates.get(e, 0) for e in set(exts) | set(follow_exts)),
            )
        )
    return out


@dataclass(frozen=True)
class BatchResult:
    planned: int  # recipients written by this call (0 on a re-run)
    done: bool  # the segment is exhausted (or the broadcast is not running)
    cursor: int | None


async def plan_batch(rt: Runtime, broadcast_id: int, batch: int = 1000) -> BatchResult:
    """Plan the next ``batch`` recipients of a running broadcast (see the module). Idempotent: rows already
    planned are left alone, and a second planner that finds the cursor moved writes nothing."""
    now, unparsable = rt.clock.now(), None
    async with rt.db.read() as conn:  # the broadcast and its next page: one connection, one transaction
        row = await _load(conn, broadcast_id)
        if row.status != BS.RUNNING:
            return BatchResult(0, True, row.cursor_customer_id)
        try:
            ids = await _segment_after(conn, row.segment_expression, row.cursor_customer_id, batch, now)
        except SegmentSyntaxError as exc:  # stored before expressions were checked: it will never run
            unparsable = exc.message
    if unparsable is not None:
        await fail_broadcast(rt, broadcast_id, f"客群表达式无法解析：{unparsable}")
        return BatchResult(0, True, row.cursor_customer_id)
    quotas = D.Quotas(rt.settings.kf_window_hours, rt.settings.kf_max_messages, rt.settings.msg_template_monthly_cap)
    async with rt.db.write() as conn:
        locked = await _load(conn, broadcast_id, lock=True)
        if locked.status != BS.RUNNING or locked.cursor_customer_id != row.cursor_customer_id:
            return BatchResult(0, locked.status != BS.RUNNING, locked.cursor_customer_id)
        if not ids:
            await conn.execute(broadcasts.update().where(B.id == broadcast_id).values(status=BS.DONE, finished_at=now, updated_at=now))
            return BatchResult(0, True, row.cursor_customer_id)
        # The batch's id range, not its ids: one range scan of the primary key, a plan PostgreSQL keeps even with
        # no statistics on a table this very planning run is filling (given 1000 ids it read the whole broadcast).
        in_batch = sa.select(R.customer_id).where(R.broadcast_id == broadcast_id, R.customer_id.between(ids[0], ids[-1]))
        existing = set((await conn.execute(in_batch)).scalars())
        fresh = [cid for cid in ids if cid not in existing]
        plans = [D.plan_recipient(f, now, quotas) for f in await _gather_facts(rt, conn, fresh, now)] if fresh else []
        if plans:
            await insert_ignore_many(
                conn,
                broadcast_recipients,
                [
                    {
                        "customer_id": p.customer_id, "channel": p.channel, "status": p.status, "reason": p.reason,
                        "salesperson_userid": p.salesperson_userid,
                        "outbound_key": f"broadcast:{broadcast_id}:{p.customer_id}" if p.channel != D.Channel.NONE else "",
                    }
                    for p in plans
                ],
                same={"broadcast_id": broadcast_id, "planned_at": now},
            )  # fmt: skip
            chunks = D.chunk_deliveries(plans, size=CHUNK_SIZE)
            await outbox.add_many(conn, [(SEND_TOPIC, chunk.to_payload(broadcast_id)) for chunk in chunks], now)
        totals = D.PlanTotals.from_json(locked.totals)
        totals.add(plans)
        await conn.execute(
            broadcasts.update().where(B.id == broadcast_id).values(cursor_customer_id=ids[-1], totals=totals.to_json(), updated_at=now)
        )
    return BatchResult(len(plans), False, ids[-1])


async def fail_broadcast(rt: Runtime, broadcast_id: int, error: str) -> BroadcastView:
    """Stop a running (or paused / scheduled) broadcast that cannot go on: status ``failed``, ``error`` kept in
    its ``error`` column, and an alert to operations — one transaction. Recipients already planned keep their
    chunks (they were planned from a segment that ran); other broadcasts are untouched. A broadcast already
    finished, cancelled or failed is left as it is (so a second planner changes nothing and alerts once)."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = await _load(conn, broadcast_id, lock=True)
        if row.status in (BS.DONE, BS.CANCELLED, BS.FAILED):
            return _view(row)
        await conn.execute(
            broadcasts.update()
            .where(B.id == broadcast_id, B.status == row.status)
            .values(status=BS.FAILED, error=error[:500], finished_at=now, updated_at=now)
        )
        await raise_attention(
            conn, message=f"群发“{row.name}”（#{broadcast_id}）已停止：{error}", key=f"broadcast-failed:{broadcast_id}", now=now
        )
        return _view(await _load(conn, broadcast_id))


async def plan_broadcast(rt: Runtime, broadcast_id: int, *, batch: int = 1000, max_batches: int | None = None) -> int:
    """Plan batches until the segment is exhausted, the broadcast stops running, or ``max_batches`` ran.
    Returns recipients planned."""
    total, runs = 0, 0
    while max_batches is None or runs < max_batches:
        result = await plan_batch(rt, broadcast_id, batch)
        total += result.planned
        runs += 1
        if result.done:
            break
    return total
