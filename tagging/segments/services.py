"""Segments (客群): expressions that pick customers — counted, previewed, streamed to campaigns — and saved ones.

The language (grammar, fields, errors) is described in :mod:`tagging.segments.syntax`; :mod:`tagging.segments.sql`
compiles it. Their public names are re-exported here, so ``tagging.segments.services`` stays the one import path::

    tag:意向-高 and rfm:重要价值客户 and not group:"VIP群" and last_active < 30d and channel:展会
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers
from tagging.segments.models import segments
from tagging.segments.sql import segment_select
from tagging.segments.syntax import (
    parse,
)


# ---- use cases --------------------------------------------------------------------------------------------
async def count_segment(rt: Runtime, expression: str) -> int:
    """How many customers the expression picks now. SegmentSyntaxError when it does not parse."""
    q = segment_select(parse(expression), rt.clock.now()).order_by(None)
    async with rt.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(q.subquery()))).scalar_one())


async def sample_segment(rt: Runtime, expression: str, limit: int = 10) -> list[dict[str, Any]]:
    """The first ``limit`` customers picked (lowest ids): id and name, for a preview."""
    ids = segment_select(parse(expression), rt.clock.now()).limit(limit).subquery()
    async with rt.db.read() as conn:
        rows = await conn.execute(
            sa.select(customers.c.id, customers.c.name).where(customers.c.id.in_(sa.select(ids.c.id))).order_by(customers.c.id)
        )
        return [{"id": int(r.id), "name": r.name} for r in rows]


async def iter_segment_batches(rt: Runtime, expression: str, batch: int = 1000) -> AsyncIterator[list[int]]:
    """Customer ids picked by the expression, ascending, in lists of at most ``batch``. Each batch is its own short
    read (keyset paging on the id), so memory stays flat and no transaction stays open between batches; "now" is
    fixed at the start. Customers changing meanwhile may enter or leave; each id comes at most once."""
    if not 1 <= batch <= 100_000:
        raise ValueError("batch must be 1..100000")
    node, now, last = parse(expression), rt.clock.now(), 0
    while True:
        async with rt.db.read() as conn:
            ids = [int(i) for (i,) in await conn.execute(segment_select(node, now, above=last).limit(batch))]
        if ids:
            yield ids
        if len(ids) < batch:
            return
        last = ids[-1]


async def iter_segment(rt: Runtime, expression: str, batch: int = 1000) -> AsyncIterator[int]:
    """Customer ids one by one (see :func:`iter_segment_batches`)."""
    async for ids in iter_segment_batches(rt, expression, batch):
        for customer_id in ids:
            yield customer_id


# ---- saved segments ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedSegment:
    id: int
    name: str
    expression: str
    description: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


def _saved(row: Any) -> SavedSegment:
    return SavedSegment(int(row.id), row.name, row.expression, row.description, row.created_by, row.created_at, row.updated_at)


def _checked(name: str | None, expression: str | None, description: str | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if name is not None:
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 64:
            raise InvalidInput("客群名称需为 1 到 64 个字 (name: 1–64 characters)", field="name")
        values["name"] = name.strip()
    if expression is not None:
        parse(expression)
        values["expression"] = expression.strip()
    if description is not None:
        if not isinstance(description, str) or len(description) > 500:
            raise InvalidInput("说明不超过 500 字 (description ≤ 500 characters)", field="description")
        values["description"] = description.strip()
    return values


async def list_segments(conn: AsyncConnection) -> list[SavedSegment]:
    return [_saved(r) for r in await conn.execute(sa.select(segments).order_by(segments.c.name))]


async def get_segment(conn: AsyncConnection, segment_id: int) -> SavedSegment:
    row = (await conn.execute(sa.select(segments).where(segments.c.id == segment_id))).first()
    if row is None:
        raise NotFound("没有这个客群 (no such segment)", segment_id=segment_id)
    return _saved(row)


async def save_segment(
    rt: Runtime, *, name: str, expression: str, description: str = "", created_by: str = "", segment_id: int | None = None
) -> SavedSegment:
    """Create (``segment_id`` None) or replace a saved segment. The expression must parse; names are unique
    (Conflict otherwise); NotFound for an unknown id."""
    values, now = _checked(name, expression, description), rt.clock.now()
    try:
        async with rt.db.write() as conn:
            if segment_id is None:
                q = segments.insert().values(**values, created_by=created_by[:64], created_at=now, updated_at=now)
                segment_id = int((await conn.execute(q.returning(segments.c.id))).scalar_one())
            elif not (await conn.execute(segments.update().where(segments.c.id == segment_id).values(**values, updated_at=now))).rowcount:
                raise NotFound("没有这个客群 (no such segment)", segment_id=segment_id)
            return await get_segment(conn, segment_id)
    except IntegrityError:
        raise Conflict(f"已有同名客群 “{values['name']}” (a segment with this name exists)", field="name") from None


async def delete_segment(rt: Runtime, segment_id: int) -> None:
    """Delete a saved segment; NotFound when there is none."""
    async with rt.db.write() as conn:
        if not (await conn.execute(sa.delete(segments).where(segments.c.id == segment_id))).rowcount:
            raise NotFound("没有这个客群 (no such segment)", segment_id=segment_id)
