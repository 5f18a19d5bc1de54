"""Handover use cases (交接: 在职转接 / 离职继承): asking for one, sending it to WeCom in batches, following each
customer's transfer to its outcome, and — when a customer is taken over — moving what the handover member owned.

Guarantees:

* A request is checked whole before anything is written (members, kind, each customer served by the handover
  member, none already in a handover): a refusal changes nothing.
* WeCom is reached through :data:`TRANSFERS` (the composition root installs the WeCom implementation from bots), in
  calls of at most 100 customers, by a job (outbox ``handover.requested``) — never in the request. Each batch's
  answers are committed before the next call; a re-run sends only what is still pending (WeCom answers 40129 for a
  customer our lost call already started, which counts as started).
* A customer's success happens once (a guarded ``waiting → success`` update): the follow moves (the old relation
  ends with ended_by ``transfer``, the new one starts at the takeover time), the timeline says who served the customer
  from when, open orders change salesperson, and an outbox ``customer.transferred`` lets every capability that owns
  per-salesperson rows move its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.orders.services import reassign_open_orders
from scrm.core import audit, outbox
from scrm.core.clock import from_timestamp
from scrm.core.errors import Forbidden, InvalidInput, NotFound, ServiceUnavailable
from scrm.core.runtime import ResourceKey, Runtime
from scrm.crm.customers.models import FollowStatus
from scrm.crm.customers.queries import customers_served_by
from scrm.crm.customers.services import resolve_customer
from scrm.crm.groups.services import groups_owned_by, set_group_owner
from scrm.crm.staff.services import EndedBy, end_follow, follow_of, get_salesperson, start_follow, upsert_salesperson
from scrm.crm.timeline.services import Kind, add_entry
from scrm.governance.scopes.services import DataScope
from scrm.sales.handover.domain import (
    BATCH_SIZE,
    FAIL_REASONS,
    OPEN,
    HandoverKind,
    HandoverStatus,
    Outcome,
    TransferStatus,
    outcome_of_result,
    outcome_of_send,
    transfer_title,
)
from scrm.sales.handover.models import handover_customers, handover_groups, handovers
from scrm.sales.handover.queries import HandoverView, get_handover, member_name

REQUESTED = "handover.requested"  # a handover was recorded: send it to WeCom (payload {"handover_id"})
TRANSFERRED = "customer.transferred"  # {"customer_id", "from_userid", "to_userid", "kind", "handover_id"}
FINISHED = "handover.finished"  # every customer and group of a handover has its outcome (payload {"handover_id"})


# ---- the WeCom side, as a port ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferState:
    """One customer in transfer_result: status 1 done, 2 waiting, 3 refused, 4 takeover member full, 5 no record."""

    external_userid: str
    status: int
    takeover_time: int = 0


@dataclass(frozen=True)
class UnassignedCustomer:
    """A departed member's customer waiting for 离职继承 (get_unassigned_list)."""

    handover_userid: str
    external_userid: str
    dimission_time: int


class TransferRefused(Exception):
    """WeCom refused a whole transfer call (e.g. the takeover member is unknown, the handover member has not left)."""

    def __init__(self, errcode: int, message: str = "") -> None:
        super().__init__(f"errcode {errcode}: {message}")
        self.errcode = errcode


class WeComTransfers(Protocol):
    """What handovers need from WeCom. Outages raise (the job retries); rate limits raise RetryLater; a refusal of the
    whole call raises :class:`TransferRefused`."""

    async def transfer_customers(
        self, rt: Runtime, kind: str, from_userid: str, to_userid: str, external_userids: Sequence[str]
    ) -> dict[str, int]:
        """Start transfers of ≤ 100 customers: external_userid → errcode (0 = started)."""
        ...

    async def transfer_results(self, rt: Runtime, kind: str, from_userid: str, to_userid: str) -> list[TransferState]:
        """Every customer's transfer between the two members (all pages)."""
        ...

    async def transfer_groups(self, rt: Runtime, kind: str, chat_ids: Sequence[str], new_owner: str) -> dict[str, int]:
        """Move ≤ 100 groups to ``new_owner``: chat_id → errcode of each that failed."""
        ...

    async def unassigned(self, rt: Runtime) -> list[UnassignedCustomer]:
        """Every departed member's customer that waits for 离职继承 (all pages)."""
        ...


