"""/console/purchasing and /console/suppliers — 采购 (进): reorder suggestions, purchase orders, receiving.

Thin views over :mod:`fulfillment.purchasing.services`: a domain error becomes the red flash on the page it came
from (nothing changed); success redirects back with a green one. Costs are typed in yuan and kept in fen.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from fulfillment.catalog import services as catalog
from fulfillment.catalog.services import MAX_QTY
from fulfillment.purchasing import services as ps
from fulfillment.purchasing.domain import (
    CANCELLABLE_STATUSES,
    EDITABLE_STATUSES,
    PURCHASE_STATUS_ZH,
    RECEIVABLE_STATUSES,
    PurchaseOrderView,
)
from scrm.console import auth, pages
from scrm.console import suppliers as supplier_pages
from scrm.console.auth import Handler
from scrm.console.pages import act, actor, page_context, read_form, render
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.money import parse_yuan
from scrm.governance.fields.services import rules_for

NEW_ROWS = 6


def po_url(number: str) -> str:
    return "/console/purchasing/" + quote(number, safe="")


def _qty(raw: str, label: str, *, minimum: int) -> int:
    raw = raw.strip()
    if not raw.isdecimal() or not minimum <= int(raw) <= MAX_QTY:
        raise InvalidInput(f"{label}必须是 {minimum} 到 {MAX_QTY} 之间的整数", field="qty")
    return int(raw)


def _yuan(raw: str, label: str) -> int:
    try:
        fen = parse_yuan(raw)
    except ValueError:
        raise InvalidInput(f"{label}的单价请填写以元为单位的数字，最多两位小数，如 36.50", field="cost") from None
    if fen < 0:
        raise InvalidInput(f"{label}的单价不能为负", field="cost")
    return fen


@dataclass(frozen=True)
class PoActions:
    """What a purchase order's status allows on its page."""

    edit: bool  # a draft: edit lines, place it
    receive: bool
    cancel: bool

    @classmethod
    def of(cls, order: PurchaseOrderView) -> PoActions:
        return cls(
            edit=order.status in EDITABLE_STATUSES,
            receive=order.status in RECEIVABLE_STATUSES,
            cancel=order.status in CANCELLABLE_STATUSES and not any(ln.received_qty for ln in order.lines),
        )


# ---- pages --------------------------------------------------------------------------------------------------
async def purchasing_index(request: web.Request) -> web.Response:
    """采购: reorder suggestions per supplier, a hand-written purchase order, and the purchase orders."""
    rt = request.app[RUNTIME]
    status = request.query.get("status", "")
    status = status if status in PURCHASE_STATUS_ZH else ""
    groups = await ps.suggest_purchases(rt)
    suppliers = await ps.list_suppliers(rt)
    found = await ps.list_purchase_orders(rt, status=status)
    async with rt.db.read() as conn:
        catalog_rows = [(p.sku, p.name) for p in await catalog.list_products(conn)]
    return render(
        request,
        "purchasing/index.html",
        page_context(request, "purchasing"),
        groups=groups,
        suppliers=suppliers,
        found=found,
        catalog_rows=catalog_rows,
        status=status,
        status_names=PURCHASE_STATUS_ZH,
        new_rows=NEW_ROWS,
        show_cost=(await rules_for(rt)).cost_visible,
    )


async def po_detail(request: web.Request) -> web.Response:
    ctx = page_context(request, "purchasing")
    try:
        order = await ps.get_purchase_order(request.app[RUNTIME], request.match_info["number"])
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有找到采购单", message=exc.message)
    show_cost = (await rules_for(request.app[RUNTIME])).cost_visible
    return render(
        request,
        "purchasing/detail.html",
        ctx,
        order=order,
        actions=PoActions.of(order),
        status_names=PURCHASE_STATUS_ZH,
        show_cost=show_cost,
    )


