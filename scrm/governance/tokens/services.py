"""Per-person API tokens: make one (shown once), list, revoke, and tell who a bearer token belongs to.

Every API call made with a token acts as its owner: :func:`authenticate` reads the token and the owner's account on
each request (no cache), so a revoked token, an expired one or a deactivated owner is refused at the next call, and
the owner's current roles bound what the token may do (:func:`scrm.governance.tokens.domain.permits`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from scrm.core import audit
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts
from scrm.governance.tokens.domain import (
    MAX_EXPIRY_DAYS,
    SHOWN_CHARS,
    check_name,
    check_scopes,
    looks_like_token,
    new_token,
    token_hash,
)
from scrm.governance.tokens.models import api_tokens

T = api_tokens.c
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often per token (not on every call)
DEFAULT_EXPIRY_DAYS = 365


@dataclass(frozen=True)
class Token:
    id: int
    staff_id: int
    owner: str
    name: str
    shown_prefix: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def status(self, now: dt.datetime) -> str:
        """active, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        iso = lambda v: v.isoformat() if v is not None else None  # noqa: E731
        return {
            "id": self.id,
            "staff": self.owner,
            "name": self.name,
            "shown_prefix": self.shown_prefix,
            "scopes": list(self.scopes),
            "status": self.status(now),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


@dataclass(frozen=True)
class TokenOwner:
    """Who a request's bearer token belongs to, as of this request."""

    token_id: int
    staff_id: int
    username: str
    display_name: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor("token", self.username, self.display_name, token_id=self.token_id, staff_id=self.staff_id, roles=self.roles)


def _token(row: Any, owner: str) -> Token:
    return Token(
        int(row.id),
        int(row.staff_id),
        owner,
        row.name,
        row.shown_prefix,
        tuple(row.scopes or ()),
        row.created_at,
        row.created_by,
        row.expires_at,
        row.revoked_at,
        row.last_used_at,
    )


async def _owners(rt: Runtime) -> dict[int, str]:
    return {s.id: s.username for s in await accounts.list_staff(rt)}


async def create_token(
    rt: Runtime, *, staff_id: int, name: str, scopes: Iterable[str] | None = None, expires_in_days: int | None = DEFAULT_EXPIRY_DAYS
) -> tuple[Token, str]:
    """A new token for an active staff account, with ``scopes`` within the owner's roles (None = all they allow)
    and an expiry (None = never). Returns the token and its secret, which is not stored and never shown again."""
    owner = await accounts.get_staff(rt, staff_id)
    if not owner.active:
        raise InvalidInput(f"员工账号 {owner.username} 已停用，不能为其创建令牌 (owner is inactive)", field="staff")
    granted = check_scopes(scopes, owner.roles)
    name = check_name(name)
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"有效期需为 1 到 {MAX_EXPIRY_DAYS} 天，或不设（null）(expires_in_days)", field="expires_in_days")
    now = rt.clock.now()
    secret = new_token()
    creator = audit.current_actor()
    values = {
        "staff_id": owner.id,
        "name": name,
        "token_hash": token_hash(secret),
        "shown_prefix": secret[:SHOWN_CHARS],
        "scopes": list(granted),
        "created_at": now,
        "created_by": creator.ref[:64],
        "expires_at": now + dt.timedelta(days=expires_in_days) if expires_in_days is not None else None,
    }
    async with rt.db.write() as conn:
        new_id = (await conn.execute(api_tokens.insert().values(**values).returning(T.id))).scalar_one()
        row = (await conn.execute(sa.select(api_tokens).where(T.id == new_id))).one()
        token = _token(row, owner.username)
        await audit.record(
            conn,
            now,
            action="create",
            entity="tokens",
            entity_id=token.id,
            summary=f"为 {owner.username} 创建 API 令牌「{name}」",
            after={"owner": owner.username, "name": name, "scopes": list(granted), "expires_at": values["expires_at"]},
        )
    return token, secret


async def revoke_token(rt: Runtime, token_id: int, *, owner_id: int | None = None) -> Token:
    """Revoke a token (吊销): refused from its next request on. ``owner_id`` limits it to that person's own tokens
    (another's is reported as not found). Revoking a revoked token changes nothing."""
    now = rt.clock.now()
    owners = await _owners(rt)
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(api_tokens).where(T.id == token_id))).first()
        if row is None or (owner_id is not None and int(row.staff_id) != owner_id):
            raise NotFound("没有这个令牌 (no such token)", id=token_id)
        if row.revoked_at is None:
            await conn.execute(api_tokens.update().where(T.id == token_id, T.revoked_at.is_(None)).values(revoked_at=now))
            row = (await conn.execute(sa.select(api_tokens).where(T.id == token_id))).one()
            await audit.record(
                conn,
                now,
                action="revoke",
                entity="tokens",
                entity_id=token_id,
                summary=f"吊销 {owners.get(int(row.staff_id), '?')} 的 API 令牌「{row.name}」",
                before={"status": "active"},
                after={"status": "revoked"},
            )
    return _token(row, owners.get(int(row.staff_id), ""))


async def list_tokens(rt: Runtime, *, staff_id: int | None = None) -> list[Token]:
    """Tokens newest first; one person's with ``staff_id``."""
    q = sa.select(api_tokens).order_by(T.id.desc())
    if staff_id is not None:
        q = q.where(T.staff_id == staff_id)
    async with rt.db.read() as conn:
        rows = (await conn.execute(q)).all()
    owners = await _owners(rt)
    return [_token(r, owners.get(int(r.staff_id), "")) for r in rows]


async def authenticate(rt: Runtime, secret: str) -> TokenOwner | None:
    """The owner of a bearer token if the token exists, is neither revoked nor expired, and its owner's account is
    active; else None. Notes when it was last used (at most once a minute)."""
    if not looks_like_token(secret):
        return None
    now = rt.clock.now()
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(api_tokens).where(T.token_hash == token_hash(secret)))).first()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    try:
        owner = await accounts.get_staff(rt, int(row.staff_id))
    except NotFound:
        return None
    if not owner.active or not owner.roles:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        async with rt.db.write() as conn:
            await conn.execute(api_tokens.update().where(T.id == row.id).values(last_used_at=now))
    return TokenOwner(int(row.id), owner.id, owner.username, owner.display_name, owner.roles, tuple(row.scopes or ()))
