"""The console's 商机 and 报价 pages as a salesperson uses them: the kanban and the list (only their own
opportunities), creating one with the customer picker's text, moving a card's stage with its form (a lost without
a reason refused with the message), the funnel and forecast, a quote written from the catalog rows with its share
link, accepted into an order; the stages page for the admin."""

from __future__ import annotations

import re

import sqlalchemy as sa

from scrm.crm.staff import accounts
from scrm.sales.pipeline.models import opportunities
from tests.conftest import STAFF_PASSWORD, SandboxHarness
from tests.scrm.test_sidebar import seed_follow, seed_people
from tests.security.conftest import CSRF, HTML


async def sign_in(h: SandboxHarness, username: str, roles: list[str], **account: object) -> str:
    """Sign in as a new staff account; returns the CSRF token a page shows."""
    await accounts.create_staff(h.rt, username, STAFF_PASSWORD, roles, **account)
    resp = await h.client.post("/console/login", data={"username": username, "password": STAFF_PASSWORD}, allow_redirects=False)
    assert resp.status == 303
    page = await h.client.get("/console/opportunities", headers=HTML)
    assert page.status == 200, await page.text()
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


async def page(h: SandboxHarness, path: str) -> tuple[int, str]:
    resp = await h.client.get(path, headers=HTML, allow_redirects=False)
    return resp.status, await resp.text()


async def post(h: SandboxHarness, path: str, data: dict[str, str]) -> tuple[str, str]:
    """POST a form; returns (where it went, the flash shown there)."""
    resp = await h.client.post(path, data=data, headers=HTML, allow_redirects=False)
    assert resp.status == 303, (resp.status, await resp.text())
    location = resp.headers["Location"]
    _, text = await page(h, location)
    flash = re.search(r'<div class="flash flash-(ok|err)" role="status">([^<]*)</div>', text)
    return location, f"{flash.group(1)}:{flash.group(2)}" if flash else ""


async def test_a_salesperson_works_the_board_and_quotes_from_the_console(sandbox: SandboxHarness) -> None:
    h = sandbox
    await seed_people(h.rt)
    mine = await seed_follow(h.rt, "sales01", "wmMine", name="甲公司")
    theirs = await seed_follow(h.rt, "sales02", "wmTheirs", name="乙公司秘密")
    status, other = await h.api("POST", "/opportunities", json={"customer_id": theirs, "title": "乙的秘密商机", "owner": "sales02"})
    csrf = await sign_in(h, "wang", ["sales"], wecom_userid="sales01", data_scope="own")

    where, flash = await post(
        h,
        "/console/opportunities",
        {"csrf_token": csrf, "customer": f"甲公司 #{mine}", "title": "甲公司年度用水", "stage": "initial", "amount": "12000",
         "expected_close_on": "2026-12-15", "products": "WATER-550"},
    )  # fmt: skip
    assert flash == "ok:已新建商机「甲公司年度用水」", flash
    opp_id = int(where.rsplit("/", 1)[1])
    async with h.rt.db.read() as conn:
        row = (await conn.execute(sa.select(opportunities).where(opportunities.c.id == opp_id))).one()
    assert row.owner_userid == "sales01" and row.amount_fen == 1_200_000 and row.products == ["WATER-550"]

    for path in ("/console/opportunities", "/console/opportunities?view=list", "/console/opportunities/charts", "/console/quotes"):
        status, text = await page(h, path)
        assert status == 200 and "乙的秘密商机" not in text and "乙公司秘密" not in text, path
    status, board = await page(h, "/console/opportunities")
    assert "甲公司年度用水" in board and "¥12,000.00" in board and 'class="kanban"' in board
    status, text = await page(h, f"/console/opportunities/{other['id']}")
    assert status == 404

    back = "/console/opportunities"
    where, flash = await post(
        h, f"/console/opportunities/{opp_id}/stage", {"csrf_token": csrf, "stage": "lost", "reason": "", "next": back}
    )
    assert where == back and flash.startswith("err:改为「输单」需要填写输单原因"), flash
    where, flash = await post(h, f"/console/opportunities/{opp_id}/stage", {"csrf_token": csrf, "stage": "negotiation", "next": back})
    assert where == back and flash == "ok:商机「甲公司年度用水」已移到「谈判」"
    status, detail = await page(h, f"/console/opportunities/{opp_id}")
    assert status == 200 and "初步接触 → 谈判" in detail
    status, charts = await page(h, "/console/opportunities/charts")
    assert "2026-12" in charts and "¥8,400.00" in charts  # 12000 × 70 %

    where, flash = await post(
        h,
        "/console/quotes",
        {"csrf_token": csrf, "opportunity_id": str(opp_id), "sku:0": "WATER-550", "qty:0": "10", "discount:0": "5",
         "sku:1": "OIL-5L", "qty:1": "2", "price:1": "120"},
    )  # fmt: skip
    assert flash.startswith("ok:已创建报价单 QT"), flash
    status, quote_page = await page(h, where)
    assert status == 200 and "/quotes/shared/" in quote_page and "¥582.00" in quote_page  # 10 × 34.20 + 2 × 120
    where, flash = await post(h, where + "/accept", {"csrf_token": csrf})
    assert flash.startswith("ok:报价单已接受，订单 SO"), flash
    status, won = await page(h, f"/console/opportunities/{opp_id}")
    assert "谈判 → 赢单" in won

    where, flash = await post(h, "/console/quotes", {"csrf_token": csrf, "customer": f"#{mine}", "sku:0": "NOPE", "qty:0": "1"})
    assert where == "/console/quotes/new" and flash.startswith("err:第 1 行：没有这个商品"), flash
    status, _ = await page(h, "/console/opportunity-stages")
    assert status == 403  # the stages are the admin's


async def test_the_admin_edits_a_stage(sandbox: SandboxHarness) -> None:
    h = sandbox
    csrf = await sign_in(h, "boss", ["admin"])
    form = {"csrf_token": csrf, "key": "negotiation", "name": "商务谈判", "position": "40", "probability": "80", "kind": "open"}
    where, flash = await post(h, "/console/opportunity-stages", form)
    assert flash == "ok:已保存阶段「商务谈判」（80%）", flash
    where, flash = await post(h, "/console/opportunity-stages", {**form, "key": "won", "name": "赢单", "probability": "100", "active": "0"})
    assert where == "/console/opportunity-stages" and flash.startswith("err:没有启用的赢单阶段"), flash
    status, text = await page(h, "/console/opportunity-stages")
    assert status == 200 and "商务谈判" in text and "初步接触" in text
