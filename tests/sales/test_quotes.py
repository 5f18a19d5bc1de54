"""Quotes (报价单) over the API: priced from the catalog with discounts, refused with the line named and nothing
written (unknown SKU, negative or over-100 % discount), accepted into a confirmed order through the same service as
POST /orders (stock allocated, the opportunity won; a second accept gives the same order), refused when expired,
held by an approval rule on the discount until approved, and moved on a handover."""

from __future__ import annotations

import sqlalchemy as sa

from fulfillment.orders.models import orders
from scrm.core import outbox
from scrm.core.clock import FrozenClock
from scrm.sales.quotes.models import quote_lines, quotes
from tests.conftest import SandboxHarness
from tests.scrm.test_sidebar import seed_follow, seed_people


async def available(h: SandboxHarness, sku: str) -> int:
    status, product = await h.api("GET", f"/products/{sku}")
    assert status == 200
    return int(product["available"])


async def counts(h: SandboxHarness) -> tuple[int, int, int]:
    async with h.rt.db.read() as conn:
        found = [(await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one() for t in (quotes, quote_lines, orders)]
    return found[0], found[1], found[2]


async def opportunity(h: SandboxHarness, customer_id: int) -> dict:
    status, made = await h.api(
        "POST", "/opportunities", json={"customer_id": customer_id, "title": "食堂粮油", "owner": "sales01", "stage": "quoted"}
    )
    assert status == 201, made
    return made


async def test_a_quote_accepted_is_an_order_with_stock_and_the_opportunity_is_won(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    cid = await seed_follow(h.rt, "sales01", "wmQuote", name="食堂")
    opp = await opportunity(h, cid)
    lines = [{"sku": "OIL-5L", "qty": 4, "discount_pct": 10}, {"sku": "RICE-5KG", "qty": 2, "unit_price_fen": 4500}]
    status, quote = await h.api("POST", "/quotes", json={"opportunity_id": opp["id"], "lines": lines, "valid_until": "2026-11-30"})
    assert status == 201, quote
    assert quote["status"] == "open" and quote["customer_id"] == cid and quote["owner"] == "sales01" and quote["number"].startswith("QT")
    assert [(ln["unit_price_fen"], ln["discount_pct"]) for ln in quote["lines"]] == [(11520, 10), (4500, 9.82)]
    assert quote["total_fen"] == 4 * 11520 + 2 * 4500 and quote["subtotal_fen"] == 4 * 12800 + 2 * 4990
    assert quote["share_url"].startswith(h.rt.settings.base_url + "/quotes/shared/")
    oil, rice = await available(h, "OIL-5L"), await available(h, "RICE-5KG")

    status, order = await h.api("POST", f"/quotes/{quote['id']}/accept")
    assert status == 201, order
    assert order["status"] == "confirmed" and order["source"] == "quote" and order["customer_id"] == cid
    assert [(ln["sku"], ln["qty"], ln["unit_price_fen"], ln["allocated_qty"]) for ln in order["lines"]] == [
        ("OIL-5L", 4, 11520, 4),
        ("RICE-5KG", 2, 4500, 2),
    ]
    assert order["total_fen"] == quote["total_fen"]
    assert (await available(h, "OIL-5L"), await available(h, "RICE-5KG")) == (oil - 4, rice - 2)
    status, same = await h.api("GET", f"/orders/{order['number']}")
    assert same == order  # exactly what the orders API answers for it

    status, again = await h.api("POST", f"/quotes/{quote['id']}/accept")
    assert status == 200 and again["number"] == order["number"]
    assert (await available(h, "OIL-5L")) == oil - 4 and (await counts(h))[2] == 1  # no second order
    status, accepted = await h.api("GET", f"/quotes/{quote['id']}")
    assert accepted["status"] == "accepted" and accepted["order_number"] == order["number"]
    status, won = await h.api("GET", f"/opportunities/{opp['id']}")
    assert won["stage"] == "won" and won["closed_at"] is not None and quote["number"] in won["reason"]
    assert won["history"][-1]["to"] == "won"


async def test_bad_lines_are_refused_naming_the_line_and_nothing_is_created(sandbox: SandboxHarness) -> None:
    h = sandbox
    cid = await seed_follow(h.rt, "sales01", "wmQuote")
    good = {"sku": "WATER-550", "qty": 1}
    cases = [
        ([good, {"sku": "NO-SUCH-SKU", "qty": 1}], "第 2 行", "NO-SUCH-SKU"),
        ([{"sku": "WATER-550", "qty": 1, "discount_pct": -5}], "第 1 行", "0 到 100"),
        ([good, {"sku": "COLA-330", "qty": 2, "discount_pct": 100.5}], "第 2 行", "0 到 100"),
        ([{"sku": "WATER-550", "qty": 1, "discount_pct": 5, "unit_price_fen": 100}], "第 1 行", "只能给一个"),
        ([good, {"sku": "WATER-550", "qty": 2}], "第 2 行", "重复"),
        ([{"sku": "WATER-550", "qty": 1, "unit_price_fen": -1}], "第 1 行", "单价"),
    ]
    for lines, where, words in cases:
        status, body = await h.api("POST", "/quotes", json={"customer_id": cid, "owner": "sales01", "lines": lines})
        assert status == 400 and body["error"]["code"] == "quote_line_invalid", (lines, body)
        assert body["error"]["message"].startswith(where) and words in body["error"]["message"], body
    for body_in, words in (
        ({"customer_id": 424242, "owner": "sales01", "lines": [good]}, "没有这个客户"),
        ({"owner": "sales01", "lines": [good]}, "opportunity_id 或 customer_id"),
        ({"customer_id": cid, "owner": "sales01", "lines": []}, "lines"),
        ({"customer_id": cid, "owner": "sales01", "lines": [good], "valid_until": "2026-11-01"}, "有效期"),
    ):
        status, body = await h.api("POST", "/quotes", json=body_in)
        assert status == 400 and words in body["error"]["message"], (body_in, body)
    assert await counts(h) == (0, 0, 0)


async def test_an_expired_quote_cannot_be_accepted(sandbox: SandboxHarness, clock: FrozenClock) -> None:
    h = sandbox
    cid = await seed_follow(h.rt, "sales01", "wmQuote")
    body = {"customer_id": cid, "owner": "sales01", "lines": [{"sku": "WATER-550", "qty": 2}], "valid_until": "2026-11-25"}
    status, quote = await h.api("POST", "/quotes", json=body)
    assert status == 201
    before = await available(h, "WATER-550")
    clock.advance(days=3)  # 2026-11-26 in Shanghai: one day past its last day
    status, body = await h.api("POST", f"/quotes/{quote['id']}/accept")
    assert status == 409 and body["error"]["code"] == "quote_expired" and "过期" in body["error"]["message"]
    assert await available(h, "WATER-550") == before and (await counts(h))[2] == 0
    status, shown = await h.api("GET", f"/quotes/{quote['id']}")
    assert shown["status"] == "open" and shown["expired"] is True and shown["share_url"] is None


async def test_a_deep_discount_waits_for_approval_before_it_can_be_sent_or_accepted(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    cid = await seed_follow(h.rt, "sales01", "wmQuote")
    finance = await h.staff_token("fin.he", ["finance"])
    rule = {"name": "折扣超 15% 需财务审批", "doc_type": "quote", "conditions": [{"field": "discount_pct", "op": ">", "value": 15}],
            "steps": [{"role": "finance"}]}  # fmt: skip
    status, made = await h.api("POST", "/approval-rules", json=rule)
    assert status == 201 and made["description"] == "报价单：最大折扣（%）大于 15，需 财务角色（依次审批）"
    base = {"customer_id": cid, "owner": "sales01"}
    status, small = await h.api("POST", "/quotes", json={**base, "lines": [{"sku": "WATER-550", "qty": 1, "discount_pct": 15}]})
    assert small["status"] == "open" and small["approval"] is None
    status, deep = await h.api("POST", "/quotes", json={**base, "lines": [{"sku": "WATER-550", "qty": 1, "discount_pct": 15.5}]})
    assert status == 201 and deep["status"] == "pending_approval" and deep["share_url"] is None
    assert deep["approval"]["rule"] == "折扣超 15% 需财务审批"
    status, body = await h.api("POST", f"/quotes/{deep['id']}/accept")
    assert status == 409 and body["error"]["code"] == "quote_awaiting_approval"
    assert (await counts(h))[2] == 0

    status, decided = await h.as_token(finance, "POST", f"/approvals/{deep['approval']['id']}/approve", json={"comment": "老客户"})
    assert status == 200 and decided["status"] == "approved"
    await h.settle()
    status, sendable = await h.api("GET", f"/quotes/{deep['id']}")
    assert sendable["status"] == "open" and sendable["share_url"] and sendable["approval"] is None
    status, order = await h.api("POST", f"/quotes/{deep['id']}/accept")
    assert status == 201 and order["lines"][0]["unit_price_fen"] == 3042  # 36.00 元 less 15.5 %

    status, other = await h.api("POST", "/quotes", json={**base, "lines": [{"sku": "COLA-330", "qty": 1, "discount_pct": 50}]})
    status, decided = await h.as_token(finance, "POST", f"/approvals/{other['approval']['id']}/reject", json={"comment": "折扣太大"})
    await h.settle()
    status, rejected = await h.api("GET", f"/quotes/{other['id']}")
    assert rejected["status"] == "rejected"
    status, body = await h.api("POST", f"/quotes/{other['id']}/accept")
    assert status == 409 and body["error"]["code"] == "quote_not_open"


async def test_scoped_salesperson_and_handover(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    mine = await seed_follow(h.rt, "sales01", "wmMine")
    theirs = await seed_follow(h.rt, "sales02", "wmTheirs")
    line = [{"sku": "WATER-550", "qty": 1}]
    status, theirs_quote = await h.api("POST", "/quotes", json={"customer_id": theirs, "owner": "sales02", "lines": line})
    token = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    status, own = await h.as_token(token, "POST", "/quotes", json={"customer_id": mine, "lines": line})
    assert status == 201 and own["owner"] == "sales01"
    status, listed = await h.as_token(token, "GET", "/quotes")
    assert [q["id"] for q in listed["items"]] == [own["id"]]
    for method, path in (("GET", f"/quotes/{theirs_quote['id']}"), ("POST", f"/quotes/{theirs_quote['id']}/accept")):
        status, body = await h.as_token(token, method, path)
        assert status == 404, (path, body)
    status, body = await h.as_token(token, "POST", "/quotes", json={"customer_id": theirs, "lines": line})
    assert status == 400

    payload = {"customer_id": mine, "from_userid": "sales01", "to_userid": "sales03", "kind": "resigned", "handover_id": 1}
    for _ in range(2):
        async with h.rt.db.write() as conn:
            await outbox.add(conn, "customer.transferred", payload, h.rt.clock.now())
        await h.settle()
    status, moved = await h.api("GET", f"/quotes/{own['id']}")
    assert moved["owner"] == "sales03"
    status, listed = await h.as_token(token, "GET", "/quotes")
    assert listed["items"] == []


async def test_the_shared_page_shows_the_quote_for_its_token_and_the_customer_accepts_there(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    cid = await seed_follow(h.rt, "sales01", "wmQuote", name="丙超市")
    body = {"customer_id": cid, "owner": "sales01", "lines": [{"sku": "WATER-550", "qty": 3, "discount_pct": 10}], "note": "含送货上门"}
    status, quote = await h.api("POST", "/quotes", json=body)
    path = quote["share_url"].removeprefix(h.rt.settings.base_url)
    resp = await h.client.get(path)
    text = await resp.text()
    assert resp.status == 200 and quote["number"] in text and "丙超市" in text and "¥97.20" in text and "含送货上门" in text
    assert "@media print" in text and "<script" not in text and "script-src" not in resp.headers["Content-Security-Policy"]
    assert "接受报价并下单" in text and 'action="' + path + '/accept"' in text
    for bad in (path[:-3] + "abc", "/quotes/shared/nonsense", "/quotes/shared/" + "x" * 5000):
        missing = await h.client.get(bad)
        assert missing.status == 404 and quote["number"] not in await missing.text(), bad
    refused = await h.client.post(path[:-3] + "abc/accept", allow_redirects=False)
    assert refused.status == 404 and (await counts(h))[2] == 0

    before = await available(h, "WATER-550")
    for _ in range(2):  # pressed twice: one order
        accepted = await h.client.post(path + "/accept", allow_redirects=False)
        assert accepted.status == 303 and accepted.headers["Location"] == path + "?accepted=1"
    shown = await (await h.client.get(path + "?accepted=1")).text()
    status, now = await h.api("GET", f"/quotes/{quote['id']}")
    assert now["status"] == "accepted" and now["order_number"] in shown and "感谢确认" in shown and "接受报价并下单" not in shown
    assert await available(h, "WATER-550") == before - 3 and (await counts(h))[2] == 1

    status, waiting = await h.api("POST", "/quotes", json={**body, "valid_until": "2026-11-23"})
    assert status == 201
    h.rt.clock.advance(days=2)  # type: ignore[attr-defined]
    late = await h.client.post(waiting["share_url"].removeprefix(h.rt.settings.base_url) + "/accept", allow_redirects=False)
    assert late.status == 409 and "已于 2026-11-23 过期" in await late.text() and (await counts(h))[2] == 1
