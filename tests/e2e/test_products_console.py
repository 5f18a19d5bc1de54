"""Product management, low stock and the customer picker in headless Chromium (issue 15 items 2, 6, 9).

Operations creates a product priced 36.00 元 (a 36.001 first: refused beside the field, input kept), edits it,
adjusts its stock with a reason and sees the movement; imports a GBK CSV and an xlsx, and sees the per-line report
of a bad file (nothing imported). A backordered product without a reorder point shows on the stock page and the
dashboard's low-stock list. Finance picks a customer by name in the payment form. Screenshots at 1280 and 768 px
in var/screenshots."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from openpyxl import Workbook
from playwright.async_api import Page, async_playwright, expect

from fulfillment.catalog.models import products
from fulfillment.inventory import services as inventory
from fulfillment.inventory.models import stock_movements
from fulfillment.orders import services as orders
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers
from scrm.crm.staff import accounts as staff_accounts
from tests.conftest import make_customer
from tests.e2e.conftest import SCREENSHOTS, sign_in
from tests.e2e.test_sandbox_page import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.scrm.test_staff import PASSWORD

pytestmark = pytest.mark.browser
WIDTHS = (1280, 768)


async def shots(page: Page, name: str) -> None:
    """The page at 1280 and 768 px wide."""
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for r in rows:
        sheet.append(r)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_operations_manage_products_stock_and_imports(server: str, catalog: Runtime) -> None:
    require_chromium()
    await staff_accounts.create_staff(catalog, "ops1", PASSWORD, ["operations"], display_name="仓库")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await sign_in(page, server, "ops1", "/console/products")
            await expect(page.locator("h1")).to_have_text("商品")
            await expect(page.locator("header nav a.active")).to_have_text("商品")
            await expect(page.locator("tbody")).to_contain_text("WATER-550")
            await shots(page, "products-list")

            # create: 36.001 is refused beside the price field, what was typed stays; 36.00 is saved as ¥36.00
            await page.get_by_role("link", name="新建商品").click()
            await expect(page.locator("h1")).to_have_text("新建商品")
            await page.fill('input[name="sku"]', "MILK-250")
            await page.fill('input[name="name"]', "纯牛奶 250ml×24")
            await page.fill('input[name="unit"]', "箱")
            await page.fill('input[name="price"]', "36.001")
            await page.fill('input[name="aliases"]', "牛奶、纯奶")
            await page.fill('input[name="category"]', "乳品")
            await page.get_by_role("button", name="新建").click()
            await expect(page.locator("#err-price")).to_contain_text("最多两位小数")
            await expect(page.locator('input[name="name"]')).to_have_value("纯牛奶 250ml×24")
            await shots(page, "product-new-error")
            await page.fill('input[name="price"]', "36.00")
            await page.get_by_role("button", name="新建").click()
            await expect(page.locator(".flash-ok")).to_contain_text("已新建商品 纯牛奶 250ml×24（MILK-250）")
            await expect(page.locator("dl.summary")).to_contain_text("¥36.00")

            # edit: price and reorder point
            await page.fill('input[name="price"]', "38.50")
            await page.fill('input[name="reorder_point"]', "6")
            await page.get_by_role("button", name="保存").click()
            await expect(page.locator(".flash-ok")).to_contain_text("售价 ¥38.50")
            await expect(page.locator('input[name="reorder_point"]')).to_have_value("6")

            # stock: a reason is required; +24 with a reason lands in the ledger shown below
            await page.fill('input[name="qty"]', "24")
            await page.fill('input[name="reason"]', "首批到货")
            await page.get_by_role("button", name="调整").click()
            await expect(page.locator(".flash-ok")).to_contain_text("库存增加 24箱，在库 24箱（原因：首批到货）")
            await expect(page.locator("table").last).to_contain_text("首批到货")
            await shots(page, "product-detail")

            # import: a GBK CSV with prices in 元, an xlsx, then a bad file → the per-line report, nothing imported
            await page.goto(server + "/console/products/import")
            gbk = "sku,name,aliases,unit,price,stock,reorder_point,category\nTEA-500,绿茶 500ml×15,绿茶|冰绿茶,箱,45.00,30,5,饮料\n"
            await page.set_input_files(
                'input[name="file"]', files=[{"name": "目录.csv", "mimeType": "text/csv", "buffer": gbk.encode("gbk")}]
            )
            await page.get_by_role("button", name="导入").click()
            await expect(page.locator(".flash-ok")).to_contain_text("新建 1 个")
            await expect(page.locator(".flash-ok")).to_contain_text("GB18030 CSV")
            sheet = xlsx(
                [
                    ["编码", "名称", "别名", "单位", "价格", "库存"],
                    ["JUICE-1", "橙汁 1L", "橙汁", "瓶", 8.5, 48],
                    ["TEA-500", "绿茶 500ml×15", "绿茶", "箱", "46.00", ""],
                ]
            )
            await page.set_input_files(
                'input[name="file"]',
                files=[
                    {
                        "name": "catalog.xlsx",
                        "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        "buffer": sheet,
                    }
                ],
            )
            await page.get_by_role("button", name="导入").click()
            await expect(page.locator(".flash-ok")).to_contain_text("新建 1 个，更新 1 个")
            bad = "sku,name,aliases,unit,price,stock\nCOFFEE-1,咖啡,,盒,36.001,5\nCOFFEE-2,,,盒,20,5\nCOFFEE-3,拿铁,,盒,-2,1\n"
            await page.set_input_files(
                'input[name="file"]', files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode("gbk")}]
            )
            await page.get_by_role("button", name="导入").click()
            await expect(page.locator(".flash-err")).to_contain_text("没有导入任何商品")
            report = page.locator("tbody tr")
            await expect(report).to_have_count(3)
            await expect(report.nth(0)).to_contain_text("2")
            await expect(report.nth(0)).to_contain_text("最多两位小数")
            await expect(report.nth(1)).to_contain_text("名称")
            await expect(report.nth(2)).to_contain_text("负数")
            await shots(page, "product-import-errors")

            await page.goto(server + "/console/products?q=绿茶")
            await expect(page.locator("tbody tr")).to_have_count(1)
            await expect(page.locator("tbody")).to_contain_text("¥46.00")
            assert violations == []
        finally:
            await browser.close()
    async with catalog.db.read() as conn:
        milk = (await conn.execute(sa.select(products).where(products.c.sku == "MILK-250"))).one()
        moves = (await conn.execute(sa.select(stock_movements.c.reference).where(stock_movements.c.product_id == milk.id))).scalars().all()
        coffee = (await conn.execute(sa.select(products.c.id).where(products.c.sku.like("COFFEE%")))).all()
        assert await inventory.reconcile(conn) == []
    assert (milk.price_fen, milk.reorder_point, milk.category) == (3850, 6, "乳品")
    assert len(moves) == 1 and moves[0].startswith("首批到货") and coffee == []


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_backordered_product_without_reorder_point_shows_as_low(server: str, catalog: Runtime) -> None:
    require_chromium()
    await staff_accounts.create_staff(catalog, "ops2", PASSWORD, ["operations"])
    cid = await make_customer(catalog, "wmOilFan")
    await orders.create_order(catalog, customer_id=cid, items=[("OIL-5L", 14)], source="api", confirm=True)  # 10 on hand: 4 short
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            await sign_in(page, server, "ops2", "/console/stock")
            await expect(page.locator("h1")).to_have_text("库存")
            oil = page.locator("tr.low", has=page.locator("td", has_text="OIL-5L"))
            await expect(oil).to_contain_text("缺货")
            await expect(oil.locator("td").nth(5)).to_have_text("4")  # 缺货待补
            await expect(oil.locator("td").nth(6)).to_have_text("—")  # no reorder point
            await shots(page, "stock-backordered")
            await page.goto(server + "/console/dashboard")
            low = page.locator("tr.low", has=page.locator("td", has_text="OIL-5L"))
            await expect(low).to_contain_text("未设置")
            await expect(low.locator("td").nth(3)).to_have_text("4")
            await shots(page, "dashboard-low-stock")
        finally:
            await browser.close()


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_finance_picks_a_customer_by_name(server: str, catalog: Runtime) -> None:
    require_chromium()
    await staff_accounts.create_staff(catalog, "fin1", PASSWORD, ["finance"])
    wang = await make_customer(catalog, "wmPickWang")
    other = await make_customer(catalog, "wmPickWang2")
    async with catalog.db.write() as conn:
        await conn.execute(customers.update().where(customers.c.id == wang).values(name="王小明"))
        await conn.execute(customers.update().where(customers.c.id == other).values(name="王大明"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await sign_in(page, server, "fin1", "/console/finance/payments")
            await expect(page.locator("h1")).to_have_text("收款")
            field = page.locator('input[name="customer"]')
            await field.press_sequentially("王", delay=30)
            choices = page.locator("ul.picker-list button.picker-choice")
            await expect(choices).to_have_count(2)
            await field.press_sequentially("小明", delay=30)
            await expect(choices).to_have_count(1)
            await expect(choices.first).to_contain_text(f"王小明 · wmPickWang #{wang}")
            await shots(page, "customer-picker")
            await choices.first.click()
            await expect(field).to_have_value(f"王小明 #{wang}")
            await expect(page.locator("ul.picker-list")).to_be_hidden()
            await page.fill('input[name="amount"]', "88.00")
            await page.fill('input[name="reference"]', "PICK-001")
            await page.get_by_role("button", name="登记收款").click()
            await expect(page.locator(".flash-ok")).to_contain_text("已登记 ¥88.00")
            await expect(page.locator("tbody").first).to_contain_text("王小明")
            assert violations == []
        finally:
            await browser.close()
