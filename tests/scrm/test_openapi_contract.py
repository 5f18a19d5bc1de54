"""The API contract: every documented /api/v1 operation is called with a valid request on a sandbox app with data,
and the real answer is validated against the schema ``/api/openapi.json`` documents for its status — strictly: the
response models forbid extra fields (``additionalProperties: false``), so a key the handler adds without documenting
it fails here, as does a documented key or type the handler does not answer. The run must reach every documented
success status of every operation (so a new route fails until it is exercised here), and every /api/v1 route of
the router must be documented."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from scrm.core.audit import audit_log
from scrm.crm.customers.services import ensure_customer
from scrm.crm.staff import accounts
from scrm.crm.staff.services import start_follow, upsert_salesperson
from scrm.governance.audit.domain import wants_row
from scrm.sales.repurchase import services as repurchase
from tests.conftest import SandboxHarness, make_customer

JsonSchema = dict[str, Any]
TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def validate(value: Any, schema: JsonSchema, components: dict[str, JsonSchema], where: str = "$") -> list[str]:
    """The subset of JSON Schema 2020-12 pydantic writes: $ref, anyOf, type, enum, const, properties, required,
    additionalProperties, items, min/max, maxLength, format date / date-time. Returns the problems found."""
    if "$ref" in schema:
        return validate(value, components[schema["$ref"].rsplit("/", 1)[-1]], components, where)
    if "anyOf" in schema:
        tries = [validate(value, sub, components, where) for sub in schema["anyOf"]]
        return [] if any(not t for t in tries) else [f"{where}: matches no anyOf branch: {tries}"]
    problems: list[str] = []
    kind = schema.get("type")
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: {value!r} is not an integer"]
    elif kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{where}: {value!r} is not a number"]
    elif kind is not None and not isinstance(value, TYPES[kind]):
        return [f"{where}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: {value!r} != {schema['const']!r}")
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
        fmt = schema.get("format")
        try:
            if fmt == "date-time":
                dt.datetime.fromisoformat(value)
            elif fmt == "date":
                dt.date.fromisoformat(value)
        except ValueError:
            problems.append(f"{where}: {value!r} is not a {fmt}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: required {name!r} missing")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                problems += validate(item, props[name], components, f"{where}.{name}")
            elif extra is False:
                problems.append(f"{where}: undocumented field {name!r}")
            elif isinstance(extra, dict):
                problems += validate(item, extra, components, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], components, f"{where}[{i}]")
    return problems


class Contract:
    """Calls the API and checks each answer against the document; remembers (method, path, status) reached."""

    def __init__(self, h: SandboxHarness, doc: dict[str, Any]) -> None:
        self.h = h
        self.doc = doc
        self.components = doc["components"]["schemas"]
        self.reached: set[tuple[str, str, str]] = set()
        self.writes: list[str] = []  # "METHOD /api/v1/…" (the route) of every successful call that may change something
        self.templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in doc["paths"]]

    def _documented_path(self, method: str, url: str) -> str:
        found = [p for rx, p in self.templates if rx.match(url) and method.lower() in self.doc["paths"][p]]
        exact = [p for p in found if "{" not in p]  # /segments/preview before /segments/{id}
        assert found, f"{method} {url} is not documented"
        return (exact or sorted(found, key=lambda p: p.count("{")))[0]

    async def call(self, method: str, path: str, want: int, **kw: Any) -> Any:
        url = "/api/v1" + path.split("?")[0]
        headers = {"Authorization": f"Bearer {self.h.rt.settings.admin_token.get()}", **kw.pop("headers", {})}
        resp = await self.h.client.request(method, "/api/v1" + path, headers=headers, **kw)
        documented = self._documented_path(method, url)
        text = await resp.text()
        assert resp.status == want, f"{method} {path}: {resp.status} {text[:500]}"
        answers = self.doc["paths"][documented][method.lower()]["responses"]
        assert str(resp.status) in answers, f"{method} {documented}: undocumented status {resp.status}"
        content = answers[str(resp.status)]["content"]
        self.reached.add((method, documented, str(resp.status)))
        if resp.status < 300 and wants_row(method, documented):
            self.writes.append(f"{method} {documented}")
        if "text/csv" in content:
            assert resp.content_type == "text/csv"
            return text
        assert resp.content_type == "application/json", (method, path, resp.content_type)
        body = await resp.json()
        problems = validate(body, content["application/json"]["schema"], self.components)
        assert not problems, f"{method} {documented} {resp.status}: " + "; ".join(problems[:10])
        return body


@pytest.fixture
def db_backend() -> str:
    """SQLite only: the contract is the handlers' and the models'; both databases run the same code paths, and
    the fuzz test (tests/security) already answers on PostgreSQL."""
    return "sqlite"


async def test_every_documented_operation_answers_as_documented(sandbox: SandboxHarness) -> None:
    h = sandbox
    doc = await (await h.client.get("/api/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    api = Contract(h, doc)
    call = api.call
    now = h.rt.clock.now()
    await make_customer(h.rt, "wmC")
    await make_customer(h.rt, "wmHold")

    # ---- operations views
    await call("GET", "/inbound-events", 200)
    await call("GET", "/outbound-messages", 200)
    await call("GET", "/outbox?status=pending", 200)

    # ---- tags and channel codes (the sandbox WeCom answers)
    tag = await call("POST", "/tags", 201, json={"name": "合同客户", "mirror": False})
    await call("POST", "/tags", 200, json={"name": "合同客户", "mirror": False})
    await call("GET", "/tags", 200)
    await call("POST", "/customers/wmC/tags", 200, json={"tag_id": tag["id"]})
    code = await call("POST", "/channel-codes", 201, json={"name": "展会", "userids": ["sales01"], "tag_ids": [tag["id"]]})
    await call("GET", "/channel-codes", 200)
    await call("GET", f"/channel-codes/{code['id']}", 200)
    await call("PATCH", f"/channel-codes/{code['id']}", 200, json={"welcome_text": "你好"})
    await call("POST", f"/channel-codes/{code['id']}/deactivate", 200)

    # ---- chat archive
    record = {
        "msgid": "m-contract-1",
        "action": "send",
        "from": "sales01",
        "tolist": ["wmC"],
        "roomid": "",
        "msgtime": int(now.timestamp() * 1000),
        "msgtype": "text",
        "text": {"content": "你好"},
    }
    await call("POST", "/archive/messages", 200, json=[record])
    await call("POST", "/archive/messages", 422, json=[{"msgid": "", "action": "send"}])

    # ---- orders, shipments, products
    order = await call("POST", "/orders", 201, json={"customer": "wmC", "lines": [{"sku": "WATER-550", "qty": 2}]})
    await call("GET", "/orders?customer=wmC", 200)
    await call("GET", f"/orders/{order['number']}", 200)
    pending = await call("POST", "/orders", 201, json={"customer": "wmC", "lines": [{"sku": "COLA-330", "qty": 1}], "confirm": False})
    await call("POST", f"/orders/{pending['number']}/confirm", 200)
    await call("POST", f"/orders/{pending['number']}/cancel", 200, json={"reason": "客户改单"})
    shipped = await call("POST", f"/orders/{order['number']}/shipments", 201, json={"carrier": "顺丰", "tracking_no": "SF1"})
    await call("POST", f"/shipments/{shipped['shipment']}/deliver", 200)
    other = await call("POST", "/orders", 201, json={"customer": "wmC", "lines": [{"sku": "COLA-330", "qty": 1}]})
    back = await call("POST", f"/orders/{other['number']}/shipments", 201, json={"carrier": "顺丰", "tracking_no": "SF2"})
    await call("POST", f"/shipments/{back['shipment']}/cancel", 200)
    await call("GET", "/products", 200)
    await call("GET", "/products/WATER-550", 200)
    await call("PATCH", "/products/WATER-550", 200, json={"reorder_point": 5})
    await call("POST", "/products/WATER-550/stock", 200, json={"receive": 10, "reference": "入库1"})
    await call("GET", "/stock/reconcile", 200)
    await h.settle()

    # ---- billing
    invoices = await call("GET", "/invoices?customer=wmC", 200)
    assert invoices["items"], "the delivered shipment was invoiced"
    number = invoices["items"][0]["number"]
    await call("GET", f"/invoices/{number}", 200)
    payment = {"customer": "wmC", "amount_fen": 10**6, "reference": "P-contract-1", "method": "bank"}
    await call("POST", "/payments", 201, json=payment)
    await call("POST", "/payments", 200, json=payment)
    await call("GET", "/payments?customer=wmC", 200)
    csv = f"date,reference,amount,memo\n2026-11-22,API-1,1.00,{number}\n".encode()
    report = await call("POST", "/payment-imports?filename=a.csv", 201, data=csv, headers={"Content-Type": "text/csv"})
    await call("GET", f"/payment-imports/{report['import_id']}", 200)
    await call("GET", "/receivables/aging?by=customer", 200)
    await call("GET", "/receivables/aging.csv?by=salesperson", 200)
    await call("GET", "/accounts/wmC", 200)
    await call("PATCH", "/accounts/wmC", 200, json={"terms_days": 30})
    await call("POST", "/accounts/wmC/refunds", 201, json={"amount_fen": 100, "reference": "R-contract-1"})
    await call("POST", f"/invoices/{number}/void", 200, json={"reason": "开错了"})
    await call("PATCH", "/accounts/wmHold", 200, json={"credit_limit_fen": 1})
    held = await call("POST", "/orders", 201, json={"customer": "wmHold", "lines": [{"sku": "WATER-550", "qty": 1}]})
    assert held["status"] == "on_hold", held
    await call("GET", "/holds", 200)
    await call("POST", f"/holds/{held['number']}/release", 200)
    await call("POST", "/dunning/run", 200)

    # ---- purchasing
    supplier = await call("POST", "/suppliers", 201, json={"name": "供应商甲", "lead_time_days": 2})
    await call("GET", "/suppliers", 200)
    await call("PATCH", f"/suppliers/{supplier['id']}", 200, json={"phone": "021-1234"})
    line = {"sku": "WATER-550", "qty": 5, "unit_cost_fen": 100}
    po = await call("POST", "/purchase-orders", 201, json={"supplier_id": supplier["id"], "lines": [line]})
    await call("GET", "/purchase-orders", 200)
    await call("GET", f"/purchase-orders/{po['number']}", 200)
    await call("PUT", f"/purchase-orders/{po['number']}/lines", 200, json={"lines": [{**line, "qty": 6}]})
    await call("POST", f"/purchase-orders/{po['number']}/place", 200, json={"expected_on": "2026-12-01"})
    await call("POST", f"/purchase-orders/{po['number']}/receive", 201, json={"reference": "DN-1"})
    await call("POST", f"/purchase-orders/{po['number']}/receive", 200, json={"reference": "DN-1"})
    dropped = await call("POST", "/purchase-orders", 201, json={"supplier_id": supplier["id"], "lines": [line]})
    await call("POST", f"/purchase-orders/{dropped['number']}/cancel", 200, json={"reason": "不要了"})
    await call("PATCH", "/products/WATER-550", 200, json={"reorder_point": 100000})
    suggested = await call("GET", "/purchase-suggestions", 200)
    assert suggested["groups"], suggested
    await call("POST", "/purchase-suggestions/draft", 201, json={"supplier_id": supplier["id"]})
    await call("POST", f"/suppliers/{supplier['id']}/deactivate", 200)

    # ---- segments and RFM
    await call("POST", "/segments/preview", 200, json={"expression": "orders >= 0"})
    segment = await call("POST", "/segments", 201, json={"name": "全部", "expression": "orders >= 0"})
    await call("GET", "/segments", 200)
    await call("GET", f"/segments/{segment['id']}", 200)
    await call("PUT", f"/segments/{segment['id']}", 200, json={"description": "所有客户"})
    await call("GET", f"/segments/{segment['id']}/customers?limit=1", 200)
    await call("DELETE", f"/segments/{segment['id']}", 200)
    await call("GET", "/customers/wmC/rfm", 200)

    # ---- coupons, referral, broadcasts
    tpl = await call(
        "POST", "/coupon-templates", 201, json={"name": "满10减1", "kind": "fixed", "amount_off_fen": 100, "threshold_fen": 1000}
    )
    await call("GET", "/coupon-templates", 200)
    await call("GET", f"/coupon-templates/{tpl['id']}", 200)
    await call("PATCH", f"/coupon-templates/{tpl['id']}", 200, json={"budget_count": 100, "valid_days": 7})
    await call("POST", "/coupons/issue", 201, json={"template_id": tpl["id"], "customer": "wmC", "source_ref": "c1"})
    queued = await call("POST", "/coupons/issue", 202, json={"template_id": tpl["id"], "segment": "orders >= 1"})
    await h.settle()  # the distribution runs: its record has counts and times
    await call("GET", queued["status_url"].removeprefix("/api/v1"), 200)
    await call("GET", f"/coupon-templates/{tpl['id']}/issue-runs", 200)
    await call("GET", "/customers/wmC/coupons", 200)
    campaign_body = {
        "name": "邀好友得券",
        "goal": 2,
        "reward_template_id": tpl["id"],
        "userids": ["sales01"],
        "starts_at": now.isoformat(),
        "ends_at": (now + dt.timedelta(days=14)).isoformat(),
    }
    campaign = await call("POST", "/referral-campaigns", 201, json=campaign_body)
    await call("GET", "/referral-campaigns", 200)
    await call("PATCH", f"/referral-campaigns/{campaign['id']}", 200, json={"status": "running", "poster_text": "扫码领券"})
    await call("GET", f"/referral-campaigns/{campaign['id']}", 200)
    await call("POST", f"/referral-campaigns/{campaign['id']}/codes", 200, json={"inviter": "wmC"})
    await call("GET", f"/referral-campaigns/{campaign['id']}/leaderboard", 200)
    await call("GET", f"/referral-campaigns/{campaign['id']}/funnel", 200)
    await call("GET", f"/referral-campaigns/{campaign['id']}/invites", 200)
    await call("DELETE", f"/coupon-templates/{tpl['id']}", 200)
    await call("POST", "/broadcasts/preview", 200, json={"segment": "orders >= 0"})
    later = (now + dt.timedelta(days=1)).isoformat()
    body = {"name": "上新", "segment": "orders >= 0", "text": "新品到货", "scheduled_at": later}
    broadcast = await call("POST", "/broadcasts", 201, json=body)
    await call("PATCH", f"/broadcasts/{broadcast['id']}", 200, json={"text": "新品到货啦"})
    await call("POST", f"/broadcasts/{broadcast['id']}/pause", 200)
    await call("POST", f"/broadcasts/{broadcast['id']}/cancel", 200)
    done = await call("POST", "/broadcasts", 201, json={**body, "scheduled_at": None})
    await call("POST", f"/broadcasts/{done['id']}/start", 200)
    await h.settle()
    await call("GET", f"/broadcasts/{done['id']}", 200)
    recipients = await call("GET", f"/broadcasts/{done['id']}/recipients", 200)
    assert recipients["items"], recipients

    # ---- governance: personal tokens and the audit trail
    await accounts.create_staff(h.rt, "ops.li", "correct horse 1", ["operations"])
    token = await call("POST", "/tokens", 201, json={"name": "同步脚本", "staff": "ops.li", "scopes": ["orders:read"]})
    assert token["token"].startswith("scrm_") and token["scopes"] == ["orders:read"]
    await call("GET", "/tokens?staff=ops.li", 200)
    trail = await call("GET", "/audit?entity=tokens", 200)
    assert [(r["action"], r["entity_id"]) for r in trail["items"]] == [("create", str(token["id"]))]
    await call("DELETE", f"/tokens/{token['id']}", 200)

    # ---- approvals: a rule, an order that waits for it, approved; another rejected
    rule = {
        "name": "大单审批",
        "doc_type": "order",
        "conditions": [{"field": "qty", "op": ">=", "value": 50}],
        "steps": [{"role": "admin"}],
    }
    made = await call("POST", "/approval-rules", 201, json=rule)
    await call("GET", "/approval-rules", 200)
    waiting = await call("POST", "/orders", 201, json={"customer": "wmC", "lines": [{"sku": "WATER-550", "qty": 50}]})
    assert waiting["status"] == "pending_approval" and waiting["approval"]["rule"] == "大单审批"
    await call("GET", f"/orders/{waiting['number']}", 200)
    inbox = await call("GET", "/approvals?status=pending", 200)
    await call("GET", f"/approvals/{inbox['items'][0]['id']}", 200)
    await call("POST", f"/approvals/{waiting['approval']['id']}/approve", 200, json={"comment": "同意"})
    second = await call("POST", "/orders", 201, json={"customer": "wmC", "lines": [{"sku": "COLA-330", "qty": 60}]})
    await call("POST", f"/approvals/{second['approval']['id']}/reject", 200, json={"comment": "数量不对"})
    await call("PATCH", f"/approval-rules/{made['id']}", 200, json={"active": False})
    refund_rule = {"name": "退款审批", "doc_type": "refund", "conditions": [], "steps": [{"role": "admin"}]}
    await call("POST", "/approval-rules", 201, json=refund_rule)
    waiting_refund = await call("POST", "/accounts/wmC/refunds", 202, json={"amount_fen": 100, "reference": "R-contract-2"})
    assert waiting_refund["approval"]["rule"] == "退款审批"
    await h.settle()

    # ---- leads and the public pool
    async with h.rt.db.write() as conn:
        await upsert_salesperson(conn, h.rt.db.dialect, "sales01", h.rt.clock.now(), name="王销售", active=True)
    await call("PUT", "/lead-pool", 200, json={"return_after_days": 15, "claim_daily_cap": 20, "reclaim_block_days": 7})
    await call("GET", "/lead-pool", 200)
    lead_rule = await call("POST", "/lead-rules", 201, json={"name": "官网表单", "members": ["sales01"], "sources": ["manual"]})
    await call("GET", "/lead-rules", 200)
    await call(
        "PUT",
        f"/lead-rules/{lead_rule['id']}",
        200,
        json={"name": "官网表单", "members": ["sales01"], "sources": ["manual"], "daily_cap": 5},
    )
    pooled = await call(
        "POST", "/leads", 201, json={"name": "王老板", "phone": "13912345678", "corp_name": "王记超市", "remark": "问 100 箱水价格"}
    )
    assert pooled["status"] == "pool" and pooled["owner"] is None
    again = await call("POST", "/leads", 200, json={"name": "王老板", "phone": "139 1234 5678"})
    assert again["duplicate"] and again["id"] == pooled["id"]
    await call("GET", "/leads?status=pool", 200)
    await call("GET", f"/leads/{pooled['id']}", 200)
    await call("POST", f"/leads/{pooled['id']}/assign", 200, json={"to": "sales01", "reason": "区域"})
    await call("POST", f"/leads/{pooled['id']}/release", 200, json={"reason": "暂无需求"})
    seller = await h.staff_token("wang.sales", ["sales"], wecom_userid="sales01", data_scope="own")
    claimed = await h.client.post(f"/api/v1/leads/{pooled['id']}/claim", headers={"Authorization": f"Bearer {seller}"})
    assert claimed.status == 409  # the previous owner waits 7 days
    await call("POST", f"/leads/{pooled['id']}/invalidate", 200, json={"reason": "同行询价"})
    manual = await call("POST", "/leads", 201, json={"name": "李店长", "phone": "13800001111", "source": "manual"})
    assert manual["owner"] == "sales01"
    await call("POST", f"/leads/{manual['id']}/convert", 200)
    third = await call("POST", "/leads", 201, json={"corp_name": "三号店"})
    await call("POST", f"/leads/{third['id']}/claim", 200, headers={"Authorization": f"Bearer {seller}"})
    await call("DELETE", f"/lead-rules/{lead_rule['id']}", 200)
    seller_auth = {"Authorization": f"Bearer {seller}"}
    todo = await call(
        "POST",
        "/follow-ups",
        201,
        json={"lead_id": third["id"], "kind": "call", "body": "电话沟通", "next_contact_on": "2026-11-23"},
        headers=seller_auth,
    )
    await call("GET", "/follow-ups?due=today", 200, headers=seller_auth)
    await call("GET", f"/follow-ups?lead_id={third['id']}", 200, headers=seller_auth)
    await call("POST", f"/follow-ups/{todo['id']}/done", 200, headers=seller_auth)

    # ---- handovers (交接): a member's customer handed to a colleague (WeCom hears it from a job)
    async with h.rt.db.write() as conn:
        for userid in ("sales01", "ops01"):
            await upsert_salesperson(conn, h.rt.db.dialect, userid, now, active=True)
        handed = await ensure_customer(conn, h.rt.db.dialect, kind="external_userid", value="wmHand", now=now)
        await start_follow(
            conn, h.rt.db.dialect, customer_id=handed, userid="sales01", external_userid="wmHand", status="active", at=now, now=now
        )
    handover = await call("POST", "/handovers", 202, json={"from": "sales01", "to": "ops01", "customers": ["wmHand"], "kind": "onjob"})
    await call("GET", "/handovers", 200)
    await call("GET", f"/handovers/{handover['id']}", 200)
    await h.settle()
    # ---- sales: opportunities and quotes (a quote accepted is the order POST /orders answers)
    cid = await make_customer(h.rt, "wmC")
    opp = await call("POST", "/opportunities", 201, json={"customer_id": cid, "title": "年度采购", "owner": "sales01", "amount_fen": 10000})
    await call("GET", "/opportunities?stage=initial", 200)
    await call("GET", f"/opportunities/{opp['id']}", 200)
    await call("PATCH", f"/opportunities/{opp['id']}", 200, json={"stage": "quoted", "expected_close_on": "2026-12-31"})
    quote = await call(
        "POST", "/quotes", 201, json={"opportunity_id": opp["id"], "lines": [{"sku": "COLA-330", "qty": 1, "discount_pct": 5}]}
    )
    await call("GET", f"/quotes?opportunity_id={opp['id']}", 200)
    await call("GET", f"/quotes/{quote['id']}", 200)
    await call("POST", f"/quotes/{quote['id']}/accept", 201)
    await call("POST", f"/quotes/{quote['id']}/accept", 200)
    dropped_quote = await call(
        "POST", "/quotes", 201, json={"customer_id": cid, "owner": "sales01", "lines": [{"sku": "COLA-330", "qty": 1}]}
    )
    await call("POST", f"/quotes/{dropped_quote['id']}/cancel", 200)

    # ---- customers (last: the record then has orders, tags, invoices, coupons)
    await call("DELETE", f"/customers/wmC/tags/{tag['id']}", 200)
    await call("GET", "/customers?q=wmC", 200)
    await call("GET", "/customers/wmC", 200)

    # ---- repurchase alerts (复购预警): wmC buys water every ten days; a week after the third it is due
    for _ in range(3):
        h.rt.clock.advance(days=10)  # type: ignore[attr-defined]
        await call("POST", "/orders", 201, json={"customer": "wmC", "lines": [{"sku": "WATER-550", "qty": 1}]})
    h.rt.clock.advance(days=7)  # type: ignore[attr-defined]
    offered = await call(
        "POST", "/coupon-templates", 201, json={"name": "复购券", "kind": "fixed", "amount_off_fen": 500, "threshold_fen": 0}
    )
    await repurchase.update_settings(h.rt, lead_days=3, coupon_template_id=int(offered["id"]))
    await repurchase.recompute(h.rt)
    due = await call("GET", "/repurchase-alerts?kind=due&status=open", 200)
    await call("POST", f"/repurchase-alerts/{due['items'][0]['id']}/coupon", 200)
    await call("POST", f"/repurchase-alerts/{due['items'][0]['id']}/done", 200)
    h.rt.clock.advance(days=30)  # type: ignore[attr-defined]
    await repurchase.recompute(h.rt)
    at_risk = await call("GET", "/repurchase-alerts?kind=at_risk", 200)
    await call("POST", f"/repurchase-alerts/{at_risk['items'][0]['id']}/dismiss", 200)

    documented = {
        (method.upper(), path, status)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        for status in op["responses"]
        if status.startswith("2")
    }
    assert documented - api.reached == set(), "documented answers this test never exercised"

    # The audit trail misses none of those writes: each successful call left at least one row naming its route.
    async with h.rt.db.read() as conn:
        recorded = Counter((await conn.execute(sa.select(audit_log.c.route))).scalars())
    missing = {route: n for route, n in Counter(api.writes).items() if recorded[route] < n}
    assert len(api.writes) >= 60 and missing == {}, missing

    routed = {
        (r.method, r.resource.canonical)
        for r in h.client.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/v1") and r.method != "HEAD"
    }
    assert routed == {(m, p) for m, p, _ in documented}, "every /api/v1 route is documented"
