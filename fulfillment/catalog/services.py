"""Catalog use cases: products with aliases, CSV import/export (``sku,name,aliases,unit,price_fen,stock``)."""

from __future__ import annotations

import csv
import dataclasses
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
from scrm.core import audit
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.core.money import format_fen, parse_yuan
from scrm.governance.approvals import services as approvals

CATALOG_VERSION = "catalog_version"
CSV_COLUMNS = ["sku", "name", "aliases", "unit", "price_fen", "stock"]
OPTIONAL_COLUMNS = ["reorder_point", "category"]  # accepted when present; export writes them after the six
MAX_QTY = 10_000_000
MAX_PRICE_FEN = 10**12  # the API's limit too (ProductChange.price_fen)


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
    pending_price_fen: int | None = None  # a price change an approval holds (the price above still applies)


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


# Column names a person may type instead of the English ones (a sheet made by hand in Excel).
HEADER_ALIASES = {
    "编码": "sku",
    "商品编码": "sku",
    "名称": "name",
    "商品名称": "name",
    "别名": "aliases",
    "单位": "unit",
    "价格": "price",
    "单价": "price",
    "价格（元）": "price",
    "价格(元)": "price",
    "价格（分）": "price_fen",
    "库存": "stock",
    "补货点": "reorder_point",
    "分类": "category",
}


def parse_catalog_csv(text: str) -> tuple[list[CatalogRow], list[tuple[int, str]]]:
    """Parse the CSV text (a BOM tolerated). Returns good rows and (line, Chinese error) for bad ones."""
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text))
    table: list[tuple[int, list[str]]] = []
    for record in reader:
        table.append((reader.line_num, record))
    return parse_catalog_table(table)


def parse_catalog_table(table: list[tuple[int, list[str]]]) -> tuple[list[CatalogRow], list[tuple[int, str]]]:
    """Parse ``[(line number, cells)]`` whose first entry is the header (from a CSV or an xlsx sheet).

    Columns: ``sku,name,aliases,unit`` and a price — ``price`` in 元 (``36.00``) or the legacy ``price_fen`` in fen
    (``3600``), both allowed when they agree — then optional ``stock,reorder_point,category``. Chinese header names
    (编码, 名称, 别名, 单位, 价格, 库存, 补货点, 分类) are accepted too. Blank rows are skipped."""
    if not table:
        return [], [(1, "文件是空的，第一行应是表头：" + ",".join(CSV_COLUMNS))]
    header_line, header_cells = table[0]
    header = [HEADER_ALIASES.get(h.strip(), h.strip()) for h in header_cells]
    missing = [c for c in ("sku", "name", "aliases", "unit") if c not in header]
    if "price" not in header and "price_fen" not in header:
        missing.append("price 或 price_fen")
    if missing:
        expected = ",".join(CSV_COLUMNS)
        return [], [(header_line, f"表头缺少列：{', '.join(missing)}（应为 {expected}，价格可用 price 列填元）")]
    rows: list[CatalogRow] = []
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, cells in table[1:]:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            errors.append((line, f"列数太多：表头只有 {len(header)} 列"))
            continue
        raw = {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header)}
        try:
            row = _parse_row(raw, line)
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        if row.sku in seen:
            errors.append((line, f"SKU {row.sku} 与第 {seen[row.sku]} 行重复"))
            continue
        seen[row.sku] = line
        rows.append(row)
    return rows, errors


def typed(raw: str) -> str:
    """What was typed, quoted for an error message — an empty value is said to be empty, never quoted as ''."""
    return f"填的是“{raw}”" if raw.strip() else "没有填写"


def _whole(raw: str, column: str, label: str) -> int:
    if not raw.isdecimal() or int(raw) > MAX_QTY:
        raise ValueError(f"{column}（{label}）必须是 0 到 {MAX_QTY} 的整数，{typed(raw)}")
    return int(raw)


def parse_price_yuan(raw: str) -> int:
    """A price typed in 元 (``36``, ``36.5``, ``36.00``, ``¥1,234.50``) as fen; ValueError with a Chinese message
    for more than two decimals, a negative amount or anything that is not a number."""
    if not raw.strip():
        raise ValueError("价格必填：按元填写，如 36.00")
    try:
        fen = parse_yuan(raw)
    except ValueError:
        raise ValueError(f"价格必须是最多两位小数的金额（元），如 36.00，{typed(raw)}") from None
    if fen < 0:
        raise ValueError(f"价格不能是负数，{typed(raw)}")
    if fen > MAX_PRICE_FEN:
        raise ValueError("价格太大")
    return fen


