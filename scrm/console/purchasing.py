"""/console/purchasing and /console/suppliers — 采购 (进): reorder suggestions, purchase orders, receiving.

Thin views over :mod:`fulfillment.purchasing.services`: a domain error becomes the red flash on the page it came
from (nothing changed); success redirects back with a green one. Costs are typed in yuan and kept in fen.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import quote

from aiohttp import web

from fulfillment.catalog import services as catalog
from fulfillment.catalog.services import MAX_QTY
from fulfillment.purchasing import services as ps
from fulfillment.purchasing.domain import PURCHASE_STATUS_ZH, RECEIVABLE_STATUSES, PurchaseOrderView, SuggestionGroup, SupplierView
from fulfillment.purchasing.models import PurchaseStatus as P
from scrm.console import auth
from scrm.console import suppliers as supplier_pages
from scrm.console.auth import Handler
from scrm.console.render import PageContext, Safe, button_form, join, money, post_form, t, table, when
from scrm.console.web import _act, _actor, _ctx, _form, _page, forbidden
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.money import parse_yuan

NEW_ROWS = 6


def po_url(number: str) -> str:
    return "/console/purchasing/" + quote(number, safe="")


def _badge(status: str) -> Safe:
    return t('<span class="badge">{zh}</span>', zh=PURCHASE_STATUS_ZH.get(status, status))


def _qty(raw: str, label: str, *, minimum: int) -> int:
    raw = raw.strip()
    if not raw.isdecimal() or not minimum <= int(raw) <= MAX_QTY:
        raise InvalidInput(f"{label}必须是 {minimum} 到 {MAX_QTY} 之间的整数 (must be a whole number)", field="qty")
    return int(raw)


def _yuan(raw: str, label: str) -> int:
    try:
        fen = parse_yuan(raw)
    except ValueError:
        raise InvalidInput(f"{label}的单价必须是金额，如 36.50 (cost must be an amount in yuan)", field="cost") from None
    if fen < 0:
        raise InvalidInput(f"{label}的单价不能为负 (cost cannot be negative)", field="cost")
    return fen


def _yuan_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _supplier_select(suppliers: list[SupplierView], selected: int | None = None) -> Safe:
    options = join(
        t('<option value="{id}"{sel}>{name}</option>', id=s.id, name=s.name, sel=Safe(" selected") if s.id == selected else "")
        for s in suppliers
        if s.active
    )
    return t('<label>供应商<select name="supplier_id" required><option value="">请选择</option>{o}</select></label>', o=options)


# ---- pages --------------------------------------------------------------------------------------------------
def _suggestions(ctx: PageContext, groups: list[SuggestionGroup], suppliers: list[SupplierView]) -> Safe:
    if not groups:
        return Safe('<p class="empty">目前没有需要补货的商品（可用 + 在途 高于补货点，且没有缺货订单）。</p>')
    cards = []
    for g in groups:
        rows = table(
            ["SKU", "商品", "可用", "在途", "缺货", "补货点", "建议采购", "参考单价"],
            [
                (
                    s.sku,
                    s.position.name,
                    s.position.available,
                    s.position.on_order,
                    s.position.backordered,
                    s.position.reorder_point,
                    f"{s.qty}{s.position.unit}",
                    money(s.position.unit_cost_fen),
                )
                for s in g.suggestions
            ],
        )
        skus = t('<input type="hidden" name="skus" value="{v}">', v=",".join(s.sku for s in g.suggestions))
        form = post_form(
            ctx,
            "/console/purchasing/suggestions",
            t(
                '{skus}{select}<button type="submit" class="primary">生成采购单草稿</button>',
                skus=skus,
                select=_supplier_select(suppliers, g.supplier.id if g.supplier else None),
            ),
            cls="row",
        )
        title = g.supplier.name if g.supplier else "未指定供应商（从未采购过）"
        cards.append(
            t(
                '<section class="card"><h3>{title} <small>约 {total}</small></h3>{rows}{form}</section>',
                title=title,
                total=money(g.total_fen),
                rows=rows,
                form=form,
            )
        )
    return join(cards)


def _new_form(ctx: PageContext, suppliers: list[SupplierView], catalog_rows: list[tuple[str, str]]) -> Safe:
    """A hand-written draft: supplier, up to NEW_ROWS lines (blank rows are skipped), SKUs offered from the catalog."""
    rows = table(
        ["SKU", "数量", "单价（元）"],
        [
            (
                t('<input name="sku:{i}" maxlength="64" list="catalog-skus" aria-label="SKU">', i=i),
                t('<input type="number" name="qty:{i}" min="1" aria-label="数量">', i=i),
                t('<input name="cost:{i}" inputmode="decimal" maxlength="16" placeholder="36.50" aria-label="单价">', i=i),
            )
            for i in range(NEW_ROWS)
        ],
    )
    options = join(t('<option value="{sku}">{name}</option>', sku=sku, name=name) for sku, name in catalog_rows)
    inner = t(
        '{select}{rows}<datalist id="catalog-skus">{options}</datalist><label>备注<input name="note" maxlength="500"></label>'
        '<button type="submit" class="primary">创建草稿</button>',
        select=_supplier_select(suppliers),
        rows=rows,
        options=options,
    )
    return post_form(ctx, "/console/purchasing/new", inner, cls="stack")


async def purchasing_index(request: web.Request) -> web.Response:
    """采购: reorder suggestions per supplier, a hand-written purchase order, and the purchase orders."""
    rt = request.app[RUNTIME]
    status = request.query.get("status", "")
    status = status if status in PURCHASE_STATUS_ZH else ""
    groups = await ps.suggest_purchases(rt)
    suppliers = await ps.list_suppliers(rt)
    found = await ps.list_purchase_orders(rt, status=status)
    ctx = _ctx(request, "purchasing")
    options = join(
        t('<option value="{v}"{sel}>{label}</option>', v=v, label=label, sel=Safe(" selected") if v == status else "")
        for v, label in (("", "全部状态"), *PURCHASE_STATUS_ZH.items())
    )
    filters = t(
        '<form method="get" action="/console/purchasing" class="toolbar"><select name="status">{o}</select>'
        '<button type="submit">筛选</button></form>',
        o=options,
    )
    listing = table(
        ["采购单", "状态", "供应商", "金额", "创建", "预计到货"],
        [
            (
                t('<a href="{href}">{n}</a>', href=po_url(p.number), n=p.number),
                _badge(p.status),
                p.supplier.name,
                money(p.total_fen),
                when(p.created_at),
                p.expected_on or "—",
            )
            for p in found
        ],
        empty="还没有采购单",
    )
    async with rt.db.read() as conn:
        catalog_rows = [(p.sku, p.name) for p in await catalog.list_products(conn)]
    body = t(
        '<p><a href="/console/suppliers">管理供应商 →</a></p><h2>补货建议</h2>{sugg}<h2>采购单</h2>{filters}{listing}'
        '<h2>手工新建采购单</h2><section class="card">{new}</section>',
        sugg=_suggestions(ctx, groups, suppliers),
        new=_new_form(ctx, suppliers, catalog_rows),
        filters=filters,
        listing=listing,
    )
    return _page(request, ctx, "采购", body)


def _detail(ctx: PageContext, order: PurchaseOrderView) -> Safe:
    back = po_url(order.number)
    summary = join(
        t("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v)
        for k, v in (
            ("状态", _badge(order.status)),
            ("供应商", order.supplier.name),
            ("金额", money(order.total_fen)),
            ("创建", when(order.created_at)),
            ("下单", when(order.ordered_at)),
            ("预计到货", order.expected_on or "—"),
            ("备注", order.note or "—"),
        )
    )
    lines = table(
        ["SKU", "商品", "采购数量", "已到货", "未到", "单价", "金额"],
        [
            (ln.sku, ln.name, f"{ln.qty}{ln.unit}", ln.received_qty, ln.outstanding, money(ln.unit_cost_fen), money(ln.amount_fen))
            for ln in order.lines
        ],
    )
    receipts = table(
        ["送货单号", "收货时间", "收货人"], [(r.reference, when(r.received_at), r.received_by) for r in order.receipts], empty="尚未收货"
    )
    forms = []
    editor: object = ""
    if order.status == P.DRAFT:
        edit = table(
            ["SKU", "商品", "数量（0 = 删除）", "单价（元）"],
            [
                (
                    ln.sku,
                    ln.name,
                    t('<input type="number" name="qty:{sku}" min="0" value="{q}" aria-label="数量">', sku=ln.sku, q=ln.qty),
                    t('<input name="cost:{sku}" value="{c}" maxlength="16" aria-label="单价">', sku=ln.sku, c=_yuan_text(ln.unit_cost_fen)),
                )
                for ln in order.lines
            ],
        )
        editor = t(
            '<h2>修改草稿</h2><section class="card">{f}</section>',
            f=post_form(ctx, back + "/lines", t('{e}<button type="submit">保存</button>', e=edit), cls="stack"),
        )
        forms.append(
            t('<section class="card"><h3>下单</h3>{f}</section>', f=button_form(ctx, back + "/place", "发给供应商（下单）", cls="primary"))
        )
    if order.status in RECEIVABLE_STATUSES:
        qty = join(
            t(
                '<label>{name}（未到 {n}{unit}）<input type="number" name="qty:{sku}" min="0" max="{n}" placeholder="{n}"></label>',
                name=ln.name,
                n=ln.outstanding,
                unit=ln.unit,
                sku=ln.sku,
            )
            for ln in order.lines
            if ln.outstanding > 0
        )
        inner = t(
            '<label>送货单号<input name="reference" required maxlength="64"></label>{qty}'
            '<p class="hint">数量留空 = 全部未到商品到齐；同一送货单号只入库一次。到货后自动为缺货订单补分配并通知客户。</p>'
            '<button type="submit" class="primary">收货入库</button>',
            qty=qty,
        )
        forms.append(t('<section class="card"><h3>收货</h3>{f}</section>', f=post_form(ctx, back + "/receive", inner, cls="stack")))
    if order.status in (P.DRAFT, P.ORDERED) and not any(ln.received_qty for ln in order.lines):
        cancel = post_form(
            ctx,
            back + "/cancel",
            Safe('<label>原因<input name="reason" maxlength="200"></label><button type="submit" class="danger">取消采购单</button>'),
            cls="stack",
        )
        forms.append(t('<section class="card"><h3>取消</h3>{f}</section>', f=cancel))
    return t(
        '<p><a href="/console/purchasing">← 返回采购</a></p><dl class="summary">{summary}</dl><h2>商品</h2>{lines}'
        '{editor}<div class="grid">{forms}</div><h2>收货记录</h2>{receipts}',
        summary=summary,
        lines=lines,
        editor=editor,
        forms=join(forms),
        receipts=receipts,
    )


async def po_detail(request: web.Request) -> web.Response:
    ctx = _ctx(request, "purchasing")
    try:
        order = await ps.get_purchase_order(request.app[RUNTIME], request.match_info["number"])
    except NotFound as exc:
        return _page(request, ctx, "没有找到采购单", t('<p class="empty">{m}</p>', m=exc.message), status=404)
    return _page(request, ctx, f"采购单 {order.number}", _detail(ctx, order))


# ---- actions ------------------------------------------------------------------------------------------------
async def po_create(request: web.Request) -> web.Response:
    form = await _form(request)

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

    return await _act(request, "/console/purchasing", action)


async def po_from_suggestions(request: web.Request) -> web.Response:
    form = await _form(request)

    async def action() -> str:
        skus = [s for s in form.get("skus", "").split(",") if s.strip()][:200]
        order = await ps.draft_from_suggestions(request.app[RUNTIME], supplier_id=supplier_pages.supplier_id(form), skus=skus or None)
        return f"已按补货建议生成采购单草稿 {order.number}（{len(order.lines)} 种商品），请核对单价后下单"

    return await _act(request, "/console/purchasing", action)


async def po_lines(request: web.Request) -> web.Response:
    form = await _form(request)
    number = request.match_info["number"]

    async def action() -> str:
        lines = []
        for key, raw in form.items():
            if key.startswith("qty:"):
                sku = key.removeprefix("qty:")
                qty = _qty(raw, f"{sku} 的数量", minimum=0)
                if qty:
                    lines.append((sku, qty, _yuan(form.get(f"cost:{sku}", ""), sku)))
        order = await ps.set_draft_lines(request.app[RUNTIME], number, lines)
        return f"采购单 {order.number} 已保存"

    return await _act(request, po_url(number), action)


async def po_place(request: web.Request) -> web.Response:
    number = request.match_info["number"]

    async def action() -> str:
        order = await ps.place_purchase_order(request.app[RUNTIME], number)
        return f"采购单 {order.number} 已下单，预计 {order.expected_on} 到货"

    return await _act(request, po_url(number), action)


async def po_receive(request: web.Request) -> web.Response:
    form = await _form(request)
    number = request.match_info["number"]

    async def action() -> str:
        given = {k.removeprefix("qty:"): v for k, v in form.items() if k.startswith("qty:") and v.strip()}
        lines = [(sku, q) for sku, raw in given.items() if (q := _qty(raw, f"{sku} 的到货数量", minimum=0))] if given else None
        if given and not lines:
            raise InvalidInput("请至少填写一行大于 0 的到货数量，或全部留空表示到齐 (fill a quantity or leave all blank)", field="lines")
        result = await ps.receive_purchase(request.app[RUNTIME], number, lines, reference=form.get("reference", ""), actor=_actor(request))
        if result.duplicate:
            return f"送货单 {form.get('reference', '').strip()} 已入库过，未重复入库"
        got = "、".join(f"{sku}×{q}" for sku, q in result.received.items())
        filled = "、".join(f"{sku}×{q}" for sku, q in result.backorders_filled.items())
        return f"已入库 {got}；状态：{PURCHASE_STATUS_ZH[result.order.status]}" + (
            f"；已为缺货订单补分配 {filled} 并通知客户" if filled else ""
        )

    return await _act(request, po_url(number), action)


async def po_cancel(request: web.Request) -> web.Response:
    form = await _form(request)
    number = request.match_info["number"]

    async def action() -> str:
        order = await ps.cancel_purchase_order(request.app[RUNTIME], number, reason=form.get("reason", "")[:200])
        return f"采购单 {order.number} 已取消"

    return await _act(request, po_url(number), action)


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
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=forbidden))
