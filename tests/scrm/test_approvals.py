"""Approvals (审批) end to end through the sandbox: rules refused when impossible, an order over the threshold waits
without stock until approved (in the console/API or on an approver's phone in WeCom's 审批 app, through the
sys_approval_change callback), two approvers in sequence, a rejection that never reaches the order, a callback
delivered three times that acts once, and an approver who left replaced by their lead with the requester told."""

from __future__ import annotations

import sqlalchemy as sa

from bots.sandbox import approval_endpoints, simulator
from fulfillment.orders.models import order_history
from scrm.core.audit import audit_log
from scrm.crm.staff.services import upsert_salesperson
from scrm.governance.approvals import services as approvals
from scrm.governance.approvals.models import approvals as approvals_table
from tests.conftest import SandboxHarness, make_customer
from tests.security.conftest import HTML, console_login

ORDER = {"customer": "wmBig", "lines": [{"sku": "WATER-550", "qty": 5}], "salesperson": "sales01"}  # 5 × 36.00 = 180 元


async def available(h: SandboxHarness, sku: str = "WATER-550") -> int:
    status, product = await h.api("GET", f"/products/{sku}")
    assert status == 200
    return int(product["available"])


async def people(h: SandboxHarness, *, leader_active: bool = True) -> None:
    """sales01 (王销售) reports to boss01 (张经理), who reports to ceo01 (赵总) — in WeCom and in our directory."""
    h.state.add_member("boss01", "张经理", position="销售经理")
    h.state.add_member("ceo01", "赵总", position="总经理")
    async with h.rt.db.write() as conn:
        now = h.rt.clock.now()
        await upsert_salesperson(conn, h.rt.db.dialect, "ceo01", now, name="赵总", active=True)
        await upsert_salesperson(conn, h.rt.db.dialect, "boss01", now, name="张经理", leader_userid="ceo01", active=leader_active)
        await upsert_salesperson(conn, h.rt.db.dialect, "sales01", now, name="王销售", leader_userid="boss01", active=True)


async def test_impossible_or_malformed_rules_are_refused_with_the_reason(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h, leader_active=False)
    base = {"name": "大额订单", "doc_type": "order", "steps": [{"role": "finance"}]}
    cases = [
        ({"conditions": [{"field": "amount_fen", "op": ">=", "value": 10_000_000}, {"field": "amount_fen", "op": "<", "value": 5_000_000}]},
         "不可能同时满足"),
        ({"conditions": [{"field": "amount_fen", "op": "<", "value": 0}]}, "不可能同时满足"),
        ({"conditions": [{"field": "source", "op": "==", "value": "chat"}, {"field": "source", "op": "!=", "value": "chat"}]}, "不可能"),
        ({"conditions": [{"field": "margin", "op": ">", "value": 1}]}, "可用的字段"),
        ({"conditions": [{"field": "amount_fen", "op": ">=", "value": "10万"}]}, "整数"),
        ({"doc_type": "invoice"}, "单据类型"),
        ({"steps": [{"role": "boss"}]}, "审批人"),
        ({"steps": [{"member": "boss01"}]}, "已离职"),
        ({"mode": "majority"}, "审批方式"),
    ]  # fmt: skip
    for change, words in cases:
        status, body = await h.api("POST", "/approval-rules", json={**base, **change})
        assert status == 400 and words in body["error"]["message"], (change, body)
    status, listed = await h.api("GET", "/approval-rules")
    assert listed["items"] == []
    status, rule = await h.api(
        "POST", "/approval-rules", json={**base, "conditions": [{"field": "amount_fen", "op": ">=", "value": 10_000_000}]}
    )
    assert status == 201 and rule["description"] == "订单：订单金额不小于 100,000.00 元，需 财务角色（依次审批）"


