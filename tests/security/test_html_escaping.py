"""HTML escaping: hostile text in every place a customer, a salesperson or a staff member can put it — customer
name, chat messages, notes, tags, product names, order notes (cancel reasons), suppliers, coupons, segments, groups,
staff names, channel codes — and in every query parameter (reflected). Every console page (enumerated from the
router, each path parameter pointed at the hostile rows), the sidebar page and JSON, and the sandbox page and JSON
are fetched; no raw ``<script>alert(1)``, no attribute break-out, and the escaped text shows where the data does.

(The browser tests in tests/e2e check the sidebar and sandbox pages, which render with textContent, in Chromium.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from fulfillment.catalog.models import products
from fulfillment.orders import services as orders
from fulfillment.purchasing.services import create_supplier
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms
from scrm.campaigns.coupons.services import create_template
from scrm.crm.customers.models import customers
from scrm.crm.customers.services import add_note
from scrm.crm.groups.domain import EXTERNAL
from scrm.crm.groups.models import group_members, groups
from scrm.crm.groups.services import ensure_group
from scrm.crm.staff.accounts import create_staff
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import apply_tag, ensure_tag
from tagging.segments.services import save_segment
from tests.conftest import SandboxHarness
from tests.security.conftest import CSRF, HTML
from tests.security.test_route_inventory import routes
from tests.security.test_sql_injection import QUERY_PARAMS

pytestmark = pytest.mark.security

SCRIPT = "<script>alert(1)</script>"
ATTR = '" onmouseover="alert(1)" x="'
SQ_ATTR = "' onfocus='alert(1)' x='"
IMG = "<img src=x onerror=alert(1)>"
EVIL = f"{SCRIPT}{ATTR}{SQ_ATTR}{IMG}"  # free text (messages, notes, reasons)
SHORT = f"{SCRIPT}{ATTR}"  # names (most are at most 64 characters)
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def assert_no_raw_markup(text: str, where: str) -> None:
    assert "<script>alert(1)" not in text, where
    assert '" onmouseover=' not in text, where  # would close an attribute value in double quotes
    assert "' onfocus=" not in text or not re.search(r"=\s*'[^']*' onfocus=", text), where
    assert "<img src=x" not in text, where


async def seed(sb: SandboxHarness) -> dict[str, Any]:
    rt = sb.rt
    await sb.customer_says("wmEvil", "要3箱矿泉水 " + EVIL, name=SCRIPT)  # a real chat: message, timeline, a draft
    await sb.customer_says("wmEvil", "确认")
    now = rt.clock.now()
    async with rt.db.write() as conn:
        cid = int((await conn.execute(sa.select(customers.c.id).where(customers.c.name.is_not(None)).limit(1))).scalar_one())
        await conn.execute(sa.update(customers).where(customers.c.id == cid).values(name=SHORT))
        await conn.execute(sa.update(products).where(products.c.sku == "COLA-330").values(name="可乐" + SHORT))
        tag_id = await ensure_tag(conn, rt.db.dialect, "标签" + SCRIPT, now, group="分组" + ATTR)
        await apply_tag(conn, rt.db.dialect, customer_id=cid, tag_id=tag_id, source=TagSource.MANUAL, evidence={"by": EVIL}, now=now)
        await ensure_group(conn, rt.db.dialect, "wrEvil", now)
        await conn.execute(sa.update(groups).where(groups.c.chat_id == "wrEvil").values(name="群" + SHORT, owner_userid="sales01"))
        member_cols = {c.name for c in group_members.c}
        member = {"chat_id": "wrEvil", "member_id": "wmEvil", "joined_at": now, "name": SHORT, "member_type": EXTERNAL}
        await conn.execute(group_members.insert().values(**{k: v for k, v in member.items() if k in member_cols}))
    await add_note(rt, cid, "sales01", "备注" + EVIL)
    kept = await orders.create_order(rt, customer_id=cid, items=[("COLA-330", 1)], source="api", confirm=True)
    dropped = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="api", confirm=True)
    await orders.cancel_order(rt, dropped.id, actor="console:" + SCRIPT, reason="原因" + EVIL)
    supplier = await create_supplier(rt, name="供应商" + SCRIPT, contact=ATTR, phone=SQ_ATTR)
    template = await create_template(rt, TemplateTerms(name="券" + SHORT, rule=CouponRule("fixed", amount_off_fen=100, threshold_fen=1000)))
    segment = await save_segment(rt, name="客群" + SCRIPT, expression=f'tag:"{SCRIPT}"', description=ATTR + IMG, created_by=EVIL)
    staff = await create_staff(rt, "evil01", "a-long-password-2026", ["marketer"], display_name="员工" + SHORT)
    status, code = await sb.api("POST", "/channel-codes", json={"name": "渠道" + SCRIPT, "userids": ["sales01"], "welcome_text": EVIL})
    assert status == 201, code
    status, campaign = await sb.api(
        "POST",
        "/referral-campaigns",
        json={"name": "活动" + SCRIPT, "description": EVIL, "starts_at": "2026-11-01", "ends_at": "2026-12-31"},
    )
    return {
        "cid": cid,
        "number": kept.number,
        "cancelled": dropped.number,
        "ids": sorted({supplier.id, template.id, segment.id, staff.id, code["id"], campaign.get("id", 1) if status < 300 else 1, 1}),
    }


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"  # the catalog export


async def test_every_console_page_escapes_hostile_text(sandbox: SandboxHarness) -> None:
    seeded = await seed(sandbox)
    c = sandbox.client
    resp = await c.post("/console/login", data={"username": "admin", "password": sandbox.rt.settings.admin_token.get()})
    assert resp.status == 200
    pages = sorted(p for m, p in routes(c.app) if m == "GET" and p.startswith("/console") and "static" not in p)
    fetched, shown = 0, set()
    for path in pages:
        values: dict[str, list[str]] = {
            "number": [seeded["number"], seeded["cancelled"]],
            "id": [str(i) for i in seeded["ids"]],
            "chat_id": ["wrEvil"],
            "customer_id": [str(seeded["cid"])],
        }
        names = re.findall(r"\{([^}:]+)", path)
        urls = [path]
        for name in names:
            urls = [u.replace("{" + name + "}", v) for u in urls for v in values.get(name, ["1"])]
        for url in urls:
            for params in ({}, {k: EVIL for k in QUERY_PARAMS}):
                resp = await c.get(url, params=params, headers=HTML)
                text = (await resp.read()).decode("utf-8", errors="replace")  # a download (xlsx) is bytes
                where = f"{url} {'(evil query)' if params else ''} -> {resp.status}"
                assert resp.status < 500, where
                if "html" in resp.content_type:
                    assert_no_raw_markup(text, where)
                    if ESCAPED in text:
                        shown.add(path)
                else:
                    assert resp.content_type in ("application/json", "text/csv", XLSX), where
                fetched += 1
    assert fetched >= 60
    must_show = {
        "/console/orders",
        "/console/orders/{number}",
        "/console/suppliers",
        "/console/coupons",
        "/console/segments",
        "/console/groups",
        "/console/groups/{chat_id}",
        "/console/staff",
        "/console/finance/accounts",
        "/console/products",
    }
    missing = must_show - shown
    assert not missing, f"the hostile text should show (escaped) on {missing}; shown on {sorted(shown)}"
    # The cancel reason, the product name and the chat message are shown escaped on the pages that list them.
    text = await (await c.get(f"/console/orders/{seeded['cancelled']}", headers=HTML)).text()
    assert "原因&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;" in text
    text = await (await c.get("/console/stock", headers=HTML)).text()
    assert "可乐" + ESCAPED in text
    # The CSRF token is the only value written into forms from the session; hostile text never lands in it.
    assert all(SCRIPT not in m for m in CSRF.findall(text))


async def test_sidebar_and_sandbox_serve_hostile_text_only_as_json(sandbox: SandboxHarness) -> None:
    seeded = await seed(sandbox)
    c = sandbox.client
    from tests.scrm.test_sidebar import seed_follow

    await seed_follow(sandbox.rt, "sales01", "wmEvil", name=SHORT)
    resp = await c.get("/sidebar/?as=sales01", allow_redirects=False)
    assert resp.status == 302
    page = await c.get("/sidebar/")
    text = await page.text()
    assert page.status == 200 and "html" in page.content_type
    assert_no_raw_markup(text, "/sidebar/")
    assert "wmEvil" not in text and "alert(" not in text  # the page is static: data comes as JSON
    assert "script-src" in page.headers.get("Content-Security-Policy", "")
    for url in (
        "/sidebar/api/customers/wmEvil",
        "/sidebar/api/groups/wrEvil",
        "/sidebar/api/tags",
        "/sidebar/api/products",
        "/sidebar/api/me",
    ):
        resp = await c.get(url)
        assert resp.content_type == "application/json", url
        assert resp.status in (200, 403), url
    body = await (await c.get("/sidebar/api/customers/wmEvil")).json()
    assert SCRIPT in str(body)  # raw in JSON (the page sets textContent), not HTML-encoded twice
    # The sandbox page and its conversation JSON.
    page = await c.get("/sandbox/")
    text = await page.text()
    assert page.status == 200 and "alert(" not in text
    resp = await c.get("/sandbox/api/kf/conversation", params={"external_userid": "wmEvil"})
    assert resp.status == 200 and resp.content_type == "application/json"
    assert SCRIPT in await resp.text() or "\\u003cscript" in await resp.text()
    assert seeded["number"]