TRANSFERS: ResourceKey[WeComTransfers] = ResourceKey("wecom_transfers")


def _port(rt: Runtime) -> WeComTransfers:
    if not rt.has(TRANSFERS):
        raise ServiceUnavailable("未配置企业微信，无法交接客户 (WeCom is not configured)")
    return rt.get(TRANSFERS)


# ---- asking -------------------------------------------------------------------------------------------------------
async def _check_members(conn: AsyncConnection, kind: str, from_userid: str, to_userid: str) -> None:
    if kind not in set(HandoverKind):
        raise InvalidInput("kind 须为 onjob（在职转接）或 resigned（离职继承） (kind)", field="kind")
    if not from_userid or not to_userid:
        raise InvalidInput("请指定转出成员 from 和接替成员 to (from, to)", field="from")
    if from_userid == to_userid:
        raise InvalidInput("接替成员不能是转出成员本人 (from and to are the same member)", field="to")
    source = await get_salesperson(conn, from_userid)
    if source is None:
        raise InvalidInput(f"转出成员 {from_userid} 不存在 (unknown member)", field="from")
    if kind == HandoverKind.ONJOB and not source.active:
        raise InvalidInput(f"成员 {source.display_name} 已离职，请使用离职继承 (kind resigned)", field="kind")
    if kind == HandoverKind.RESIGNED and source.active:
        raise InvalidInput(f"成员 {source.display_name} 尚未离职，请使用在职转接 (kind onjob)", field="kind")
    target = await get_salesperson(conn, to_userid)
    if target is None:
        raise InvalidInput(f"接替成员 {to_userid} 不存在 (unknown member)", field="to")
    if not target.active:
        raise InvalidInput(f"接替成员 {target.display_name} 已停用或已离职，不能接替客户 (inactive member)", field="to")


async def _chosen(
    conn: AsyncConnection, from_userid: str, from_name: str, wanted: Sequence[int | str] | None, everyone: bool
) -> list[tuple[int, str]]:
    """``(customer_id, external_userid)`` of the customers to hand over; each must be served by ``from_userid`` now."""
    served = await customers_served_by(conn, from_userid)
    if everyone:
        chosen = [(c.customer_id, c.external_userid) for c in served]
        if not chosen:
            raise InvalidInput(f"成员 {from_name} 名下没有客户可交接 (no customers)", field="customers")
        return list(dict.fromkeys(chosen))  # each WeCom relation once
    if not wanted:
        raise InvalidInput('请选择要交接的客户，或传 "all": true (customers is empty)', field="customers")
    by_id: dict[int, list[str]] = {}  # a merged customer may reach the member through two relations: both move
    for c in served:
        by_id.setdefault(c.customer_id, []).append(c.external_userid)
    by_ext = {c.external_userid: c.customer_id for c in served}
    chosen = []
    for item in wanted:
        if isinstance(item, int):
            try:
                customer_id = await resolve_customer(conn, item)  # a merged customer answers as the one it became
            except NotFound:
                customer_id = item
            if customer_id not in by_id:
                raise InvalidInput(
                    f"客户 #{item} 不是 {from_name} 的客户 (not served by the handover member)", field="customers", customer=item
                )
            chosen.extend((customer_id, ext) for ext in by_id[customer_id])
        else:
            if item not in by_ext:
                raise InvalidInput(
                    f"客户 {item} 不是 {from_name} 的客户 (not served by the handover member)", field="customers", customer=item
                )
            chosen.append((by_ext[item], item))
    return list(dict.fromkeys(chosen))  # each WeCom relation once


