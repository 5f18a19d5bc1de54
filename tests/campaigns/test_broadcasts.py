"""Segment broadcasts: planning in batches (facts, idempotence, pause/resume from the cursor), sending through the
sandbox emulator, and the HTTP API — always through the real segment language: customers carry real tags and RFM
rows, and every test has customers outside the segment who must never be planned. Also: a broadcast whose stored
segment cannot run fails on its own (with an alert) and does not hold up the ones after it; expressions that do not
parse are refused at the edge; coupons refused to reached recipients are counted."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

import bots.notices.broadcasts
from bots.outbound import services as sender
from bots.outbound.models import kf_windows, outbound_messages
from scrm.campaigns.attention import ATTENTION_TOPIC
from scrm.campaigns.broadcasts import queries as broadcasts_queries
from scrm.campaigns.broadcasts import services as broadcasts
from scrm.campaigns.broadcasts.models import broadcast_recipients
from scrm.campaigns.broadcasts.models import broadcasts as broadcasts_table
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms
from scrm.core import outbox
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, follows
from scrm.crm.customers.services import link_identity
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import apply_tag, ensure_tag
from tagging.rfm.models import customer_rfm
from tagging.segments.syntax import SegmentSyntaxError
from tests.conftest import FrozenClock, SandboxHarness, make_customer

MEMBERS = "tag:会员"  # the segment most tests send to: customers given the 会员 tag


async def customer(
    rt: Runtime,
    ext: str,
    *,
    kf_hours_ago: float | None = None,
    kf_sent: int = 0,
    openid: str = "",
    sales: str = "",
    tags: tuple[str, ...] = ("会员",),
    rfm: str = "",
) -> int:
    """A real customer with its channel facts, its tags (default 会员, so :data:`MEMBERS` picks it) and, with
    ``rfm``, a computed RFM segment."""
    cid = await make_customer(rt, ext)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        if kf_hours_ago is not None:
            await sender.record_customer_message(
                conn, open_kfid=rt.settings.kf_open_kfid, external_userid=ext, at=now - dt.timedelta(hours=kf_hours_ago)
            )
            await conn.execute(sa.update(kf_windows).where(kf_windows.c.external_userid == ext).values(sent_since_customer_msg=kf_sent))
        if openid:
            await link_identity(conn, rt.db.dialect, cid, "openid", openid, now)
        if sales:
            await conn.execute(
                follows.insert().values(
                    customer_id=cid, userid=sales, external_userid=ext, status=FollowStatus.ACTIVE, started_at=now, updated_at=now
                )
            )
        for name in tags:
            tag_id = await ensure_tag(conn, rt.db.dialect, name, now, group="客户类型")
            await apply_tag(conn, rt.db.dialect, customer_id=cid, tag_id=tag_id, source=TagSource.MANUAL, evidence={}, now=now)
        if rfm:
            await conn.execute(
                customer_rfm.insert().values(
                    customer_id=cid, recency_days=3, frequency=4, monetary_fen=120_000, r=5, f=4, m=4, segment=rfm, computed_on=now.date()
                )
            )
    return cid


async def outsiders(rt: Runtime, n: int = 2) -> list[int]:
    """Reachable customers outside every segment the tests use (another tag): planning them would be a bug."""
    return [await customer(rt, f"wm_out{i}", openid=f"o_out{i}", kf_hours_ago=1, tags=("路人",)) for i in range(n)]


async def recipients(rt: Runtime, bid: int) -> dict[int, tuple[str, str, str]]:
    async with rt.db.read() as conn:
        rows = await conn.execute(sa.select(broadcast_recipients).where(broadcast_recipients.c.broadcast_id == bid))
        return {r.customer_id: (r.channel, r.status, r.reason) for r in rows}


async def outbox_rows(rt: Runtime) -> list[dict[str, Any]]:
    async with rt.db.read() as conn:
        return [dict(r.payload) for r in await conn.execute(sa.select(outbox.outbox).where(outbox.outbox.c.topic == "broadcast.send"))]


async def test_plan_chooses_channels_with_reasons(rt: Runtime) -> None:
    await outsiders(rt)  # reachable, but not 会员: never planned
    kf_open = await customer(rt, "wm_kf", kf_hours_ago=2)
    kf_spent = await customer(rt, "wm_spent", kf_hours_ago=2, kf_sent=4)
    kf_old = await customer(rt, "wm_old", kf_hours_ago=49)
    oa = await customer(rt, "wm_oa", openid="o_oa")
    task = await customer(rt, "wm_task", sales="sales01")
    capped = await customer(rt, "wm_cap", sales="sales01")
    nobody = await customer(rt, "wm_none")
    # this month the capped customer already had 3 salesperson tasks (order notices): marketing may not take the 4th
    now = rt.clock.now()
    async with rt.db.write() as conn:
        for i in range(3):
            await conn.execute(
                outbound_messages.insert().values(
                    idempotency_key=f"n{i}", channel="msg_template", purpose="notice", recipient="wm_cap", payload={},
                    status="awaiting_salesperson", created_at=now, updated_at=now,
                )
            )  # fmt: skip
    view = await broadcasts.create_broadcast(rt, {"name": "双11", "segment": MEMBERS, "text": "全场满100减20"})
    await broadcasts.start_broadcast(rt, view.id)
    assert await broadcasts.plan_broadcast(rt, view.id, batch=3) == 7
    got = await recipients(rt, view.id)
    assert got == {
        kf_open: ("kf", "planned", ""),
        kf_spent: ("none", "skipped", "kf_budget_reserved_for_notices"),
        kf_old: ("none", "skipped", "kf_window_closed"),
        oa: ("mp_template", "planned", ""),
        task: ("msg_template", "planned", ""),
        capped: ("none", "skipped", "msg_template_monthly_cap"),
        nobody: ("none", "skipped", "no_reachable_channel"),
    }
    async with rt.db.read() as conn:
        done = await broadcasts_queries.get_broadcast(conn, view.id)
        prog = await broadcasts_queries.progress(conn, view.id)
    assert done.status == "done" and done.cursor_customer_id == nobody
    assert done.totals["recipients"] == 7 and done.totals["skipped"]["kf_window_closed"] == 1
    assert prog["by_status"] == {"planned": 3, "skipped": 4}
    chunks = await outbox_rows(rt)
    assert sorted((c["channel"], c["salesperson_userid"], len(c["items"])) for c in chunks) == [
        ("kf", "", 1), ("mp_template", "", 1), ("msg_template", "sales01", 1)
    ]  # fmt: skip


async def test_replanning_a_batch_changes_nothing(rt: Runtime) -> None:
    ids = []
    for i in range(5):  # 会员 of 重要价值客户, each followed by a 会员 without RFM that the segment leaves out
        ids.append(await customer(rt, f"wm{i}", kf_hours_ago=1, rfm="重要价值客户"))
        await customer(rt, f"wm_plain{i}", kf_hours_ago=1)
    view = await broadcasts.create_broadcast(rt, {"name": "b", "segment": "rfm:重要价值客户 and tag:会员", "text": "hi"})
    await broadcasts.start_broadcast(rt, view.id)
    first = await broadcasts.plan_batch(rt, view.id, batch=3)
    assert (first.planned, first.cursor) == (3, ids[2])
    before, chunks = await recipients(rt, view.id), len(await outbox_rows(rt))
    async with rt.db.write() as conn:  # a crash-and-retry that replays the same batch
        await conn.execute(sa.update(broadcasts_table).where(broadcasts_table.c.id == view.id).values(cursor_customer_id=None))
    again = await broadcasts.plan_batch(rt, view.id, batch=3)
    assert again.planned == 0 and again.cursor == ids[2]
    assert await recipients(rt, view.id) == before and len(await outbox_rows(rt)) == chunks
    assert sorted(before) == ids[:3]
    await broadcasts.plan_broadcast(rt, view.id, batch=3)
    assert sorted(await recipients(rt, view.id)) == ids


async def test_pause_and_resume_continue_from_the_cursor(rt: Runtime) -> None:
    await outsiders(rt)
    ids = [await customer(rt, f"wm{i}", openid=f"o{i}") for i in range(7)]
    view = await broadcasts.create_broadcast(rt, {"name": "b", "segment": MEMBERS, "text": "hi"})
    await broadcasts.start_broadcast(rt, view.id)
    assert await broadcasts.plan_broadcast(rt, view.id, batch=2, max_batches=2) == 4
    await broadcasts.pause_broadcast(rt, view.id)
    assert (await broadcasts.plan_batch(rt, view.id, batch=2)).planned == 0
    assert len(await recipients(rt, view.id)) == 4
    await broadcasts.start_broadcast(rt, view.id)
    assert await broadcasts.plan_broadcast(rt, view.id, batch=2) == 3
    assert sorted(await recipients(rt, view.id)) == ids
    async with rt.db.read() as conn:
        assert (await broadcasts_queries.get_broadcast(conn, view.id)).status == "done"


async def test_scheduled_broadcast_runs_when_due_and_cancel_skips_the_rest(rt: Runtime, clock: FrozenClock) -> None:
    await outsiders(rt)
    members = [await customer(rt, f"wm{i}", openid=f"o{i}") for i in range(3)]
    later = (clock.now() + dt.timedelta(hours=1)).isoformat()
    view = await broadcasts.create_broadcast(rt, {"name": "b", "segment": MEMBERS, "text": "hi", "scheduled_at": later})
    assert view.status == "scheduled"
    assert await bots.notices.broadcasts.run_due_broadcasts(rt, rate_per_minute=1, batch=1) == 0
    clock.advance(hours=1)
    assert await bots.notices.broadcasts.run_due_broadcasts(rt, rate_per_minute=1, batch=1) == 1  # throttled: one batch a tick
    assert list(await recipients(rt, view.id)) == members[:1]
    await broadcasts.cancel_broadcast(rt, view.id)
    assert [s for _, s, _ in (await recipients(rt, view.id)).values()] == ["skipped"]
    with pytest.raises(broadcasts.Conflict):
        await broadcasts.start_broadcast(rt, view.id)


async def test_sending_reaches_the_emulator(sandbox: SandboxHarness) -> None:
    rt, state = sandbox.rt, sandbox.state
    from scrm.campaigns.broadcasts.web import setup_routes  # noqa: F401 - API tested below

    await sandbox.customer_says("wm_kf", "你好", name="小张")  # opens the kf window (the bot may answer once)
    await customer(rt, "wm_kf")  # the same customer, now tagged 会员
    await sandbox.customer_says("wm_kf_other", "在吗", name="小李")  # a kf customer who is not 会员
    state.add_member("sales01", "王销售")
    state.add_member("sales02", "赵销售")
    ids = {}
    for ext, who in (("wm_a", "sales01"), ("wm_b", "sales01"), ("wm_c", "sales02")):
        state.add_customer(ext, ext, [who])
        ids[ext] = await customer(rt, ext, sales=who)
    state.add_follower("o_oa")
    ids["oa"] = await customer(rt, "wm_oa", openid="o_oa")
    view = await broadcasts.create_broadcast(rt, {"name": "b", "segment": MEMBERS, "text": "新品上架，欢迎选购"})
    await broadcasts.start_broadcast(rt, view.id)
    await broadcasts.plan_broadcast(rt, view.id)
    await sandbox.settle()
    await sandbox.settle()
    assert sandbox.replies("wm_kf")[-1] == "新品上架，欢迎选购"
    assert "新品上架，欢迎选购" not in sandbox.replies("wm_kf_other")
    assert [t["touser"] for t in state.templates_sent] == ["o_oa"]
    groups = sorted((t["sender"], sorted(t["external_userid"])) for t in state.msg_templates)
    assert groups == [("sales01", ["wm_a", "wm_b"]), ("sales02", ["wm_c"])]
    got = await recipients(rt, view.id)
    assert got[ids["wm_a"]][1] == got[ids["wm_c"]][1] == "awaiting_confirmation"
    assert got[ids["oa"]][1] == "sent"
    assert sorted(s for _, s, _ in got.values()) == ["awaiting_confirmation"] * 3 + ["sent"] * 2
    # a chunk handled twice sends nothing more
    before = (len(state.templates_sent), len(state.msg_templates))
    for payload in await outbox_rows(rt):
        await bots.notices.broadcasts.send_chunk(rt, payload)
    assert (len(state.templates_sent), len(state.msg_templates)) == before


@pytest.fixture
async def api(rt: Runtime) -> AsyncIterator[Any]:
    from aiohttp.test_utils import TestClient, TestServer

    from scrm.app.webapp import create_app
    from scrm.campaigns.broadcasts.web import setup_routes

    await rt.jobs.start(rt)
    app = create_app(rt.settings, runtime=rt)
    if not any(getattr(r.resource, "canonical", "") == "/api/v1/broadcasts" for r in app.router.routes()):
        setup_routes(app)  # until scrm/app/webapp.py mounts it
    headers = {"Authorization": f"Bearer {rt.settings.admin_token.get()}"}
    async with TestClient(TestServer(app)) as client:

        async def call(method: str, path: str, **kw: Any) -> tuple[int, Any]:
            resp = await client.request(method, "/api/v1" + path, headers=headers, **kw)
            return resp.status, await resp.json()

        yield call


async def test_api_shapes_and_errors(rt: Runtime, api: Any) -> None:
    await outsiders(rt)
    for i in range(3):
        await customer(rt, f"wm{i}", openid=f"o{i}")
    assert await api("POST", "/broadcasts/preview", json={"segment": MEMBERS}) == (200, {"segment": MEMBERS, "count": 3})
    status, body = await api("POST", "/broadcasts", json={"name": "双11", "segment": MEMBERS, "text": "满100减20"})
    assert status == 201 and body["status"] == "draft" and body["segment"] == MEMBERS
    bid = body["id"]
    status, body = await api("POST", f"/broadcasts/{bid}/start")
    assert status == 200 and body["status"] in ("running", "done")
    await rt.jobs.drain(30)  # type: ignore[attr-defined]
    status, body = await api("GET", f"/broadcasts/{bid}")
    assert status == 200 and body["status"] == "done" and body["error"] is None
    assert body["totals"]["recipients"] == 3 and body["progress"]["recipients"] == 3
    assert body["progress"]["coupon_not_issued"] == {}
    status, body = await api("GET", f"/broadcasts/{bid}/recipients?status=planned&limit=2")
    assert status == 200 and len(body["items"]) == 2 and body["next_after"] == body["items"][1]["customer_id"]
    assert set(body["items"][0]) >= {"customer_id", "channel", "status", "reason", "salesperson_userid"}
    # errors
    assert (await api("POST", f"/broadcasts/{bid}/pause"))[0] == 409
    assert (await api("GET", "/broadcasts/999999"))[1]["error"]["code"] == "not_found"
    assert (await api("GET", f"/broadcasts/{bid}/recipients?status=bogus"))[0] == 400
    assert (await api("POST", "/broadcasts", json={"name": "x", "segment": MEMBERS}))[1]["error"]["code"] == "invalid_input"
    bad_time = {"name": "x", "segment": MEMBERS, "text": "t", "scheduled_at": "2026-12-01T10:00:00"}
    assert (await api("POST", "/broadcasts", json=bad_time))[0] == 400
    assert (await api("POST", "/broadcasts", json={"name": "x", "segment": MEMBERS, "text": "t", "coupon_template_id": 42}))[0] == 404
    assert (await api("PATCH", f"/broadcasts/{bid}", json={"text": "改"}))[0] == 409


async def test_api_refuses_a_segment_that_does_not_parse_with_its_column(rt: Runtime, api: Any) -> None:
    status, body = await api("POST", "/broadcasts", json={"name": "坏客群", "segment": "tag:会员 and and", "text": "hi"})
    assert status == 400
    assert body["error"]["code"] == "segment_syntax"
    assert body["error"]["message"].startswith("客群表达式有误，第 12 列：")
    assert body["error"]["details"] == {"column": 12, "field": "segment"}
    status, body = await api("POST", "/broadcasts", json={"name": "拼错", "segment": "tga:会员", "text": "hi"})
    assert status == 400 and "第 1 列" in body["error"]["message"] and "未知的字段 “tga”" in body["error"]["message"]
    async with rt.db.read() as conn:
        assert await broadcasts_queries.list_broadcasts(conn) == []  # nothing was stored
    # editing a draft into a bad expression is refused the same way, and the draft keeps its segment
    status, body = await api("POST", "/broadcasts", json={"name": "好", "segment": MEMBERS, "text": "hi"})
    assert status == 201
    status, bad = await api("PATCH", f"/broadcasts/{body['id']}", json={"segment": "rfm:最好客户"})
    assert status == 400 and bad["error"]["details"] == {"column": 5, "field": "segment"} and "没有 RFM 分群" in bad["error"]["message"]
    assert (await api("GET", f"/broadcasts/{body['id']}"))[1]["segment"] == MEMBERS
    # the preview answers with the column too
    status, bad = await api("POST", "/broadcasts/preview", json={"segment": "tag:会员 or"})
    assert status == 400 and bad["error"]["details"]["column"] == 10


async def test_a_stored_bad_segment_fails_alone_and_later_broadcasts_go_on(rt: Runtime) -> None:
    """Old data: a broadcast stored before expressions were checked. The cron fails it (status, error, one alert)
    and the good broadcast created after it is planned in the same tick."""
    members = [await customer(rt, f"wm{i}", openid=f"o{i}") for i in range(3)]
    await outsiders(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        bad_id = (
            await conn.execute(
                broadcasts_table.insert()
                .values(
                    name="旧数据", segment_expression="tag:会员 and (rfm:重要价值", text="hi", status="running", totals={},
                    created_at=now, started_at=now, updated_at=now,
                )
                .returning(broadcasts_table.c.id)
            )
        ).scalar_one()  # fmt: skip
    good = await broadcasts.create_broadcast(rt, {"name": "新群发", "segment": MEMBERS, "text": "hi"})
    await broadcasts.start_broadcast(rt, good.id)
    assert await bots.notices.broadcasts.run_due_broadcasts(rt) == 3
    async with rt.db.read() as conn:
        bad = await broadcasts_queries.get_broadcast(conn, int(bad_id))
        done = await broadcasts_queries.get_broadcast(conn, good.id)
        alerts = [dict(r.payload) for r in await conn.execute(sa.select(outbox.outbox).where(outbox.outbox.c.topic == ATTENTION_TOPIC))]
    assert bad.status == "failed" and bad.finished_at == now and bad.cursor_customer_id is None
    assert bad.error is not None and "第 21 列" in bad.error and "缺少右括号" in bad.error
    assert bad.to_json()["error"] == bad.error
    async with rt.db.read() as conn:  # kept in its own column, the plan totals only counts
        stored = (
            await conn.execute(sa.select(broadcasts_table.c.error, broadcasts_table.c.totals).where(broadcasts_table.c.id == bad_id))
        ).one()
    assert stored.error == bad.error and "error" not in stored.totals
    assert done.status == "done" and sorted(await recipients(rt, good.id)) == members
    assert await recipients(rt, int(bad_id)) == {}
    assert alerts == [{"message": f"群发“旧数据”（#{bad_id}）已停止：{bad.error}", "key": f"broadcast-failed:{bad_id}"}]
    # the next tick neither retries it nor alerts again, and a failed broadcast cannot be restarted
    assert await bots.notices.broadcasts.run_due_broadcasts(rt) == 0
    async with rt.db.read() as conn:
        n_alerts = (
            await conn.execute(sa.select(sa.func.count()).select_from(outbox.outbox).where(outbox.outbox.c.topic == ATTENTION_TOPIC))
        ).scalar_one()
    assert n_alerts == 1
    with pytest.raises(broadcasts.Conflict):
        await broadcasts.start_broadcast(rt, int(bad_id))


async def test_services_refuse_bad_segments_on_create_and_edit(rt: Runtime) -> None:
    with pytest.raises(SegmentSyntaxError) as info:
        await broadcasts.create_broadcast(rt, {"name": "b", "segment": "tag:会员 and", "text": "hi"})
    assert info.value.details == {"column": 11, "field": "segment"}
    view = await broadcasts.create_broadcast(rt, {"name": "b", "segment": f"  {MEMBERS}  ", "text": "hi"})
    assert view.segment == MEMBERS
    with pytest.raises(SegmentSyntaxError):
        await broadcasts.update_broadcast(rt, view.id, {"segment": "activity:sleeping"})


async def test_coupons_refused_by_the_per_customer_limit_are_counted(sandbox: SandboxHarness) -> None:
    """Two of three members already hold the only coupon each may have: the message reaches all three, one gets
    a coupon, and the two misses are counted (recipient reason, API progress, console page)."""
    rt = sandbox.rt
    ids = []
    for i in range(3):
        sandbox.state.add_follower(f"o{i}")
        ids.append(await customer(rt, f"wm{i}", openid=f"o{i}"))
    tpl = await coupons.create_template(
        rt, TemplateTerms(name="满100减10", rule=CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000))
    )
    for cid in ids[:2]:
        await coupons.issue_coupon(rt, tpl.id, cid, source="console")
    view = await broadcasts.create_broadcast(rt, {"name": "发券", "segment": MEMBERS, "text": "送您一张券", "coupon_template_id": tpl.id})
    await broadcasts.start_broadcast(rt, view.id)
    await broadcasts.plan_broadcast(rt, view.id)
    await sandbox.settle()
    got = await recipients(rt, view.id)
    assert {cid: (status, reason) for cid, (_, status, reason) in got.items()} == {
        ids[0]: ("sent", "coupon_per_customer_limit"),
        ids[1]: ("sent", "coupon_per_customer_limit"),
        ids[2]: ("sent", ""),
    }
    # a chunk handled again changes nothing (the recorded outcome stands, no second coupon)
    for payload in await outbox_rows(rt):
        await bots.notices.broadcasts.send_chunk(rt, payload)
    assert (await coupons.get_template(rt, tpl.id)).budget.issued_count == 3
    async with rt.db.read() as conn:
        prog = await broadcasts_queries.progress(conn, view.id)
    assert prog["coupon_not_issued"] == {"per_customer_limit": 2}
    status, body = await sandbox.api("GET", f"/broadcasts/{view.id}")
    assert status == 200 and body["progress"]["coupon_not_issued"] == {"per_customer_limit": 2}


async def test_the_failure_alert_reaches_operations_in_wecom(sandbox: SandboxHarness) -> None:
    """The alert of a failed broadcast goes out as a WeCom app message to the operations staff (SCRM_OPS_USERIDS)."""
    rt = sandbox.rt
    rt.settings = dataclasses.replace(rt.settings, ops_userids="ops01")
    sandbox.state.add_member("ops01", "运营小王")
    now = rt.clock.now()
    async with rt.db.write() as conn:
        bad_id = (
            await conn.execute(
                broadcasts_table.insert()
                .values(
                    name="旧数据", segment_expression="tga:会员", text="hi", status="running", totals={}, created_at=now, updated_at=now
                )
                .returning(broadcasts_table.c.id)
            )
        ).scalar_one()
    await bots.notices.broadcasts.run_due_broadcasts(rt)
    await sandbox.settle()
    (text,) = sandbox.state.app_messages_to("ops01")
    assert text.startswith(f"【营销待办】群发“旧数据”（#{bad_id}）已停止：客群表达式无法解析：第 1 列：未知的字段 “tga”")
