"""Product management in the console over HTTP (real app, real SQLite and PostgreSQL): create with a price in 元,
edit, deactivate, stock adjustment with a reason through the ledger, all-or-nothing import of GBK CSV and xlsx,
xlsx export; and low stock for out-of-stock / backordered products without a reorder point (issue 15 items 2, 6)."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import Workbook, load_workbook

from bots.dialogue.catalog_cache import parser_cache
from fulfillment.catalog.files import CatalogFileError, decode_csv, read_catalog_file
from fulfillment.catalog.models import product_aliases, products
from fulfillment.catalog.services import CATALOG_VERSION
from fulfillment.inventory import services as inventory
from fulfillment.inventory.models import stock_movements
from fulfillment.orders import services as orders
from fulfillment.reports.queries import business_dashboard
from fulfillment.sequences import current_value
from scrm.app.webapp import create_app
from scrm.core.outbox import outbox
from scrm.core.runtime import Runtime
from tests.conftest import make_customer

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(catalog.settings, runtime=catalog))) as c:
        yield c


async def login(client: TestClient, rt: Runtime) -> str:
    resp = await client.post("/console/login", data={"username": "admin", "password": rt.settings.admin_token.get()}, allow_redirects=False)
    assert resp.status == 303
    page = await client.get("/console/products", headers=HTML)
    assert page.status == 200
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


async def product_row(rt: Runtime, sku: str) -> sa.Row:
    async with rt.db.read() as conn:
        return (await conn.execute(sa.select(products).where(products.c.sku == sku))).one()


def field_error(html: str, name: str) -> str:
    m = re.search(rf'<span class="field-error" id="err-{name}" role="alert">(.*?)</span>', html)
    return m.group(1) if m else ""


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for r in rows:
        sheet.append(r)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# ---- files ------------------------------------------------------------------------------------------------
def test_encodings_are_detected_utf8_first_then_gb18030() -> None:
    text = "sku,name,aliases,unit,price,stock\nT1,特仑苏纯牛奶,牛奶,箱,66.00,5\n"
    assert decode_csv(text.encode("utf-8")) == (text, "UTF-8")
    assert decode_csv(b"\xef\xbb\xbf" + text.encode("utf-8")) == (text, "UTF-8")
    assert decode_csv(text.encode("gbk")) == (text, "GB18030")
    rows, errors, kind = read_catalog_file("目录.csv", text.encode("gbk"))
    assert kind == "GB18030 CSV" and not errors and rows[0].name == "特仑苏纯牛奶" and rows[0].price_fen == 6600
    with pytest.raises(CatalogFileError, match="不是有效的 xlsx"):
        read_catalog_file("x.xlsx", b"PK\x03\x04garbage")
    with pytest.raises(CatalogFileError, match="不是 CSV 或 xlsx"):  # not read as GB18030 (表头缺少列)
        read_catalog_file("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(CatalogFileError, match="UTF-16"):
        read_catalog_file("目录.csv", "sku,name\n".encode("utf-16"))


def test_price_in_yuan_refuses_three_decimals_negative_and_words() -> None:
    head = "sku,name,aliases,unit,price,price_fen\n"
    body = "A,甲,,箱,36.00,\nB,乙,,箱,36.001,\nC,丙,,箱,-1,\nD,丁,,箱,三十,\nE,戊,,箱,,36.00\nF,己,,箱,36.5,3600\nG,庚,,箱,1.5,150\n"
    rows, errors = read_catalog_file("p.csv", (head + body).encode())[:2]
    assert [(r.sku, r.price_fen) for r in rows] == [("A", 3600), ("G", 150)]
    assert [line for line, _ in errors] == [3, 4, 5, 6, 7]
    assert "最多两位小数" in errors[0][1] and "负数" in errors[1][1] and "金额" in errors[2][1]
    assert "price_fen" in errors[3][1] and "不一致" in errors[4][1]


def test_xlsx_numbers_read_as_typed() -> None:
    raw = xlsx_bytes(
        [
            ["编码", "名称", "别名", "单位", "价格", "库存"],
            ["X1", "洗衣液", "蓝月亮|洗衣液2kg", "瓶", 36.1, 12],
            ["X2", "纸巾", "", "提", 25, None],
        ]
    )
    rows, errors, kind = read_catalog_file("sheet.xlsx", raw)
    assert kind == "xlsx" and not errors
    assert [(r.sku, r.price_fen, r.stock, r.aliases) for r in rows] == [("X1", 3610, 12, ("蓝月亮", "洗衣液2kg")), ("X2", 2500, None, ())]


# ---- pages ------------------------------------------------------------------------------------------------
async def test_create_edit_deactivate_with_price_in_yuan(client: TestClient, catalog: Runtime) -> None:
    token = await login(client, catalog)
    async with catalog.db.read() as conn:
        version = await current_value(conn, CATALOG_VERSION)
    bad = await client.post(
        "/console/products/new",
        data={"csrf_token": token, "sku": "MILK-1", "name": "纯牛奶", "unit": "箱", "price": "36.001", "aliases": "牛奶"},
        headers=HTML,
    )
    html = await bad.text()
    assert bad.status == 400 and "最多两位小数" in field_error(html, "price")
    assert 'value="36.001"' in html and 'value="纯牛奶"' in html  # what was typed stays
    neg = await client.post(
        "/console/products/new", data={"csrf_token": token, "sku": "MILK-1", "name": "纯牛奶", "unit": "箱", "price": "-3"}
    )
    assert neg.status == 400 and "负数" in field_error(await neg.text(), "price")
    ok = await client.post(
        "/console/products/new",
        data={
            "csrf_token": token,
            "sku": "MILK-1",
            "name": "纯牛奶",
            "unit": "箱",
            "price": "36.00",
            "aliases": "牛奶、鲜奶",
            "category": "乳品",
        },
        allow_redirects=False,
    )
    assert ok.status == 303
    row = await product_row(catalog, "MILK-1")
    assert row.price_fen == 3600 and row.category == "乳品" and row.active
    dup = await client.post("/console/products/new", data={"csrf_token": token, "sku": "MILK-1", "name": "x", "unit": "箱", "price": "1"})
    assert dup.status == 409 and "已存在" in field_error(await dup.text(), "sku")
    # the chat parser sees the new product and its aliases at once
    snapshot = await parser_cache(catalog).get(catalog)
    assert "MILK-1" in snapshot.products and set(snapshot.products["MILK-1"].aliases) == {"纯牛奶", "牛奶", "鲜奶"}

    page = await client.get(ok.headers["Location"], headers=HTML)
    assert page.status == 200 and 'value="36.00"' in await page.text()
    edit = await client.post(
        f"/console/products/{row.id}",
        data={
            "csrf_token": token,
            "name": "纯牛奶 250ml×12",
            "unit": "提",
            "price": "39.9",
            "aliases": "牛奶",
            "category": "乳品",
            "reorder_point": "5",
        },
        allow_redirects=False,
    )
    assert edit.status == 303
    row = await product_row(catalog, "MILK-1")
    assert (row.name, row.unit, row.price_fen, row.reorder_point) == ("纯牛奶 250ml×12", "提", 3990, 5)
    async with catalog.db.read() as conn:
        aliases = set((await conn.execute(sa.select(product_aliases.c.alias).where(product_aliases.c.product_id == row.id))).scalars())
        assert await current_value(conn, CATALOG_VERSION) > version
    assert aliases == {"纯牛奶 250ml×12", "牛奶"}
    off = await client.post(f"/console/products/{row.id}/active", data={"csrf_token": token, "active": "0"}, allow_redirects=False)
    assert off.status == 303 and not (await product_row(catalog, "MILK-1")).active
    assert "MILK-1" not in (await parser_cache(catalog).get(catalog)).products
    listed = await (await client.get("/console/products?q=牛奶&status=inactive", headers=HTML)).text()
    assert "MILK-1" in listed and "WATER-550" not in listed
    await client.post(f"/console/products/{row.id}/active", data={"csrf_token": token, "active": "1"})
    assert (await product_row(catalog, "MILK-1")).active
    by_category = await (await client.get("/console/products?category=乳品", headers=HTML)).text()
    assert "MILK-1" in by_category and "WATER-550" not in by_category


async def test_an_empty_new_product_form_shows_every_error_beside_its_field(client: TestClient, catalog: Runtime) -> None:
    token = await login(client, catalog)
    empty = await client.post(
        "/console/products/new",
        data={"csrf_token": token, "sku": "", "name": "", "unit": "", "price": "", "reorder_point": "x", "aliases": "水"},
        headers=HTML,
    )
    html = await empty.text()
    assert empty.status == 400
    errors = {name: field_error(html, name) for name in ("sku", "name", "unit", "price", "reorder_point")}
    assert "必填" in errors["sku"] and "必填" in errors["name"] and "必填" in errors["unit"], errors
    assert errors["price"] == "价格必填：按元填写，如 36.00" and "整数" in errors["reorder_point"], errors
    assert "填的是" not in html and "''" not in html and "(sku)" not in html  # no empty value quoted, no English gloss
    assert 'value="水"' in html and 'value="x"' in html  # what was typed stays
    one_bad = await client.post(
        "/console/products/new", data={"csrf_token": token, "sku": "TEA-1", "name": "绿茶", "unit": "盒", "price": "abc"}
    )
    assert one_bad.status == 400 and field_error(await one_bad.text(), "price").endswith("填的是“abc”")


async def test_stock_adjustment_needs_a_reason_and_goes_through_the_ledger(client: TestClient, catalog: Runtime) -> None:
    token = await login(client, catalog)
    water = await product_row(catalog, "WATER-550")  # 120 on hand
    no_reason = await client.post(
        f"/console/products/{water.id}/stock", data={"csrf_token": token, "mode": "delta", "qty": "-3", "reason": " "}
    )
    html = await no_reason.text()
    assert no_reason.status == 400 and "原因" in field_error(html, "reason") and 'value="-3"' in html
    bad_qty = await client.post(
        f"/console/products/{water.id}/stock", data={"csrf_token": token, "mode": "delta", "qty": "1.5", "reason": "破损"}
    )
    assert bad_qty.status == 400 and "整数" in field_error(await bad_qty.text(), "qty")
    ok = await client.post(
        f"/console/products/{water.id}/stock",
        data={"csrf_token": token, "mode": "delta", "qty": "-3", "reason": "破损报损"},
        allow_redirects=False,
    )
    assert ok.status == 303
    counted = await client.post(
        f"/console/products/{water.id}/stock",
        data={"csrf_token": token, "mode": "count", "qty": "100", "reason": "月末盘点"},
        allow_redirects=False,
    )
    assert counted.status == 303
    cid = await make_customer(catalog, "wmAdjust")
    await orders.create_order(catalog, customer_id=cid, items=[("WATER-550", 90)], source="api", confirm=True)
    below = await client.post(
        f"/console/products/{water.id}/stock", data={"csrf_token": token, "mode": "delta", "qty": "-20", "reason": "报损"}
    )
    assert below.status == 409 and "已分配" in field_error(await below.text(), "qty")
    async with catalog.db.read() as conn:
        level = await inventory.level(conn, catalog.db.dialect, water.id)
        moves = (
            await conn.execute(
                sa.select(stock_movements.c.kind, stock_movements.c.on_hand_delta, stock_movements.c.reference)
                .where(stock_movements.c.product_id == water.id, stock_movements.c.kind == "adjustment")
                .order_by(stock_movements.c.id)
            )
        ).all()
        assert await inventory.reconcile(conn) == []
    assert level.on_hand == 100 and level.allocated == 90
    assert [(m.on_hand_delta, m.reference.split("（")[0]) for m in moves[-2:]] == [(-3, "破损报损"), (-17, "月末盘点")]
    page = await (await client.get(f"/console/products/{water.id}", headers=HTML)).text()
    assert "破损报损" in page and "月末盘点" in page


async def test_import_is_all_or_nothing_and_reads_gbk_and_xlsx(client: TestClient, catalog: Runtime) -> None:
    token = await login(client, catalog)
    good = "sku,name,aliases,unit,price,stock,reorder_point,category\nTEA-1,绿茶 500ml×15,绿茶|康师傅绿茶,箱,45.00,30,5,饮料\n"
    bad = good + "TEA-2,红茶,,箱,45.001,10,,饮料\nTEA-3,,,箱,1,1,,\n"

    def upload(name: str, raw: bytes) -> FormData:
        form = FormData()
        form.add_field("csrf_token", token)
        form.add_field("file", raw, filename=name, content_type="application/octet-stream")
        return form

    refused = await client.post("/console/products/import", data=upload("目录.csv", bad.encode("gbk")), headers=HTML)
    html = await refused.text()
    assert refused.status == 400 and "没有导入任何商品" in html and "GB18030 CSV" in html
    assert re.search(r'<td class="num">3</td><td class="wrap-cell">[^<]*最多两位小数', html)
    assert re.search(r'<td class="num">4</td><td class="wrap-cell">[^<]*name（名称）必填', html)
    async with catalog.db.read() as conn:
        assert (await conn.execute(sa.select(products.c.id).where(products.c.sku == "TEA-1"))).first() is None  # nothing imported

    done = await client.post("/console/products/import", data=upload("目录.csv", good.encode("gbk")), headers=HTML)
    assert done.status == 200 and "新建 1 个" in await done.text()
    tea = await product_row(catalog, "TEA-1")
    assert (tea.name, tea.price_fen, tea.reorder_point, tea.category) == ("绿茶 500ml×15", 4500, 5, "饮料")

    sheet = xlsx_bytes(
        [
            ["sku", "name", "aliases", "unit", "price", "stock"],
            ["TEA-1", "绿茶 500ml×15", "绿茶", "箱", "48.50", 40],
            ["JUICE-1", "橙汁", "", "瓶", 8, 24],
        ]
    )
    xl = await client.post("/console/products/import", data=upload("catalog.xlsx", sheet), headers=HTML)
    assert xl.status == 200 and "新建 1 个，更新 1 个" in await xl.text()
    assert (await product_row(catalog, "TEA-1")).price_fen == 4850 and (await product_row(catalog, "JUICE-1")).price_fen == 800

    exported = await client.get("/console/products/export.xlsx")
    assert exported.status == 200 and "spreadsheetml" in exported.headers["Content-Type"]
    book = load_workbook(io.BytesIO(await exported.read()), read_only=True)
    table = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    assert table[0][:6] == ("sku", "name", "aliases", "unit", "price", "price_fen")
    assert ("TEA-1", "绿茶 500ml×15", "绿茶", "箱", "48.50", 4850, 40, 5, "饮料") in table
    rows, errors, _ = read_catalog_file("back.xlsx", await exported.read())  # reads back as an import
    assert not errors and len(rows) == len(table) - 1


async def test_out_of_stock_and_backordered_show_without_a_reorder_point(client: TestClient, catalog: Runtime) -> None:
    oil = await product_row(catalog, "OIL-5L")
    assert oil.reorder_point is None
    cid = await make_customer(catalog, "wmBackorder")
    await orders.create_order(catalog, customer_id=cid, items=[("OIL-5L", 13)], source="api", confirm=True)  # 10 on hand → 3 short
    async with catalog.db.read() as conn:
        alerts = [r.payload for r in await conn.execute(sa.select(outbox.c.payload).where(outbox.c.topic == "stock.low"))]
    assert any(a["product_id"] == oil.id and a["reorder_point"] is None and a["backordered"] == 3 for a in alerts)
    board = await business_dashboard(catalog)
    low = {r.sku: r for r in board.low_stock}
    assert "OIL-5L" in low and low["OIL-5L"].available == 0 and low["OIL-5L"].backordered == 3 and low["OIL-5L"].reorder_point is None
    await login(client, catalog)
    stock_page = await (await client.get("/console/stock", headers=HTML)).text()
    assert '<tr class="low"><td>OIL-5L</td>' in stock_page
    dash = await (await client.get("/console/dashboard", headers=HTML)).text()
    assert "OIL-5L" in dash.split("<h2>低库存</h2>")[1]


async def test_selling_the_last_unit_alerts_once_without_a_reorder_point(catalog: Runtime) -> None:
    from fulfillment.orders import notices

    oil = await product_row(catalog, "OIL-5L")  # 10 on hand, no reorder point
    cid = await make_customer(catalog, "wmLastOil")
    await orders.create_order(catalog, customer_id=cid, items=[("OIL-5L", 10)], source="api", confirm=True)  # exactly all of it
    await orders.create_order(catalog, customer_id=cid, items=[("OIL-5L", 2)], source="api", confirm=True)  # same day: no second alert
    async with catalog.db.read() as conn:
        alerts = [r.payload for r in await conn.execute(sa.select(outbox.c.payload).where(outbox.c.topic == "stock.low"))]
    assert alerts == [{"product_id": oil.id, "available": 0, "reorder_point": None, "backordered": 0}]
    # the staff alert's text when no reorder point is set (bots.notices.orders.on_stock_low picks it)
    text = notices.render("stock_out", name="花生油 5L", sku="OIL-5L", unit="桶", available=0, backordered=0)
    assert text.startswith("【缺货预警】花生油 5L（OIL-5L）可用库存 0桶")


async def test_a_deactivated_product_below_its_reorder_point_is_not_low_anywhere(client: TestClient, catalog: Runtime) -> None:
    """One rule (catalog.queries.needs_stock) on the stock page, the product page and the dashboard: a product taken
    off sale (停用) with no customer waiting for it does not ask for stock, even at or below its reorder point."""
    token = await login(client, catalog)
    water = await product_row(catalog, "WATER-550")  # 120 on hand
    async with catalog.db.write() as conn:
        await conn.execute(products.update().where(products.c.id == water.id).values(reorder_point=500))
    stock_page = await (await client.get("/console/stock", headers=HTML)).text()
    assert '<tr class="low"><td>WATER-550</td>' in stock_page  # in sale and below the point: low
    off = await client.post(f"/console/products/{water.id}/active", data={"csrf_token": token, "active": "0"}, allow_redirects=False)
    assert off.status == 303
    stock_page = await (await client.get("/console/stock", headers=HTML)).text()
    row = stock_page.split("<td>WATER-550</td>")[1].split("</tr>")[0]
    assert '<tr class="inactive"><td>WATER-550</td>' in stock_page and "低库存" not in row and "缺货" not in row
    detail = await (await client.get(f"/console/products/{water.id}", headers=HTML)).text()
    assert "请补货" not in detail
    board = await business_dashboard(catalog)
    assert "WATER-550" not in {r.sku for r in board.low_stock}
