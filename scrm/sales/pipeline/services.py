"""Opportunity use cases (商机): create, change (stage, amount, expected close …), win from an accepted quote, move
to another salesperson on a handover; and the stages the admin configures.

Guarantees:
- Every change is one transaction guarded by the opportunity's ``version`` (a change made meanwhile is refused
  with StaleOpportunity, nothing written); a refused change (unknown stage, closing without a reason) writes nothing.
- Every stage change writes an ``opportunity_history`` row (who, when, from, to, reason), an audit row, and an
  entry on the customer's timeline, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.services import get_product
from scrm.core import audit
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import customer_exists
from scrm.crm.staff import accounts
from scrm.crm.timeline.services import Kind, add_entry
from scrm.governance.scopes.services import DataScope
from scrm.sales.pipeline.domain import (
    DEFAULT_STAGES,
    OpportunityNotFound,
    Stage,
    StaleOpportunity,
    check_probability,
    check_reason,
    check_stage_fields,
    check_title,
    first_open_stage,
    stage_named,
    won_stage,
)
from scrm.sales.pipeline.models import opportunities, opportunity_history, opportunity_stages

OP, H, ST = opportunities.c, opportunity_history.c, opportunity_stages.c
MAX_PRODUCTS = 20
MAX_AMOUNT_FEN = 10**13


# ---- who acts ------------------------------------------------------------------------------------------------------
async def acting_userid(rt: Runtime, actor: audit.Actor | None = None) -> str:
    """The WeCom member acting now ("" when the person has none: the admin token, an unbound account, the system)."""
    who = actor or audit.current_actor()
    if who.kind == "sidebar":
        return who.ref
    if who.staff_id is not None:
        return (await accounts.get_staff(rt, who.staff_id)).wecom_userid or ""
    return ""


def owner_in_scope(scope: DataScope, owner_userid: str) -> bool:
    """A salesperson's row is in scope when its owner is one of the scope's members (everything: always)."""
    return scope.everything or owner_userid in scope.userids


def owner_condition(scope: DataScope, column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    if scope.everything:
        return sa.true()
    if not scope.userids:
        return sa.false()
    return column.in_(sorted(scope.userids))


# ---- stages --------------------------------------------------------------------------------------------------------
def _stage(row: Any) -> Stage:
    return Stage(row.key, row.name, int(row.position), int(row.probability_pct), bool(row.is_won), bool(row.is_lost), bool(row.active))


async def load_stages(conn: AsyncConnection) -> list[Stage]:
    """Every stage (active or not), in board order; the default stages until the admin first edits one."""
    rows = (await conn.execute(sa.select(opportunity_stages).order_by(ST.position, ST.id))).all()
    return [_stage(r) for r in rows] if rows else list(DEFAULT_STAGES)


async def _materialise_defaults(conn: AsyncConnection) -> None:
    """The first edit writes the default stages down, so the edit changes one of them and keeps the others."""
    if (await conn.execute(sa.select(sa.func.count()).select_from(opportunity_stages))).scalar_one() == 0:
        await conn.execute(opportunity_stages.insert(), [dict(s.__dict__) for s in DEFAULT_STAGES])


async def list_stages(rt: Runtime) -> list[Stage]:
    async with rt.db.read() as conn:
        return await load_stages(conn)


async def save_stage(
    rt: Runtime,
    *,
    key: str,
    name: str,
    position: int,
    probability_pct: int,
    is_won: bool = False,
    is_lost: bool = False,
    active: bool = True,
) -> Stage:
    """Add a stage or change one (by key). An open stage must remain, and a won stage (a quote accepted needs one)."""
    key, name = key.strip(), name.strip()
    check_stage_fields(key, name, probability_pct, is_won, is_lost)
    now = rt.clock.now()
    values = {
        "name": name,
        "position": position,
        "probability_pct": probability_pct,
        "is_won": is_won,
        "is_lost": is_lost,
        "active": active,
    }
    async with rt.db.write() as conn:
        await _materialise_defaults(conn)
        before = {s.key: s for s in await load_stages(conn)}
        if key in before:
            await conn.execute(opportunity_stages.update().where(ST.key == key).values(**values))
        else:
            await conn.execute(opportunity_stages.insert().values(key=key, **values))
        after = await load_stages(conn)
        if not any(s.active and not s.closed for s in after):
            raise InvalidInput("至少要保留一个未结束（非赢单、非输单）的启用阶段 (an open stage must remain)", field="active")
        won_stage(after)
        old = before.get(key)
        await audit.record(
            conn, now, action="update" if old else "create", entity="opportunity-stages", entity_id=key,
            summary=f"商机阶段「{name}」（{probability_pct}%）", before=old.__dict__ if old else None, after={"key": key, **values},
        )  # fmt: skip
        return next(s for s in after if s.key == key)


# ---- opportunities -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryEntry:
    event: str
    from_value: str
    to_value: str
    actor: str
    note: str
    at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "from": self.from_value,
            "to": self.to_value,
            "actor": self.actor,
            "note": self.note,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class OpportunityView:
    id: int
    customer_id: int
    lead_id: int | None
    owner: str
    title: str
    stage: str
    stage_name: str
    amount_fen: int
    expected_close_on: dt.date | None
    probability: int
    probability_overridden: bool
    products: list[str]
    reason: str
    closed_at: dt.datetime | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    is_won: bool = False
    is_lost: bool = False
    history: list[HistoryEntry] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.is_won or self.is_lost

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "lead_id": self.lead_id,
            "owner": self.owner,
            "title": self.title,
            "stage": self.stage,
            "stage_name": self.stage_name,
            "amount_fen": self.amount_fen,
            "expected_close_on": self.expected_close_on.isoformat() if self.expected_close_on else None,
            "probability": self.probability,
            "probability_overridden": self.probability_overridden,
            "products": list(self.products),
            "reason": self.reason,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "history": [h.to_json() for h in self.history],
        }


def view_of(row: Any, stages: Mapping[str, Stage], history: list[HistoryEntry] | None = None) -> OpportunityView:
    st = stages.get(row.stage)
    return OpportunityView(
        int(row.id), int(row.customer_id), None if row.lead_id is None else int(row.lead_id), row.owner_userid, row.title, row.stage,
        st.name if st else row.stage, int(row.amount_fen), row.expected_close_on, int(row.probability_pct),
        bool(row.probability_overridden), list(row.products or []), row.close_reason, row.closed_at, int(row.version),
        row.created_at, row.updated_at, bool(st and st.is_won), bool(st and st.is_lost), history or [],
    )  # fmt: skip


async def history_of(conn: AsyncConnection, opportunity_id: int) -> list[HistoryEntry]:
    rows = (await conn.execute(sa.select(opportunity_history).where(H.opportunity_id == opportunity_id).order_by(H.at, H.id))).all()
    return [HistoryEntry(r.event, r.from_value, r.to_value, r.actor, r.note, r.at) for r in rows]


async def load_opportunity(conn: AsyncConnection, opportunity_id: int, *, with_history: bool = True) -> OpportunityView:
    row = (await conn.execute(sa.select(opportunities).where(OP.id == opportunity_id))).first()
    if row is None:
        raise OpportunityNotFound(f"没有这个商机：#{opportunity_id} (opportunity not found)", id=opportunity_id)
    stages = {s.key: s for s in await load_stages(conn)}
    return view_of(row, stages, await history_of(conn, opportunity_id) if with_history else None)


async def get_opportunity(rt: Runtime, opportunity_id: int, *, scope: DataScope | None = None) -> OpportunityView:
    """One opportunity; outside ``scope`` it answers as not found (nothing leaks)."""
    async with rt.db.read() as conn:
        found = await load_opportunity(conn, opportunity_id)
    if scope is not None and not owner_in_scope(scope, found.owner):
        raise OpportunityNotFound(f"没有这个商机：#{opportunity_id} (opportunity not found)", id=opportunity_id)
    return found


async def check_products(conn: AsyncConnection, skus: Iterable[str]) -> list[str]:
    """SKUs of interest, each an active catalog product (InvalidInput names the first that is not), deduplicated."""
    out: list[str] = []
    for i, raw in enumerate(skus):
        sku = str(raw).strip()
        if sku in out:
            continue
        try:
            product = await get_product(conn, sku)
        except NotFound:
            product = None
        if product is None or not product.active:
            raise InvalidInput(f"意向商品第 {i + 1} 项：没有这个商品 {sku[:64]} (unknown sku)", field="products", sku=sku[:64])
        out.append(sku)
    if len(out) > MAX_PRODUCTS:
        raise InvalidInput(f"意向商品最多 {MAX_PRODUCTS} 种 (too many products)", field="products")
    return out


def _check_amount(amount_fen: int) -> int:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or not 0 <= amount_fen <= MAX_AMOUNT_FEN:
        raise InvalidInput("金额需为不小于 0 的整数（分）(amount_fen)", field="amount_fen")
    return amount_fen


async def _record_stage(
    conn: AsyncConnection,
    dialect: str,
    row: Any,
    old: Stage | None,
    new: Stage,
    *,
    event: str,
    actor: str,
    note: str,
    now: dt.datetime,
) -> None:
    """The history row and the customer's timeline entry of a stage change (or of the creation)."""
    history_id = (
        await conn.execute(
            opportunity_history.insert()
            .values(
                opportunity_id=row.id, event=event, from_value=old.key if old else "", to_value=new.key, actor=actor[:64],
                note=note[:300], at=now, data={"from_name": old.name if old else "", "to_name": new.name},
            )
            .returning(H.id)
        )
    ).scalar_one()  # fmt: skip
    title = f"商机「{row.title}」{'新建，阶段' if old is None else '阶段 ' + old.name + ' →'} {new.name}"
    await add_entry(
        conn, dialect, customer_id=int(row.customer_id), at=now, kind=Kind.EVENT, title=title, body=note,
        ref=f"opportunity:{row.id}:{history_id}", data={"opportunity_id": int(row.id), "stage": new.key, "by": actor},
    )  # fmt: skip


