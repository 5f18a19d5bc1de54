"""SQL injection attempts through every way text reaches a query: query parameters and path parameters of every GET
route (API, console, sidebar — enumerated from the router), segment expressions (API preview and create, console live
count and save), search boxes, JSON bodies, and chat text (the order dialogue through the sandbox).

Each attempt must get a clean answer — 2xx with no extra rows, or a 4xx with the JSON error shape (a polite Chinese
reply in chat) — never a 5xx; afterwards every table is still there with the same rows."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from aiohttp import FormData

from fulfillment.orders import services as orders
from scrm.crm.customers.models import customers
from tests.conftest import SandboxHarness, make_customer
from tests.security.conftest import HTML, App, console_login, row_counts, sidebar_login, table_digest
from tests.security.test_route_inventory import concrete, routes

pytestmark = pytest.mark.security

PAYLOADS = [
    "'; DROP TABLE customers; --",
    '" OR 1=1 --',
    "' OR '1'='1",
    "1 OR 1=1",
    "wmSql' OR 'x'='x",
    "＇ OR ＇1＇=＇1",  # full-width quotes (NFKC turns them into ASCII)
    "‘ OR 1=1 --’",  # curly quotes
    "ʼ OR 1=1 --",  # modifier letter apostrophe
    "%",  # LIKE wildcards must not match everything
    "_",
    "\\",
    "1; SELECT pg_sleep(3); --",
    "1) UNION SELECT name, name FROM customers --",
    "\x00",
    "a" * 3000,
]
QUERY_PARAMS = [
    "status", "limit", "customer", "by", "active", "q", "expression", "after", "usable", "url", "to",
    "state", "page", "next", "filename", "external_userid", "drafts", "code", "channel", "kind", "recipient", "purpose",
]  # fmt: skip


async def seed(a: App) -> None:
    for ext, name in (("wmSqlA", "张三"), ("wmSqlB", "李四")):
        cid = await make_customer(a.rt, ext)
        async with a.rt.db.write() as conn:
            await conn.execute(sa.update(customers).where(customers.c.id == cid).values(name=name))
        await orders.create_order(a.rt, customer_id=cid, items=[("WATER-550", 1)], source="api", confirm=True)


def assert_clean(status: int, body: Any, what: str) -> None:
    assert status < 500, (what, status, str(body)[:300])
    if status >= 400 and isinstance(body, dict):
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], (what, body)


async def fetch(a: App, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    resp = await a.client.request(method, url, allow_redirects=False, **kw)
    # a download (the catalog's xlsx) is bytes: read as text with replacement, enough to look for leaked SQL
    body: Any = await resp.json() if resp.content_type == "application/json" else (await resp.read()).decode("utf-8", errors="replace")
    return resp.status, body


async def test_every_get_route_with_injection_in_every_parameter(app: App) -> None:
    await seed(app)
    await console_login(app.client, app.settings)
    await sidebar_login(app.client, "sales01")
    before = await table_digest(app.rt)
    gets = sorted(p for m, p in routes(app.client.app) if m == "GET" and p.startswith(("/api/v1", "/console", "/sidebar/api")))
    assert len(gets) >= 60
    for path in gets:
        headers = app.bearer() if path.startswith("/api/") else HTML if path.startswith("/console") else {}
        for payload in PAYLOADS:
            url = concrete(path).replace("SO100001", quote(payload, safe="")) if "{" in path else concrete(path)
            if "{" in path:
                for name in ("id", "sku", "external_userid", "chat_id", "customer", "customer_id", "number", "tag_id"):
                    url = url.replace(f"/{concrete('{' + name + '}')}", "/" + quote(payload, safe=""))
            status, body = await fetch(app, "GET", url, params={k: payload for k in QUERY_PARAMS}, headers=headers)
            assert_clean(status, body, f"GET {url} ?*={payload!r}")
            if isinstance(body, str):
                assert "Traceback" not in body and "sqlalchemy" not in body.lower()
    assert await table_digest(app.rt) == before


async def test_search_boxes_return_no_extra_rows(app: App) -> None:
    await seed(app)
    await console_login(app.client, app.settings)
    for payload in PAYLOADS:
        status, body = await fetch(app, "GET", "/api/v1/orders", params={"customer": payload}, headers=app.bearer())
        assert (status, body) == (200, {"items": []}) or status == 400, (payload, status, body)
        for path in ("/api/v1/inbound-events", "/api/v1/outbound-messages"):
            status, body = await fetch(app, "GET", path, params={"external_userid": payload, "recipient": payload}, headers=app.bearer())
            assert (status == 200 and body == {"items": []}) or (status == 400 and "\x00" in payload), (path, payload, body)
        status, text = await fetch(app, "GET", "/console/orders", params={"q": payload}, headers=HTML)
        assert status == 200 or (status == 400 and "\x00" in payload), (payload, text[:300])
        assert "SO100001" not in text and "SO100002" not in text, payload  # nothing matches; % _ NUL are no wildcards
    status, text = await fetch(app, "GET", "/console/orders", params={"q": "SO1000"}, headers=HTML)
    assert "SO100001" in text and "SO100002" in text  # the search itself works


@pytest.mark.parametrize("where", ["api_preview", "api_create", "console_preview", "console_save", "broadcast_preview"])
async def test_segment_expressions_are_data(app: App, where: str) -> None:
    await seed(app)
    csrf = await console_login(app.client, app.settings)
    before = await row_counts(app.rt)
    expressions = [*PAYLOADS, *(f"tag:{p}" for p in PAYLOADS), *(f'tag:"{p}"' for p in PAYLOADS), *(f"orders >= {p}" for p in PAYLOADS)]
    expressions += ["tag:x or 1=1", "orders >= 0 or 1=1", "spent > 0; DROP TABLE customers", "name:'x' --"]
    made = 0
    for i, expression in enumerate(expressions):
        if where == "api_preview":
            status, body = await fetch(app, "POST", "/api/v1/segments/preview", json={"expression": expression}, headers=app.bearer())
        elif where == "api_create":
            data = {"name": f"注入{i}", "expression": expression, "description": expression[:200]}
            status, body = await fetch(app, "POST", "/api/v1/segments", json=data, headers=app.bearer())
            made += status in (200, 201)
        elif where == "broadcast_preview":
            data = {"segment": expression, "expression": expression, "text": "hi"}
            status, body = await fetch(app, "POST", "/api/v1/broadcasts/preview", json=data, headers=app.bearer())
        elif where == "console_preview":
            status, body = await fetch(app, "GET", "/console/segments/preview", params={"expression": expression}, headers=HTML)
        else:
            data = {"csrf_token": csrf, "name": f"注入{i}", "expression": expression, "description": ""}
            status, body = await fetch(app, "POST", "/console/segments", data=data, headers=HTML)
            made = -1  # counted from the table below
        assert_clean(status, body, f"{where} {expression!r}")
        if status == 200 and isinstance(body, dict) and "count" in body:
            assert body["count"] == 0, (expression, body)  # an injected "or 1=1" never widens the segment
        if status == 400 and isinstance(body, dict) and body["error"]["code"] == "segment_syntax":
            assert isinstance(body["error"]["details"]["column"], int)
    after = await row_counts(app.rt)
    assert after["customers"] == before["customers"]
    changed = ("segments", "audit_log")  # each segment made is recorded in the audit trail, and nothing else changes
    assert {k: v for k, v in after.items() if k not in changed} == {k: v for k, v in before.items() if k not in changed}
    assert after["audit_log"] - before["audit_log"] == after["segments"] - before["segments"]
    if made >= 0:
        assert after["segments"] - before["segments"] == made
    from tagging.segments.models import segments as segments_table

    async with app.rt.db.read() as conn:
        stored = list((await conn.execute(sa.select(segments_table.c.expression))).scalars())
    assert set(stored) <= set(expressions)  # stored verbatim, as data


async def test_json_bodies_with_injection_strings(app: App) -> None:
    await seed(app)
    csrf = await sidebar_login(app.client, "sales01")
    from tests.scrm.test_sidebar import seed_follow

    await seed_follow(app.rt, "sales01", "wmSqlMine")
    for payload in PAYLOADS:
        for method, path, body in (
            ("POST", "/api/v1/orders", {"customer": payload, "items": [{"sku": payload, "qty": 1}]}),
            ("POST", "/api/v1/orders", {"customer": "wmSqlA", "items": [{"sku": payload, "qty": 1}]}),
            ("POST", "/api/v1/tags", {"name": payload, "group": payload}),
            ("POST", "/api/v1/coupons/issue", {"template_id": payload, "customer": payload}),
            ("PATCH", "/api/v1/products/WATER-550", {"reorder_point": payload}),
            ("POST", "/api/v1/payments", {"customer": payload, "amount_fen": 1, "reference": payload}),
        ):
            status, answer = await fetch(app, method, path, json=body, headers=app.bearer())
            assert_clean(status, answer, f"{method} {path} {payload!r}")
        status, answer = await fetch(
            app, "POST", "/sidebar/api/customers/wmSqlMine/notes", json={"body": payload}, headers={"X-CSRF-Token": csrf}
        )
        assert_clean(status, answer, f"note {payload!r}")
    async with app.rt.db.read() as conn:
        names = sorted((await conn.execute(sa.select(customers.c.name).where(customers.c.name.is_not(None)))).scalars())
    assert "张三" in names and "李四" in names  # the table and its rows are intact


async def test_chat_text_with_injection_gets_a_polite_reply(sandbox: SandboxHarness) -> None:
    before = await row_counts(sandbox.rt)
    for i, payload in enumerate(PAYLOADS[:10]):
        for text in (payload, f"要3箱{payload}", f"我的订单 {payload}", f"有没有{payload}"):
            await sandbox.customer_says(f"wmChatSql{i}", text[:2000])
        replies = sandbox.replies(f"wmChatSql{i}")
        assert replies, payload
        assert all(isinstance(r, str) and r.strip() for r in replies)
        assert not any("Traceback" in r or "sqlalchemy" in r.lower() or "error" in r.lower() for r in replies), replies
    after = await row_counts(sandbox.rt)
    assert after["customers"] == before["customers"] + 10  # one per chatting customer, nothing dropped
    async with sandbox.rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(customers))).scalar_one() == after["customers"]


async def test_nul_characters_and_deep_json_get_400_not_500(app: App) -> None:
    """PostgreSQL refuses U+0000 in text (it was a 500) and SQLite's LIKE stops at it (a search matched all);
    JSON nested deeper than Python's stack raised RecursionError (a 500)."""
    await seed(app)
    csrf = await console_login(app.client, app.settings)
    before = await table_digest(app.rt)
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/v1/accounts/wm%00x", {"headers": app.bearer()}),
        ("GET", "/api/v1/orders?customer=wm%00x", {"headers": app.bearer()}),
        ("GET", "/console/orders?q=%00", {"headers": HTML}),
        (
            "POST",
            "/api/v1/orders",
            {"headers": app.bearer(), "json": {"customer": "wmSqlA\x00", "items": [{"sku": "WATER-550", "qty": 1}]}},
        ),
        ("POST", "/api/v1/tags", {"headers": app.bearer(), "json": {"name": "a\x00b"}}),
        ("POST", "/api/v1/orders", {"headers": app.bearer(), "data": "[" * 200_000, "skip_auto_headers": ["Content-Type"]}),
        ("POST", "/api/v1/segments/preview", {"headers": app.bearer(), "data": '{"expression": ' + "[" * 100_000 + "}"}),
        ("POST", "/api/v1/archive/messages", {"headers": {**app.bearer(), "Content-Type": "application/json"}, "data": "[" * 100_000}),
        (
            "POST",
            "/console/stock/receive",
            {"headers": HTML, "data": {"csrf_token": csrf, "sku": "WATER-550", "qty": "1", "reference": "a\x00"}},
        ),
    ]
    multipart = FormData()
    for k, v in {"csrf_token": csrf, "sku": "WATER-550", "qty": "1", "reference": "x\x00y"}.items():
        multipart.add_field(k, v)
    cases.append(("POST", "/console/stock/receive", {"headers": HTML, "data": multipart}))
    for method, url, kw in cases:
        resp = await app.client.request(method, url, allow_redirects=False, **kw)
        text = await resp.text()
        if resp.status == 303:  # the console shows domain errors as a flash on the page it redirects to
            assert app.rt.db.is_sqlite, (url, "a NUL reached PostgreSQL without an error?")
            continue
        assert resp.status == 400, (method, url, resp.status, text[:300])
        assert (await resp.json())["error"]["code"] in ("bad_request", "invalid_input", "unreadable_body"), text
    if not app.rt.db.is_sqlite:
        assert await table_digest(app.rt) == before
    # JSON Lines: a too-deep line is rejected on its own, the good line is stored.
    good = json.dumps(
        {"msgid": "m-deep-1", "action": "send", "from": "sales01", "tolist": ["wmSqlA"], "msgtime": 1796000000000}
        | {"msgtype": "text", "text": {"content": "hi"}}
    )
    resp = await app.client.post(
        "/api/v1/archive/messages",
        data=good + "\n" + "[" * 100_000 + "\n",
        headers={**app.bearer(), "Content-Type": "application/x-ndjson"},
    )
    assert resp.status < 500, await resp.text()


async def test_a_nul_in_a_kf_message_does_not_block_the_channel(sandbox: SandboxHarness) -> None:
    """On PostgreSQL a U+0000 in one synced message failed the whole kf/sync_msg batch on every retry: that customer
    got no answer and, with the cursor stuck, neither did anyone after them."""
    await sandbox.customer_says("wmNulFirst", "要3箱矿泉水\x00")
    await sandbox.customer_says("wmNulSecond", "帮助")
    assert sandbox.replies("wmNulFirst") and "矿泉水" in sandbox.replies("wmNulFirst")[0]
    assert sandbox.replies("wmNulSecond")
