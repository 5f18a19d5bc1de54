"""Catalog use cases: products with aliases, CSV import/export (``sku,name,aliases,unit,price_fen,stock``)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from config.settings import CONFIG_DIR
from fulfillment.catalog.domain import PricedLine, ProductNotFound
from fulfillment.catalog.models import product_aliases, products
from fulfillment.inventory import services as inventory
from fulfillment.sequences import next_value
from scrm.core.errors import Conflict, InvalidInput, NotFound

CATALOG_VERSION = "catalog_version"
CSV_COLUMNS = ["sku", "name", "aliases", "unit", "price_fen", "stock"]
OPTIONAL_COLUMNS = ["reorder_point", "category"]  # accepted when present; export writes them after the six
MAX_QTY = 10_000_000


@dataclass(frozen=True)
class ProductInfo:
    id: int
    sku: str
    name: str
    unit: str
    price_fen: int
    aliases: tuple[str, ...]
    active: bool
    category: str = ""
    reorder_point: int | None = None


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)
    product_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class CatalogRow:
    line: int
    sku: str
    name: str
    aliases: tuple[str, ...]
    unit: str
    price_fen: int
    stock: int | None
    reorder_point: int | None = None  # optional column: low-stock alert at or below this available quantity
    category: str | None = None  # optional column


def parse_catalog_csv(text: str) -> tuple[list[CatalogRow], list[tuple[int, str]]]:
    """Parse the CSV (UTF-8, BOM tolerated). Returns good rows and (line, error) for bad ones."""
    text = text.removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header and c != "stock"]
    if missing:
        return [], [(1, f"header is missing columns: {', '.join(missing)} (expected {','.join(CSV_COLUMNS)})")]
    reader.fieldnames = header
    rows: list[CatalogRow] = []
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        try:
            row = _parse_row(raw, line)
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        if row.sku in seen:
            errors.append((line, f"sku {row.sku} already given on line {seen[row.sku]}"))
            continue
        seen[row.sku] = line
        rows.append(row)
    return rows, errors


def _parse_row(raw: dict[str | Any, Any], line: int) -> CatalogRow:
    if None in raw:
        raise ValueError("too many columns")
    get = lambda k: (raw.get(k) or "").strip()  # noqa: E731
    sku, name, unit = get("sku"), get("name"), get("unit")
    if not sku or len(sku) > 64 or any(c.isspace() for c in sku):
        raise ValueError("sku is required (≤ 64 characters, no spaces)")
    if not name or len(name) > 128:
        raise ValueError("name is required (≤ 128 characters)")
    if not unit or len(unit) > 16:
        raise ValueError("unit is required (箱/包/瓶/件…)")
    price = get("price_fen")
    if not price.isdecimal():
        raise ValueError(f"price_fen must be a whole number of fen ≥ 0, got {price!r}")
    stock_raw = get("stock")
    stock: int | None = None
    if stock_raw:
        if not stock_raw.isdecimal() or int(stock_raw) > MAX_QTY:
            raise ValueError(f"stock must be a whole number from 0 to {MAX_QTY}, got {stock_raw!r}")
        stock = int(stock_raw)
    aliases = tuple(dict.fromkeys(a.strip() for a in get("aliases").split("|") if a.strip()))
    if any(len(a) > 64 for a in aliases):
        raise ValueError("aliases must be ≤ 64 characters each")
    reorder_raw = get("reorder_point")
    if reorder_raw and (not reorder_raw.isdecimal() or int(reorder_raw) > MAX_QTY):
        raise ValueError(f"reorder_point must be a whole number from 0 to {MAX_QTY}, got {reorder_raw!r}")
    category = get("category")
    if len(category) > 64:
        raise ValueError("category must be ≤ 64 characters")
    return CatalogRow(
        line,
        sku,
        name,
        aliases,
        unit,
        int(price),
        stock,
        int(reorder_raw) if reorder_raw else None,
        category if "category" in raw else None,
    )


async def import_rows(
    conn: AsyncConnection, dialect: str, rows: list[CatalogRow], now: dt.datetime, progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Create or update products by SKU (never duplicates); stock, when given, is set by an adjustment movement
    to that on-hand figure in the default warehouse, so the ledger explains every change."""
    report = ImportReport()
    warehouse_id = await inventory.default_warehouse(conn, dialect)
    await next_value(conn, dialect, CATALOG_VERSION)  # the chat parser rebuilds its dictionary on change
    for row in rows:
        existing = (await conn.execute(sa.select(products.c.id).where(products.c.sku == row.sku))).first()
        values: dict[str, Any] = {"name": row.name, "unit": row.unit, "price_fen": row.price_fen, "updated_at": now, "active": True}
        if row.reorder_point is not None:
            values["reorder_point"] = row.reorder_point
        if row.category is not None:
            values["category"] = row.category
        if existing:
            product_id = int(existing.id)
            await conn.execute(products.update().where(products.c.id == product_id).values(**values))
            report.updated += 1
        else:
            product_id = int(
                (await conn.execute(products.insert().values(sku=row.sku, created_at=now, **values).returning(products.c.id))).scalar_one()
            )
            report.created += 1
        await conn.execute(product_aliases.delete().where(product_aliases.c.product_id == product_id))
        names = dict.fromkeys((row.name, *row.aliases))
        if names:
            await conn.execute(product_aliases.insert(), [{"product_id": product_id, "alias": a} for a in names])
        if row.stock is not None:
            try:
                await inventory.set_on_hand(
                    conn, dialect, product_id, warehouse_id, row.stock, now, reference=f"catalog import line {row.line}"
                )
            except Conflict as exc:
                report.errors.append((row.line, f"stock not changed: {exc.message}"))
        report.product_ids.append(product_id)
        if progress is not None:
            progress(len(report.product_ids))
    return report


