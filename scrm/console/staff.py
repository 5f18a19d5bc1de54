"""Staff accounts (员工账号) for the console: password hashing, the account use cases, the admin pages and the
``run.py staff`` command.

Passwords are hashed with scrypt (n=2**14, r=8, p=1, 16-byte random salt, 32-byte key), stored as
``scrypt$n$r$p$salt$hash`` (salt and hash base64url) so the cost can be raised later without breaking old hashes.
Verification compares in constant time and runs in a worker thread (≈50 ms of CPU must not stall the event loop).

Every change that should end someone's sessions (password, roles, deactivation) bumps ``session_version``;
sessions carry the version they were issued under and :func:`current_roles` checks it on each request.
The username ``admin`` is reserved for the admin-token login (:func:`scrm.console.auth.authenticate`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import datetime as dt
import functools
import getpass
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from scrm.console import auth
from scrm.console.render import Safe, button_form, join, post_form, t, table, when
from scrm.console.web import _act, _ctx, _page, forbidden
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.runtime import Runtime
from scrm.crm.staff.models import staff_users

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MAX_SCRYPT_N = 2**20  # refuse stored parameters that would take seconds (a tampered row must not DoS sign-in)
MIN_PASSWORD, MAX_PASSWORD = 8, 256
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
RESERVED = frozenset({auth.ROLE_ADMIN})
S = staff_users.c


# ---- the KDF ----------------------------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=KEY_BYTES)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for a password, with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time comparison); False for a malformed hash."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(x.isdecimal() for x in parts[1:4]):
        return False
    n, r, p = (int(x) for x in parts[1:4])
    if not (1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16):
        return False
    try:
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the username is unknown, so a miss costs as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


# ---- accounts ---------------------------------------------------------------------------------------------
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
        roles = tuple(x for x in (r.roles or ()) if x in auth.ROLE_NAMES_ZH)
        return cls(int(r.id), r.username, r.display_name, roles, bool(r.active), int(r.session_version), r.created_at, r.last_login_at)


def check_roles(roles: Collection[str]) -> tuple[str, ...]:
    """The roles in a stable order; InvalidInput when empty or unknown."""
    unknown = sorted(set(roles) - set(auth.ROLE_NAMES_ZH))
    if unknown or not roles:
        names = "、".join(f"{k}（{v}）" for k, v in auth.ROLE_NAMES_ZH.items())
        raise InvalidInput(f"角色需为 {names} 中的一个或多个 (roles: {', '.join(auth.ROLE_NAMES_ZH)})", field="roles")
    return tuple(r for r in auth.ROLE_NAMES_ZH if r in set(roles))


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"密码长度需为 {MIN_PASSWORD} 到 {MAX_PASSWORD} 个字符 (password length)", field="password")
    return password


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
        return StaffUser.from_row((await conn.execute(sa.select(staff_users).where(S.id == staff_id))).one())


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
    ok = await asyncio.to_thread(verify_password, password, row.password_hash if row is not None else _dummy_hash())
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
    return tuple(x for x in (row.roles or ()) if x in auth.ROLE_NAMES_ZH) or None


# ---- pages (admin only) -----------------------------------------------------------------------------------
def _role_boxes(checked: Collection[str]) -> Safe:
    return join(
        t(
            '<label class="check"><input type="checkbox" name="role" value="{r}"{c}> {zh}</label>',
            r=r,
            zh=zh,
            c=Safe(" checked") if r in checked else "",
        )
        for r, zh in auth.ROLE_NAMES_ZH.items()
    )


def _roles_zh(roles: Collection[str]) -> str:
    return "、".join(auth.ROLE_NAMES_ZH.get(r, r) for r in roles)


async def staff_list(request: web.Request) -> web.Response:
    """员工账号: who may sign in with which roles, and a form to add one."""
    users = await list_staff(request.app[RUNTIME])
    ctx = _ctx(request, "staff")
    rows = [
        (
            t('<a href="/console/staff/{id}">{u}</a>', id=u.id, u=u.username),
            u.display_name,
            _roles_zh(u.roles),
            "启用" if u.active else "已停用",
            when(u.last_login_at),
        )
        for u in users
    ]
    form = post_form(
        ctx,
        "/console/staff",
        t(
            '<label>用户名<input name="username" required maxlength="64"></label>'
            '<label>姓名<input name="display_name" maxlength="64"></label>'
            '<label>初始密码<input name="password" type="password" required minlength="{mn}" maxlength="{mx}" '
            'autocomplete="new-password"></label>'
            '<fieldset><legend>角色</legend>{roles}</fieldset><button type="submit" class="primary">添加员工</button>',
            mn=MIN_PASSWORD,
            mx=MAX_PASSWORD,
            roles=_role_boxes(()),
        ),
        cls="stack",
    )
    body = t(
        '{table}<p class="hint">管理员也可用用户名 admin 和管理员令牌登录。</p><section class="card"><h3>添加员工</h3>{form}</section>',
        table=table(["用户名", "姓名", "角色", "状态", "最近登录"], rows, row_cls=["" if u.active else "inactive" for u in users]),
        form=form,
    )
    return _page(request, ctx, "员工账号", body)


def _staff_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal():
        raise NotFound("没有这个员工账号 (no such staff account)")
    return int(raw)


async def staff_detail(request: web.Request) -> web.Response:
    ctx = _ctx(request, "staff")
    try:
        user = await get_staff(request.app[RUNTIME], _staff_id(request))
    except NotFound as exc:
        return _page(request, ctx, "没有找到员工", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    edit = post_form(
        ctx,
        f"/console/staff/{user.id}",
        t(
            '<label>姓名<input name="display_name" value="{n}" maxlength="64"></label>'
            '<label>新密码（留空不改）<input name="password" type="password" maxlength="{mx}" autocomplete="new-password"></label>'
            "<fieldset><legend>角色</legend>{roles}</fieldset>"
            '<label class="check"><input type="checkbox" name="active" value="1"{a}> 启用</label>'
            '<button type="submit" class="primary">保存</button>',
            n=user.display_name,
            mx=MAX_PASSWORD,
            roles=_role_boxes(user.roles),
            a=Safe(" checked") if user.active else "",
        ),
        cls="stack",
    )
    stop = button_form(ctx, f"/console/staff/{user.id}/deactivate", "停用并退出所有登录", cls="danger") if user.active else ""
    body = t(
        '<p><a href="/console/staff">← 返回员工列表</a></p><section class="card"><h3>{u}</h3>'
        '<p class="hint">修改密码、角色或停用后，此员工的所有登录会立即失效。</p>{edit}<p>{stop}</p></section>',
        u=user.username,
        edit=edit,
        stop=stop,
    )
    return _page(request, ctx, f"员工 {user.username}", body)


async def staff_create(request: web.Request) -> web.Response:
    form = await request.post()
    roles = [r for r in form.getall("role", []) if isinstance(r, str)]
    fields = {k: v for k, v in form.items() if isinstance(v, str)}

    async def action() -> str:
        user = await create_staff(
            request.app[RUNTIME], fields.get("username", ""), fields.get("password", ""), roles, display_name=fields.get("display_name", "")
        )
        return f"已添加员工 {user.username}（{_roles_zh(user.roles)}）"

    return await _act(request, "/console/staff", action)


async def staff_update(request: web.Request) -> web.Response:
    form = await request.post()
    roles = [r for r in form.getall("role", []) if isinstance(r, str)]
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    staff_id = _staff_id(request)

    async def action() -> str:
        user = await update_staff(
            request.app[RUNTIME],
            staff_id,
            display_name=fields.get("display_name", ""),
            roles=roles,
            password=fields.get("password") or None,
            active=fields.get("active") == "1",
        )
        return f"已保存 {user.username}"

    return await _act(request, f"/console/staff/{staff_id}", action)


async def staff_deactivate(request: web.Request) -> web.Response:
    staff_id = _staff_id(request)

    async def action() -> str:
        user = await deactivate_staff(request.app[RUNTIME], staff_id)
        return f"已停用 {user.username}，其登录已全部失效"

    return await _act(request, f"/console/staff/{staff_id}", action)


ROUTES = (
    ("GET", "/console/staff", staff_list),
    ("POST", "/console/staff", staff_create),
    ("GET", "/console/staff/{id}", staff_detail),
    ("POST", "/console/staff/{id}", staff_update),
    ("POST", "/console/staff/{id}/deactivate", staff_deactivate),
)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ADMIN_ROLES) -> None:
    """Mount the staff pages (admin only) behind :func:`auth.protected`."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))