async def request_handover(
    rt: Runtime,
    *,
    from_userid: str,
    to_userid: str,
    kind: str,
    customers: Sequence[int | str] | None,
    all_customers: bool,
    scope: DataScope,
) -> HandoverView:
    """Record a handover of ``from_userid``'s customers (all, or those listed by customer id or external_userid) and,
    with ``all``, the groups they own, to ``to_userid``; WeCom hears it from a job. Every customer starts
    ``pending``. Refused whole (InvalidInput, nothing written) when a member is unknown, inactive or departed for
    the kind, from = to, the list is empty, a customer is not the handover member's or is already being handed over;
    Forbidden when either member is outside the person's data scope."""
    if kind == HandoverKind.RESIGNED:
        async with rt.db.read() as conn:
            source = await get_salesperson(conn, from_userid)
        if source is not None and source.active:
            # WeCom knows who left before we do: its unassigned list says so. Unreachable: the check below decides.
            with contextlib.suppress(ServiceUnavailable):
                await sync_departed(rt)
    if not scope.everything and not {from_userid, to_userid} <= scope.userids:
        raise Forbidden("只能交接自己数据范围内成员的客户 (both members must be in your data scope)")
    now = rt.clock.now()
    async with rt.db.write() as conn:
        if rt.db.dialect == "postgresql":
            # Two requests for one member's customers at once: the second waits, then finds them in a handover.
            # (SQLite's write transactions are serialised already.)
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("handover:" + from_userid))))
        await _check_members(conn, kind, from_userid, to_userid)
        from_name = await member_name(conn, from_userid)
        chosen = await _chosen(conn, from_userid, from_name, customers, all_customers)
        busy = await _in_handover(conn, [cid for cid, _ in chosen])
        if busy:
            raise InvalidInput(
                f"客户 #{busy[0]} 正在另一次交接中，请等其完成 (already being handed over)", field="customers", customer=busy[0]
            )
        groups = await groups_owned_by(conn, from_userid) if all_customers else []
        actor = audit.current_actor()
        handover_id = int(
            (
                await conn.execute(
                    handovers.insert()
                    .values(kind=kind, from_userid=from_userid, to_userid=to_userid, status=HandoverStatus.RUNNING,
                            requested_by=(actor.name or actor.ref)[:64], created_at=now, updated_at=now)
                    .returning(handovers.c.id)
                )
            ).scalar_one()
        )  # fmt: skip
        await conn.execute(
            handover_customers.insert(),
            [dict(handover_id=handover_id, customer_id=cid, external_userid=ext, status=TransferStatus.PENDING, reason="", updated_at=now)
             for cid, ext in chosen],
        )  # fmt: skip
        if groups:
            await conn.execute(
                handover_groups.insert(),
                [
                    dict(handover_id=handover_id, chat_id=chat_id, name=name[:128], status="pending", updated_at=now)
                    for chat_id, name in groups
                ],
            )
        await audit.record(
            conn, now, action="create", entity="handover", entity_id=handover_id,
            summary=f"{from_name} → {await member_name(conn, to_userid)}：{len(chosen)} 位客户，{len(groups)} 个群（{kind}）",
            after={"from": from_userid, "to": to_userid, "kind": kind, "customers": len(chosen), "groups": len(groups)},
        )  # fmt: skip
        outbox_id = await outbox.add(conn, REQUESTED, {"handover_id": handover_id}, now, kicked=True)
    await outbox.kick(rt, [outbox_id])
    return await get_handover(rt, handover_id, scope)


async def _in_handover(conn: AsyncConnection, customer_ids: Sequence[int]) -> list[int]:
    """Which of these customers wait in a running handover already."""
    hc = handover_customers.c
    busy: list[int] = []
    for start in range(0, len(customer_ids), 500):
        chunk = list(customer_ids[start : start + 500])
        rows = await conn.execute(sa.select(hc.customer_id).where(hc.customer_id.in_(chunk), hc.status.in_(OPEN)))
        busy.extend(int(r.customer_id) for r in rows)
    return sorted(busy)


# ---- sending (job) ------------------------------------------------------------------------------------------------
async def _handover_row(conn: AsyncConnection, handover_id: int) -> Any:
    row = (await conn.execute(sa.select(handovers).where(handovers.c.id == handover_id))).first()
    if row is None:
        raise NotFound("没有找到这次交接 (handover not found)", handover_id=handover_id)
    return row


