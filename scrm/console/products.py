"""/console/products — 商品: the catalog managed in the console (operations).

List with search (SKU, name, alias), category and status filters and stock; create; edit (name, unit, price in 元,
aliases, category, reorder point); deactivate / reactivate; a stock adjustment with a required reason through the
ledger (:func:`fulfillment.inventory.services.adjust_on_hand`, or a count to a figure) beside the product's recent
movements; import of a CSV (UTF-8 or GBK/GB18030) or xlsx file, **all or nothing**: the whole file is checked
first and, when any row is bad, nothing changes and the page lists every bad row with its line number and reason;
export as xlsx. Every change goes through the catalog's services, which move the catalog version the chat
parser's cache (``bots/dialogue/catalog_cache.py``) compares before each message, so chat sees edits at once.

Forms that fail re-render with the typed values kept and the Chinese message beside the field (400/409).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from fulfillment.catalog import queries as catalog_queries
from fulfillment.catalog import services as catalog
from fulfillment.catalog.files import CatalogFileError, catalog_xlsx, read_catalog_file
from fulfillment.catalog.services import MAX_QTY, ImportReport, ProductFields, ProductInfo, parse_price_yuan
from fulfillment.inventory import queries as inventory_queries
from fulfillment.inventory import services as inventory
from fulfillment.orders import backorders
from scrm.console import auth, pages
from scrm.console.auth import Handler
from scrm.console.pages import actor, back, page_context, path_id, read_form, render, staff_text, yuan
from scrm.core.errors import Conflict, DomainError, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME

STATUS_ZH = {"": "全部", "active": "在售", "inactive": "已停用"}
STOCK_MODES = {"delta": "增减（±数量）", "count": "盘点为（实盘数）"}


@dataclass
class FormState:
    """What was typed and the message per field (kept when a form is refused)."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def error(self, name: str) -> str:
        return self.errors.get(name, "")


def product_url(product_id: int) -> str:
    return f"/console/products/{int(product_id)}"


def product_form(p: ProductInfo) -> FormState:
    return FormState(
        {
            "sku": p.sku,
            "name": p.name,
            "unit": p.unit,
            "price": yuan(p.price_fen),
            "aliases": "、".join(a for a in p.aliases if a != p.name),
            "category": p.category,
            "reorder_point": "" if p.reorder_point is None else str(p.reorder_point),
        }
    )


def split_aliases(text: str) -> tuple[str, ...]:
    """Aliases typed as 、 , ， | or one per line."""
    for sep in ("，", ",", "|", "\n", "\r"):
        text = text.replace(sep, "、")
    return tuple(a.strip() for a in text.split("、") if a.strip())


def fields_of(form: Mapping[str, str], *, new: bool = False) -> ProductFields:
    """The product fields from the form (price in 元, reorder point optional); when anything is wrong,
    :class:`ProductFormInvalid` with every field's problem at once (SKU too when ``new``)."""
    problems: dict[str, str] = {}
    if new:
        try:
            catalog.check_sku(form.get("sku", ""))
        except InvalidInput as exc:
            problems["sku"] = exc.message
    price = 0
    try:
        price = parse_price_yuan(form.get("price", ""))
    except ValueError as exc:
        problems["price"] = str(exc)
    raw = form.get("reorder_point", "").strip()
    if raw and (not raw.isdecimal() or int(raw) > MAX_QTY):
        problems["reorder_point"] = f"补货点必须是 0 到 {MAX_QTY} 的整数，留空表示不设"
    fields = ProductFields(
        name=form.get("name", ""),
        unit=form.get("unit", ""),
        price_fen=price,
        aliases=split_aliases(form.get("aliases", "")),
        category=form.get("category", ""),
        reorder_point=int(raw) if raw and "reorder_point" not in problems else None,
    )
    problems = {**problems, **{k: v for k, v in fields.problems().items() if k not in problems}}
    if problems:
        raise ProductFormInvalid(problems)
    return fields


