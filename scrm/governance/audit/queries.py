"""Reading the audit trail: search by thing, person, action and time (newest first, keyset pages)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from scrm.core.audit import audit_log
from scrm.core.runtime import Runtime

A = audit_log.c
MAX_PAGE = 500


@dataclass(frozen=True)
class AuditFilter:
    entity: str = ""
    entity_id: str = ""
    actor: str = ""
    action: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None  # the next page: rows older than this id


def _where(q: sa.Select[Any], f: AuditFilter) -> sa.Select[Any]:
    if f.entity:
        q = q.where(A.entity == f.entity)
    if f.entity_id:
        q = q.where(A.entity_id == f.entity_id)
    if f.actor:
        q = q.where(A.actor == f.actor)
    if f.action:
        q = q.where(A.action == f.action)
    if f.since is not None:
        q = q.where(A.at >= f.since)
    if f.until is not None:
        q = q.where(A.at < f.until)
    if f.before_id is not None:
        q = q.where(A.id < f.before_id)
    return q


def entry_json(r: Any) -> dict[str, Any]:
    return {
        "id": int(r.id),
        "at": r.at.isoformat(),
        "actor_kind": r.actor_kind,
        "actor": r.actor,
        "actor_name": r.actor_name,
        "token_id": r.token_id,
        "ip": r.ip,
        "action": r.action,
        "entity": r.entity,
        "entity_id": r.entity_id,
        "summary": r.summary,
        "before": r.before,
        "after": r.after,
        "route": r.route,
    }


async def search(rt: Runtime, f: AuditFilter, *, limit: int = 100) -> list[Any]:
    """Rows matching ``f``, newest first, at most ``limit`` (≤ 500)."""
    q = _where(sa.select(audit_log), f).order_by(A.id.desc()).limit(min(max(limit, 1), MAX_PAGE))
    async with rt.db.read() as conn:
        return list((await conn.execute(q)).all())


async def facets(rt: Runtime) -> dict[str, list[str]]:
    """The entities, actions and actors that occur (the console's filter choices)."""
    async with rt.db.read() as conn:
        out = {}
        for name in ("entity", "action", "actor"):
            col = A[name]
            out[name] = [v for (v,) in (await conn.execute(sa.select(col).distinct().order_by(col).limit(200))).all()]
    return out
