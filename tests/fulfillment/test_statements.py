"""Bank / WeChat Pay statement import: parsing with line-numbered errors, matching payers, idempotent re-import,
conflicting references, unreadable files — against real SQLite and PostgreSQL and over the API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fulfillment.billing import services, statements
from fulfillment.billing import web as billing_web
from fulfillment.billing.domain import StatementUnreadable
from fulfillment.billing.invoices import get_invoice, void_invoice
from scrm.app.webapp import create_app
from scrm.core.runtime import Runtime
from tests.conftest import make_customer
from tests.fulfillment.test_billing import check_invariants, counts, ship_and_invoice


# ---- parsing (pure) ---------------------------------------------------------------------------------------
def test_parse_english_header_and_row_errors_by_line() -> None:
    text = (
        "date,reference,payer,amount,method,memo\n"
        '2026-11-20,B001,张三商行,"1,234.50",银行,货款 INV100001 inv100002\n'
        "\n"  # blank lines are skipped, line numbers keep counting
        "2026/11/21 09:30,W002,李四,88,微信支付,\n"
        "2026-11-21,B003,王五,0,bank,\n"
        "2026-11-21,B004,王五,-50.00,bank,退款\n"
        "21.11.2026,B005,王五,10,bank,\n"
        "2026-11-21,,王五,10,bank,\n"
        "2026-11-21,B007,王五,12.345,bank,\n"
        "2026-11-21,B008,王五\n"
        '20261122,B009,"赵六",¥5,支付宝,"多行\n备注"\n'
        "2026-11-22,B010,钱七,7,银联,\n"
    )
    rows, errors = statements.parse_statement(text)
    assert [(r.line, r.reference, r.amount_fen, r.method) for r in rows] == [
        (2, "B001", 123450, "bank"),
        (4, "W002", 8800, "wechat_pay"),
        (11, "B009", 500, "alipay"),
        (13, "B010", 700, "other"),
    ]
    assert rows[0].invoices == ("INV100001", "INV100002") and rows[0].payer == "张三商行"
    assert rows[1].received_at.isoformat() == "2026-11-21T09:30:00+08:00"
    assert rows[2].memo == "多行\n备注"
    assert [(e.line, e.reference) for e in errors] == [(5, "B003"), (6, "B004"), (7, "B005"), (8, ""), (9, "B007"), (10, "")]
    assert "大于 0" in errors[0].message and "大于 0" in errors[1].message
    assert "日期" in errors[2].message and "流水号" in errors[3].message and "金额" in errors[4].message
    assert "列数不对" in errors[5].message


def test_chinese_headers_any_order() -> None:
    rows, errors = statements.parse_statement("金额,交易单号,交易时间,客户,备注\n99.90,WX-1,2026-11-20 08:00:00,wmShop,\n")
    assert not errors and rows[0].customer == "wmShop" and rows[0].amount_fen == 9990 and rows[0].method == "bank"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("日期,金额\n2026-11-20,5\n".encode(), "reference"),
        (b"", "empty"),
        (b"date,reference,amount,amount\n", "重复"),
        ("date,reference,amount\n2026-11-20,B1,5\n".encode("gbk") + "付款方".encode("gbk"), "UTF-8"),
        ("date,reference,amount\n".encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04" + bytes(100), "xlsx"),  # an Excel workbook is not called "maybe GBK"
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "不是 CSV"),
    ],
)
def test_unreadable_files_are_refused_whole(data: bytes, needle: str) -> None:
    with pytest.raises(StatementUnreadable) as err:
        statements.parse_statement(statements.decode_statement(data))
    assert needle in err.value.message and err.value.code == "statement_unreadable"


def test_bom_is_accepted() -> None:
    text = statements.decode_statement("\ufeffdate,reference,amount\n2026-11-20,B1,5\n".encode())
    rows, errors = statements.parse_statement(text)
    assert not errors and rows[0].reference == "B1"


# ---- importing (real databases) ---------------------------------------------------------------------------
async def test_import_records_good_rows_reports_bad_ones_and_is_idempotent(catalog: Runtime) -> None:
    rt = catalog
    shop = await make_customer(rt, "wmShop")
    other = await make_customer(rt, "wmOtherShop")
    a = await ship_and_invoice(rt, shop, [("WATER-550", 2)])  # INV100001 7200
    b = await ship_and_invoice(rt, other, [("COLA-330", 1)])  # INV100002 5280
    c = await ship_and_invoice(rt, other, [("RICE-5KG", 1)])  # INV100003 4990, voided below
    await void_invoice(rt, c.number, "重开")
    csv_text = (
        "date,reference,payer,amount,method,memo,customer\n"
        f'2026-11-20,BK-1,张三商行,"80.00",银行,货款 {a.number},\n'  # by memo invoice; 800 overpaid → credit
        "2026-11-21,WX-2,李四,52.80,微信,,wmOtherShop\n"  # by customer column
        "2026-11-21,WX-3,无名,10.00,微信,,\n"  # nobody to match
        "2026-11-21,WX-4,李四,10.00,微信,,wmNobody\n"  # unknown customer
        f"2026-11-21,WX-5,李四,10.00,微信,付 {c.number},\n"  # a void invoice
        "2026-11-21,WX-6,李四,abc,微信,,wmOtherShop\n"  # malformed
        f"2026-11-21,WX-7,李四,5.00,微信,{b.number},wmShop\n"  # memo invoice of another customer
    )
    data = csv_text.encode()
    first = await statements.import_statement(rt, data, filename="nov.csv", resolve_customer=billing_web.resolve_customer, actor="test")
    status = {r.line: (r.status, r.reference) for r in first.rows}
    assert status == {
        2: ("recorded", "BK-1"),
        3: ("recorded", "WX-2"),
        4: ("error", "WX-3"),
        5: ("error", "WX-4"),
        6: ("error", "WX-5"),
        7: ("error", "WX-6"),
        8: ("error", "WX-7"),
    }
    messages = {r.line: r.message for r in first.rows}
    assert "customer" in messages[4] and "wmNobody" in messages[5] and "作废" in messages[6] and "金额" in messages[7]
    assert first.counts == {"recorded": 2, "duplicate": 0, "conflict": 0, "error": 5}
    assert first.rows[0].allocations == [(a.number, 7200)] and first.rows[0].credit_fen == 800
    assert (await get_invoice(rt, a.number)).status == "paid" and (await get_invoice(rt, b.number)).status == "paid"
    assert (await services.get_account(rt, shop)).credit_fen == 800
    before = await counts(rt)

    again = await statements.import_statement(rt, data, filename="nov.csv", resolve_customer=billing_web.resolve_customer)
    assert again.counts == {"recorded": 0, "duplicate": 2, "conflict": 0, "error": 5}
    assert again.previously_imported == [first.import_id] and again.import_id != first.import_id
    assert await counts(rt) == before  # the same file twice: nothing changed
    assert (await services.get_account(rt, shop)).credit_fen == 800

    changed = "date,reference,amount,customer\n2026-11-20,BK-1,80.01,wmShop\n2026-11-22,BK-9,1.00,wmShop\n"
    third = await statements.import_statement(rt, changed.encode(), resolve_customer=billing_web.resolve_customer)
    assert [(r.status, r.reference) for r in third.rows] == [("conflict", "BK-1"), ("recorded", "BK-9")]
    assert "已登记为另一笔收款" in third.rows[0].message
    assert (await services.get_account(rt, shop)).credit_fen == 900
    stored = await statements.get_import(rt, third.import_id)
    assert stored["counts"] == {"recorded": 1, "duplicate": 0, "conflict": 1, "error": 0}
    assert [s.id for s in await statements.list_imports(rt)] == [third.import_id, again.import_id, first.import_id]
    await check_invariants(rt)


async def test_unreadable_file_records_nothing(catalog: Runtime) -> None:
    rt = catalog
    await make_customer(rt, "wmShop")
    before = await counts(rt)
    with pytest.raises(StatementUnreadable):
        await statements.import_statement(
            rt,
            "date,reference,amount,customer\n2026-11-20,B1,5,wmShop\n".encode("gbk") + "张".encode("gbk"),
            resolve_customer=billing_web.resolve_customer,
        )
    assert await counts(rt) == before
    assert await statements.list_imports(rt) == []


@pytest.fixture
async def api(catalog: Runtime) -> AsyncIterator[TestClient]:
    app = create_app(catalog.settings, runtime=catalog)
    billing_web.setup_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_import_over_the_api(api: TestClient, catalog: Runtime) -> None:
    rt = catalog
    h = {"Authorization": f"Bearer {rt.settings.admin_token.get()}", "Content-Type": "text/csv"}
    cid = await make_customer(rt, "wmApiShop")
    inv = await ship_and_invoice(rt, cid, [("WATER-550", 1)])
    body = f"date,reference,amount,memo\n2026-11-22,API-1,36.00,{inv.number}\n2026-11-22,API-2,-1,{inv.number}\n".encode()
    resp = await api.post("/api/v1/payment-imports?filename=a.csv", data=body, headers=h)
    report = await resp.json()
    assert resp.status == 201 and report["counts"] == {"recorded": 1, "duplicate": 0, "conflict": 0, "error": 1}
    assert report["rows"][1]["line"] == 3 and report["filename"] == "a.csv"
    got = await (await api.get(f"/api/v1/payment-imports/{report['import_id']}", headers=h)).json()
    assert got["rows"] == report["rows"]
    resp = await api.post("/api/v1/payment-imports", data=b"date,reference\n", headers=h)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "statement_unreadable"
    resp = await api.post("/api/v1/payment-imports", data="date,reference,amount\n".encode("utf-16"), headers=h)
    assert resp.status == 400 and "UTF-16" in (await resp.json())["error"]["message"]
    assert (await api.get("/api/v1/payment-imports/999", headers=h)).status == 404
