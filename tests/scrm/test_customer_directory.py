"""The customer directory (/console/customers and /api/v1/customers) over HTTP on the real app, SQLite and
PostgreSQL: sign-in and bearer token required, search by name / identity / #id with LIKE wildcards taken
literally, segment-expression filters with the parse error's column, one customer's full record (salespeople,
tags with why, orders, balance), merged ids answering with the survivor, names escaped."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from fulfillment.orders.services import create_order
from scrm.app.webapp import create_app
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, customers
from scrm.crm.customers.services import ensure_customer, link_identity
from scrm.crm.staff.services import start_follow, upsert_salesperson
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import apply_tag, ensure_tag

HTML = {"Accept": "text/html,application/xhtml+xml"}
EVIL = '<script>alert(1)</script>" onmouseover="x'


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(catalog.settings, runtime=catalog))) as c:
        yield c


async def seed(rt: Runtime) -> dict[str, int]:
    """张三 (followed by 王销售, rule-tagged 意向-高, one confirmed order), 100%纯净水 店 (a name with LIKE wildcards),
    an evil-named customer, and 李四 whose openid record is merged into 张三."""
    now, d = rt.clock.now(), rt.db.dialect
    async with rt.db.write() as conn:
        await upsert_salesperson(conn, d, "sales01", now, name="王销售", active=True)
        zhang = await ensure_customer(conn, d, kind="external_userid", value="wmZhang", now=now, name="张三")
        await start_follow(
            conn, d, customer_id=zhang, userid="sales01", external_userid="wmZhang", status=FollowStatus.ACTIVE, at=now, now=now
        )
        tag = await ensure_tag(conn, d, "意向-高", now)
        await apply_tag(
            conn, d, customer_id=zhang, tag_id=tag, source=TagSource.RULE,
            evidence={"rule": "意向-高", "words": ["报价"], "text": "麻烦发个报价单", "message_id": 7}, now=now,
        )  # fmt: skip
        percent = await ensure_customer(conn, d, kind="external_userid", value="wmPercent", now=now, name="100%纯净水_店")
        evil = await ensure_customer(conn, d, kind="external_userid", value="wmEvil", now=now, name=EVIL)
        li = await ensure_customer(conn, d, kind="openid", value="oLiSi", now=now, name="李四")
    await create_order(rt, customer_id=zhang, items=[("WATER-550", 2)], source="api", confirm=True)
    async with rt.db.write() as conn:
        survivor = await link_identity(conn, d, zhang, "openid", "oLiSi", now)  # same person: 李四's record merges
    assert survivor == zhang
    return {"zhang": zhang, "percent": percent, "evil": evil, "li": li}


async def login(client: TestClient, rt: Runtime) -> None:
    resp = await client.post(
        "/console/login", data={"username": "admin", "password": rt.settings.admin_token.get(), "next": "/console/customers"}
    )
    assert resp.status == 200 and resp.url.path == "/console/customers"


def listed_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'href="/console/customers/(\d+)"', html)]


async def test_console_needs_sign_in(client: TestClient) -> None:
    resp = await client.get("/console/customers", headers=HTML, allow_redirects=False)
    assert resp.status in (302, 303) and "/console/login" in resp.headers["Location"]
    assert (await client.get("/console/customers/1", headers=HTML, allow_redirects=False)).status in (302, 303)


async def test_search_by_name_identity_and_id_with_wildcards_literal(client: TestClient, catalog: Runtime) -> None:
    ids = await seed(catalog)
    await login(client, catalog)
    everyone = await (await client.get("/console/customers", headers=HTML)).text()
    assert sorted(listed_ids(everyone)) == sorted([ids["zhang"], ids["percent"], ids["evil"]])  # 李四 merged away
    assert "共 3 位客户" in everyone
    for q, expected in (
        ("张", [ids["zhang"]]),
        ("wmPercent", [ids["percent"]]),
        (f"#{ids['evil']}", [ids["evil"]]),
        ("oLiSi", [ids["zhang"]]),
    ):
        page = await (await client.get("/console/customers", params={"q": q}, headers=HTML)).text()
        assert listed_ids(page) == expected, q
    # % and _ are characters to find, not wildcards: only the customer whose name really contains them
    for q in ("%", "_", "0%纯"):
        page = await (await client.get("/console/customers", params={"q": q}, headers=HTML)).text()
        assert listed_ids(page) == [ids["percent"]], q
    page = await (await client.get("/console/customers", params={"q": "' OR 1=1 --"}, headers=HTML)).text()
    assert listed_ids(page) == [] and "没有符合条件的客户" in page
    # one search for the directory and the customer picker: a phone kept in a custom field finds the customer in both
    async with catalog.db.write() as conn:
        await conn.execute(customers.update().where(customers.c.id == ids["percent"]).values(custom_fields={"电话": "13912345678"}))
    page = await (await client.get("/console/customers", params={"q": "912345"}, headers=HTML)).text()
    assert listed_ids(page) == [ids["percent"]]
    picked = await (await client.get("/console/customers/pick", params={"q": "912345"})).json()
    assert [c["id"] for c in picked["items"]] == [ids["percent"]], picked
    # the row tells who follows the customer, the tags and the order aggregates
    row = await (await client.get("/console/customers", params={"q": "张三"}, headers=HTML)).text()
    assert "王销售" in row and "意向-高" in row and "wmZhang" in row


async def test_segment_filter_and_parse_error_with_column(client: TestClient, catalog: Runtime) -> None:
    ids = await seed(catalog)
    await login(client, catalog)
    page = await (await client.get("/console/customers", params={"segment": "tag:意向-高"}, headers=HTML)).text()
    assert listed_ids(page) == [ids["zhang"]]
    page = await (await client.get("/console/customers", params={"segment": "not tag:意向-高", "q": "店"}, headers=HTML)).text()
    assert listed_ids(page) == [ids["percent"]]
    bad = await client.get("/console/customers", params={"segment": "tag:意向-高 and and"}, headers=HTML)
    assert bad.status == 400
    text = await bad.text()
    assert "第 " in text and "列" in text and listed_ids(text) == []
    async with catalog.db.read() as conn:  # hostile text did nothing to the table
        assert (await conn.execute(sa.select(sa.func.count()).select_from(customers))).scalar_one() == 4


async def test_customer_page_shows_the_whole_record(client: TestClient, catalog: Runtime) -> None:
    ids = await seed(catalog)
    await login(client, catalog)
    resp = await client.get(f"/console/customers/{ids['zhang']}", headers=HTML)
    assert resp.status == 200
    page = await resp.text()
    assert "客户 张三" in page
    assert "王销售" in page and "好友" in page  # the salesperson and the relation
    assert "规则 意向-高" in page and "报价" in page  # the tag and why
    assert "SO100001" in page and "/console/orders/SO100001" in page and "¥" in page
    assert "wmZhang" in page and "oLiSi" in page  # both identities, after the merge
    # the merged-away id sends staff to the survivor
    old = await client.get(f"/console/customers/{ids['li']}", headers=HTML, allow_redirects=False)
    assert old.status == 303 and old.headers["Location"] == f"/console/customers/{ids['zhang']}"
    for missing in ("999999", "abc", "1" * 30):
        assert (await client.get(f"/console/customers/{missing}", headers=HTML)).status == 404
    # order pages link the customer to this page
    order_page = await (await client.get("/console/orders", headers=HTML)).text()
    assert f'href="/console/customers/{ids["zhang"]}"' in order_page


async def test_names_are_escaped_everywhere(client: TestClient, catalog: Runtime) -> None:
    ids = await seed(catalog)
    await login(client, catalog)
    for path in ("/console/customers", f"/console/customers/{ids['evil']}"):
        page = await (await client.get(path, headers=HTML)).text()
        assert "<script>alert(1)" not in page and '" onmouseover="' not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_api_search_and_record(client: TestClient, catalog: Runtime) -> None:
    ids = await seed(catalog)
    auth = {"Authorization": f"Bearer {catalog.settings.admin_token.get()}"}
    assert (await client.get("/api/v1/customers")).status == 401
    body = await (await client.get("/api/v1/customers", params={"segment": "tag:意向-高"}, headers=auth)).json()
    assert [r["id"] for r in body["items"]] == [ids["zhang"]] and body["total"] == 1 and body["more"] is False
    row = body["items"][0]
    assert row["salespeople"] == ["王销售"] and row["tags"] == ["意向-高"] and row["identity"] == "wmZhang"
    bad = await client.get("/api/v1/customers", params={"segment": "rfm:"}, headers=auth)
    assert bad.status == 400
    error = (await bad.json())["error"]
    assert error["code"] == "segment_syntax" and "column" in error["details"]
    assert (await client.get("/api/v1/customers", params={"page": "0"}, headers=auth)).status == 400
    assert (await client.get("/api/v1/customers", params={"q": "x" * 65}, headers=auth)).status == 400
    for key in (str(ids["zhang"]), "wmZhang", "oLiSi", str(ids["li"])):
        record = await (await client.get(f"/api/v1/customers/{key}", headers=auth)).json()
        assert record["id"] == ids["zhang"], key
        assert record["identities"] == {"external_userid": ["wmZhang"], "openid": ["oLiSi"]}
        assert [o["number"] for o in record["orders"]] == ["SO100001"]
        assert record["follows"][0]["userid"] == "sales01" and record["tags"][0]["why"].startswith("规则 意向-高")
    assert (await (await client.get(f"/api/v1/customers/{ids['li']}", headers=auth)).json())["merged_from"] == ids["li"]
    missing = await client.get("/api/v1/customers/wmNobody", headers=auth)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    spec = await (await client.get("/api/openapi.json")).json()
    assert "/api/v1/customers" in spec["paths"] and "/api/v1/customers/{customer}" in spec["paths"]


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def flash(text: str) -> tuple[str, str] | None:
    m = re.search(r'<div class="flash flash-(ok|err)" role="status">(.*?)</div>', text)
    return (m.group(1), m.group(2)) if m else None


async def test_staff_tag_note_and_custom_fields_from_the_customer_page(client: TestClient, catalog: Runtime) -> None:
    from scrm.core.outbox import outbox
    from scrm.crm.customers.models import customer_notes
    from scrm.crm.tags.models import customer_tags
    from scrm.crm.tags.services import CUSTOMER_TAG_CHANGED

    ids = await seed(catalog)
    async with catalog.db.write() as conn:
        vip = await ensure_tag(conn, catalog.db.dialect, "VIP", catalog.clock.now(), group="客户等级")
    await login(client, catalog)
    path = f"/console/customers/{ids['zhang']}"
    page = await (await client.get(path, headers=HTML)).text()
    csrf = CSRF.search(page).group(1)  # type: ignore[union-attr]
    assert f'<option value="{vip}">客户等级 / VIP</option>' in page

    async def act(what: str, **data: str) -> tuple[str, str] | None:
        resp = await client.post(f"{path}/{what}", data={"csrf_token": csrf, **data}, headers=HTML)
        assert resp.status == 200 and resp.url.path == path
        return flash(await resp.text())

    assert await act("tags", tag_id=str(vip), action="add") == ("ok", "已打上标签")
    assert await act("tags", tag_id=str(vip), action="add") == ("ok", "标签没有变化")
    async with catalog.db.read() as conn:
        applied = (await conn.execute(sa.select(customer_tags).where(customer_tags.c.tag_id == vip))).one()
        queued = (await conn.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.topic == CUSTOMER_TAG_CHANGED))).scalar()
    assert applied.customer_id == ids["zhang"] and applied.evidence == {"by": "console:admin"} and queued == 1
    assert "控制台 admin 手动添加" in await (await client.get(path, headers=HTML)).text()
    assert await act("tags", tag_id=str(vip), action="remove") == ("ok", "已移除标签")
    assert (await act("tags", tag_id="999999", action="add") or ("",))[0] == "err"

    assert await act("notes", body="  周三送货，先电话  ") == ("ok", "已添加备注")
    assert (await act("notes", body="   ") or ("",))[0] == "err"
    async with catalog.db.read() as conn:
        notes = (await conn.execute(sa.select(customer_notes.c.body, customer_notes.c.author))).all()
    assert [tuple(n) for n in notes] == [("周三送货，先电话", "console:admin")]

    assert await act("fields", key="门店地址", value="静安区南京西路 1 号") == ("ok", "已保存字段“门店地址”")
    assert (await act("fields", key="x" * 33, value="v") or ("",))[0] == "err"
    record = await (
        await client.get(f"/api/v1/customers/{ids['zhang']}", headers={"Authorization": f"Bearer {catalog.settings.admin_token.get()}"})
    ).json()
    assert record["custom_fields"] == {"门店地址": "静安区南京西路 1 号"}
    assert await act("fields", key="门店地址") == ("ok", "已删除字段“门店地址”")
    # a merged-away id writes to the survivor; an unknown one is refused; a forged token changes nothing
    resp = await client.post(f"/console/customers/{ids['li']}/notes", data={"csrf_token": csrf, "body": "旧编号"}, headers=HTML)
    assert resp.status == 200
    forged = await client.post(f"{path}/notes", data={"csrf_token": "forged", "body": "伪造"}, headers=HTML)
    assert forged.status == 403
    missing = await client.post("/console/customers/999999/notes", data={"csrf_token": csrf, "body": "x"}, headers=HTML)
    assert (flash(await missing.text()) or ("",))[0] == "err"
    async with catalog.db.read() as conn:
        rows = (await conn.execute(sa.select(customer_notes.c.customer_id, customer_notes.c.body).order_by(customer_notes.c.id))).all()
    assert [tuple(r) for r in rows] == [(ids["zhang"], "周三送货，先电话"), (ids["zhang"], "旧编号")]