async def test_an_order_over_the_threshold_waits_then_allocates_when_finance_approves(sandbox: SandboxHarness) -> None:
    h = sandbox
    await make_customer(h.rt, "wmBig")
    finance = await h.staff_token("fin.he", ["finance"])
    marketer = await h.staff_token("mkt.ma", ["marketer"])
    rule = {"name": "百元以上订单财务审批", "doc_type": "order", "conditions": [{"field": "amount_fen", "op": ">=", "value": 10_000}],
            "steps": [{"role": "finance"}]}  # fmt: skip
    assert (await h.api("POST", "/approval-rules", json=rule))[0] == 201
    before = await available(h)

    status, small = await h.api("POST", "/orders", json={**ORDER, "lines": [{"sku": "WATER-550", "qty": 1}]})
    assert status == 201 and small["status"] == "confirmed" and "approval" not in small  # 36 元: no rule applies
    status, order = await h.api("POST", "/orders", json=ORDER)
    assert status == 201 and order["status"] == "pending_approval", order
    assert order["approval"]["rule"] == "百元以上订单财务审批" and order["approval"]["waiting_for"] == ["财务角色（fin.he）"]
    assert await available(h) == before - 1  # nothing allocated for the waiting order
    status, again = await h.api("GET", f"/orders/{order['number']}")
    assert again["status"] == "pending_approval" and again["approval"]["id"] == order["approval"]["id"]
    status, body = await h.api("POST", f"/orders/{order['number']}/confirm")
    assert status == 409 and body["error"]["code"] == "awaiting_approval"

    approval_id = order["approval"]["id"]
    status, inbox = await h.as_token(marketer, "GET", "/approvals")
    assert status == 200 and inbox["items"] == []  # not theirs to decide, not theirs to see
    status, body = await h.as_token(marketer, "POST", f"/approvals/{approval_id}/approve", json={})
    assert status == 403 and body["error"]["code"] == "not_your_approval"
    status, inbox = await h.as_token(finance, "GET", "/approvals?status=pending")
    assert [a["doc_ref"] for a in inbox["items"]] == [order["number"]]
    status, decided = await h.as_token(finance, "POST", f"/approvals/{approval_id}/approve", json={"comment": "老客户，同意"})
    assert status == 200 and decided["status"] == "approved" and decided["steps"][0]["decided_by"] == "fin.he"
    await h.settle()
    status, confirmed = await h.api("GET", f"/orders/{order['number']}")
    assert confirmed["status"] == "confirmed" and "approval" not in confirmed
    assert await available(h) == before - 6
    status, body = await h.as_token(finance, "POST", f"/approvals/{approval_id}/reject", json={"comment": "晚了"})
    assert status == 409 and body["error"]["code"] == "approval_closed"
    async with h.rt.db.read() as conn:
        actions = [r.action for r in (await conn.execute(sa.select(audit_log).where(audit_log.c.entity == "approvals"))).all()]
    assert actions == ["approve"]


async def test_a_rejected_order_never_allocates_and_the_customer_is_told_politely(sandbox: SandboxHarness) -> None:
    h = sandbox
    await make_customer(h.rt, "wmBig")
    finance = await h.staff_token("fin.he", ["finance"])
    rule = {"name": "大单", "doc_type": "order", "conditions": [{"field": "qty", "op": ">", "value": 3}], "steps": [{"role": "finance"}]}
    await h.api("POST", "/approval-rules", json=rule)
    before = await available(h)
    status, order = await h.api("POST", "/orders", json=ORDER)
    status, body = await h.as_token(finance, "POST", f"/approvals/{order['approval']['id']}/reject", json={})
    assert status == 400 and body["error"]["details"]["field"] == "comment"  # a rejection says why
    status, decided = await h.as_token(finance, "POST", f"/approvals/{order['approval']['id']}/reject", json={"comment": "客户欠款未清"})
    assert decided["status"] == "rejected"
    await h.settle()
    status, cancelled = await h.api("GET", f"/orders/{order['number']}")
    assert cancelled["status"] == "cancelled" and await available(h) == before
    async with h.rt.db.read() as conn:
        notes = [r.note for r in (await conn.execute(sa.select(order_history).where(order_history.c.to_status == "cancelled"))).all()]
    assert notes == ["审批未通过：客户欠款未清"]
    status, sent = await h.api("GET", "/outbound-messages?purpose=notice")
    texts = [str(m["payload"].get("text") or m["payload"].get("content")) for m in sent["items"] if order["number"] in str(m["payload"])]
    assert any("暂未通过审核" in t for t in texts) and not any("欠款" in t for t in texts), texts