def _parse_row(raw: dict[str, str], line: int) -> CatalogRow:
    get = lambda k: (raw.get(k) or "").strip()  # noqa: E731
    sku, name, unit = get("sku"), get("name"), get("unit")
    if not sku or len(sku) > 64 or any(c.isspace() for c in sku):
        raise ValueError("sku（商品编码）必填，不超过 64 个字符，不能有空格")
    if not name or len(name) > 128:
        raise ValueError("name（名称）必填，不超过 128 个字")
    if not unit or len(unit) > 16:
        raise ValueError("unit（单位）必填，如 箱/包/瓶/件")
    price_fen_raw, price_raw = get("price_fen"), get("price")
    price: int | None = None
    if price_fen_raw:
        if not price_fen_raw.isdecimal() or int(price_fen_raw) > MAX_PRICE_FEN:
            raise ValueError(f"price_fen（价格，单位分）必须是 ≥ 0 的整数分，{typed(price_fen_raw)}；按元填写请用 price 列")
        price = int(price_fen_raw)
    if price_raw:
        yuan = parse_price_yuan(price_raw)
        if price is not None and price != yuan:
            raise ValueError(f"price（{price_raw} 元）与 price_fen（{price_fen_raw} 分）不一致")
        price = yuan
    if price is None:
        raise ValueError("价格必填：price 列填元（如 36.00），或 price_fen 列填分（如 3600）")
    stock_raw = get("stock")
    stock = _whole(stock_raw, "stock", "库存") if stock_raw else None
    aliases = tuple(dict.fromkeys(a.strip() for a in get("aliases").split("|") if a.strip()))
    if any(len(a) > 64 for a in aliases):
        raise ValueError("aliases（别名）每个不超过 64 个字")
    reorder_raw = get("reorder_point")
    reorder = _whole(reorder_raw, "reorder_point", "补货点") if reorder_raw else None
    category = get("category")
    if len(category) > 64:
        raise ValueError("category（分类）不超过 64 个字")
    return CatalogRow(line, sku, name, aliases, unit, price, stock, reorder, category if "category" in raw else None)


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
                report.errors.append((row.line, f"库存未修改：{exc.message}"))
        report.product_ids.append(product_id)
        if progress is not None:
            progress(len(report.product_ids))
    return report


def catalog_naming(infos: list[ProductInfo]) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """What the catalog calls its products — (sku, name, aliases) by sku: the words readers of chat text add to the
    process's tokenizer come from these alone, so it is the catalog's key there (the parser's and the tagger's)."""
    return tuple(sorted((p.sku, p.name, tuple(p.aliases)) for p in infos))


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


async def update_product(conn: AsyncConnection, sku: str, now: dt.datetime, *, approved: bool = False, **changes: Any) -> ProductInfo:
    """Change name, price_fen, unit, category, active or reorder_point (None clears it) of one product. A price
    change an approval rule holds waits (``pending_price_fen`` on the answer; the old price applies) unless
    ``approved`` (the approval's decision applying it)."""
    allowed = {"name", "price_fen", "unit", "category", "active", "reorder_point"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"不能修改这些字段 (cannot change): {', '.join(sorted(unknown))}")
    product = await get_product(conn, sku)
    held = None
    if "price_fen" in changes and not approved and (held := await _hold_price(conn, product, int(changes["price_fen"]), now)):
        changes.pop("price_fen")
    if changes:
        await conn.execute(products.update().where(products.c.id == product.id).values(updated_at=now, **changes))
        await next_value(conn, conn.dialect.name, CATALOG_VERSION)
    updated = await get_product(conn, sku)
    await _record_change(conn, now, product, updated)
    return dataclasses.replace(updated, pending_price_fen=held.facts["new_price_fen"]) if held else updated


async def _hold_price(conn: AsyncConnection, old: ProductInfo, new_price: int, now: dt.datetime) -> Any:
    """The approval a price change must wait for (an earlier one still waiting for this product is superseded), or
    None when no rule holds it (or the price does not change)."""
    if new_price == old.price_fen:
        return None
    pct = round((new_price - old.price_fen) * 100 / old.price_fen) if old.price_fen else 100
    summary = f"改价 {old.sku} {old.name}：{format_fen(old.price_fen)} → {format_fen(new_price)}（{pct:+d}%）"
    facts = {
        "change_pct": pct,
        "new_price_fen": new_price,
        "old_price_fen": old.price_fen,
        "category": [old.category] if old.category else [],
    }
    await approvals.withdraw(conn, now, "price_change", old.sku, "被新的改价申请取代")
    return await approvals.request_approval(conn, now, doc_type="price_change", doc_ref=old.sku, summary=summary, facts=facts)


