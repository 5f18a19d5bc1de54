"""/console/suppliers — 供应商: add, edit, deactivate and reactivate suppliers (mounted by
:func:`scrm.console.purchasing.setup_routes`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fulfillment.purchasing import services as ps
from fulfillment.purchasing.domain import SupplierView
from scrm.console.render import Safe, post_form, t, table
from scrm.console.web import _act, _ctx, _form, _page
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME


def supplier_id(form: dict[str, str]) -> int:
    raw = form.get("supplier_id", "").strip()
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("请选择供应商 (choose a supplier)", field="supplier_id")
    return int(raw)


def _days(raw: str) -> int:
    raw = raw.strip() or "3"
    if not raw.isdecimal() or int(raw) > 365:
        raise InvalidInput("交货天数必须是 0 到 365 的整数 (lead time must be 0..365 days)", field="lead_time_days")
    return int(raw)


# ---- pages and actions ----------------------------------------------------------------------------------------------
def _supplier_fields(s: SupplierView | None = None) -> Safe:
    return t(
        '<label>名称<input name="name" required maxlength="128" value="{n}"></label>'
        '<label>联系人<input name="contact" maxlength="128" value="{c}"></label>'
        '<label>电话<input name="phone" maxlength="32" value="{p}"></label>'
        '<label>交货天数<input type="number" name="lead_time_days" min="0" max="365" value="{d}"></label>',
        n=s.name if s else "",
        c=s.contact if s else "",
        p=s.phone if s else "",
        d=s.lead_time_days if s else 3,
    )


async def suppliers_page(request: web.Request) -> web.Response:
    """供应商: add, edit, deactivate / reactivate."""
    ctx = _ctx(request, "purchasing")
    found = await ps.list_suppliers(request.app[RUNTIME])
    hidden = lambda s: t('<input type="hidden" name="supplier_id" value="{id}">', id=s.id)  # noqa: E731
    rows = [
        (
            post_form(
                ctx,
                "/console/suppliers/update",
                t('{h}{f}<button type="submit">保存</button>', h=hidden(s), f=_supplier_fields(s)),
                cls="row",
            ),
            "在用" if s.active else "已停用",
            post_form(
                ctx,
                "/console/suppliers/" + ("deactivate" if s.active else "activate"),
                t(
                    '{h}<button type="submit" class="{cls}">{label}</button>',
                    h=hidden(s),
                    cls="danger" if s.active else "",
                    label="停用" if s.active else "启用",
                ),
                cls="inline",
            ),
        )
        for s in found
    ]
    create = post_form(
        ctx, "/console/suppliers", t('{f}<button type="submit" class="primary">添加供应商</button>', f=_supplier_fields()), cls="row"
    )
    body = t(
        '<p><a href="/console/purchasing">← 返回采购</a></p>'
        '<section class="card"><h3>添加供应商</h3>{create}</section><h2>供应商</h2>{rows}',
        create=create,
        rows=table(["资料", "状态", "操作"], rows, row_cls=["" if s.active else "inactive" for s in found], empty="还没有供应商"),
    )
    return _page(request, ctx, "供应商", body)


def _supplier_values(form: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", ""),
        "contact": form.get("contact", ""),
        "phone": form.get("phone", ""),
        "lead_time_days": _days(form.get("lead_time_days", "")),
    }


async def supplier_create(request: web.Request) -> web.Response:
    form = await _form(request)

    async def action() -> str:
        v = _supplier_values(form)
        s = await ps.create_supplier(
            request.app[RUNTIME], name=v["name"], contact=v["contact"], phone=v["phone"], lead_time_days=v["lead_time_days"]
        )
        return f"已添加供应商 {s.name}"

    return await _act(request, "/console/suppliers", action)


async def supplier_update(request: web.Request) -> web.Response:
    form = await _form(request)

    async def action() -> str:
        s = await ps.update_supplier(request.app[RUNTIME], supplier_id(form), **_supplier_values(form))
        return f"供应商 {s.name} 已保存"

    return await _act(request, "/console/suppliers", action)


async def _set_active(request: web.Request, active: bool) -> web.Response:
    form = await _form(request)

    async def action() -> str:
        s = await ps.update_supplier(request.app[RUNTIME], supplier_id(form), active=active)
        return f"供应商 {s.name} 已{'启用' if active else '停用'}"

    return await _act(request, "/console/suppliers", action)


async def supplier_deactivate(request: web.Request) -> web.Response:
    return await _set_active(request, False)


async def supplier_activate(request: web.Request) -> web.Response:
    return await _set_active(request, True)