class ProductFormInvalid(InvalidInput):
    """Every problem of one product form submission, by field (the first one is the error's own message)."""

    def __init__(self, problems: dict[str, str]) -> None:
        first = next(iter(problems))
        super().__init__(problems[first], field=first)
        self.problems = problems


def _refused(exc: DomainError, values: Mapping[str, str], default_field: str) -> FormState:
    if isinstance(exc, ProductFormInvalid):
        return FormState(dict(values), {k: staff_text(v) for k, v in exc.problems.items()})
    name = str(exc.details.get("field") or default_field)
    return FormState(dict(values), {name: staff_text(exc.message)})


# ---- list ---------------------------------------------------------------------------------------------------
async def products_list(request: web.Request) -> web.Response:
    """商品: search, category and status filters, 50 a page, with stock; low stock marked (the stock page's rule)."""
    q = request.query.get("q", "").strip()[:64]
    category = request.query.get("category", "").strip()[:64]
    status = request.query.get("status", "")
    status = status if status in STATUS_ZH else ""
    raw_page = request.query.get("page", "1")
    page = min(int(raw_page), 10_000) if raw_page.isdecimal() and int(raw_page) > 0 else 1
    async with request.app[RUNTIME].db.read() as conn:
        rows, more = await catalog_queries.product_rows(conn, q=q, category=category, status=status, page=page)
        cats = await catalog_queries.categories(conn)
        waiting = await backorders.backordered_by_product(conn, [r.id for r in rows])
    lows = [
        catalog_queries.needs_stock(active=r.active, available=r.available, backordered=waiting.get(r.id, 0), reorder_point=r.reorder_point)
        for r in rows
    ]
    classes = ["low" if low else ("inactive" if not r.active else "") for r, low in zip(rows, lows, strict=True)]

    def page_url(n: int) -> str:
        return pages.url("/console/products", q=q, category=category, status=status, page=n)

    return render(
        request,
        "products/list.html",
        page_context(request, "products"),
        items=[(r, low, waiting.get(r.id, 0)) for r, low in zip(rows, lows, strict=True)],
        row_classes=classes,
        q=q,
        category=category,
        status=status,
        statuses=STATUS_ZH,
        categories=cats,
        page=page,
        prev_url=page_url(page - 1) if page > 1 else "",
        next_url=page_url(page + 1) if more else "",
    )


# ---- create / edit ------------------------------------------------------------------------------------------
async def _categories(request: web.Request) -> list[str]:
    async with request.app[RUNTIME].db.read() as conn:
        return await catalog_queries.categories(conn)


async def product_new(request: web.Request) -> web.Response:
    return render(request, "products/new.html", page_context(request, "products"), form=FormState(), categories=await _categories(request))


async def product_create(request: web.Request) -> web.Response:
    form = await read_form(request)
    rt = request.app[RUNTIME]
    try:
        fields = fields_of(form, new=True)
        async with rt.db.write() as conn:
            created = await catalog.create_product(conn, form.get("sku", ""), fields, rt.clock.now())
    except (InvalidInput, Conflict) as exc:
        state = _refused(exc, form, "sku")
        status = 409 if isinstance(exc, Conflict) else 400
        ctx = page_context(request, "products")
        return render(request, "products/new.html", ctx, http_status=status, form=state, categories=await _categories(request))
    return back(request, product_url(created.id), "ok", f"已新建商品 {created.name}（{created.sku}）")


