"""Handover (交接: 在职转接 / 离职继承) end to end through the sandbox WeCom: batches of 100, the 90-day limit, a refusal,
the 24 h takeover on the controllable clock (follows, open orders, timeline, outbox), 离职继承 from the unassigned
list with the member's groups, and bad requests that change nothing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fulfillment.orders import services as orders
from fulfillment.orders.queries import get_order
from scrm.core.clock import FrozenClock
from scrm.core.outbox import outbox
from scrm.crm.customers.models import FollowStatus
from scrm.crm.customers.services import ensure_customer
from scrm.crm.groups.models import groups
from scrm.crm.groups.services import ensure_group, set_group_owner
from scrm.crm.staff.services import follow_of, start_follow, upsert_salesperson
from scrm.crm.timeline.services import entries
from scrm.sales.handover import services as handover
from scrm.sales.handover.models import handover_customers, handovers
from tests.conftest import SandboxHarness
from tests.security.conftest import HTML, console_login

MEMBERS = {"sales01": "王销售", "sales02": "赵销售", "sales03": "钱销售", "sales04": "孙销售"}


async def seed(sandbox: SandboxHarness, userid: str, externals: list[str]) -> list[int]:
    """Customers served by ``userid`` in WeCom (the emulator) and in the CRM (an active follow each)."""
    rt, state = sandbox.rt, sandbox.state
    now = rt.clock.now()
    ids = []
    async with rt.db.write() as conn:
        for userid_, name in MEMBERS.items():
            if userid_ not in state.members:
                state.add_member(userid_, name)
            await upsert_salesperson(conn, rt.db.dialect, userid_, now, name=name, active=True)
        for ext in externals:
            state.add_customer(ext, f"客户{ext}", [userid])
            cid = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=ext, now=now, name=f"客户{ext}")
            await start_follow(
                conn, rt.db.dialect, customer_id=cid, userid=userid, external_userid=ext, status=FollowStatus.ACTIVE, at=now, now=now
            )
            ids.append(cid)
    return ids


async def post(sandbox: SandboxHarness, body: dict[str, Any]) -> tuple[int, Any]:
    return await sandbox.api("POST", "/handovers", json=body)


async def progress(sandbox: SandboxHarness, handover_id: int) -> dict[str, str]:
    status, view = await sandbox.api("GET", f"/handovers/{handover_id}")
    assert status == 200, view
    return {c["external_userid"]: c["status"] for c in view["customers"]}


async def follower_status(sandbox: SandboxHarness, userid: str, ext: str) -> tuple[str, str | None] | None:
    async with sandbox.rt.db.read() as conn:
        follow = await follow_of(conn, userid, ext)
    return None if follow is None else (follow.status, follow.ended_by)


async def transferred_events(sandbox: SandboxHarness) -> list[dict[str, Any]]:
    async with sandbox.rt.db.read() as conn:
        rows = await conn.execute(sa.select(outbox.c.payload).where(outbox.c.topic == handover.TRANSFERRED).order_by(outbox.c.id))
        return [dict(r.payload) for r in rows]


async def test_250_customers_in_three_calls_taken_over_after_24h(sandbox: SandboxHarness, clock: FrozenClock, db_backend: str) -> None:
    externals = [f"wmH{i:03d}" for i in range(250)]
    ids = await seed(sandbox, "sales01", externals)
    open_order = await orders.create_order(sandbox.rt, customer_id=ids[0], items=[("WATER-550", 2)], source="api",
                                           salesperson_userid="sales01", confirm=True)  # fmt: skip
    closed = await orders.create_order(sandbox.rt, customer_id=ids[0], items=[("WATER-550", 1)], source="api",
                                       salesperson_userid="sales01", confirm=True)  # fmt: skip
    await orders.cancel_order(sandbox.rt, closed.id, reason="测试")

    status, made = await post(sandbox, {"from": "sales01", "to": "sales02", "all": True, "kind": "onjob"})
    assert status == 202, made
    assert made["status"] == "running" and len(made["customers"]) == 250
    assert {c["status"] for c in made["customers"]} == {"pending"}
    assert {"customer_id", "external_userid", "status"} <= set(made["customers"][0])

    await sandbox.settle()
    assert sandbox.state.call_count("externalcontact/transfer_customer") == 3  # 100 + 100 + 50
    assert set((await progress(sandbox, made["id"])).values()) == {"waiting"}

    clock.advance(hours=23)
    assert await handover.poll_running(sandbox.rt) == 0  # WeCom still waits: nothing moves
    assert await follower_status(sandbox, "sales01", externals[0]) == ("active", None)

    clock.advance(hours=1)
    assert await handover.poll_running(sandbox.rt) == 250
    assert set((await progress(sandbox, made["id"])).values()) == {"success"}
    assert await follower_status(sandbox, "sales01", externals[0]) == ("ended", "transfer")
    assert await follower_status(sandbox, "sales02", externals[0]) == ("active", None)
    assert (await get_order(sandbox.rt, open_order.id)).salesperson_userid == "sales02"
    assert (await get_order(sandbox.rt, closed.id)).salesperson_userid == "sales01"  # a cancelled order keeps its history
    async with sandbox.rt.db.read() as conn:
        timeline = await entries(conn, ids[0])
        done = (await conn.execute(sa.select(handovers.c.status).where(handovers.c.id == made["id"]))).scalar_one()
    assert any(e.title.startswith("客户由 王销售 转交给 赵销售") for e in timeline)
    assert done == "done"
    events = await transferred_events(sandbox)
    assert len(events) == 250
    assert events[0] == {
        "customer_id": ids[0],
        "from_userid": "sales01",
        "to_userid": "sales02",
        "kind": "onjob",
        "handover_id": made["id"],
    }

    again = await handover.poll_running(sandbox.rt)  # a repeated poll changes nothing
    assert again == 0 and len(await transferred_events(sandbox)) == 250


async def test_third_transfer_within_90_days_is_limit_exceeded(sandbox: SandboxHarness, clock: FrozenClock, db_backend: str) -> None:
    await seed(sandbox, "sales01", ["wmL0"])
    await seed(sandbox, "sales03", ["wmL1", "wmL2"])
    for source, target in (("sales01", "sales02"), ("sales02", "sales03")):
        status, made = await post(sandbox, {"from": source, "to": target, "customers": ["wmL0"], "kind": "onjob"})
        assert status == 202, made
        await sandbox.settle()
        clock.advance(hours=24)
        await handover.poll_running(sandbox.rt)
        assert await progress(sandbox, made["id"]) == {"wmL0": "success"}

    status, third = await post(sandbox, {"from": "sales03", "to": "sales01", "customers": ["wmL0", "wmL1", "wmL2"], "kind": "onjob"})
    assert status == 202, third
    await sandbox.settle()
    assert await progress(sandbox, third["id"]) == {"wmL0": "limit_exceeded", "wmL1": "waiting", "wmL2": "waiting"}
    _, view = await sandbox.api("GET", f"/handovers/{third['id']}")
    limited = next(c for c in view["customers"] if c["external_userid"] == "wmL0")
    assert limited["errcode"] == 40128 and "90 天" in limited["reason"]
    clock.advance(hours=24)
    await handover.poll_running(sandbox.rt)
    assert await progress(sandbox, third["id"]) == {"wmL0": "limit_exceeded", "wmL1": "success", "wmL2": "success"}
    assert await follower_status(sandbox, "sales03", "wmL0") == ("active", None)  # stays with its salesperson
    assert await follower_status(sandbox, "sales01", "wmL1") == ("active", None)


async def test_a_customer_refuses(sandbox: SandboxHarness, clock: FrozenClock, db_backend: str) -> None:
    ids = await seed(sandbox, "sales01", ["wmR0", "wmR1"])
    status, made = await post(sandbox, {"from": "sales01", "to": "sales02", "customers": [ids[0], "wmR1"], "kind": "onjob"})
    assert status == 202, made
    await sandbox.settle()
    resp = await sandbox.client.post("/sandbox/api/transfers/refuse", json={"external_userid": "wmR0"})
    assert resp.status == 200, await resp.text()
    await sandbox.settle()  # the transfer_fail callback is processed
    assert await progress(sandbox, made["id"]) == {"wmR0": "refused", "wmR1": "waiting"}
    clock.advance(hours=24)
    # WeCom's own news of the takeover (the old member's del_external_contact, DELETE_BY_TRANSFER) may come first
    settled = await (await sandbox.client.post("/sandbox/api/transfers/settle")).json()
    assert settled == {"ok": True, "settled": 1, "delivered": 1}
    await sandbox.settle()
    assert await follower_status(sandbox, "sales01", "wmR1") == ("ended", "transfer")
    await handover.poll_running(sandbox.rt)
    assert await progress(sandbox, made["id"]) == {"wmR0": "refused", "wmR1": "success"}
    assert await follower_status(sandbox, "sales02", "wmR1") == ("active", None)
    assert await follower_status(sandbox, "sales01", "wmR0") == ("active", None)  # ownership did not move
    assert await follower_status(sandbox, "sales02", "wmR0") is None
    assert [e["customer_id"] for e in await transferred_events(sandbox)] == [ids[1]]
    _, view = await sandbox.api("GET", f"/handovers/{made['id']}")
    assert view["status"] == "done" and view["counts"]["refused"] == 1 and view["counts"]["success"] == 1
    await sandbox.settle()
    told = sandbox.state.app_messages_to("sales02")
    assert any("转接给您未成功" in m for m in told)
    summary = "【客户交接】在职转接 #1：王销售 的 2 位客户中，1 位已转交给 赵销售；客户拒绝 1 位。"
    assert told[-1] == summary and sandbox.state.app_messages_to("sales01") == [summary]


async def test_resigned_member_from_the_unassigned_list(sandbox: SandboxHarness, clock: FrozenClock, db_backend: str) -> None:
    ids = await seed(sandbox, "sales04", ["wmD0", "wmD1", "wmD2"])
    sandbox.state.add_group("wrD1", "孙销售的客户群", "sales04", ["wmD0"])
    async with sandbox.rt.db.write() as conn:
        await ensure_group(conn, sandbox.rt.db.dialect, "wrD1", clock.now())
        await set_group_owner(conn, "wrD1", "sales04", clock.now())
        await conn.execute(groups.update().where(groups.c.chat_id == "wrD1").values(name="孙销售的客户群"))  # as a snapshot names it
    resp = await sandbox.client.post("/sandbox/api/members/depart", json={"userid": "sales04"})
    assert resp.status == 200

    departed = await handover.sync_departed(sandbox.rt)
    assert [(m.userid, sorted(c[0] for c in m.customers)) for m in departed] == [("sales04", sorted(ids))]
    status, refused = await post(sandbox, {"from": "sales04", "to": "sales02", "all": True, "kind": "onjob"})
    assert status == 400 and "离职继承" in refused["error"]["message"]

    status, made = await post(sandbox, {"from": "sales04", "to": "sales02", "all": True, "kind": "resigned"})
    assert status == 202, made
    await sandbox.settle()
    assert sandbox.state.call_count("externalcontact/resigned/transfer_customer") == 1
    _, view = await sandbox.api("GET", f"/handovers/{made['id']}")
    assert view["groups"] == [{"chat_id": "wrD1", "name": "孙销售的客户群", "status": "success", "errcode": None}]
    assert sandbox.state.groups["wrD1"].owner == "sales02"
    async with sandbox.rt.db.read() as conn:
        assert (await conn.execute(sa.select(groups.c.owner_userid).where(groups.c.chat_id == "wrD1"))).scalar_one() == "sales02"
    clock.advance(hours=24)
    await handover.poll_running(sandbox.rt)
    assert set((await progress(sandbox, made["id"])).values()) == {"success"}
    assert await handover.sync_departed(sandbox.rt) == []  # nobody waits any more
    events = await transferred_events(sandbox)
    assert {e["kind"] for e in events} == {"resigned"} and len(events) == 3


async def test_bad_requests_change_nothing(sandbox: SandboxHarness, db_backend: str) -> None:
    ids = await seed(sandbox, "sales01", ["wmB0"])
    await seed(sandbox, "sales02", ["wmB1"])
    async with sandbox.rt.db.write() as conn:
        await upsert_salesperson(conn, sandbox.rt.db.dialect, "sales03", sandbox.rt.clock.now(), active=False)
    cases = [
        ({"from": "sales01", "to": "sales03", "customers": ids}, "已停用或已离职"),
        ({"from": "sales01", "to": "sales01", "customers": ids}, "本人"),
        ({"from": "sales01", "to": "nobody", "customers": ids}, "不存在"),
        ({"from": "nobody", "to": "sales02", "customers": ids}, "不存在"),
        ({"from": "sales01", "to": "sales02", "customers": []}, "请选择"),
        ({"from": "sales01", "to": "sales02", "customers": ["wmB1"]}, "不是 王销售 的客户"),
        ({"from": "sales01", "to": "sales02", "customers": [99999]}, "不是 王销售 的客户"),
        ({"from": "sales01", "to": "sales02", "customers": ids, "kind": "later"}, "kind"),
        ({"from": "sales01", "to": "sales02", "customers": ids, "kind": "resigned"}, "尚未离职"),
        ({"to": "sales02", "customers": ids}, "from"),
    ]
    for body, words in cases:
        status, answer = await post(sandbox, {"kind": "onjob", **body})
        assert status == 400, (body, answer)
        assert answer["error"]["code"] == "invalid_input" and words in answer["error"]["message"], (body, answer)
    async with sandbox.rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(handovers))).scalar_one() == 0
        assert (await conn.execute(sa.select(sa.func.count()).select_from(handover_customers))).scalar_one() == 0
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.topic == handover.REQUESTED))
        ).scalar_one() == 0
    assert sandbox.state.call_count("externalcontact/transfer_customer") == 0

    status, made = await post(sandbox, {"from": "sales01", "to": "sales02", "customers": ids, "kind": "onjob"})
    assert status == 202
    status, busy = await post(sandbox, {"from": "sales01", "to": "sales02", "customers": ids, "kind": "onjob"})
    assert status == 400 and "正在另一次交接中" in busy["error"]["message"]
    status, listing = await sandbox.api("GET", "/handovers")
    assert status == 200 and [h["id"] for h in listing["items"]] == [made["id"]] and listing["items"][0]["counts"]["total"] == 1


async def test_console_handover_pages(sandbox: SandboxHarness, clock: FrozenClock, db_backend: str) -> None:
    h, c = sandbox, sandbox.client
    ids = await seed(h, "sales01", ["wmP0", "wmP1", "wmP2"])
    await seed(h, "sales04", ["wmP9"])
    csrf = await console_login(c, h.rt.settings)
    page = await c.get("/console/handovers?from=sales01", headers=HTML)
    text = await page.text()
    assert page.status == 200 and "新建交接" in text and "客户wmP0" in text and 'name="customer"' in text

    refused = await c.post("/console/handovers", data={"csrf_token": csrf, "from": "sales01", "to": "sales01", "kind": "onjob",
                                                       "customer": str(ids[0])}, headers=HTML)  # fmt: skip
    assert "接替成员不能是转出成员本人" in await refused.text()
    made = await c.post("/console/handovers", data={"csrf_token": csrf, "from": "sales01", "to": "sales02", "kind": "onjob",
                                                    "customer": [str(ids[0]), str(ids[1])]}, headers=HTML)  # fmt: skip
    text = await made.text()
    assert (
        made.status == 200 and "已提交在职转接：王销售 → 赵销售，2 位客户" in text and text.count('">待发送</span>') == 2
    )  # the job sends it
    handover_id = int(str(made.url).rsplit("/", 1)[1])
    await h.settle()
    detail = await (await c.get(f"/console/handovers/{handover_id}", headers=HTML)).text()
    assert detail.count('">等待接替</span>') == 2 and "立即查询结果" in detail
    clock.advance(hours=24)
    csrf = await console_login(c, h.rt.settings)  # a day later the console session has expired
    refreshed = await c.post(f"/console/handovers/{handover_id}/refresh", data={"csrf_token": csrf}, headers=HTML)
    text = await refreshed.text()
    assert "已接替 2 位" in text and "已完成" in text
    listing = await (await c.get("/console/handovers", headers=HTML)).text()
    assert f"#{handover_id}" in listing and "王销售 → 赵销售" in listing

    await c.post("/sandbox/api/members/depart", json={"userid": "sales04"})
    resigned = await (await c.get("/console/handovers/resigned", headers=HTML)).text()
    assert "孙销售（sales04）" in resigned and "待分配客户 1 位" in resigned and "离职继承" in resigned
    inherited = await c.post("/console/handovers", data={"csrf_token": csrf, "from": "sales04", "to": "sales02", "kind": "resigned",
                                                         "all": "1"}, headers=HTML)  # fmt: skip
    assert "已提交离职继承：孙销售 → 赵销售，1 位客户" in await inherited.text()


async def test_a_salesperson_hands_over_only_within_their_scope(sandbox: SandboxHarness, db_backend: str) -> None:
    await seed(sandbox, "sales01", ["wmS0"])
    await seed(sandbox, "sales02", ["wmS1"])
    own = await sandbox.staff_token("wang", ["sales"], wecom_userid="sales01", data_scope="own")
    status, answer = await sandbox.as_token(own, "POST", "/handovers", json={"from": "sales01", "to": "sales02", "customers": ["wmS0"]})
    assert status == 403 and answer["error"]["code"] == "forbidden"
    _, theirs = await post(sandbox, {"from": "sales02", "to": "sales03", "customers": ["wmS1"], "kind": "onjob"})
    _, mine = await post(sandbox, {"from": "sales01", "to": "sales03", "customers": ["wmS0"], "kind": "onjob"})
    status, listing = await sandbox.as_token(own, "GET", "/handovers")
    assert status == 200 and [h["id"] for h in listing["items"]] == [mine["id"]]
    assert (await sandbox.as_token(own, "GET", f"/handovers/{theirs['id']}"))[0] == 404
