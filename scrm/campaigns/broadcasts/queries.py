"""Segment broadcasts (群发) — results: what the senders record per recipient, live progress, the listings the API
and the console show. Re-exported by :mod:`scrm.campaigns.broadcasts.services` (the public import path)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns.broadcasts import domain as D
from scrm.campaigns.broadcasts.models import broadcast_recipients, broadcasts
from scrm.core.errors import NotFound
from scrm.core.runtime import Runtime

B, R = broadcasts.c, broadcast_recipients.c


def among(column: Any, values: Sequence[Any], dialect: str) -> Any:
    """``column IN values`` for a batch of ids or external_userids. On PostgreSQL one array parameter,
    ``= ANY($1)``, instead of an expanding IN: SQLAlchemy renders the expanding form anew on every execution, one
    typed placeholder per value (≈1000 per planning batch, several queries a batch), and that rendering — not the
    database — was most of a batch's time there. SQLite keeps IN (it has no arrays)."""
    values = list(values)
    if dialect != "postgresql":
        return column.in_(values)

    element = sa.BigInteger() if isinstance(column.type, sa.Integer) else sa.String()
    return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(element)))


@dataclass(frozen=True)
class BroadcastView:
    id: int
    name: str
    segment: str
    text: str
    coupon_template_id: int | None
    status: str
    scheduled_at: dt.datetime | None
    cursor_customer_id: int | None
    totals: dict[str, Any]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None = None  # why it failed (status failed)
    referral_campaign_id: int | None = None  # 附带邀请海报: the referral campaign whose poster each recipient gets

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k in ("scheduled_at", "created_at", "started_at", "finished_at"):
            out[k] = out[k].isoformat() if out[k] else None
        return out


def view_of(r: Any) -> BroadcastView:
    return BroadcastView(
        r.id, r.name, r.segment_expression, r.text, r.coupon_template_id, r.status, r.scheduled_at,
        r.cursor_customer_id, dict(r.totals or {}), r.created_at, r.started_at, r.finished_at, r.error,
        r.referral_campaign_id,
    )  # fmt: skip