async def _record_change(conn: AsyncConnection, now: dt.datetime, old: ProductInfo, new: ProductInfo) -> None:
    """Who changed a product (its price above all), before → after, in the audit trail — in the change's transaction."""
    before, after = audit.changed(_audited(old), _audited(new))
    if after:
        summary = f"修改商品 {new.sku} {new.name}" + ("（改价）" if "price_fen" in after else "")
        await audit.record(conn, now, action="update", entity="products", entity_id=new.sku, summary=summary, before=before, after=after)


def _audited(p: ProductInfo) -> dict[str, Any]:
    return {
        "name": p.name,
        "unit": p.unit,
        "price_fen": p.price_fen,
        "aliases": list(p.aliases),
        "active": p.active,
        "category": p.category,
        "reorder_point": p.reorder_point,
    }


class SkuTaken(Conflict):
    code = "sku_taken"


@dataclass(frozen=True)
class ProductFields:
    """What staff type for a product on the console (the SKU is fixed once created)."""

    name: str
    unit: str
    price_fen: int
    aliases: tuple[str, ...] = ()
    category: str = ""
    reorder_point: int | None = None

    def problems(self) -> dict[str, str]:
        """What is wrong with these fields, each field's first problem by its form name (empty when all is well),
        so a form can show every mistake of one submission beside its field."""
        name, unit, category = self.name.strip(), self.unit.strip(), self.category.strip()
        found: dict[str, str] = {}
        if not name or len(name) > 128:
            found["name"] = "名称必填，不超过 128 个字 (name)"
        if not unit or len(unit) > 16:
            found["unit"] = "单位必填，不超过 16 个字，如 箱/包/瓶 (unit)"
        if not 0 <= self.price_fen <= MAX_PRICE_FEN:
            found["price"] = "价格不能是负数 (price)"
        if len(category) > 64:
            found["category"] = "分类不超过 64 个字 (category)"
        aliases = [a.strip() for a in self.aliases if a.strip() and a.strip() != name]
        if any(len(a) > 64 for a in aliases) or len(set(aliases)) > 50:
            found["aliases"] = "别名每个不超过 64 个字，最多 50 个 (aliases)"
        if self.reorder_point is not None and not 0 <= self.reorder_point <= MAX_QTY:
            found["reorder_point"] = f"补货点必须是 0 到 {MAX_QTY} 的整数 (reorder_point)"
        return found

    def checked(self) -> ProductFields:
        """These fields trimmed, or InvalidInput naming the (first) field at fault (Chinese message)."""
        for field_name, message in self.problems().items():
            raise InvalidInput(message, field=field_name)
        name = self.name.strip()
        aliases = tuple(dict.fromkeys(a.strip() for a in self.aliases if a.strip() and a.strip() != name))
        return ProductFields(name, self.unit.strip(), self.price_fen, aliases, self.category.strip(), self.reorder_point)


def check_sku(sku: str) -> str:
    sku = sku.strip()
    if not sku or len(sku) > 64 or any(c.isspace() for c in sku):
        raise InvalidInput("商品编码（SKU）必填，不超过 64 个字符，不能有空格 (sku)", field="sku")
    return sku


async def _set_aliases(conn: AsyncConnection, product_id: int, name: str, aliases: tuple[str, ...]) -> None:
    # The name is always one of the names the chat parser knows (as the import does).
    await conn.execute(product_aliases.delete().where(product_aliases.c.product_id == product_id))
    await conn.execute(product_aliases.insert(), [{"product_id": product_id, "alias": a} for a in dict.fromkeys((name, *aliases))])


async def create_product(conn: AsyncConnection, sku: str, fields: ProductFields, now: dt.datetime) -> ProductInfo:
    """A new active product with its aliases (no stock yet: stock comes through receipts or adjustments).
    Raises InvalidInput (field named) or SkuTaken. The chat parser's catalog version moves on."""
    sku = check_sku(sku)
    f = fields.checked()
    if (await conn.execute(sa.select(products.c.id).where(products.c.sku == sku))).first() is not None:
        raise SkuTaken(f"商品编码 {sku} 已存在 (sku taken)", field="sku", sku=sku)
    product_id = int(
        (
            await conn.execute(
                products.insert()
                .values(
                    sku=sku,
                    name=f.name,
                    unit=f.unit,
                    price_fen=f.price_fen,
                    category=f.category,
                    reorder_point=f.reorder_point,
                    active=True,
                    created_at=now,
                    updated_at=now,
                )
                .returning(products.c.id)
            )
        ).scalar_one()
    )
    await _set_aliases(conn, product_id, f.name, f.aliases)
    await next_value(conn, conn.dialect.name, CATALOG_VERSION)
    return await get_product(conn, sku)


