"""The console's customer picker (issue 15 item 9): the JSON search by name / remark / phone / #id / identity, and
forms that read the picked (or typed) customer — finance payments and accounts, coupon issue."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from scrm.app.webapp import create_app
from scrm.campaigns.coupons.models import coupons as coupons_table
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers, follows
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
    page = await client.get("/console/finance/payments", headers=HTML)
    match = CSRF.search(await page.text())
    assert page.status == 200 and match
    return match.group(1)


async def customer(rt: Runtime, external: str, name: str, *, remark: str = "", phone: str = "") -> int:
    cid = await make_customer(rt, external)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(
            customers.update().where(customers.c.id == cid).values(name=name, custom_fields={"电话": phone} if phone else {})
        )
        if remark:
            await conn.execute(
                follows.insert().values(
                    customer_id=cid,
                    userid="sales1",
                    external_userid=external,
                    status="active",
                    remark=remark,
                    started_at=now,
                    updated_at=now,
                )
            )
    return cid


async def test_search_by_name_remark_phone_id_and_identity(client: TestClient, catalog: Runtime) -> None:
    zhang = await customer(catalog, "wmZhang", "张三", remark="张总 城东超市", phone="13800138000")
    other = await customer(catalog, "wmZhang2", "张三丰")
    li = await customer(catalog, "wmLi", "李四")
    await login(client, catalog)

    async def ids(q: str) -> list[int]:
        resp = await client.get("/console/customers/pick", params={"q": q})
        assert resp.status == 200 and resp.content_type == "application/json"
        return [item["id"] for item in (await resp.json())["items"]]

    assert set(await ids("张三")) == {zhang, other}
    assert await ids("城东") == [zhang]  # the salesperson's remark
    assert await ids("1380013") == [zhang]  # a phone number kept in a custom field
    assert await ids(f"#{li}") == [li] and await ids("wmLi") == [li]
    assert await ids("100%") == [] and await ids("") == []
    first = (await (await client.get("/console/customers/pick", params={"q": "城东"})).json())["items"][0]
    assert first["value"] == f"张三 #{zhang}" and "张总 城东超市" in first["label"]
    too_long = await client.get("/console/customers/pick", params={"q": "张" * 65})
    assert too_long.status == 400 and "最多 64 个字" in (await too_long.json())["error"]["message"]
    client.session.cookie_jar.clear()
    assert (await client.get("/console/customers/pick", params={"q": "张"})).status == 401


async def test_forms_read_a_picked_or_typed_customer(client: TestClient, catalog: Runtime) -> None:
    wang = await customer(catalog, "wmWang", "王五")
    await customer(catalog, "wmLiu1", "刘六")
    await customer(catalog, "wmLiu2", "刘六")
    token = await login(client, catalog)
    page = await client.get("/console/finance/payments", headers=HTML)
    html = await page.text()
    assert 'data-customer-picker="/console/customers/pick"' in html and "/console/static/customer_picker.js" in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]

    async def pay(who: str, ref: str) -> str:
        form = {"csrf_token": token, "customer": who, "amount": "10.00", "reference": ref, "method": "cash"}
        resp = await client.post("/console/finance/payments", data=form, headers=HTML)
        m = re.search(r'<div class="flash flash-(ok|err)" role="status">(.*?)</div>', await resp.text())
        assert m
        return m.group(1) + ":" + m.group(2)

    assert (await pay(f"王五 #{wang}", "PK-1")).startswith("ok:")  # what the picker writes
    assert (await pay("王五", "PK-2")).startswith("ok:")  # a name only one customer has, typed without JavaScript
    assert (await pay(f"#{wang}", "PK-3")).startswith("ok:") and (await pay("wmWang", "PK-4")).startswith("ok:")
    assert "有 2 位客户叫“刘六”" in await pay("刘六", "PK-5")
    assert "没有这个客户" in await pay("赵七", "PK-6")
    account = await client.get("/console/finance/accounts", params={"customer": f"王五 #{wang}"}, headers=HTML)
    assert account.status == 200 and f"#{wang} 王五" in await account.text()

    tpl = await client.post(
        "/console/coupons",
        data={"csrf_token": token, "name": "满100减10", "kind": "fixed", "amount_off": "10", "threshold": "100", "valid_days": "30"},
        allow_redirects=False,
    )
    assert tpl.status == 303, await tpl.text()
    detail = tpl.headers["Location"]
    issue = await client.post(f"{detail}/issue", data={"csrf_token": token, "customer_id": f"王五 #{wang}"}, headers=HTML)
    assert issue.status == 200 and "已发给客户" in await issue.text()
    async with catalog.db.read() as conn:
        owners = list((await conn.execute(sa.select(coupons_table.c.customer_id))).scalars())
    assert owners == [wang]


async def test_invoice_list_filters_by_a_picked_customer(client: TestClient, catalog: Runtime) -> None:
    from tests.fulfillment.test_billing import ship_and_invoice

    wang = await customer(catalog, "wmInvWang", "王五")
    li = await customer(catalog, "wmInvLi", "李四")
    numbers = {cid: [(await ship_and_invoice(catalog, cid, [("WATER-550", 1)])).number] for cid in (wang, li)}
    await login(client, catalog)
    page = await client.get("/console/finance/invoices", params={"customer": f"王五 #{wang}"}, headers=HTML)
    text = await page.text()
    assert page.status == 200 and numbers[wang][0] in text and numbers[li][0] not in text
    assert f'value="王五 #{wang}"' in text
    missing = await client.get("/console/finance/invoices", params={"customer": "赵七"}, headers=HTML)
    assert missing.status == 404 and "没有这个客户" in await missing.text()