async def _set_outcome(conn: AsyncConnection, row_id: int, outcome: Outcome, now: dt.datetime, *, expect: str) -> bool:
    hc = handover_customers.c
    values: dict[str, Any] = {"status": outcome.status, "errcode": outcome.errcode, "reason": outcome.reason[:200], "updated_at": now}
    if outcome.status == TransferStatus.WAITING:
        values["sent_at"] = now
    else:
        values["finished_at"] = now
    result = await conn.execute(handover_customers.update().where(hc.id == row_id, hc.status == expect).values(**values))
    return result.rowcount == 1


async def send_handover(rt: Runtime, handover_id: int) -> int:
    """Send the handover's pending customers to WeCom, ≤ 100 a call, then its groups. Each batch's answers are
    committed before the next call. Returns how many customers were sent now."""
    port = _port(rt)
    async with rt.db.read() as conn:
        h = await _handover_row(conn, handover_id)
    hc = handover_customers.c
    sent = 0
    while True:
        async with rt.db.read() as conn:
            batch = (
                await conn.execute(
                    sa.select(hc.id, hc.external_userid)
                    .where(hc.handover_id == handover_id, hc.status == TransferStatus.PENDING)
                    .order_by(hc.id)
                    .limit(BATCH_SIZE)
                )
            ).all()
        if not batch:
            break
        try:
            answers = await port.transfer_customers(rt, h.kind, h.from_userid, h.to_userid, [r.external_userid for r in batch])
        except TransferRefused as exc:
            answers = {r.external_userid: exc.errcode for r in batch}
        now = rt.clock.now()
        async with rt.db.write() as conn:
            for r in batch:
                errcode = answers.get(r.external_userid)
                outcome = outcome_of_send(errcode) if errcode is not None else Outcome(TransferStatus.FAILED, None, "企业微信未答复该客户")
                await _set_outcome(conn, int(r.id), outcome, now, expect=TransferStatus.PENDING)
        sent += len(batch)
    await _send_groups(rt, h)
    async with rt.db.write() as conn:
        await _finish_if_done(conn, handover_id, rt.clock.now())
    return sent


async def _send_groups(rt: Runtime, h: Any) -> None:
    hg = handover_groups.c
    async with rt.db.read() as conn:
        pending = [
            r.chat_id
            for r in await conn.execute(sa.select(hg.chat_id).where(hg.handover_id == h.id, hg.status == "pending").order_by(hg.id))
        ]
    for start in range(0, len(pending), BATCH_SIZE):
        chunk = pending[start : start + BATCH_SIZE]
        try:
            failed = await _port(rt).transfer_groups(rt, h.kind, chunk, h.to_userid)
        except TransferRefused as exc:
            failed = dict.fromkeys(chunk, exc.errcode)
        now = rt.clock.now()
        async with rt.db.write() as conn:
            for chat_id in chunk:
                errcode = failed.get(chat_id)
                status = "failed" if errcode is not None else "success"
                await conn.execute(
                    handover_groups.update().where(hg.handover_id == h.id, hg.chat_id == chat_id, hg.status == "pending")
                    .values(status=status, errcode=errcode, updated_at=now)
                )  # fmt: skip
                if errcode is None:
                    await set_group_owner(conn, chat_id, h.to_userid, now)


async def _finish_if_done(conn: AsyncConnection, handover_id: int, now: dt.datetime) -> bool:
    hc, hg = handover_customers.c, handover_groups.c
    open_customers = (await conn.execute(sa.select(hc.id).where(hc.handover_id == handover_id, hc.status.in_(OPEN)).limit(1))).first()
    open_groups = (await conn.execute(sa.select(hg.id).where(hg.handover_id == handover_id, hg.status == "pending").limit(1))).first()
    if open_customers is not None or open_groups is not None:
        return False
    result = await conn.execute(
        handovers.update()
        .where(handovers.c.id == handover_id, handovers.c.status == HandoverStatus.RUNNING)
        .values(status=HandoverStatus.DONE, finished_at=now, updated_at=now)
    )
    if result.rowcount != 1:
        return False
    await outbox.add(conn, FINISHED, {"handover_id": handover_id}, now)
    return True