# ---- run.py staff … ---------------------------------------------------------------------------------------
def _read_password(confirm: bool = True) -> str:
    """From the terminal (twice, hidden) or the first line of stdin when piped."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码 / password: ")
    if confirm and getpass.getpass("再次输入 / again: ") != first:
        raise InvalidInput("两次输入的密码不一致 (passwords differ)", field="password")
    return first


async def run_cli(rt: Runtime, argv: Sequence[str]) -> int:
    """``staff add USERNAME --role ROLE [--role …] [--name NAME]`` (password from the terminal or stdin),
    ``staff passwd USERNAME``, ``staff deactivate USERNAME``, ``staff list``. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="run.py staff", description="console staff accounts / 控制台员工账号")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create an account (password read from the terminal or stdin)")
    add.add_argument("username")
    add.add_argument("--role", action="append", required=True, choices=list(auth.ROLE_NAMES_ZH))
    add.add_argument("--name", default="")
    for name in ("passwd", "deactivate"):
        sub.add_parser(name).add_argument("username")
    sub.add_parser("list")
    args = parser.parse_args(list(argv))
    try:
        if args.action == "list":
            for u in await list_staff(rt):
                print(f"{u.username}\t{','.join(u.roles)}\t{'active' if u.active else 'inactive'}\t{u.display_name}")
            return 0
        if args.action == "add":
            user = await create_staff(rt, args.username, await asyncio.to_thread(_read_password), args.role, display_name=args.name)
            print(f"已创建 / created: {user.username} ({', '.join(user.roles)})")
            return 0
        found = [u for u in await list_staff(rt) if u.username == args.username.strip().lower()]
        if not found:
            raise NotFound(f"没有员工 {args.username} (no such staff account)")
        if args.action == "passwd":
            await update_staff(rt, found[0].id, password=check_password(await asyncio.to_thread(_read_password)))
        else:
            await deactivate_staff(rt, found[0].id)
        print(f"已更新 / updated: {found[0].username}")
        return 0
    except (InvalidInput, Conflict, NotFound) as exc:
        print(exc.message, file=sys.stderr)
        return 1
