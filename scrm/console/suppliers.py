"""/console/suppliers — 供应商: add, edit, deactivate and reactivate suppliers (mounted by
:func:`scrm.console.purchasing.setup_routes`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fulfillment.purchasing import services as ps
from scrm.console.pages import act, page_context, read_form, render
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME


def supplier_id(form: dict[str, str]) -> int:
    raw = form.get("supplier_id", "").strip()
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("请选择供应商", field="supplier_id")
    return int(raw)


def _days(raw: str) -> int:
    raw = raw.strip() or "3"
    if not raw.isdecimal() or int(raw) > 365:
        raise InvalidInput("交货天数必须是 0 到 365 的整数", field="lead_time_days")
    return int(raw)


# ---- pages and actions ----------------------------------------------------------------------------------------------
async def suppliers_page(request: web.Request) -> web.Response:
    """供应商: add, edit, deactivate / reactivate."""
    found = await ps.list_suppliers(request.app[RUNTIME])
    row_classes = ["" if s.active else "inactive" for s in found]
    return render(request, "purchasing/suppliers.html", page_context(request, "purchasing"), found=found, row_classes=row_classes)


def _supplier_values(form: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", ""),
        "contact": form.get("contact", ""),
        "phone": form.get("phone", ""),
        "lead_time_days": _days(form.get("lead_time_days", "")),
    }


async def supplier_create(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        v = _supplier_values(form)
        s = await ps.create_supplier(
            request.app[RUNTIME], name=v["name"], contact=v["contact"], phone=v["phone"], lead_time_days=v["lead_time_days"]
        )
        return f"已添加供应商 {s.name}"

    return await act(request, "/console/suppliers", action)


async def supplier_update(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        s = await ps.update_supplier(request.app[RUNTIME], supplier_id(form), **_supplier_values(form))
        return f"供应商 {s.name} 已保存"

    return await act(request, "/console/suppliers", action)


async def _set_active(request: web.Request, active: bool) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        s = await ps.update_supplier(request.app[RUNTIME], supplier_id(form), active=active)
        return f"供应商 {s.name} 已{'启用' if active else '停用'}"

    return await act(request, "/console/suppliers", action)


async def supplier_deactivate(request: web.Request) -> web.Response:
    return await _set_active(request, False)


async def supplier_activate(request: web.Request) -> web.Response:
    return await _set_active(request, True)