# ---- outcomes -----------------------------------------------------------------------------------------------------
async def _take_over(rt: Runtime, conn: AsyncConnection, h: Any, row: Any, at: dt.datetime, now: dt.datetime) -> bool:
    """The customer is the takeover member's now (once: the row must still be waiting)."""
    if not await _set_outcome(conn, int(row.id), Outcome(TransferStatus.SUCCESS), now, expect=TransferStatus.WAITING):
        return False
    dialect = rt.db.dialect
    customer_id = await resolve_customer(conn, int(row.customer_id))
    old = await follow_of(conn, h.from_userid, row.external_userid)
    await end_follow(conn, dialect, customer_id=customer_id, userid=h.from_userid, external_userid=row.external_userid,
                     ended_by=EndedBy.TRANSFER, at=at, now=now)  # fmt: skip
    await start_follow(
        conn, dialect, customer_id=customer_id, userid=h.to_userid, external_userid=row.external_userid, status=FollowStatus.ACTIVE,
        at=at, now=now, remark=old.remark if old else None, state=old.state if old else None,
    )  # fmt: skip
    from_name, to_name = await member_name(conn, h.from_userid), await member_name(conn, h.to_userid)
    moved = await reassign_open_orders(
        conn,
        customer_id=customer_id,
        from_userid=h.from_userid,
        to_userid=h.to_userid,
        now=now,
        actor=f"handover:{h.id}",
        note=f"交接 #{h.id}",
    )
    await add_entry(
        conn, dialect, customer_id=customer_id, at=at, kind=Kind.EVENT, title=transfer_title(from_name, to_name, h.kind),
        ref=f"handover:{h.id}", data={"handover_id": int(h.id), "from": h.from_userid, "to": h.to_userid, "kind": h.kind, "orders": moved},
    )  # fmt: skip
    await audit.record(
        conn, now, action="transfer", entity="customer", entity_id=customer_id, summary=transfer_title(from_name, to_name, h.kind),
        before={"salesperson": h.from_userid}, after={"salesperson": h.to_userid, "orders": moved},
    )  # fmt: skip
    payload = {"customer_id": customer_id, "from_userid": h.from_userid, "to_userid": h.to_userid, "kind": h.kind, "handover_id": int(h.id)}
    await outbox.add(conn, TRANSFERRED, payload, now)
    return True


async def apply_results(rt: Runtime, handover_id: int, results: Sequence[TransferState]) -> Counter[str]:
    """What transfer_result says about the handover's waiting customers: success (moved), refused, limit. Each
    customer in its own transaction; a customer decided already is left alone. Returns the counts of changes."""
    by_ext = {r.external_userid: r for r in results}
    hc = handover_customers.c
    changed: Counter[str] = Counter()
    async with rt.db.read() as conn:
        h = await _handover_row(conn, handover_id)
        waiting = (
            await conn.execute(sa.select(handover_customers).where(hc.handover_id == handover_id, hc.status == TransferStatus.WAITING))
        ).all()
    for row in waiting:
        result = by_ext.get(row.external_userid)
        outcome = outcome_of_result(result.status) if result is not None else None
        if result is None or outcome is None:
            continue
        now = rt.clock.now()
        async with rt.db.write() as conn:
            if outcome.status == TransferStatus.SUCCESS:
                at = from_timestamp(result.takeover_time) if result.takeover_time > 0 else now
                done = await _take_over(rt, conn, h, row, at, now)
            else:
                done = await _set_outcome(conn, int(row.id), outcome, now, expect=TransferStatus.WAITING)
        if done:
            changed[outcome.status] += 1
    async with rt.db.write() as conn:
        await _finish_if_done(conn, handover_id, rt.clock.now())
    return changed


async def poll_handover(rt: Runtime, handover_id: int) -> Counter[str]:
    """Ask WeCom how the handover's waiting customers stand (transfer_result) and apply it."""
    async with rt.db.read() as conn:
        h = await _handover_row(conn, handover_id)
    results = await _port(rt).transfer_results(rt, h.kind, h.from_userid, h.to_userid)
    return await apply_results(rt, handover_id, results)