async def load(conn: AsyncConnection, broadcast_id: int, *, lock: bool = False) -> Any:
    q = sa.select(broadcasts).where(B.id == broadcast_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound("没有这个群发 (no such broadcast)", broadcast_id=broadcast_id)
    return row


async def get_broadcast(conn: AsyncConnection, broadcast_id: int) -> BroadcastView:
    return view_of(await load(conn, broadcast_id))


async def list_broadcasts(conn: AsyncConnection, *, limit: int = 50, before: int | None = None) -> list[BroadcastView]:
    """Newest first, ``limit`` at a time (keyset: pass the last id shown as ``before``)."""
    q = sa.select(broadcasts).order_by(B.id.desc()).limit(limit)
    if before is not None:
        q = q.where(B.id < before)
    return [view_of(r) for r in await conn.execute(q)]


# ---- sending side (called by the channel package) and results ---------------------------------------
async def still_planned(rt: Runtime, broadcast_id: int, customer_ids: Sequence[int]) -> tuple[str, set[int]]:
    """The broadcast's status and which of these recipients still wait to be sent."""
    async with rt.db.read() as conn:
        row = await load(conn, broadcast_id)
        ids = set(
            (
                await conn.execute(
                    sa.select(R.customer_id).where(
                        R.broadcast_id == broadcast_id,
                        among(R.customer_id, customer_ids, conn.dialect.name),
                        R.status == D.RecipientStatus.PLANNED,
                    )
                )
            ).scalars()
        )
    return row.status, {int(i) for i in ids}


async def record_results(
    rt: Runtime, broadcast_id: int, results: Sequence[tuple[int, str, str]], *, outbound_key: str | None = None
) -> None:
    """Settle recipients: (customer_id, status, reason). Only planned rows change (a result never overwrites
    another); ``outbound_key`` replaces the per-recipient key when one grouped message carried them."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        for cid, status, reason in results:
            values: dict[str, Any] = {"status": status, "reason": reason[:64]}
            if status in (D.RecipientStatus.SENT, D.RecipientStatus.AWAITING_CONFIRMATION):
                values["sent_at"] = now
            if outbound_key:
                values["outbound_key"] = outbound_key[:96]
            await conn.execute(
                broadcast_recipients.update()
                .where(R.broadcast_id == broadcast_id, R.customer_id == cid, R.status == D.RecipientStatus.PLANNED)
                .values(**values)
            )


async def progress(conn: AsyncConnection, broadcast_id: int) -> dict[str, Any]:
    """Live counts by status and by channel (index broadcast_id+status), plus the plan totals."""
    row = await load(conn, broadcast_id)
    by_status: dict[str, int] = {}
    by_channel: dict[str, dict[str, int]] = {}
    for r in await conn.execute(
        sa.select(R.status, R.channel, sa.func.count().label("n")).where(R.broadcast_id == broadcast_id).group_by(R.status, R.channel)
    ):
        by_status[r.status] = by_status.get(r.status, 0) + int(r.n)
        by_channel.setdefault(r.channel, {})[r.status] = int(r.n)
    return {
        "status": row.status, "recipients": sum(by_status.values()), "by_status": by_status, "by_channel": by_channel,
        "coupon_not_issued": await coupon_misses(conn, broadcast_id),
    }  # fmt: skip


async def coupon_misses(conn: AsyncConnection, broadcast_id: int) -> dict[str, int]:
    """Reached recipients (sent / awaiting confirmation) whose coupon could not be issued, per coupon refusal
    (``per_customer_limit``, ``budget`` …); empty when every reached recipient got theirs or there is no coupon."""
    prefix = D.COUPON_NOT_ISSUED_PREFIX
    out: dict[str, int] = {}
    for r in await conn.execute(
        sa.select(R.reason, sa.func.count().label("n"))
        .where(
            R.broadcast_id == broadcast_id,
            R.status.in_((D.RecipientStatus.SENT, D.RecipientStatus.AWAITING_CONFIRMATION)),
            R.reason.startswith(prefix, autoescape=True),
        )
        .group_by(R.reason)
    ):
        out[r.reason.removeprefix(prefix)] = int(r.n)
    return out


async def outcome_reasons(conn: AsyncConnection, broadcast_id: int) -> dict[str, dict[str, int]]:
    """Why recipients were not reached: ``{status: {reason: count}}`` for skipped and failed ones (planning
    skips and the senders' late skips and API refusals alike)."""
    out: dict[str, dict[str, int]] = {}
    for r in await conn.execute(
        sa.select(R.status, R.reason, sa.func.count().label("n"))
        .where(R.broadcast_id == broadcast_id, R.status.in_((D.RecipientStatus.SKIPPED, D.RecipientStatus.FAILED)))
        .group_by(R.status, R.reason)
    ):
        out.setdefault(r.status, {})[r.reason or ""] = int(r.n)
    return out


async def list_recipients(
    conn: AsyncConnection, broadcast_id: int, *, status: str | None = None, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """Per-recipient results in customer-id order (keyset: pass the last customer_id as ``after``)."""
    await load(conn, broadcast_id)
    q = sa.select(broadcast_recipients).where(R.broadcast_id == broadcast_id, R.customer_id > after)
    if status:
        q = q.where(R.status == status)
    rows = await conn.execute(q.order_by(R.customer_id).limit(limit))
    return [
        {
            "customer_id": r.customer_id, "channel": r.channel, "status": r.status, "reason": r.reason,
            "salesperson_userid": r.salesperson_userid, "outbound_key": r.outbound_key,
            "planned_at": r.planned_at.isoformat(), "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        }
        for r in rows
    ]  # fmt: skip