async def edit_product(conn: AsyncConnection, product_id: int, fields: ProductFields, now: dt.datetime) -> ProductInfo:
    """Replace a product's name, unit, price, aliases, category and reorder point (None clears it); the chat
    parser's catalog version moves on so the next message sees the new names."""
    f = fields.checked()
    product = await get_product_by_id(conn, product_id)
    held = await _hold_price(conn, product, f.price_fen, now)
    price = product.price_fen if held else f.price_fen
    await conn.execute(
        products.update()
        .where(products.c.id == product_id)
        .values(name=f.name, unit=f.unit, price_fen=price, category=f.category, reorder_point=f.reorder_point, updated_at=now)
    )
    await _set_aliases(conn, product_id, f.name, f.aliases)
    await next_value(conn, conn.dialect.name, CATALOG_VERSION)
    updated = await get_product(conn, product.sku)
    await _record_change(conn, now, product, updated)
    return dataclasses.replace(updated, pending_price_fen=f.price_fen) if held else updated


async def set_active(conn: AsyncConnection, product_id: int, active: bool, now: dt.datetime) -> ProductInfo:
    """Deactivate (no new orders; existing orders and stock are untouched) or reactivate a product."""
    product = await get_product_by_id(conn, product_id)
    if product.active != active:
        await conn.execute(products.update().where(products.c.id == product_id).values(active=active, updated_at=now))
        await next_value(conn, conn.dialect.name, CATALOG_VERSION)
    updated = await get_product(conn, product.sku)
    await _record_change(conn, now, product, updated)
    return updated


async def categories_of(conn: AsyncConnection, skus: list[str]) -> list[str]:
    """The categories of these products (an order's lines, for approval rules on categories)."""
    if not skus:
        return []
    rows = await conn.execute(sa.select(products.c.category).where(products.c.sku.in_(sorted(set(skus)))))
    return sorted({c for (c,) in rows if c})


async def get_product_by_id(conn: AsyncConnection, product_id: int) -> ProductInfo:
    row = (await conn.execute(sa.select(products.c.sku).where(products.c.id == product_id))).first()
    if row is None:
        raise ProductNotFound(f"没有这个商品 (no product #{product_id})", product_id=product_id)
    return await get_product(conn, row.sku)


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


async def export_records(conn: AsyncConnection, dialect: str) -> list[list[object]]:
    """Every product as a row of :data:`fulfillment.catalog.files.EXPORT_COLUMNS`: price in 元 (text, ``36.00``)
    beside price_fen, current on-hand stock, reorder point, category."""
    records: list[list[object]] = []
    for p in await list_products(conn, active_only=False):
        level = await inventory.level(conn, dialect, p.id)
        aliases = "|".join(a for a in p.aliases if a != p.name)
        reorder = "" if p.reorder_point is None else p.reorder_point
        price = f"{p.price_fen // 100}.{p.price_fen % 100:02d}"
        records.append([p.sku, p.name, aliases, p.unit, price, p.price_fen, level.on_hand, reorder, p.category])
    return records


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


def merge_items(items: list[tuple[str, int]]) -> dict[str, int]:
    """``[(sku, qty)]`` checked (1..MAX_LINES lines, valid quantities) with the same SKU twice summed, in first-seen order."""
    if not items:
        raise InvalidInput("订单至少要有一件商品 (an order needs at least one line)", field="lines")
    if len(items) > MAX_LINES:
        raise InvalidInput(f"一张订单最多 {MAX_LINES} 行 (at most {MAX_LINES} lines)", field="lines")
    merged: dict[str, int] = {}
    for sku, qty in items:
        merged[sku] = validate_qty(merged.get(sku, 0) + validate_qty(qty))
    return merged


async def price_items(conn: AsyncConnection, items: list[tuple[str, int]]) -> list[PricedLine]:
    """Resolve ``[(sku, qty)]`` against active products; the same SKU twice is summed. Errors name the SKU."""
    merged = merge_items(items)
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