async def test_two_approvers_in_sequence(sandbox: SandboxHarness) -> None:
    h = sandbox
    await make_customer(h.rt, "wmBig")
    finance = await h.staff_token("fin.he", ["finance"])
    boss = await h.staff_token("boss.zhao", ["admin"])
    rule = {"name": "两级", "doc_type": "order", "conditions": [], "steps": [{"role": "finance"}, {"role": "admin"}], "mode": "sequential"}
    assert (await h.api("POST", "/approval-rules", json=rule))[0] == 201
    _status, order = await h.api("POST", "/orders", json=ORDER)
    aid = order["approval"]["id"]
    assert order["approval"]["waiting_for"] == ["财务角色（fin.he）"]
    _, first = await h.as_token(finance, "POST", f"/approvals/{aid}/approve", json={"comment": "可以"})
    assert first["status"] == "pending" and first["waiting_for"] == ["管理员角色（boss.zhao）"]
    assert (await h.as_token(finance, "POST", f"/approvals/{aid}/approve", json={}))[0] == 403  # step 2 is not finance's
    await h.settle()
    assert (await h.api("GET", f"/orders/{order['number']}"))[1]["status"] == "pending_approval"
    _, second = await h.as_token(boss, "POST", f"/approvals/{aid}/approve", json={})
    assert second["status"] == "approved" and [s["decided_by"] for s in second["steps"]] == ["fin.he", "boss.zhao"]
    await h.settle()
    assert (await h.api("GET", f"/orders/{order['number']}"))[1]["status"] == "confirmed"