async def create_opportunity(
    rt: Runtime,
    *,
    customer_id: int,
    owner_userid: str,
    title: str,
    stage: str | None = None,
    amount_fen: int = 0,
    expected_close_on: dt.date | None = None,
    probability: int | None = None,
    products: Collection[str] = (),
    lead_id: int | None = None,
    reason: str = "",
    actor: str = "",
) -> OpportunityView:
    """A new opportunity for an existing customer (InvalidInput otherwise), at ``stage`` (default: the first open
    one); its creation is the first entry of its history."""
    title = check_title(title)
    owner_userid = owner_userid.strip()
    if not 0 < len(owner_userid) <= 64:
        raise InvalidInput("需要负责人（企业微信成员账号）(owner)", field="owner")
    _check_amount(amount_fen)
    if probability is not None:
        check_probability(probability)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        if not await customer_exists(conn, customer_id):
            raise InvalidInput(f"没有这个客户：#{customer_id} (unknown customer)", field="customer_id")
        stages = await load_stages(conn)
        target = stage_named(stages, stage) if stage else first_open_stage(stages)
        why = check_reason(target, reason)
        skus = await check_products(conn, products)
        values = {
            "customer_id": customer_id, "lead_id": lead_id, "owner_userid": owner_userid, "title": title, "stage": target.key,
            "amount_fen": amount_fen, "expected_close_on": expected_close_on,
            "probability_pct": target.probability_pct if probability is None else probability,
            "probability_overridden": probability is not None, "products": skus, "close_reason": why,
            "closed_at": now if target.closed else None, "version": 1, "created_at": now, "created_by": actor[:64], "updated_at": now,
        }  # fmt: skip
        new_id = int((await conn.execute(opportunities.insert().values(**values).returning(OP.id))).scalar_one())
        row = (await conn.execute(sa.select(opportunities).where(OP.id == new_id))).one()
        await _record_stage(conn, rt.db.dialect, row, None, target, event="created", actor=actor, note=why, now=now)
        await audit.record(
            conn, now, action="create", entity="opportunities", entity_id=new_id, summary=f"新建商机「{title}」（{target.name}）",
            after={k: v for k, v in values.items() if k in ("customer_id", "owner_userid", "title", "stage", "amount_fen")},
        )  # fmt: skip
        return await load_opportunity(conn, new_id)


