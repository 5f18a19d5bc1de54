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
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import audit
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.staff.domain import (
    RESERVED,
    ROLE_NAMES_ZH,
    SCOPE_ALL,
    USERNAME,
    check_password,
    check_roles,
    check_scope,
    default_scope,
    dummy_hash,
    hash_password,
    verify_password,
)
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
    wecom_userid: str | None = None
    data_scope: str = SCOPE_ALL

    @classmethod
    def from_row(cls, r: Any) -> StaffUser:
        roles = tuple(x for x in (r.roles or ()) if x in ROLE_NAMES_ZH)
        return cls(
            int(r.id),
            r.username,
            r.display_name,
            roles,
            bool(r.active),
            int(r.session_version),
            r.created_at,
            r.last_login_at,
            r.wecom_userid,
            r.data_scope or SCOPE_ALL,
        )


async def create_staff(
    rt: Runtime,
    username: str,
    password: str,
    roles: Collection[str],
    *,
    display_name: str = "",
    wecom_userid: str = "",
    data_scope: str | None = None,
) -> StaffUser:
    """A new active account. Raises InvalidInput (username, password, roles) or Conflict (username or WeCom member
    taken)."""
    username = username.strip().lower()
    if not USERNAME.match(username) or username in RESERVED:
        raise InvalidInput("用户名需为 2–64 位小写字母、数字或 ._-，且不能是 admin (username)", field="username")
    values = {
        "username": username,
        "display_name": display_name.strip()[:64],
        "password_hash": await asyncio.to_thread(hash_password, check_password(password)),
        "roles": list(check_roles(roles)),
        "wecom_userid": _wecom_userid(wecom_userid),
        "data_scope": check_scope(data_scope) if data_scope else default_scope(check_roles(roles)),
        "active": True,
        "session_version": 1,
        "created_at": rt.clock.now(),
    }
    try:
        async with rt.db.write() as conn:
            new_id = (await conn.execute(staff_users.insert().values(**values).returning(S.id))).scalar_one()
            row = (await conn.execute(sa.select(staff_users).where(S.id == new_id))).one()
            shown = {k: values[k] for k in ("username", "display_name", "roles", "wecom_userid", "data_scope", "active")}
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
        raise Conflict(f"用户名 {username} 或企业微信成员账号已被使用 (username or WeCom member taken)", field="username") from None
    return StaffUser.from_row(row)


def _wecom_userid(raw: str | None) -> str | None:
    value = (raw or "").strip()
    if len(value) > 64 or any(c.isspace() for c in value):
        raise InvalidInput("企业微信成员账号（userid）不超过 64 个字符，不含空格 (wecom_userid)", field="wecom_userid")
    return value or None


async def update_staff(
    rt: Runtime,
    staff_id: int,
    *,
    display_name: str | None = None,
    roles: Collection[str] | None = None,
    password: str | None = None,
    active: bool | None = None,
    wecom_userid: str | None = None,
    data_scope: str | None = None,
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
        if wecom_userid is not None and _wecom_userid(wecom_userid) != current.wecom_userid:
            values["wecom_userid"] = _wecom_userid(wecom_userid)
        if data_scope is not None and check_scope(data_scope) != current.data_scope:
            values["data_scope"] = data_scope
        if {"password_hash", "roles", "active"} & set(values):
            values["session_version"] = S.session_version + 1
        if values:
            try:
                async with conn.begin_nested():
                    await conn.execute(staff_users.update().where(S.id == staff_id).values(**values))
            except IntegrityError:
                raise Conflict("这个企业微信成员已绑定到另一个员工账号 (WeCom member taken)", field="wecom_userid") from None
        updated = StaffUser.from_row((await conn.execute(sa.select(staff_users).where(S.id == staff_id))).one())
        if values:
            await _record_change(conn, rt.clock.now(), current, updated, password_changed="password_hash" in values)
        return updated


async def _record_change(conn: Any, now: dt.datetime, old: StaffUser, new: StaffUser, *, password_changed: bool) -> None:
    """An account change in the audit trail; a change of roles or of ``active`` is a permission change."""
    fields = lambda u: {  # noqa: E731
        "display_name": u.display_name,
        "roles": list(u.roles),
        "active": u.active,
        "wecom_userid": u.wecom_userid,
        "data_scope": u.data_scope,
    }
    before, after = audit.changed(fields(old), fields(new))
    if password_changed:
        before["password"], after["password"] = "***", "*** (已重设)"
    if not after:
        return
    action = "permission_change" if {"roles", "active", "data_scope", "wecom_userid"} & set(after) else "update"
    await audit.record(
        conn, now, action=action, entity="staff", entity_id=new.id, summary=f"修改员工账号 {new.username}", before=before, after=after
    )


async def deactivate_staff(rt: Runtime, staff_id: int) -> StaffUser:
    """停用: the account can no longer sign in and its open sessions end at their next request."""
    return await update_staff(rt, staff_id, active=False)


async def staff_for_wecom(rt: Runtime, userid: str) -> StaffUser | None:
    """The active account bound to this WeCom member, if any."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(staff_users).where(S.wecom_userid == userid, S.active.is_(True)))).first()
    return StaffUser.from_row(row) if row is not None else None


async def staff_in(conn: AsyncConnection) -> list[StaffUser]:
    """Every account, read in the caller's transaction (approvals resolve who holds a role while making one)."""
    return [StaffUser.from_row(r) for r in await conn.execute(sa.select(staff_users).order_by(S.username))]


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