# ---- actions ------------------------------------------------------------------------------------------------
async def po_create(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        lines = []
        for i in range(NEW_ROWS):
            sku = form.get(f"sku:{i}", "").strip()
            if sku:
                lines.append((sku, _qty(form.get(f"qty:{i}", ""), f"{sku} 的数量", minimum=1), _yuan(form.get(f"cost:{i}", ""), sku)))
        order = await ps.create_purchase_order(
            request.app[RUNTIME], supplier_id=supplier_pages.supplier_id(form), lines=lines, note=form.get("note", "")[:500]
        )
        return f"采购单草稿 {order.number} 已创建"

    return await act(request, "/console/purchasing", action)


async def po_from_suggestions(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action() -> str:
        skus = [s for s in form.get("skus", "").split(",") if s.strip()][:200]
        order = await ps.draft_from_suggestions(request.app[RUNTIME], supplier_id=supplier_pages.supplier_id(form), skus=skus or None)
        return f"已按补货建议生成采购单草稿 {order.number}（{len(order.lines)} 种商品），请核对单价后下单"

    return await act(request, "/console/purchasing", action)


async def po_lines(request: web.Request) -> web.Response:
    form = await read_form(request)
    number = request.match_info["number"]

    async def action() -> str:
        # A role that may not see prices edits quantities only (the form has no price fields): prices stay as they were.
        current = await ps.get_purchase_order(request.app[RUNTIME], number)
        kept = {ln.sku: ln.unit_cost_fen for ln in current.lines}
        lines = []
        for key, raw in form.items():
            if key.startswith("qty:"):
                sku = key.removeprefix("qty:")
                qty = _qty(raw, f"{sku} 的数量", minimum=0)
                if qty:
                    lines.append((sku, qty, _yuan(form[f"cost:{sku}"], sku) if f"cost:{sku}" in form else kept.get(sku, 0)))
        order = await ps.set_draft_lines(request.app[RUNTIME], number, lines)
        return f"采购单 {order.number} 已保存"

    return await act(request, po_url(number), action)


async def po_place(request: web.Request) -> web.Response:
    number = request.match_info["number"]

    async def action() -> str:
        order = await ps.place_purchase_order(request.app[RUNTIME], number)
        if order.status == "pending_approval":
            return f"采购单 {order.number} 已提交审批，审批通过后自动下单（在“审批”中查看进度）"
        return f"采购单 {order.number} 已下单，预计 {order.expected_on} 到货"

    return await act(request, po_url(number), action)


async def po_receive(request: web.Request) -> web.Response:
    form = await read_form(request)
    number = request.match_info["number"]

    async def action() -> str:
        given = {k.removeprefix("qty:"): v for k, v in form.items() if k.startswith("qty:") and v.strip()}
        lines = [(sku, q) for sku, raw in given.items() if (q := _qty(raw, f"{sku} 的到货数量", minimum=0))] if given else None
        if given and not lines:
            raise InvalidInput("请至少填写一行大于 0 的到货数量，或全部留空表示到齐", field="lines")
        result = await ps.receive_purchase(request.app[RUNTIME], number, lines, reference=form.get("reference", ""), actor=actor(request))
        if result.duplicate:
            return f"送货单 {form.get('reference', '').strip()} 已入库过，未重复入库"
        got = "、".join(f"{sku}×{q}" for sku, q in result.received.items())
        filled = "、".join(f"{sku}×{q}" for sku, q in result.backorders_filled.items())
        return f"已入库 {got}；状态：{PURCHASE_STATUS_ZH[result.order.status]}" + (
            f"；已为缺货订单补分配 {filled} 并通知客户" if filled else ""
        )

    return await act(request, po_url(number), action)


async def po_cancel(request: web.Request) -> web.Response:
    form = await read_form(request)
    number = request.match_info["number"]

    async def action() -> str:
        order = await ps.cancel_purchase_order(request.app[RUNTIME], number, reason=form.get("reason", "")[:200])
        return f"采购单 {order.number} 已取消"

    return await act(request, po_url(number), action)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/console/purchasing", purchasing_index),
    ("POST", "/console/purchasing/new", po_create),
    ("POST", "/console/purchasing/suggestions", po_from_suggestions),
    ("GET", "/console/purchasing/{number}", po_detail),
    ("POST", "/console/purchasing/{number}/lines", po_lines),
    ("POST", "/console/purchasing/{number}/place", po_place),
    ("POST", "/console/purchasing/{number}/receive", po_receive),
    ("POST", "/console/purchasing/{number}/cancel", po_cancel),
    ("GET", "/console/suppliers", supplier_pages.suppliers_page),
    ("POST", "/console/suppliers", supplier_pages.supplier_create),
    ("POST", "/console/suppliers/update", supplier_pages.supplier_update),
    ("POST", "/console/suppliers/deactivate", supplier_pages.supplier_deactivate),
    ("POST", "/console/suppliers/activate", supplier_pages.supplier_activate),
]


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.OPERATIONS_ROLES) -> None:
    """Mount the purchasing pages behind the console's sign-in (every route through :func:`auth.protected`)."""
    pages.setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
