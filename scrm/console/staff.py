"""/console/staff — 员工账号: the admin's pages for console staff accounts (list, create, change roles and
passwords, deactivate). The account rules and use cases are in :mod:`scrm.crm.staff.accounts`."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.pages import act, page_context, render, roles_zh
from scrm.core.errors import NotFound
from scrm.core.http.keys import RUNTIME
from scrm.crm.staff.accounts import create_staff, deactivate_staff, get_staff, list_staff, update_staff
from scrm.crm.staff.domain import DATA_SCOPES_ZH, MAX_PASSWORD, MIN_PASSWORD, ROLE_NAMES_ZH


async def staff_list(request: web.Request) -> web.Response:
    """员工账号: who may sign in with which roles, and a form to add one."""
    users = await list_staff(request.app[RUNTIME])
    return render(
        request,
        "staff/list.html",
        page_context(request, "staff"),
        users=users,
        row_classes=["" if u.active else "inactive" for u in users],
        role_names=ROLE_NAMES_ZH,
        scopes=DATA_SCOPES_ZH,
        min_password=MIN_PASSWORD,
        max_password=MAX_PASSWORD,
    )


def _staff_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal():
        raise NotFound("没有这个员工账号")
    return int(raw)


async def staff_detail(request: web.Request) -> web.Response:
    ctx = page_context(request, "staff")
    try:
        user = await get_staff(request.app[RUNTIME], _staff_id(request))
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有找到员工", message=exc.message)
    return render(request, "staff/detail.html", ctx, user=user, role_names=ROLE_NAMES_ZH, scopes=DATA_SCOPES_ZH, max_password=MAX_PASSWORD)


async def staff_create(request: web.Request) -> web.Response:
    form = await request.post()
    roles = [r for r in form.getall("role", []) if isinstance(r, str)]
    fields = {k: v for k, v in form.items() if isinstance(v, str)}

    async def action() -> str:
        user = await create_staff(
            request.app[RUNTIME],
            fields.get("username", ""),
            fields.get("password", ""),
            roles,
            display_name=fields.get("display_name", ""),
            wecom_userid=fields.get("wecom_userid", ""),
            data_scope=fields.get("data_scope") or None,
        )
        return f"已添加员工 {user.username}（{roles_zh(user.roles)}）"

    return await act(request, "/console/staff", action)


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
            wecom_userid=fields.get("wecom_userid", ""),
            data_scope=fields.get("data_scope") or None,
        )
        return f"已保存 {user.username}"

    return await act(request, f"/console/staff/{staff_id}", action)


async def staff_deactivate(request: web.Request) -> web.Response:
    staff_id = _staff_id(request)

    async def action() -> str:
        user = await deactivate_staff(request.app[RUNTIME], staff_id)
        return f"已停用 {user.username}，其登录已全部失效"

    return await act(request, f"/console/staff/{staff_id}", action)


ROUTES = (
    ("GET", "/console/staff", staff_list),
    ("POST", "/console/staff", staff_create),
    ("GET", "/console/staff/{id}", staff_detail),
    ("POST", "/console/staff/{id}", staff_update),
    ("POST", "/console/staff/{id}/deactivate", staff_deactivate),
)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ADMIN_ROLES) -> None:
    """Mount the staff pages (admin only) behind :func:`auth.protected`."""
    pages.setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
