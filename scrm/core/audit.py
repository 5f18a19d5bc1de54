"""The audit trail (审计日志): who did what, when, from where, before → after. Append-only.

Writers call :func:`record` inside the transaction of the change they describe, so a change and its audit row
commit or roll back together. Who acts is the request's :class:`Actor`, set once per request by the edge that
authenticated it (the API token check, the console guard, the sidebar session) through :func:`acting_as`; work
with no person behind it (jobs, chat) records as the ``system`` actor unless it passes one.

The table is append-only in the database itself (migration 0015): an UPDATE is always refused and a DELETE is
refused for rows newer than ``audit_retention.cutoff``, which only the retention purge moves forward — so no code
path of the application can rewrite history, and "retained per config" is the one way rows leave.

Requests that change something and record nothing explicit get one row from the HTTP edge (the route, the ids in
its path and the submitted fields with secrets masked): :func:`request_scope` counts what a request recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime

# Field names whose values never reach the log (a password typed into a form, a token shown once).
SECRET_KEYS = ("password", "token", "secret", "csrf", "aes_key", "signature")
MAX_VALUE_CHARS = 500  # a long text (a note, a rule file) is kept to this many characters per value


class AuditEntry(Model, table=True):
    """One recorded action (审计记录). Never updated; deleted only by retention (see the module docstring)."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    at: dt.datetime = Field(sa_type=UTCDateTime())
    actor_kind: str = Field(sa_type=sa.String(16))  # admin | staff | token | sidebar | system | anonymous
    actor: str = Field(sa_type=sa.String(64))  # the account's username, a WeCom userid, "admin", "system"
    actor_name: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    token_id: int | None = Field(default=None, sa_type=BigId)  # the API token used, when one was
    ip: str = Field(sa_type=sa.String(64), sa_column_kwargs={"server_default": ""})
    action: str = Field(sa_type=sa.String(32))  # create | update | delete | sign_in | sign_in_failed | export | …
    entity: str = Field(sa_type=sa.String(64))  # what kind of thing: "orders", "products", "staff", "tokens" …
    entity_id: str = Field(sa_type=sa.String(128), sa_column_kwargs={"server_default": ""})
    summary: str = Field(sa_type=sa.String(500), sa_column_kwargs={"server_default": ""})
    before: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    route: str = Field(sa_type=sa.String(200), sa_column_kwargs={"server_default": ""})  # "POST /api/v1/orders/{number}/cancel"

    __table_args__ = (
        sa.Index("ix_audit_log_entity", "entity", "entity_id", "id"),
        sa.Index("ix_audit_log_actor", "actor", "id"),
        sa.Index("ix_audit_log_at", "at"),
    )


audit_log: sa.Table = AuditEntry.__table__


class AuditRetention(Model, table=True):
    """The one row saying how far back the audit trail may be deleted (moved only by the retention purge)."""

    __tablename__ = "audit_retention"

    id: int = Field(primary_key=True, sa_type=sa.Integer())
    cutoff: dt.datetime = Field(sa_type=UTCDateTime())


audit_retention: sa.Table = AuditRetention.__table__


@dataclass(frozen=True)
class Actor:
    """Who acts: kind (admin, staff, token, sidebar, system, anonymous), their name in the system and where from."""

    kind: str
    ref: str
    name: str = ""
    ip: str = ""
    token_id: int | None = None
    staff_id: int | None = None
    roles: tuple[str, ...] = ()

    def with_ip(self, ip: str) -> Actor:
        return Actor(self.kind, self.ref, self.name, ip, self.token_id, self.staff_id, self.roles)


SYSTEM = Actor("system", "system", "系统")


@dataclass
class RequestScope:
    """What one HTTP request has recorded so far, and as whom (filled in by the edge that authenticates it)."""

    ip: str = ""
    route: str = ""  # "POST /api/v1/orders/{number}/cancel": every row the request writes names it
    actor: Actor | None = None
    recorded: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar("audit_scope", default=None)
_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("audit_actor", default=None)


@contextlib.contextmanager
def request_scope(ip: str, route: str = "") -> Iterator[RequestScope]:
    """Open the scope of one request (the HTTP edge does this around every handler)."""
    scope = RequestScope(ip=ip, route=route)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def current_scope() -> RequestScope | None:
    return _scope.get()


def set_request_actor(actor: Actor) -> None:
    """The edge that authenticated this request says who it is (the request's IP is added)."""
    scope = _scope.get()
    if scope is not None:
        scope.actor = actor.with_ip(scope.ip) if not actor.ip else actor


@contextlib.contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Record as ``actor`` inside the block (a job acting for the person who asked for it, a test)."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> Actor:
    """Who is acting now: the request's authenticated actor, an explicit :func:`acting_as`, else the system."""
    actor = _actor.get()
    if actor is not None:
        return actor
    scope = _scope.get()
    if scope is not None and scope.actor is not None:
        return scope.actor
    return SYSTEM


def _masked_key(key: str) -> bool:
    low = key.lower()
    return any(s in low for s in SECRET_KEYS)


def redact(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-safe copy with secrets masked and long texts cut (what may be kept in the trail)."""
    if values is None:
        return None

    def clean(key: str, value: Any) -> Any:
        if _masked_key(key):
            return "***" if value not in (None, "") else value
        if isinstance(value, Mapping):
            return {str(k): clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(key, v) for v in value[:200]]
        if isinstance(value, str):
            return value[:MAX_VALUE_CHARS]
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        return str(value)[:MAX_VALUE_CHARS]

    return {str(k): clean(str(k), v) for k, v in values.items()}


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields that differ, as (before, after) — what an update row keeps."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


async def record(
    conn: AsyncConnection,
    now: dt.datetime,
    *,
    action: str,
    entity: str,
    entity_id: object = "",
    summary: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    actor: Actor | None = None,
    route: str = "",
) -> int:
    """Append one row in the caller's transaction (so it commits or rolls back with the change); returns its id."""
    who = actor or current_actor()
    scope = _scope.get()
    ip = who.ip or (scope.ip if scope is not None else "")
    row = {
        "at": now,
        "actor_kind": who.kind[:16],
        "actor": who.ref[:64],
        "actor_name": who.name[:64],
        "token_id": who.token_id,
        "ip": ip[:64],
        "action": action[:32],
        "entity": entity[:64],
        "entity_id": str(entity_id)[:128],
        "summary": summary[:500],
        "before": redact(before),
        "after": redact(after),
        "route": (route or (scope.route if scope is not None else ""))[:200],
    }
    new_id = (await conn.execute(audit_log.insert().values(**row).returning(audit_log.c.id))).scalar_one()
    if scope is not None:
        scope.recorded += 1
    return int(new_id)


async def purge_before(conn: AsyncConnection, cutoff: dt.datetime) -> int:
    """Retention: move the cutoff forward (never back) and delete the rows older than it; returns how many."""
    current = (await conn.execute(sa.select(audit_retention.c.cutoff).where(audit_retention.c.id == 1))).scalar_one_or_none()
    if current is None:
        await conn.execute(audit_retention.insert().values(id=1, cutoff=cutoff))
    elif cutoff > current:
        await conn.execute(audit_retention.update().where(audit_retention.c.id == 1).values(cutoff=cutoff))
    else:
        cutoff = current
    result = await conn.execute(audit_log.delete().where(audit_log.c.at < cutoff))
    return int(result.rowcount or 0)