async def test_decided_on_the_phone_in_wecom_through_the_callback_once(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    await make_customer(h.rt, "wmBig")
    rule = {
        "name": "上级审批",
        "doc_type": "order",
        "conditions": [{"field": "amount_fen", "op": ">", "value": 10_000}],
        "steps": [{"lead": True}],
    }
    await h.api("POST", "/approval-rules", json=rule)
    before = await available(h)
    _, order = await h.api("POST", "/orders", json=ORDER)
    assert order["approval"]["waiting_for"] == ["申请人的直属上级（张经理）"]
    await h.settle()
    # submitted once to the 审批 app, with the lead as the approver node; the lead was told by app message
    [application] = list(h.state.applications.values())
    assert [n.userids for n in application.nodes] == [["boss01"]] and application.creator == "sales01"
    assert any("【待审批】" in m["content"] and m["touser"] == ["boss01"] for m in h.state.app_messages)
    approval = await approvals.get_approval(h.rt, order["approval"]["id"])
    assert approval.sp_no == application.sp_no

    resp = await h.client.post(
        "/sandbox/api/approvals/decide", json={"sp_no": application.sp_no, "userid": "boss01", "decision": "approve", "speech": "同意"}
    )
    assert resp.status == 200, await resp.text()
    await h.settle()
    _, confirmed = await h.api("GET", f"/orders/{order['number']}")
    assert confirmed["status"] == "confirmed" and await available(h) == before - 5
    # the same callback delivered twice more (WeCom retries): nothing moves again
    xml = simulator.event(
        "sys_approval_change", AgentID=h.state.agent_id, ApprovalInfo=approval_endpoints.callback_fields(h.state, application)
    )
    for _ in range(2):
        assert h.state.on_wecom_event is not None
        await h.state.on_wecom_event(xml)
    await approvals.decide_from_wecom(h.rt, application.sp_no, 2, [{"userid": "boss01", "status": 2, "speech": "同意"}])
    await h.settle()
    async with h.rt.db.read() as conn:
        history = (await conn.execute(sa.select(order_history.c.event).where(order_history.c.to_status == "confirmed"))).scalars().all()
        decisions = (await conn.execute(sa.select(audit_log.c.action).where(audit_log.c.entity == "approvals"))).scalars().all()
        row = (await conn.execute(sa.select(approvals_table))).one()
    assert history == ["confirmed"] and decisions == ["approve"]
    assert row.steps[0]["decided_by"] == "boss01" and row.steps[0]["comment"] == "同意"
    assert any("【审批结果】" in m["content"] and m["touser"] == ["sales01"] for m in h.state.app_messages)


async def test_an_approver_who_left_is_replaced_by_their_lead_and_the_requester_is_told(sandbox: SandboxHarness) -> None:
    h = sandbox
    await people(h)
    await make_customer(h.rt, "wmBig")
    rule = {"name": "经理审批", "doc_type": "order", "conditions": [], "steps": [{"member": "boss01"}]}
    assert (await h.api("POST", "/approval-rules", json=rule))[0] == 201
    async with h.rt.db.write() as conn:  # 张经理 leaves after the rule was written
        await upsert_salesperson(conn, h.rt.db.dialect, "boss01", h.rt.clock.now(), active=False)
    _, order = await h.api("POST", "/orders", json=ORDER)
    assert order["approval"]["waiting_for"] == ["成员 boss01（赵总）"]
    approval = await approvals.get_approval(h.rt, order["approval"]["id"])
    assert approval.notes == ["审批人 boss01 已离职，改由其直属上级 赵总（ceo01）审批"]
    await h.settle()
    told = [m["content"] for m in h.state.app_messages if m["touser"] == ["sales01"]]
    assert any("赵总" in t and "已离职" in t for t in told), told
    [application] = list(h.state.applications.values())
    assert [n.userids for n in application.nodes] == [["ceo01"]]


async def test_a_credit_release_over_the_rule_waits_for_its_approval(sandbox: SandboxHarness) -> None:
    h = sandbox
    await make_customer(h.rt, "wmBig")
    finance = await h.staff_token("fin.he", ["finance"])
    boss = await h.staff_token("boss.zhao", ["admin"])
    rule = {"name": "大额放行", "doc_type": "credit_release", "conditions": [{"field": "over_limit_fen", "op": ">=", "value": 10_000}],
            "steps": [{"role": "admin"}]}  # fmt: skip
    assert (await h.api("POST", "/approval-rules", json=rule))[0] == 201
    await h.api("PATCH", "/accounts/wmBig", json={"credit_limit_fen": 100})
    _, held = await h.api("POST", "/orders", json=ORDER)
    assert held["status"] == "on_hold"
    status, asked = await h.as_token(finance, "POST", f"/holds/{held['number']}/release")
    assert status == 200 and asked["status"] == "on_hold" and asked["approval"]["rule"] == "大额放行"
    status, again = await h.as_token(finance, "POST", f"/holds/{held['number']}/release")
    assert again["approval"]["id"] == asked["approval"]["id"]  # asking twice waits on the same approval
    await h.as_token(boss, "POST", f"/approvals/{asked['approval']['id']}/approve", json={"comment": "老客户"})
    await h.settle()
    assert (await h.api("GET", f"/orders/{held['number']}"))[1]["status"] == "confirmed"


async def test_the_console_writes_rules_and_decides_from_the_inbox(sandbox: SandboxHarness) -> None:
    h, c = sandbox, sandbox.client
    await make_customer(h.rt, "wmBig")
    csrf = await console_login(c, h.rt.settings)
    form = {"csrf_token": csrf, "name": "百元以上订单", "doc_type": "order", "field_0": "amount_fen", "op_0": ">=", "value_0": "100",
            "step_0": "role:admin", "mode": "sequential", "priority": "10"}  # fmt: skip
    page = await c.post("/console/approval-rules", data=form, headers=HTML)
    text = await page.text()
    assert page.status == 200 and "订单：订单金额不小于 100.00 元，需 管理员角色（依次审批）" in text
    bad = await c.post(
        "/console/approval-rules", data={**form, "name": "矛盾", "field_1": "amount_fen", "op_1": "<", "value_1": "50"}, headers=HTML
    )
    assert "条件不可能同时满足" in await bad.text()
    assert len((await h.api("GET", "/approval-rules"))[1]["items"]) == 1

    _, order = await h.api("POST", "/orders", json=ORDER)
    _, other = await h.api("POST", "/orders", json=ORDER)
    inbox = await c.get("/console/approvals", headers=HTML)
    text = await inbox.text()
    assert inbox.status == 200 and order["number"] in text and other["number"] in text and "待审批" in text
    refused = await c.post(f"/console/approvals/{other['approval']['id']}/reject", data={"csrf_token": csrf, "comment": ""}, headers=HTML)
    assert "驳回时请写明原因" in await refused.text()
    await c.post(f"/console/approvals/{order['approval']['id']}/approve", data={"csrf_token": csrf, "comment": "可以"}, headers=HTML)
    await c.post(f"/console/approvals/{other['approval']['id']}/reject", data={"csrf_token": csrf, "comment": "价格不对"}, headers=HTML)
    await h.settle()
    assert (await h.api("GET", f"/orders/{order['number']}"))[1]["status"] == "confirmed"
    assert (await h.api("GET", f"/orders/{other['number']}"))[1]["status"] == "cancelled"
    done = await (await c.get("/console/approvals?view=all", headers=HTML)).text()
    assert "已通过" in done and "已驳回" in done and "价格不对" in done
    order_page = await (await c.get(f"/console/orders/{order['number']}", headers=HTML)).text()
    assert "提交审批，待审批通过" in order_page


async def test_a_customer_ordering_in_chat_is_told_it_waits_then_that_it_is_confirmed(sandbox: SandboxHarness) -> None:
    h = sandbox
    rule = {
        "name": "百元以上",
        "doc_type": "order",
        "conditions": [{"field": "amount_fen", "op": ">=", "value": 10_000}],
        "steps": [{"role": "admin"}],
    }
    await h.api("POST", "/approval-rules", json=rule)
    await h.customer_says("wmChat01", "要5箱矿泉水", name="陈女士")
    await h.customer_says("wmChat01", "确认")
    assert "需经审核后备货" in h.replies("wmChat01")[-1]
    [waiting] = (await h.api("GET", "/approvals?status=pending"))[1]["items"]
    assert waiting["requester"].startswith("客户#")
    await h.customer_says("wmChat01", "我的订单")
    assert "待审批" in h.replies("wmChat01")[-1]
    await h.api("POST", f"/approvals/{waiting['id']}/approve", json={})
    await h.settle()
    assert "已确认" in h.replies("wmChat01")[-1]


async def test_a_purchase_order_over_the_rule_is_sent_only_when_approved(sandbox: SandboxHarness) -> None:
    h = sandbox
    finance = await h.staff_token("fin.he", ["finance"])
    rule = {"name": "大额采购", "doc_type": "purchase_order", "conditions": [{"field": "amount_fen", "op": ">", "value": 50_000}],
            "steps": [{"role": "finance"}]}  # fmt: skip
    assert (await h.api("POST", "/approval-rules", json=rule))[0] == 201
    _, supplier = await h.api("POST", "/suppliers", json={"name": "水厂"})
    line = {"sku": "WATER-550", "qty": 100, "unit_cost_fen": 2100}  # 2,100 元
    _, po = await h.api("POST", "/purchase-orders", json={"supplier_id": supplier["id"], "lines": [line]})
    status, placed = await h.api("POST", f"/purchase-orders/{po['number']}/place", json={"expected_on": "2026-12-01"})
    assert status == 200 and placed["status"] == "pending_approval" and placed["approval"]["rule"] == "大额采购"
    status, _body = await h.api("POST", f"/purchase-orders/{po['number']}/receive", json={"reference": "DN-早"})
    assert status == 409  # nothing is received against an order the supplier never got
    status, _decided = await h.as_token(finance, "POST", f"/approvals/{placed['approval']['id']}/reject", json={"comment": "单价太高"})
    await h.settle()
    status, back = await h.api("GET", f"/purchase-orders/{po['number']}")
    assert back["status"] == "draft" and "审批未通过：单价太高" in back["note"]
    _, again = await h.api("POST", f"/purchase-orders/{po['number']}/place", json={})
    await h.as_token(finance, "POST", f"/approvals/{again['approval']['id']}/approve", json={})
    await h.settle()
    status, sent = await h.api("GET", f"/purchase-orders/{po['number']}")
    assert sent["status"] == "ordered" and sent["expected_on"] == "2026-12-01"  # the date first asked for


async def test_a_refund_over_the_rule_is_paid_only_when_approved(sandbox: SandboxHarness) -> None:
    h = sandbox
    await make_customer(h.rt, "wmBig")
    finance = await h.staff_token("fin.he", ["finance"])
    boss = await h.staff_token("boss.zhao", ["admin"])
    rule = {"name": "大额退款", "doc_type": "refund", "conditions": [{"field": "amount_fen", "op": ">=", "value": 50_000}],
            "steps": [{"role": "admin"}]}  # fmt: skip
    await h.api("POST", "/approval-rules", json=rule)
    await h.api("POST", "/payments", json={"customer": "wmBig", "amount_fen": 100_000, "reference": "P-1", "method": "bank"})
    status, small = await h.as_token(finance, "POST", "/accounts/wmBig/refunds", json={"amount_fen": 10_000, "reference": "R-1"})
    assert status == 201 and small["credit_fen"] == 90_000  # under the rule: paid at once
    status, big = await h.as_token(finance, "POST", "/accounts/wmBig/refunds", json={"amount_fen": 60_000, "reference": "R-2"})
    assert status == 202 and big["credit_fen"] == 90_000 and big["approval"]["rule"] == "大额退款"
    status, again = await h.as_token(finance, "POST", "/accounts/wmBig/refunds", json={"amount_fen": 60_000, "reference": "R-2"})
    assert status == 202 and again["approval"]["id"] == big["approval"]["id"]
    status, body = await h.as_token(finance, "POST", "/accounts/wmBig/refunds", json={"amount_fen": 95_000, "reference": "R-3"})
    assert status >= 400 and "预收余额" in body["error"]["message"]  # what could never be paid is refused now
    await h.as_token(boss, "POST", f"/approvals/{big['approval']['id']}/approve", json={})
    await h.settle()
    assert (await h.api("GET", "/accounts/wmBig"))[1]["credit_fen"] == 30_000


async def test_nobody_approves_what_they_asked_for(sandbox: SandboxHarness) -> None:
    h = sandbox
    await make_customer(h.rt, "wmBig")
    finance = await h.staff_token("fin.he", ["finance"])
    other = await h.staff_token("fin.qian", ["finance"])
    rule = {"name": "放行审批", "doc_type": "credit_release", "conditions": [], "steps": [{"role": "finance"}]}
    await h.api("POST", "/approval-rules", json=rule)
    await h.api("PATCH", "/accounts/wmBig", json={"credit_limit_fen": 100})
    _, held = await h.api("POST", "/orders", json=ORDER)
    _, asked = await h.as_token(finance, "POST", f"/holds/{held['number']}/release")
    status, body = await h.as_token(finance, "POST", f"/approvals/{asked['approval']['id']}/approve", json={})
    assert status == 403 and body["error"]["code"] == "not_your_approval"
    assert (await h.as_token(finance, "GET", "/approvals?status=pending"))[1]["items"][0]["requester"] == "fin.he"  # listed as asked
    status, done = await h.as_token(other, "POST", f"/approvals/{asked['approval']['id']}/approve", json={})
    assert status == 200 and done["status"] == "approved"


async def test_a_price_cut_over_the_rule_waits_and_the_old_price_applies_meanwhile(sandbox: SandboxHarness) -> None:
    h = sandbox
    boss = await h.staff_token("boss.zhao", ["admin"])
    rule = {"name": "大幅降价", "doc_type": "price_change", "conditions": [{"field": "change_pct", "op": "<=", "value": -10}],
            "steps": [{"role": "admin"}]}  # fmt: skip
    assert (await h.api("POST", "/approval-rules", json=rule))[0] == 201
    status, small = await h.api("PATCH", "/products/WATER-550", json={"price_fen": 3500})  # −3 %: at once
    assert status == 200 and small["price_fen"] == 3500 and "pending_price" not in small
    status, cut = await h.api("PATCH", "/products/WATER-550", json={"price_fen": 3000, "reorder_point": 8})  # −14 %
    assert status == 200 and cut["price_fen"] == 3500 and cut["reorder_point"] == 8  # the rest changed; the price waits
    assert cut["pending_price"]["price_fen"] == 3000 and cut["pending_price"]["approval"]["rule"] == "大幅降价"
    await h.customer_says("wmPrice", "要2箱矿泉水")
    assert "¥70.00" in h.replies("wmPrice")[-1]  # chat still quotes the price in force
    await h.as_token(boss, "POST", f"/approvals/{cut['pending_price']['approval']['id']}/approve", json={})
    await h.settle()
    assert (await h.api("GET", "/products/WATER-550"))[1]["price_fen"] == 3000
    csrf = await console_login(h.client, h.rt.settings)
    _, product = await h.api("GET", "/products/WATER-550")
    async with h.rt.db.read() as conn:
        pid = (await conn.execute(sa.text("SELECT id FROM products WHERE sku = 'WATER-550'"))).scalar_one()
    form = {"csrf_token": csrf, "name": product["name"], "unit": product["unit"], "price": "20", "aliases": "、".join(product["aliases"])}
    page = await h.client.post(f"/console/products/{pid}", data=form, headers=HTML)
    assert "改价为 ¥20.00 需审批" in await page.text()
    assert (await h.api("GET", "/products/WATER-550"))[1]["price_fen"] == 3000