async def list_products(conn: AsyncConnection, *, active_only: bool = True) -> list[ProductInfo]:
    q = sa.select(products).order_by(products.c.sku)
    if active_only:
        q = q.where(products.c.active.is_(True))
    rows = (await conn.execute(q)).all()
    alias_rows = (await conn.execute(sa.select(product_aliases))).all()
    aliases: dict[int, list[str]] = {}
    for a in alias_rows:
        aliases.setdefault(int(a.product_id), []).append(a.alias)
    return [_info(r, aliases.get(int(r.id), [])) for r in rows]


def _info(r: Any, aliases: list[str]) -> ProductInfo:
    return ProductInfo(
        int(r.id), r.sku, r.name, r.unit, int(r.price_fen), tuple(sorted(aliases)), bool(r.active), r.category, r.reorder_point
    )


async def update_product(conn: AsyncConnection, sku: str, now: dt.datetime, **changes: Any) -> ProductInfo:
    """Change name, price_fen, unit, category, active or reorder_point (None clears it) of one product."""
    allowed = {"name", "price_fen", "unit", "category", "active", "reorder_point"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"不能修改这些字段 (cannot change): {', '.join(sorted(unknown))}")
    product = await get_product(conn, sku)
    if changes:
        await conn.execute(products.update().where(products.c.id == product.id).values(updated_at=now, **changes))
        await next_value(conn, conn.dialect.name, CATALOG_VERSION)
    return await get_product(conn, sku)


async def get_product(conn: AsyncConnection, sku: str) -> ProductInfo:
    row = (await conn.execute(sa.select(products).where(products.c.sku == sku))).first()
    if row is None:
        raise NotFound(f"没有这个商品 (no product with sku {sku!r})", sku=sku)
    aliases = [a.alias for a in await conn.execute(sa.select(product_aliases.c.alias).where(product_aliases.c.product_id == row.id))]
    return _info(row, aliases)


async def export_csv(conn: AsyncConnection, dialect: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + OPTIONAL_COLUMNS)
    for p in await list_products(conn, active_only=False):
        level = await inventory.level(conn, dialect, p.id)
        aliases = "|".join(a for a in p.aliases if a != p.name)
        reorder = "" if p.reorder_point is None else p.reorder_point
        writer.writerow([p.sku, p.name, aliases, p.unit, p.price_fen, level.on_hand, reorder, p.category])
    return out.getvalue()


def validate_qty(qty: object) -> int:
    if not isinstance(qty, int) or isinstance(qty, bool) or not 0 < qty <= MAX_QTY:
        raise InvalidInput(f"数量必须是 1 到 {MAX_QTY} 之间的整数 (quantity must be a whole number from 1 to {MAX_QTY})", field="qty")
    return qty


SAMPLE_CATALOG = CONFIG_DIR / "catalog.sample.csv"


async def seed_sample_if_empty(conn: AsyncConnection, dialect: str, now: dt.datetime) -> bool:
    """Sandbox convenience: an empty catalog gets the sample products so a person can order at once."""
    if (await conn.execute(sa.select(products.c.id).limit(1))).first() is not None:
        return False
    rows, errors = parse_catalog_csv(SAMPLE_CATALOG.read_text(encoding="utf-8"))
    assert not errors, errors
    await import_rows(conn, dialect, rows, now)
    return True


MAX_LINES = 50  # lines in one order


async def price_items(conn: AsyncConnection, items: list[tuple[str, int]]) -> list[PricedLine]:
    """Resolve ``[(sku, qty)]`` against active products; the same SKU twice is summed. Errors name the SKU."""
    if not items:
        raise InvalidInput("订单至少要有一件商品 (an order needs at least one line)", field="lines")
    if len(items) > MAX_LINES:
        raise InvalidInput(f"一张订单最多 {MAX_LINES} 行 (at most {MAX_LINES} lines)", field="lines")
    merged: dict[str, int] = {}
    for sku, qty in items:
        merged[sku] = validate_qty(merged.get(sku, 0) + validate_qty(qty))
    rows = (await conn.execute(sa.select(products).where(products.c.sku.in_(list(merged))))).all()
    by_sku = {r.sku: r for r in rows if r.active}
    for sku in merged:
        if sku not in by_sku:
            raise ProductNotFound(f"没有这个商品：{sku} (unknown or inactive sku)", sku=sku)
    return [
        PricedLine(
            int(r.id), s, r.name, r.unit, q, int(r.price_fen), r.category or "", None if r.reorder_point is None else int(r.reorder_point)
        )
        for s, q in merged.items()
        for r in (by_sku[s],)
    ]