RESEND_AFTER = dt.timedelta(minutes=30)  # a handover whose sending job gave up (WeCom down for long) is sent again


async def poll_running(rt: Runtime) -> int:
    """Every running handover with a waiting customer is polled; returns how many customers changed. A handover
    still holding pending customers half an hour after it was asked for (its job gave up) is sent again first."""
    hc = handover_customers.c
    async with rt.db.read() as conn:
        stuck = [
            int(r.handover_id)
            for r in await conn.execute(
                sa.select(hc.handover_id)
                .where(hc.status == TransferStatus.PENDING, hc.updated_at < rt.clock.now() - RESEND_AFTER)
                .distinct()
                .order_by(hc.handover_id)
            )
        ]
    for handover_id in stuck:
        await send_handover(rt, handover_id)
    async with rt.db.read() as conn:
        ids = [
            int(r.handover_id)
            for r in await conn.execute(
                sa.select(hc.handover_id).where(hc.status == TransferStatus.WAITING).distinct().order_by(hc.handover_id)
            )
        ]
    total = 0
    for handover_id in ids:
        total += sum((await poll_handover(rt, handover_id)).values())
    return total


async def record_transfer_failure(rt: Runtime, *, takeover_userid: str, external_userid: str, fail_reason: str) -> int | None:
    """WeCom's transfer_fail callback: the customer refused (customer_refused) or the takeover member is full
    (customer_limit_exceed). The waiting transfer of that customer to that member ends so. Returns its handover id,
    None when no handover of ours waits for it (a transfer made in the WeCom admin, or already decided)."""
    status = FAIL_REASONS.get(fail_reason)
    if status is None:
        return None
    outcome = Outcome(status, reason="客户拒绝了转接" if status == TransferStatus.REFUSED else "接替成员的客户数已达上限")
    hc = handover_customers.c
    async with rt.db.write() as conn:
        row = (
            await conn.execute(
                sa.select(hc.id, hc.handover_id)
                .join(handovers, handovers.c.id == hc.handover_id)
                .where(hc.external_userid == external_userid, hc.status == TransferStatus.WAITING, handovers.c.to_userid == takeover_userid)
                .order_by(hc.id.desc())
                .limit(1)
            )
        ).first()
        if row is None or not await _set_outcome(conn, int(row.id), outcome, rt.clock.now(), expect=TransferStatus.WAITING):
            return None
        await _finish_if_done(conn, int(row.handover_id), rt.clock.now())
        return int(row.handover_id)


# ---- departed members (离职继承) --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DepartedMember:
    """A member who left, with their customers waiting for 离职继承."""

    userid: str
    name: str
    departed_at: dt.datetime
    customers: list[tuple[int | None, str, str]]  # (customer id when known, external_userid, name)


async def sync_departed(rt: Runtime) -> list[DepartedMember]:
    """WeCom's unassigned list (get_unassigned_list): who left and which customers wait for them. A member listed
    there is marked inactive (离职) here too. Members by departure, newest first."""
    items = await _port(rt).unassigned(rt)
    by_member: dict[str, list[UnassignedCustomer]] = {}
    for item in items:
        by_member.setdefault(item.handover_userid, []).append(item)
    out: list[DepartedMember] = []
    now = rt.clock.now()
    async with rt.db.write() as conn:
        for userid, waiting in by_member.items():
            person = await get_salesperson(conn, userid)
            if person is None or person.active:
                await upsert_salesperson(conn, rt.db.dialect, userid, now, active=False)
            served = {c.external_userid: c for c in await customers_served_by(conn, userid)}
            listed = [
                (served[i.external_userid].customer_id if i.external_userid in served else None, i.external_userid,
                 served[i.external_userid].name if i.external_userid in served else "")
                for i in waiting
            ]  # fmt: skip
            out.append(
                DepartedMember(userid, await member_name(conn, userid), from_timestamp(max(i.dimission_time for i in waiting)), listed)
            )
    return sorted(out, key=lambda m: m.departed_at, reverse=True)