UNSET: Any = object()


async def update_opportunity(
    rt: Runtime,
    opportunity_id: int,
    *,
    actor: str,
    scope: DataScope | None = None,
    version: int | None = None,
    stage: str | None = None,
    reason: str = "",
    title: str | None = None,
    amount_fen: int | None = None,
    expected_close_on: dt.date | None = UNSET,
    probability: int | None = UNSET,
    products: Collection[str] | None = None,
) -> OpportunityView:
    """Change an opportunity. ``probability=None`` goes back to the stage's; a stage change records history;
    moving to a won/lost stage needs ``reason`` and closes it, moving back to an open stage reopens it. ``version``
    (when given) must be the current one. Anything refused changes nothing."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(opportunities).where(OP.id == opportunity_id))).first()
        if row is None or (scope is not None and not owner_in_scope(scope, row.owner_userid)):
            raise OpportunityNotFound(f"没有这个商机：#{opportunity_id} (opportunity not found)", id=opportunity_id)
        if version is not None and version != row.version:
            raise StaleOpportunity("商机已被他人修改，请刷新后重试 (changed meanwhile)", version=int(row.version))
        stages = await load_stages(conn)
        by_key = {s.key: s for s in stages}
        old = by_key.get(row.stage)
        values: dict[str, Any] = {}
        target = None
        if stage is not None and stage != row.stage:
            target = stage_named(stages, stage)
            why = check_reason(target, reason)
            values.update(stage=target.key, close_reason=why, closed_at=now if target.closed else None)
            if not row.probability_overridden and probability is UNSET:
                values["probability_pct"] = target.probability_pct
        elif stage is not None:
            stage_named(stages, stage)
            if reason.strip() and old is not None and old.closed:
                values["close_reason"] = check_reason(old, reason)
        if title is not None:
            values["title"] = check_title(title)
        if amount_fen is not None:
            values["amount_fen"] = _check_amount(amount_fen)
        if expected_close_on is not UNSET:
            values["expected_close_on"] = expected_close_on
        if probability is not UNSET:
            if probability is None:
                current = target or old
                values.update(
                    probability_pct=current.probability_pct if current else int(row.probability_pct), probability_overridden=False
                )
            else:
                values.update(probability_pct=check_probability(probability), probability_overridden=True)
        if products is not None:
            values["products"] = await check_products(conn, products)
        if not values:
            return await load_opportunity(conn, opportunity_id)
        values.update(version=row.version + 1, updated_at=now)
        done = await conn.execute(opportunities.update().where(OP.id == opportunity_id, OP.version == row.version).values(**values))
        if done.rowcount != 1:
            raise StaleOpportunity("商机已被他人修改，请刷新后重试 (changed meanwhile)")
        if target is not None:
            fresh = (await conn.execute(sa.select(opportunities).where(OP.id == opportunity_id))).one()
            await _record_stage(
                conn, rt.db.dialect, fresh, old, target, event="stage", actor=actor, note=values.get("close_reason", ""), now=now
            )
        before = {k: _jsonable(getattr(row, k)) for k in values if k not in ("version", "updated_at")}
        moved = f"：{old.name if old else row.stage} → {target.name}" if target else ""
        await audit.record(
            conn, now, action="update", entity="opportunities", entity_id=opportunity_id,
            summary=f"修改商机「{values.get('title', row.title)}」{moved}",
            before=before, after={k: _jsonable(v) for k, v in values.items() if k not in ("version", "updated_at")},
        )  # fmt: skip
        return await load_opportunity(conn, opportunity_id)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


async def win_in(conn: AsyncConnection, dialect: str, opportunity_id: int, *, reason: str, actor: str, now: dt.datetime) -> bool:
    """In the caller's transaction (a quote accepted): the opportunity moves to the won stage with ``reason``.
    Already won: nothing changes (False). A lost or any open opportunity is won."""
    row = (await conn.execute(sa.select(opportunities).where(OP.id == opportunity_id))).first()
    if row is None:
        return False
    stages = await load_stages(conn)
    target = won_stage(stages)
    by_key = {s.key: s for s in stages}
    old = by_key.get(row.stage)
    if old is not None and old.is_won:
        return False
    values: dict[str, Any] = {
        "stage": target.key,
        "close_reason": check_reason(target, reason),
        "closed_at": now,
        "version": OP.version + 1,  # counted in SQL: a change made meanwhile with the old version is then refused
    }
    if not row.probability_overridden:
        values["probability_pct"] = target.probability_pct
    values["updated_at"] = now
    await conn.execute(opportunities.update().where(OP.id == opportunity_id).values(**values))
    fresh = (await conn.execute(sa.select(opportunities).where(OP.id == opportunity_id))).one()
    await _record_stage(conn, dialect, fresh, old, target, event="stage", actor=actor, note=values["close_reason"], now=now)
    await audit.record(conn, now, action="update", entity="opportunities", entity_id=opportunity_id,
                       summary=f"商机「{row.title}」赢单：{reason}", before={"stage": row.stage}, after={"stage": target.key})  # fmt: skip
    return True


async def transfer_open_opportunities(rt: Runtime, *, customer_id: int, from_userid: str, to_userid: str, note: str = "") -> int:
    """A customer handed over: their open opportunities owned by ``from_userid`` now belong to ``to_userid``
    (history records it). Run twice, the second run finds none left to move. Returns how many moved."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        closed = [s.key for s in await load_stages(conn) if s.closed]
        rows = (
            await conn.execute(
                sa.select(opportunities).where(OP.customer_id == customer_id, OP.owner_userid == from_userid, OP.stage.not_in(closed))
            )
        ).all()
        for row in rows:
            await conn.execute(
                opportunities.update().where(OP.id == row.id).values(owner_userid=to_userid, version=OP.version + 1, updated_at=now)
            )
            await conn.execute(
                opportunity_history.insert().values(
                    opportunity_id=row.id, event="owner", from_value=from_userid, to_value=to_userid, actor="handover",
                    note=note[:300], at=now, data={},
                )
            )  # fmt: skip
            await audit.record(conn, now, action="transfer", entity="opportunities", entity_id=int(row.id),
                               summary=f"商机「{row.title}」随客户交接：{from_userid} → {to_userid}",
                               before={"owner_userid": from_userid}, after={"owner_userid": to_userid})  # fmt: skip
        return len(rows)


async def move_to_surviving_customer(rt: Runtime, *, from_customer: int, into_customer: int) -> None:
    """Two customer records turned out to be one person: the merged record's opportunities follow the survivor."""
    async with rt.db.write() as conn:
        await conn.execute(opportunities.update().where(OP.customer_id == from_customer).values(customer_id=into_customer))
