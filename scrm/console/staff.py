"""/console/staff — 员工账号: the admin's pages for console staff accounts (list, create, change roles and
passwords, deactivate). The account rules and use cases are in :mod:`scrm.crm.staff.accounts`."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from scrm.console import auth
from scrm.console.render import Safe, button_form, join, post_form, t, table, when
from scrm.console.web import _act, _ctx, _page, forbidden
from scrm.core.errors import NotFound
from scrm.core.http.keys import RUNTIME
from scrm.crm.staff.accounts import create_staff, deactivate_staff, get_staff, list_staff, update_staff
from scrm.crm.staff.domain import MAX_PASSWORD, MIN_PASSWORD, ROLE_NAMES_ZH


def _role_boxes(checked: Collection[str]) -> Safe:
    return join(
        t(
            '<label class="check"><input type="checkbox" name="role" value="{r}"{c}> {zh}</label>',
            r=r,
            zh=zh,
            c=Safe(" checked") if r in checked else "",
        )
        for r, zh in ROLE_NAMES_ZH.items()
    )


def _roles_zh(roles: Collection[str]) -> str:
    return "、".join(ROLE_NAMES_ZH.get(r, r) for r in roles)


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