async def _product_page(
    request: web.Request, product_id: int, *, form: FormState | None = None, stock_form: FormState | None = None, http_status: int = 200
) -> web.Response:
    rt = request.app[RUNTIME]
    ctx = page_context(request, "products")
    try:
        async with rt.db.read() as conn:
            product = await catalog.get_product_by_id(conn, product_id)
            level = await inventory.level(conn, rt.db.dialect, product_id)
            moves = await inventory_queries.recent_movements(conn, product_id)
            waiting = (await backorders.backordered_by_product(conn, [product_id])).get(product_id, 0)
            cats = await catalog_queries.categories(conn)
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有这个商品", message=exc.message)
    low = catalog_queries.needs_stock(
        active=product.active, available=level.available, backordered=waiting, reorder_point=product.reorder_point
    )
    return render(
        request,
        "products/detail.html",
        ctx,
        http_status=http_status,
        product=product,
        level=level,
        waiting=waiting,
        low=low,
        moves=moves,
        form=form or product_form(product),
        stock_form=stock_form or FormState({"mode": "delta"}),
        modes=STOCK_MODES,
        categories=cats,
    )


async def product_detail(request: web.Request) -> web.Response:
    return await _product_page(request, path_id(request, what="商品"))


async def product_update(request: web.Request) -> web.Response:
    product_id = path_id(request, what="商品")
    form = await read_form(request)
    rt = request.app[RUNTIME]
    try:
        fields = fields_of(form)
        async with rt.db.write() as conn:
            changed = await catalog.edit_product(conn, product_id, fields, rt.clock.now())
    except InvalidInput as exc:
        return await _product_page(request, product_id, form=_refused(exc, form, "name"), http_status=400)
    if changed.pending_price_fen is not None:
        asked = pages.money(changed.pending_price_fen)
        message = f"已保存 {changed.name}（{changed.sku}）；改价为 {asked} 需审批，通过前仍按 {pages.money(changed.price_fen)} 销售"
        return back(request, product_url(product_id), "warn", message)
    return back(request, product_url(product_id), "ok", f"已保存 {changed.name}（{changed.sku}），售价 {pages.money(changed.price_fen)}")


async def product_set_active(request: web.Request) -> web.Response:
    product_id = path_id(request, what="商品")
    form = await read_form(request)
    rt = request.app[RUNTIME]

    async def action() -> str:
        async with rt.db.write() as conn:
            p = await catalog.set_active(conn, product_id, form.get("active") == "1", rt.clock.now())
        return f"{p.name} 已{'恢复在售' if p.active else '停用（不再接受新订单）'}"

    return await pages.act(request, product_url(product_id), action)


async def product_stock(request: web.Request) -> web.Response:
    """库存调整: ±quantity, or a count to a figure; the reason is required and goes into the ledger row. Newly
    available stock then goes to backordered orders (oldest first), as on the stock page."""
    product_id = path_id(request, what="商品")
    form = await read_form(request)
    rt = request.app[RUNTIME]
    mode = form.get("mode") if form.get("mode") in STOCK_MODES else "delta"
    raw = form.get("qty", "").strip()
    try:
        digits = raw.removeprefix("-").removeprefix("+")
        if not digits.isdecimal() or int(digits) > MAX_QTY or (mode == "count" and raw.startswith("-")):
            hint = "实盘数必须是 0 以上的整数" if mode == "count" else "调整数量必须是整数，减少用负数，如 -3"
            raise InvalidInput(f"{hint}（最大 {MAX_QTY}）", field="qty")
        qty = int(raw)
        reason = form.get("reason", "").strip()
        who = actor(request)
        async with rt.db.write() as conn:
            product = await catalog.get_product_by_id(conn, product_id)
            warehouse = await inventory.default_warehouse(conn, rt.db.dialect)
            if mode == "count":
                current = await inventory.level(conn, rt.db.dialect, product_id, warehouse)
                delta = qty - current.on_hand
                if delta == 0:
                    raise InvalidInput(f"实盘数与在库 {current.on_hand} 相同，无需调整", field="qty")
            else:
                delta = qty
            after = await inventory.adjust_on_hand(
                conn, rt.db.dialect, product_id, warehouse, delta, rt.clock.now(), reason=reason, actor=who
            )
    except (InvalidInput, Conflict) as exc:
        return await _product_page(
            request, product_id, stock_form=_refused(exc, form, "qty"), http_status=409 if isinstance(exc, Conflict) else 400
        )
    filled = await backorders.fill_backorders(rt, product_id)
    change = f"{'增加' if delta > 0 else '减少'} {abs(delta)}{product.unit}"
    message = f"{product.name} 库存{change}，在库 {after.on_hand}{product.unit}（原因：{reason}）"
    if filled:
        message += f"；已为缺货订单补分配 {filled}{product.unit}"
    return back(request, product_url(product_id), "ok", message)


