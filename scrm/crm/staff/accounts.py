"""Staff accounts (员工账号) for the console: create, change, deactivate, sign-in checks.

Every change that should end someone's sessions (password, roles, deactivation) bumps ``session_version``;
sessions carry the version they were issued under and :func:`current_roles` checks it on each request.
The username ``admin`` is reserved for the admin-token login (:func:`scrm.console.auth.authenticate`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from scrm.core import audit
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.staff.domain import RESERVED, ROLE_NAMES_ZH, USERNAME, check_password, check_roles, dummy_hash, hash_password, verify_password
from scrm.crm.staff.models import staff_users

S = staff_users.c


@dataclass(frozen=True)
class StaffUser:
    id: int
    username: str
    display_name: str
    roles: tuple[str, ...]
    active: bool
    session_version: int
    created_at: dt.datetime
    last_login_at: dt.datetime | None

    @classmethod
    def from_row(cls, r: Any) -> StaffUser:
        roles = tuple(x for x in (r.roles or ()) if x in ROLE_NAMES_ZH)
        return cls(int(r.id), r.username, r.display_name, roles, bool(r.active), int(r.session_version), r.created_at, r.last_login_at)


async def create_staff(rt: Runtime, username: str, password: str, roles: Collection[str], *, display_name: str = "") -> StaffUser:
    """A new active account. Raises InvalidInput (username, password, roles) or Conflict (username taken)."""
    username = username.strip().lower()
    if not USERNAME.match(username) or username in RESERVED:
        raise InvalidInput("用户名需为 2–64 位小写字母、数字或 ._-，且不能是 admin (username)", field="username")
    values = {
        "username": username,
        "display_name": display_name.strip()[:64],
        "password_hash": await asyncio.to_thread(hash_password, check_password(password)),
        "roles": list(check_roles(roles)),
        "active": True,
        "session_version": 1,
        "created_at": rt.clock.now(),
    }
    try:
        async with rt.db.write() as conn:
            new_id = (await conn.execute(staff_users.insert().values(**values).returning(S.id))).scalar_one()
            row = (await conn.execute(sa.select(staff_users).where(S.id == new_id))).one()
            shown = {"username": username, "display_name": values["display_name"], "roles": values["roles"], "active": True}
            await audit.record(
                conn,
                values["created_at"],
                action="create",
                entity="staff",
                entity_id=new_id,
                summary=f"创建员工账号 {username}",
                after=shown,
            )
    except IntegrityError:
        raise Conflict(f"用户名 {username} 已存在 (username taken)", field="username") from None
    return StaffUser.from_row(row)


async def update_staff(
    rt: Runtime,
    staff_id: int,
    *,
    display_name: str | None = None,
    roles: Collection[str] | None = None,
    password: str | None = None,
    active: bool | None = None,
) -> StaffUser:
    """Change an account. A new password, changed roles or a change of ``active`` signs the user out everywhere
    (``session_version`` + 1, in the same UPDATE)."""
    values: dict[str, Any] = {}
    if display_name is not None:
        values["display_name"] = display_name.strip()[:64]
    if password:
        values["password_hash"] = await asyncio.to_thread(hash_password, check_password(password))
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(staff_users).where(S.id == staff_id))).first()
        if row is None:
            raise NotFound("没有这个员工账号 (no such staff account)", id=staff_id)
        current = StaffUser.from_row(row)
        if roles is not None and check_roles(roles) != current.roles:
            values["roles"] = list(check_roles(roles))
        if active is not None and active != current.active:
            values["active"] = active
        if {"password_hash", "roles", "active"} & set(values):
            values["session_version"] = S.session_version + 1
        if values:
            await conn.execute(staff_users.update().where(S.id == staff_id).values(**values))
        updated = StaffUser.from_row((await conn.execute(sa.select(staff_users).where(S.id == staff_id))).one())
        if values:
            await _record_change(conn, rt.clock.now(), current, updated, password_changed="password_hash" in values)
        return updated


async def _record_change(conn: Any, now: dt.datetime, old: StaffUser, new: StaffUser, *, password_changed: bool) -> None:
    """An account change in the audit trail; a change of roles or of ``active`` is a permission change."""
    fields = lambda u: {"display_name": u.display_name, "roles": list(u.roles), "active": u.active}  # noqa: E731
    before, after = audit.changed(fields(old), fields(new))
    if password_changed:
        before["password"], after["password"] = "***", "*** (已重设)"
    if not after:
        return
    action = "permission_change" if {"roles", "active"} & set(after) else "update"
    await audit.record(
        conn, now, action=action, entity="staff", entity_id=new.id, summary=f"修改员工账号 {new.username}", before=before, after=after
    )


async def deactivate_staff(rt: Runtime, staff_id: int) -> StaffUser:
    """停用: the account can no longer sign in and its open sessions end at their next request."""
    return await update_staff(rt, staff_id, active=False)


async def list_staff(rt: Runtime) -> list[StaffUser]:
    async with rt.db.read() as conn:
        return [StaffUser.from_row(r) for r in await conn.execute(sa.select(staff_users).order_by(S.username))]


async def get_staff(rt: Runtime, staff_id: int) -> StaffUser:
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(staff_users).where(S.id == staff_id))).first()
    if row is None:
        raise NotFound("没有这个员工账号 (no such staff account)", id=staff_id)
    return StaffUser.from_row(row)


async def check_login(rt: Runtime, username: str, password: str) -> StaffUser | None:
    """The active account with this username and password (and its sign-in time recorded), else None. An
    unknown username costs as much time as a wrong password."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(staff_users).where(S.username == username.strip().lower()))).first()
    ok = await asyncio.to_thread(verify_password, password, row.password_hash if row is not None else dummy_hash())
    if row is None or not ok or not row.active:
        return None
    async with rt.db.write() as conn:
        await conn.execute(staff_users.update().where(S.id == row.id).values(last_login_at=rt.clock.now()))
    return StaffUser.from_row(row)


async def current_roles(rt: Runtime, staff_id: int, session_version: int) -> tuple[str, ...] | None:
    """The account's roles if a session issued under ``session_version`` is still good (active, not revoked)."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(S.roles, S.active, S.session_version).where(S.id == staff_id))).first()
    if row is None or not row.active or int(row.session_version) != session_version:
        return None
    return tuple(x for x in (row.roles or ()) if x in ROLE_NAMES_ZH) or None
