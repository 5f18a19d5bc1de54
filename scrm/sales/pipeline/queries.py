"""Reads of the pipeline for pages and the API: opportunity lists (filtered, data-scoped), the board by stage, the
funnel (count and amount per stage) and the weighted forecast (Σ amount × probability per expected-close month and
salesperson)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from scrm.core.runtime import Runtime
from scrm.governance.scopes.services import DataScope
from scrm.sales.pipeline.domain import Stage, weighted_fen
from scrm.sales.pipeline.models import opportunities
from scrm.sales.pipeline.services import OpportunityView, load_stages, owner_condition, view_of

OP = opportunities.c
LIST_LIMIT = 500


@dataclass(frozen=True)
class Filters:
    owner: str = ""
    stage: str = ""
    customer_id: int | None = None
    open_only: bool = False


async def list_opportunities(
    rt: Runtime, scope: DataScope, filters: Filters = Filters(), *, limit: int = LIST_LIMIT
) -> list[OpportunityView]:
    """Opportunities in scope (their owner is one of the scope's members), newest first."""
    q = sa.select(opportunities).where(owner_condition(scope, OP.owner_userid))
    if filters.owner:
        q = q.where(OP.owner_userid == filters.owner)
    if filters.stage:
        q = q.where(OP.stage == filters.stage)
    if filters.customer_id is not None:
        q = q.where(OP.customer_id == filters.customer_id)
    async with rt.db.read() as conn:
        stages = await load_stages(conn)
        by_key = {s.key: s for s in stages}
        if filters.open_only:
            q = q.where(OP.stage.not_in([s.key for s in stages if s.closed]))
        rows = (await conn.execute(q.order_by(OP.updated_at.desc(), OP.id.desc()).limit(limit))).all()
    return [view_of(r, by_key) for r in rows]


@dataclass(frozen=True)
class Column:
    stage: Stage
    cards: list[OpportunityView]

    @property
    def amount_fen(self) -> int:
        return sum(c.amount_fen for c in self.cards)


async def board(rt: Runtime, scope: DataScope, filters: Filters = Filters()) -> list[Column]:
    """The kanban: one column per active stage (board order) with its opportunities."""
    stages = [s for s in await _stages(rt) if s.active]
    found = await list_opportunities(rt, scope, filters)
    by_stage: dict[str, list[OpportunityView]] = defaultdict(list)
    for o in found:
        by_stage[o.stage].append(o)
    return [Column(s, by_stage.get(s.key, [])) for s in stages]


async def _stages(rt: Runtime) -> list[Stage]:
    async with rt.db.read() as conn:
        return await load_stages(conn)


@dataclass(frozen=True)
class FunnelStep:
    stage: Stage
    count: int
    amount_fen: int


async def funnel(rt: Runtime, scope: DataScope, *, owner: str = "") -> list[FunnelStep]:
    """Count and amount of opportunities now at each active stage."""
    q = sa.select(OP.stage, sa.func.count(), sa.func.coalesce(sa.func.sum(OP.amount_fen), 0)).where(owner_condition(scope, OP.owner_userid))
    if owner:
        q = q.where(OP.owner_userid == owner)
    async with rt.db.read() as conn:
        stages = await load_stages(conn)
        rows = {r[0]: (int(r[1]), int(r[2])) for r in (await conn.execute(q.group_by(OP.stage))).all()}
    return [FunnelStep(s, *rows.get(s.key, (0, 0))) for s in stages if s.active]


@dataclass(frozen=True)
class ForecastCell:
    month: str  # 2026-12 (expected close, business-local), "未定" without a date
    owner: str
    count: int
    amount_fen: int
    weighted_fen: int


NO_DATE = "未定"


async def forecast(rt: Runtime, scope: DataScope, *, owner: str = "") -> list[ForecastCell]:
    """Σ amount × probability of the opportunities not lost, per expected-close month and owner (months ascending)."""
    async with rt.db.read() as conn:
        stages = await load_stages(conn)
        lost = [s.key for s in stages if s.is_lost]
        q = sa.select(OP.owner_userid, OP.expected_close_on, OP.amount_fen, OP.probability_pct).where(
            owner_condition(scope, OP.owner_userid), OP.stage.not_in(lost)
        )
        if owner:
            q = q.where(OP.owner_userid == owner)
        rows = (await conn.execute(q)).all()
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        month = r.expected_close_on.strftime("%Y-%m") if r.expected_close_on else NO_DATE
        cell = cells[(month, r.owner_userid)]
        cell[0] += 1
        cell[1] += int(r.amount_fen)
        cell[2] += weighted_fen(int(r.amount_fen), int(r.probability_pct))
    order = sorted(cells, key=lambda k: (k[0] == NO_DATE, k[0], k[1]))
    return [ForecastCell(m, o, *cells[(m, o)]) for m, o in order]