# ---- import / export ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportOutcome:
    """What the import page shows after a file: how it was read, and either the bad rows (nothing imported) or
    the counts of what was created and updated."""

    filename: str
    kind: str
    rows: int
    errors: list[tuple[int, str]]
    report: ImportReport | None

    @property
    def imported(self) -> bool:
        return self.report is not None


class _RolledBack(Exception):
    """Raised inside the write transaction so that nothing of a failed import stays (all or nothing)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__("import rolled back")
        self.errors = errors


async def import_page(request: web.Request) -> web.Response:
    return render(request, "products/import.html", page_context(request, "products"), outcome=None, file_error="")


async def import_upload(request: web.Request) -> web.Response:
    """All or nothing: every row is checked first; any bad row (or a stock figure below what is allocated) and
    nothing changes — the page lists each bad row's line and reason (400). Otherwise one transaction imports it."""
    post = await request.post()  # already read (and CSRF-checked) by auth.protected
    upload = post.get("file")
    ctx = page_context(request, "products")
    if not isinstance(upload, web.FileField):
        return render(request, "products/import.html", ctx, http_status=400, outcome=None, file_error="请选择要导入的 CSV 或 xlsx 文件")
    filename = upload.filename or ""
    try:
        rows, errors, kind = read_catalog_file(filename, upload.file.read())
    except CatalogFileError as exc:
        return render(request, "products/import.html", ctx, http_status=400, outcome=None, file_error=str(exc))
    if not rows and not errors:
        errors = [(2, "文件里没有数据行")]
    if errors:
        outcome = ImportOutcome(filename, kind, len(rows), errors, None)
        return render(request, "products/import.html", ctx, http_status=400, outcome=outcome, file_error="")
    rt = request.app[RUNTIME]
    try:
        async with rt.db.write() as conn:
            report = await catalog.import_rows(conn, rt.db.dialect, rows, rt.clock.now())
            if report.errors:
                raise _RolledBack(report.errors)
    except _RolledBack as exc:
        outcome = ImportOutcome(filename, kind, len(rows), exc.errors, None)
        return render(request, "products/import.html", ctx, http_status=409, outcome=outcome, file_error="")
    for product_id in report.product_ids:
        await backorders.fill_backorders(rt, product_id)
    outcome = ImportOutcome(filename, kind, len(rows), [], report)
    return render(request, "products/import.html", ctx, outcome=outcome, file_error="")


async def export_xlsx(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        records = await catalog.export_records(conn, rt.db.dialect)
    day = rt.clock.now().strftime("%Y%m%d")
    return web.Response(
        body=catalog_xlsx(records),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="catalog-{day}.xlsx"', "Cache-Control": "no-store"},
    )


# ---- wiring -------------------------------------------------------------------------------------------------
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/console/products", products_list),
    ("GET", "/console/products/new", product_new),
    ("POST", "/console/products/new", product_create),
    ("GET", "/console/products/import", import_page),
    ("POST", "/console/products/import", import_upload),
    ("GET", "/console/products/export.xlsx", export_xlsx),
    ("GET", "/console/products/{id}", product_detail),
    ("POST", "/console/products/{id}", product_update),
    ("POST", "/console/products/{id}/active", product_set_active),
    ("POST", "/console/products/{id}/stock", product_stock),
]


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.OPERATIONS_ROLES) -> None:
    """Mount the product pages behind the console's sign-in (every route through :func:`auth.protected`)."""
    pages.setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
