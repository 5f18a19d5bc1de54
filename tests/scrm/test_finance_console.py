"""The finance console over HTTP (real app, real SQLite and PostgreSQL): aging + CSV, invoices and voiding,
recording payments, statement upload and its report, customer accounts, credit holds — signed in, CSRF-checked,
escaped."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from fulfillment.billing import invoices, services
from fulfillment.orders import services as orders
from fulfillment.orders.models import OrderStatus
from scrm.app.webapp import create_app
from scrm.console import finance
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers
from tests.conftest import make_customer
from tests.fulfillment.test_billing import check_invariants, ship_and_invoice

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    app = create_app(catalog.settings, runtime=catalog)
    finance.setup_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c


async def login(client: TestClient, rt: Runtime) -> str:
    resp = await client.post(
        "/console/login",
        data={"username": "admin", "password": rt.settings.admin_token.get(), "next": "/console/finance/receivables"},
        allow_redirects=False,
    )
    assert resp.status == 303
    page = await client.get("/console/finance/receivables", headers=HTML)
    match = CSRF.search(await page.text())
    assert page.status == 200 and match
    return match.group(1)


def flash(text: str) -> tuple[str, str] | None:
    m = re.search(r'<div class="flash flash-(ok|warn|err)" role="status">(.*?)</div>', text)
    return (m.group(1), html.unescape(m.group(2))) if m else None


async def post(client: TestClient, path: str, data: dict[str, str] | aiohttp.FormData) -> tuple[str, str, tuple[str, str] | None]:
    """POST a form like a browser: follow the 303 and read the flash on the page it lands on."""
    resp = await client.post(path, data=data, headers=HTML)
    text = await resp.text()
    return str(resp.url.path), text, flash(text)


async def named_customer(rt: Runtime, external: str, name: str) -> int:
    cid = await make_customer(rt, external)
    async with rt.db.write() as conn:
        await conn.execute(customers.update().where(customers.c.id == cid).values(name=name))
    return cid


async def test_every_finance_route_needs_a_session(client: TestClient) -> None:
    checked = 0
    for method, path, _ in finance.ROUTES:
        concrete = path.replace("{number}", "INV100001").replace("{id}", "1").replace("{customer_id}", "1")
        resp = await client.request(method, concrete, allow_redirects=False)
        assert resp.status == 401, (method, path)
        checked += 1
    assert checked == len(finance.ROUTES) >= 15
    resp = await client.get("/console/finance/receivables", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login?next=")


async def test_receivables_page_csv_and_escaping(client: TestClient, catalog: Runtime) -> None:
    rt = catalog
    cid = await named_customer(rt, "wmFin", "<script>alert(1)</script>张三")
    await ship_and_invoice(rt, cid, [("WATER-550", 2)], salesperson="sales<01>")
    token = await login(client, rt)
    text = await (await client.get("/console/finance/receivables", headers=HTML)).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;张三" in text and "<script>alert" not in text
    assert "¥72.00" in text and "逾期1–30天" in text and 'href="/console/finance/aging.csv?by=customer"' in text
    assert 'class="active">财务</a>' in text  # the console nav marks 财务
    by_sales = await (await client.get("/console/finance/receivables?by=salesperson", headers=HTML)).text()
    assert "sales&lt;01&gt;" in by_sales
    csv_resp = await client.get("/console/finance/aging.csv?by=customer")
    csv_text = await csv_resp.text()
    assert csv_resp.status == 200 and csv_resp.headers["Content-Type"].startswith("text/csv")
    assert "72.00" in csv_text and "<script>alert(1)</script>张三" in csv_text  # CSV is data, not HTML
    path, _, msg = await post(client, "/console/finance/dunning/run", {"csrf_token": token})
    assert path == "/console/finance/receivables" and msg is not None and msg[0] == "ok" and "催款" in msg[1]


async def test_invoice_detail_and_void(client: TestClient, catalog: Runtime) -> None:
    rt = catalog
    cid = await named_customer(rt, "wmFinVoid", "李四")
    inv = await ship_and_invoice(rt, cid, [("COLA-330", 1)])
    token = await login(client, rt)
    listing = await (await client.get("/console/finance/invoices?status=open", headers=HTML)).text()
    assert inv.number in listing and "未付款" in listing and "¥52.80" in listing
    detail = await (await client.get(f"/console/finance/invoices/{inv.number}", headers=HTML)).text()
    assert "可乐 330ml×24" in detail and "作废发票" in detail
    missing = await client.get("/console/finance/invoices/INV999999", headers=HTML)
    assert missing.status == 404 and "没有找到发票" in await missing.text()

    forged = await client.post(f"/console/finance/invoices/{inv.number}/void", data={"reason": "x"}, headers=HTML)
    assert forged.status == 403  # no CSRF token
    _, _, msg = await post(client, f"/console/finance/invoices/{inv.number}/void", {"csrf_token": token, "reason": " "})
    assert msg is not None and msg[0] == "err" and "作废原因" in msg[1]
    assert (await invoices.get_invoice(rt, inv.number)).status == "open"
    path, text, msg = await post(client, f"/console/finance/invoices/{inv.number}/void", {"csrf_token": token, "reason": "<b>退货</b>"})
    assert path == f"/console/finance/invoices/{inv.number}" and msg == ("ok", f"发票 {inv.number} 已作废")
    assert "&lt;b&gt;退货&lt;/b&gt;" in text and "已作废" in text and "作废发票" not in text


async def test_record_payment_and_upload_statement(client: TestClient, catalog: Runtime) -> None:
    rt = catalog
    cid = await named_customer(rt, "wmFinPay", "王五")
    inv = await ship_and_invoice(rt, cid, [("WATER-550", 1)])
    token = await login(client, rt)
    form = {"csrf_token": token, "customer": "wmFinPay", "amount": "40.00", "reference": "CON-1", "method": "cash", "invoices": inv.number}
    path, text, msg = await post(client, "/console/finance/payments", form)
    assert path == "/console/finance/payments" and msg == ("ok", f"已登记 ¥40.00：冲销 {inv.number} ¥36.00；转预收 ¥4.00")
    assert "CON-1" in text and "现金" in text
    _, _, msg = await post(client, "/console/finance/payments", form)
    assert msg == ("ok", "流水号 CON-1 已登记过，未重复入账")
    refused = [
        ({"amount": "-5"}, "大于 0"),
        ({"amount": "abc"}, "金额"),
        ({"customer": "wmNobody"}, "没有这个客户"),
        ({"customer": "#999999"}, "没有客户"),
        ({"reference": ""}, "流水号"),
        ({"received_on": "2026-13-01"}, "日期"),
    ]
    for bad, needle in refused:
        _, _, msg = await post(client, "/console/finance/payments", {**form, "reference": "CON-2", **bad})
        assert msg is not None and msg[0] == "err" and needle in msg[1], (bad, msg)
    assert (await services.get_account(rt, cid)).credit_fen == 400

    statement = aiohttp.FormData()
    statement.add_field("csrf_token", token)
    body = "date,reference,amount,customer,memo\n2026-11-22,<b>X1</b>,10.00,wmFinPay,\n2026-11-22,X2,0,wmFinPay,\n"
    statement.add_field("file", body.encode(), filename="nov-1.csv", content_type="text/csv")
    path, text, msg = await post(client, "/console/finance/imports", statement)
    assert re.fullmatch(r"/console/finance/imports/\d+", path), path
    # a row failed: amber, not a green 导入完成
    assert msg == ("warn", "部分导入：1 行有问题未登记，见下方明细（登记 1 笔，重复 0，冲突 0，错误 1）")
    assert "&lt;b&gt;X1&lt;/b&gt;" in text and "<b>X1" not in text and "nov-1.csv" in text and "大于 0" in text
    again = aiohttp.FormData()
    again.add_field("csrf_token", token)
    again.add_field("file", body.encode(), filename="nov.csv", content_type="text/csv")
    _, text, msg = await post(client, "/console/finance/imports", again)
    assert msg == ("warn", "没有登记任何款项：1 行有问题，见下方明细（登记 0 笔，重复 1，冲突 0，错误 1）") and "之前已导入过" in text
    clean = aiohttp.FormData()
    clean.add_field("csrf_token", token)
    clean_csv = b"date,reference,amount,customer,memo\n2026-11-23,X3,5.00,wmFinPay,\n"
    clean.add_field("file", clean_csv, filename="nov-2.csv", content_type="text/csv")
    _, _, msg = await post(client, "/console/finance/imports", clean)
    assert msg == ("ok", "导入完成：登记 1 笔，重复 0，冲突 0，错误 0")
    gbk = aiohttp.FormData()
    gbk.add_field("csrf_token", token)
    gbk.add_field("file", "date,reference,amount\n2026-11-22,G1,1,付款".encode("gbk"), filename="gbk.csv", content_type="text/csv")
    path, _, msg = await post(client, "/console/finance/imports", gbk)
    assert path == "/console/finance/payments" and msg is not None and msg[0] == "err" and "UTF-8" in msg[1]
    await check_invariants(rt)


async def test_customer_account_settings_and_refund(client: TestClient, catalog: Runtime) -> None:
    rt = catalog
    cid = await named_customer(rt, "wmFinAcct", "赵六")
    token = await login(client, rt)
    page = await client.get("/console/finance/accounts?customer=wmNobody", headers=HTML)
    assert page.status == 404 and "没有这个客户" in await page.text()
    text = await (await client.get("/console/finance/accounts?customer=wmFinAcct", headers=HTML)).text()
    assert f"#{cid} 赵六" in text and "账期 0 天" in text
    path, text, msg = await post(
        client, f"/console/finance/accounts/{cid}", {"csrf_token": token, "terms_days": "30", "credit_limit": "1,000"}
    )
    assert path == "/console/finance/accounts" and msg == ("ok", "已保存：账期 30 天，信用额度 ¥1,000.00")
    account = await services.get_account(rt, cid)
    assert (account.terms_days, account.credit_limit_fen) == (30, 100_000)
    _, _, msg = await post(client, f"/console/finance/accounts/{cid}", {"csrf_token": token, "terms_days": "-1", "credit_limit": ""})
    assert msg is not None and msg[0] == "err"
    _, _, msg = await post(client, f"/console/finance/accounts/{cid}", {"csrf_token": token, "terms_days": "0", "credit_limit": ""})
    assert msg == ("ok", "已保存：账期 0 天，信用额度 不限")
    _, _, msg = await post(client, f"/console/finance/accounts/{cid}/refund", {"csrf_token": token, "amount": "5", "reference": "RF"})
    assert msg is not None and msg[0] == "err" and "预收余额只有 ¥0.00" in msg[1]


async def test_held_orders_are_released_by_finance(client: TestClient, catalog: Runtime) -> None:
    rt = catalog
    cid = await named_customer(rt, "wmFinHold", "钱七")
    await services.set_account(rt, cid, credit_limit_fen=1000)
    held = await orders.create_order(
        rt, customer_id=cid, items=[("WATER-550", 1)], source="api", salesperson_userid="sales01", confirm=True
    )
    assert held.status == OrderStatus.ON_HOLD
    token = await login(client, rt)
    text = await (await client.get("/console/finance/holds", headers=HTML)).text()
    assert held.number in text and "放行" in text and "¥10.00" in text
    path, text, msg = await post(client, f"/console/finance/holds/{held.number}/release", {"csrf_token": token})
    assert path == "/console/finance/holds" and msg == ("ok", f"订单 {held.number} 已放行并确认，已全部备货")
    assert "没有待审核的订单" in text
    assert (await orders.get_order(rt, held.id)).status == OrderStatus.CONFIRMED
    _, _, msg = await post(client, "/console/finance/holds/SO999999/release", {"csrf_token": token})
    assert msg is not None and msg[0] == "err"
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(customers))).scalar_one() == 1
