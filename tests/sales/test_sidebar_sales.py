"""The sidebar's 商机与报价 card: the current customer's opportunities and quotes (the salesperson's own), the quote
link to send into the chat (refused while the quote waits for approval), and accepting for the customer."""

from __future__ import annotations

from scrm.sidebar import auth as sidebar_auth
from tests.conftest import SandboxHarness
from tests.scrm.test_sidebar import seed_follow, seed_people
from tests.security.conftest import sidebar_login


async def test_the_sidebar_lists_and_sends_this_customers_quotes(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    cid = await seed_follow(h.rt, "sales01", "wmSide", name="丁餐厅")
    await seed_follow(h.rt, "sales02", "wmSide")  # followed by both: each sees only their own rows
    status, opp = await h.api(
        "POST", "/opportunities", json={"customer_id": cid, "title": "后厨调料", "owner": "sales01", "amount_fen": 50000}
    )
    status, other_opp = await h.api("POST", "/opportunities", json={"customer_id": cid, "title": "别人的商机", "owner": "sales02"})
    line = [{"sku": "SOY-LIGHT", "qty": 10}]
    status, quote = await h.api("POST", "/quotes", json={"opportunity_id": opp["id"], "lines": line})
    status, theirs = await h.api("POST", "/quotes", json={"customer_id": cid, "owner": "sales02", "lines": line})
    rule = {
        "name": "大折扣",
        "doc_type": "quote",
        "conditions": [{"field": "discount_pct", "op": ">=", "value": 30}],
        "steps": [{"role": "admin"}],
    }
    assert (await h.api("POST", "/approval-rules", json=rule))[0] == 201
    status, waiting = await h.api(
        "POST", "/quotes", json={"customer_id": cid, "owner": "sales01", "lines": [{**line[0], "discount_pct": 30}]}
    )
    assert waiting["status"] == "pending_approval"

    csrf = await sidebar_login(h.client, "sales01")
    headers = {sidebar_auth.CSRF_HEADER: csrf}
    resp = await h.client.get("/sidebar/api/customers/wmSide/sales")
    data = await resp.json()
    assert resp.status == 200 and [o["title"] for o in data["opportunities"]] == ["后厨调料"]
    assert [(q["number"], q["sendable"]) for q in data["quotes"]] == [(waiting["number"], False), (quote["number"], True)]

    resp = await h.client.post("/sidebar/api/customers/wmSide/quote-link", json={"quote_id": quote["id"]}, headers=headers)
    sent = await resp.json()
    assert resp.status == 201 and sent["url"] == quote["share_url"] and quote["number"] in sent["title"] and sent["url"] in sent["text"]
    page = await h.client.get(sent["url"].removeprefix(h.rt.settings.base_url))
    assert page.status == 200 and "丁餐厅" in await page.text()
    resp = await h.client.post("/sidebar/api/customers/wmSide/quote-link", json={"quote_id": waiting["id"]}, headers=headers)
    body = await resp.json()
    assert resp.status == 409 and body["error"]["code"] == "quote_awaiting_approval"
    for quote_id in (theirs["id"], 999999):
        resp = await h.client.post("/sidebar/api/customers/wmSide/quote-link", json={"quote_id": quote_id}, headers=headers)
        assert resp.status == 403

    resp = await h.client.post("/sidebar/api/customers/wmSide/quote-acceptance", json={"quote_id": quote["id"]}, headers=headers)
    accepted = await resp.json()
    assert resp.status == 201 and accepted["order"]["status"] == "confirmed"
    status, won = await h.api("GET", f"/opportunities/{opp['id']}")
    assert won["stage"] == "won"
    status, untouched = await h.api("GET", f"/opportunities/{other_opp['id']}")
    assert status == 200 and untouched["stage"] == "initial"
