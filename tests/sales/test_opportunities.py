"""Opportunities (商机) over the API: creation for an existing customer with products from the catalog, stage
changes with history and a timeline entry, refusals that change nothing (unknown stage, lost without a reason, a
stale version), data scopes (a salesperson never sees another's opportunities), and the handover move."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.core import outbox
from scrm.crm.timeline.models import timeline
from scrm.sales.pipeline.models import opportunities
from tests.conftest import SandboxHarness
from tests.scrm.test_sidebar import seed_follow, seed_people


async def make_opportunity(h: SandboxHarness, customer_id: int, **more: object) -> dict:
    body = {"customer_id": customer_id, "title": "办公室饮用水年度采购", "owner": "sales01", "amount_fen": 1_200_000, **more}
    status, made = await h.api("POST", "/opportunities", json=body)
    assert status == 201, made
    return made


async def test_stage_changes_are_recorded_and_refusals_change_nothing(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    cid = await seed_follow(h.rt, "sales01", "wmOpp", name="甲公司")
    made = await make_opportunity(h, cid, products=["WATER-550"], expected_close_on="2026-12-20")
    assert made["stage"] == "initial" and made["stage_name"] == "初步接触" and made["probability"] == 10
    assert made["products"] == ["WATER-550"] and made["history"][0]["event"] == "created" and made["version"] == 1

    status, moved = await h.api("PATCH", f"/opportunities/{made['id']}", json={"stage": "negotiation", "amount_fen": 1_500_000})
    assert status == 200 and moved["stage"] == "negotiation" and moved["probability"] == 70 and moved["amount_fen"] == 1_500_000
    assert [(e["from"], e["to"]) for e in moved["history"]] == [("", "initial"), ("initial", "negotiation")]
    assert moved["closed_at"] is None and moved["version"] == 2

    async with h.rt.db.read() as conn:
        before = (await conn.execute(sa.select(opportunities).where(opportunities.c.id == made["id"]))).one()._asdict()
    cases = [
        ({"stage": "signed"}, 400, "stage_invalid", "没有这个阶段"),
        ({"stage": "lost"}, 400, "reason_required", "输单原因"),
        ({"stage": "lost", "reason": "   "}, 400, "reason_required", "输单原因"),
        ({"stage": "won"}, 400, "reason_required", "赢单原因"),
        ({"products": ["NO-SUCH"]}, 400, "invalid_input", "没有这个商品"),
        ({"amount_fen": 100, "version": 1}, 409, "stale_opportunity", "已被他人修改"),
    ]
    for change, code, error, words in cases:
        status, body = await h.api("PATCH", f"/opportunities/{made['id']}", json=change)
        assert status == code and body["error"]["code"] == error and words in body["error"]["message"], (change, body)
    async with h.rt.db.read() as conn:
        after = (await conn.execute(sa.select(opportunities).where(opportunities.c.id == made["id"]))).one()._asdict()
    assert after == before  # nothing changed by any refusal

    status, lost = await h.api("PATCH", f"/opportunities/{made['id']}", json={"stage": "lost", "reason": "价格高于竞品", "version": 2})
    assert status == 200 and lost["reason"] == "价格高于竞品" and lost["probability"] == 0 and lost["closed_at"] is not None
    status, reopened = await h.api("PATCH", f"/opportunities/{made['id']}", json={"stage": "qualified", "probability": 45})
    assert reopened["closed_at"] is None and reopened["probability"] == 45 and reopened["probability_overridden"] is True
    status, back = await h.api("PATCH", f"/opportunities/{made['id']}", json={"probability": None})
    assert back["probability"] == 30 and back["probability_overridden"] is False
    async with h.rt.db.read() as conn:
        titles = [r.title for r in (await conn.execute(sa.select(timeline).where(timeline.c.customer_id == cid))).all()]
    assert any("谈判 → 输单" in t for t in titles) and any("新建" in t for t in titles)


async def test_creation_needs_an_existing_customer_and_products_from_the_catalog(sandbox: SandboxHarness) -> None:
    h = sandbox
    cid = await seed_follow(h.rt, "sales01", "wmOpp")
    for body, words in (
        ({"customer_id": 99999, "title": "x", "owner": "sales01"}, "没有这个客户"),
        ({"customer_id": cid, "title": "x", "owner": "sales01", "products": ["WATER-550", "NOPE"]}, "第 2 项"),
        ({"customer_id": cid, "title": "x", "owner": "sales01", "stage": "lost"}, "输单原因"),
        ({"customer_id": cid, "title": "x"}, "负责人"),  # the admin token has no WeCom member of its own
    ):
        status, answer = await h.api("POST", "/opportunities", json=body)
        assert status == 400 and words in answer["error"]["message"], (body, answer)
    async with h.rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(opportunities))).scalar_one() == 0


async def test_a_salesperson_sees_only_their_own_opportunities(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    mine = await seed_follow(h.rt, "sales01", "wmMine", name="甲客户")
    theirs = await seed_follow(h.rt, "sales02", "wmTheirs", name="乙客户")
    own = await make_opportunity(h, mine, title="甲的商机")
    other = await make_opportunity(h, theirs, title="乙的秘密商机", owner="sales02")
    token = await h.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    status, listed = await h.as_token(token, "GET", "/opportunities")
    assert status == 200 and [o["id"] for o in listed["items"]] == [own["id"]]
    status, listed = await h.as_token(token, "GET", f"/opportunities?owner=sales02&customer_id={theirs}")
    assert listed["items"] == []
    status, body = await h.as_token(token, "GET", f"/opportunities/{other['id']}")
    assert status == 404
    status, body = await h.as_token(token, "PATCH", f"/opportunities/{other['id']}", json={"stage": "qualified"})
    assert status == 404
    status, body = await h.as_token(token, "POST", "/opportunities", json={"customer_id": theirs, "title": "抢单"})
    assert status == 400 and "没有这个客户" in body["error"]["message"]
    status, made = await h.as_token(token, "POST", "/opportunities", json={"customer_id": mine, "title": "自己的第二个"})
    assert status == 201 and made["owner"] == "sales01"  # the caller's own member by default
    status, body = await h.as_token(token, "POST", "/opportunities", json={"customer_id": mine, "title": "给别人", "owner": "sales02"})
    assert status == 400 and "数据范围" in body["error"]["message"]


async def test_a_handover_moves_open_opportunities_once(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    cid = await seed_follow(h.rt, "sales01", "wmMoved")
    open_one = await make_opportunity(h, cid, title="进行中")
    lost_one = await make_opportunity(h, cid, title="已输", stage="lost", reason="预算取消")
    payload = {"customer_id": cid, "from_userid": "sales01", "to_userid": "sales02", "kind": "onjob", "handover_id": 7}
    for _ in range(2):  # delivered twice: the effect of once
        async with h.rt.db.write() as conn:
            await outbox.add(conn, "customer.transferred", payload, h.rt.clock.now())
        await h.settle()
    status, moved = await h.api("GET", f"/opportunities/{open_one['id']}")
    assert moved["owner"] == "sales02" and [e["event"] for e in moved["history"]] == ["created", "owner"]
    status, kept = await h.api("GET", f"/opportunities/{lost_one['id']}")
    assert status == 200 and kept["owner"] == "sales01"


async def test_opportunities_and_quotes_follow_a_merged_customer(sandbox: SandboxHarness) -> None:
    from scrm.crm.customers.services import merge_customers

    h = sandbox
    older = await seed_follow(h.rt, "sales01", "wmOld")
    newer = await seed_follow(h.rt, "sales01", "wmNew")
    made = await make_opportunity(h, newer)
    status, quote = await h.api("POST", "/quotes", json={"opportunity_id": made["id"], "lines": [{"sku": "WATER-550", "qty": 1}]})
    assert status == 201
    async with h.rt.db.write() as conn:
        survivor = await merge_customers(conn, h.rt.db.dialect, older, newer, h.rt.clock.now())
    await h.settle()
    assert survivor == older
    status, moved = await h.api("GET", f"/opportunities/{made['id']}")
    assert moved["customer_id"] == older
    status, moved_quote = await h.api("GET", f"/quotes/{quote['id']}")
    assert moved_quote["customer_id"] == older
