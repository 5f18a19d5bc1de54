"""Referral campaigns end to end in the sandbox: the API makes a campaign and an inviter's code (a contact way in
the emulator), friends add through it with real signed add_external_contact callbacks, one leaves, the hold passes
(frozen clock + the qualify cron), the reward coupon is issued only when the goal is really met, and the first
order of an invitee is attributed. Fraud: re-add, self-invite, merged identity."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from bots.outbound.models import outbound_messages
from bots.sandbox.simulator import CallbackSimulator, change_external_contact
from fulfillment.orders.services import create_order
from scrm.campaigns.attention import ATTENTION_TOPIC
from scrm.campaigns.coupons.models import CouponStatus, coupon_templates, coupons
from scrm.campaigns.referral import invites as referral_invites_svc
from scrm.campaigns.referral import rewards
from scrm.campaigns.referral.domain import RejectReason
from scrm.campaigns.referral.models import InviteStatus, referral_campaigns, referral_invites, referral_rewards
from scrm.core import outbox
from scrm.core.clock import FrozenClock
from scrm.crm.customers.services import ensure_customer, find_customer, link_identity
from tests.conftest import SandboxHarness, make_settings


@pytest.fixture
async def sandbox(database_url: str, clock: FrozenClock) -> AsyncIterator[SandboxHarness]:
    """tests/conftest.py's sandbox, with the referral API mounted (until scrm/app/webapp.py mounts it)."""
    from aiohttp.test_utils import TestClient, TestServer

    from bots.sandbox.keys import SANDBOX_STATE
    from fulfillment.catalog.services import seed_sample_if_empty
    from scrm.app.runtime import build_runtime
    from scrm.app.webapp import create_app
    from scrm.campaigns.referral import web as referral_web
    from tests.helpers import free_port

    port = free_port()
    settings = make_settings(database_url=database_url, port=port)
    runtime = await build_runtime(settings, clock)
    await runtime.jobs.start(runtime)
    app = create_app(settings, runtime=runtime)
    if not any(getattr(r, "canonical", "") == "/api/v1/referral-campaigns" for r in app.router.resources()):
        referral_web.setup_routes(app)
    async with TestClient(TestServer(app, port=port)) as client:
        async with runtime.db.write() as conn:
            await seed_sample_if_empty(conn, runtime.db.dialect, runtime.clock.now())
        harness = SandboxHarness(runtime, client, app[SANDBOX_STATE])
        harness.state.add_member("sales01", "王销售")
        yield harness
    await runtime.close()


# ---- helpers ----------------------------------------------------------------------------------------------------
async def deliver(h: SandboxHarness, change: str, ext: str, *, userid: str = "sales01", **kw: Any) -> None:
    s = h.rt.settings
    xml = change_external_contact(change, userid, ext, create_time=h.rt.clock.timestamp(), corp_id=s.wecom_corp_id, **kw)
    sim = CallbackSimulator(s.wecom_token.get(), s.wecom_aes_key.get(), s.wecom_corp_id, now=h.rt.clock.now)
    query, body = sim.encrypt_post(xml)
    resp = await h.client.post("/callback/wecom", params=query, data=body)
    assert resp.status == 200, await resp.text()
    await h.settle()


async def plain_add(h: SandboxHarness, ext: str, name: str, **fields: Any) -> int:
    """A customer adds the salesperson without any code (they exist before the campaign)."""
    h.state.add_customer(ext, name, ["sales01"], **fields)
    await deliver(h, "add_external_contact", ext, welcome_code=h.state.issue_welcome_code("sales01", ext))
    return await customer(h, ext)


async def scan(h: SandboxHarness, config_id: str, ext: str, name: str, **fields: Any) -> None:
    """A friend scans the inviter's code in WeCom: the emulator adds them, WeCom calls us back with the state."""
    add = h.state.customer_added_via(config_id, ext, name, **fields)
    await deliver(h, "add_external_contact", ext, userid=add["userid"], state=add["state"], welcome_code=add["welcome_code"])


async def leave(h: SandboxHarness, ext: str) -> None:
    del h.state.customers[ext].follows["sales01"]
    await deliver(h, "del_follow_user", ext)


async def customer(h: SandboxHarness, ext: str) -> int:
    async with h.rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", ext)
    assert cid is not None
    return cid


async def rows(h: SandboxHarness, table: sa.Table, *where: Any) -> list[Any]:
    async with h.rt.db.read() as conn:
        return list(await conn.execute(sa.select(table).where(*where).order_by(table.c.id)))


async def invites(h: SandboxHarness) -> dict[int, tuple[str, str]]:
    return {int(r.invitee_customer_id): (r.status, r.reason) for r in await rows(h, referral_invites)}


async def template(h: SandboxHarness, per_customer_limit: int = 1) -> int:
    now = h.rt.clock.now()
    async with h.rt.db.write() as conn:
        values = {"name": "邀友满100减20", "kind": "fixed", "amount_off_fen": 2000, "threshold_fen": 10000, "skus": [], "categories": []}
        values["per_customer_limit"] = per_customer_limit
        return int(
            (
                await conn.execute(
                    coupon_templates.insert().values(**values, created_at=now, updated_at=now).returning(coupon_templates.c.id)
                )
            ).scalar_one()
        )


async def start_campaign(h: SandboxHarness, goal: int = 2, hold_hours: int = 24, per_customer_limit: int = 1) -> dict[str, Any]:
    now = h.rt.clock.now()
    status, body = await h.api(
        "POST",
        "/referral-campaigns",
        json={
            "name": "邀好友得券",
            "goal": goal,
            "hold_hours": hold_hours,
            "reward_template_id": await template(h, per_customer_limit),
            "userids": ["sales01"],
            "poster_text": "扫码添加顾问，领新人礼",
            "starts_at": now.isoformat(),
            "ends_at": (now + dt.timedelta(days=14)).isoformat(),
            "status": "running",
        },
    )
    assert status == 201, body
    return dict(body)


async def code_of(h: SandboxHarness, campaign_id: int, inviter_ext: str) -> dict[str, Any]:
    status, body = await h.api("POST", f"/referral-campaigns/{campaign_id}/codes", json={"inviter": inviter_ext})
    assert status == 200, body
    return dict(body)


# ---- the full referral --------------------------------------------------------------------------------------------
async def test_full_referral_reward_only_at_the_real_goal_and_first_order_attributed(sandbox: SandboxHarness) -> None:
    h, rt = sandbox, sandbox.rt
    inviter = await plain_add(h, "wmInviter", "老客户小王")
    campaign = await start_campaign(h, goal=2)
    cid = campaign["id"]

    code = await code_of(h, cid, "wmInviter")
    assert code["state"].startswith("rf:") and len(code["state"]) <= 30 and code["qr_code"]
    assert await code_of(h, cid, "wmInviter") == code  # made lazily once, then reused
    assert h.state.call_count("externalcontact/add_contact_way") == 1
    assert h.state.contact_ways[code["config_id"]].state == code["state"]

    for ext, name in (("wmFriendA", "好友甲"), ("wmFriendB", "好友乙"), ("wmFriendC", "好友丙")):
        await scan(h, code["config_id"], ext, name)
    a, b, c = [await customer(h, e) for e in ("wmFriendA", "wmFriendB", "wmFriendC")]
    assert await invites(h) == {a: ("pending", ""), b: ("pending", ""), c: ("pending", "")}

    rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    await leave(h, "wmFriendC")  # inside the hold: the credit is revoked
    assert (await invites(h))[c] == ("revoked", "left")

    rt.clock.advance(hours=21)  # type: ignore[attr-defined]
    assert await referral_invites_svc.qualify_due_invites(rt) == 0  # the hold has not passed yet
    await h.settle()
    assert await rows(h, coupons) == []

    rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    assert await referral_invites_svc.qualify_due_invites(rt) == 2
    await h.settle()
    assert await invites(h) == {a: ("qualified", ""), b: ("qualified", ""), c: ("revoked", "left")}
    [coupon] = await rows(h, coupons)
    assert (coupon.customer_id, coupon.status, coupon.source, coupon.source_ref) == (
        inviter,
        CouponStatus.ISSUED,
        "referral",
        f"referral:{cid}:{inviter}",
    )
    [reward] = await rows(h, referral_rewards)
    assert (reward.inviter_customer_id, reward.coupon_id, reward.revoked_at) == (inviter, coupon.id, None)

    # Running the cron and the goal check again changes nothing: one reward, one coupon.
    assert await referral_invites_svc.qualify_due_invites(rt) == 0
    await rewards.settle_goal(rt, {"campaign_id": cid, "inviter": inviter})
    await h.settle()
    assert len(await rows(h, coupons)) == 1 and len(await rows(h, referral_rewards)) == 1

    # The inviter heard of each step on a channel that reaches them (here: a task for their salesperson).
    sent = await rows(h, outbound_messages, outbound_messages.c.purpose == "referral")
    assert {m.channel for m in sent} == {"msg_template"}
    texts = [m.payload["text"]["content"] for m in sent]
    assert any("还差1位好友就能获得奖励" in t for t in texts)
    assert any("奖励已发放" in t for t in texts)

    # The invitee's first confirmed order is attributed; a second one is not.
    first = await create_order(rt, customer_id=a, items=[("WATER-550", 3)], source="api", confirm=True)
    await h.settle()
    await create_order(rt, customer_id=a, items=[("COLA-330", 1)], source="api", confirm=True)
    await h.settle()
    [inv_a] = await rows(h, referral_invites, referral_invites.c.invitee_customer_id == a)
    assert (inv_a.first_order_id, inv_a.first_order_fen) == (first.id, first.total_fen)

    status, funnel = await h.api("GET", f"/referral-campaigns/{cid}/funnel")
    assert status == 200
    assert {k: funnel[k] for k in ("codes_issued", "adds", "qualified", "rewarded", "first_orders", "revenue_fen")} == {
        "codes_issued": 1,
        "adds": 3,
        "qualified": 2,
        "rewarded": 1,
        "first_orders": 1,
        "revenue_fen": first.total_fen,
    }
    status, board = await h.api("GET", f"/referral-campaigns/{cid}/leaderboard")
    assert status == 200
    [top] = board["items"]
    assert (top["rank"], top["inviter_customer_id"], top["name"], top["qualified"], top["pending"], top["rewarded"]) == (
        1,
        inviter,
        "老客户小王",
        2,
        0,
        True,
    )


async def test_leaving_after_the_reward_claws_back_an_unused_coupon_and_the_goal_can_be_met_again(sandbox: SandboxHarness) -> None:
    h, rt = sandbox, sandbox.rt
    inviter = await plain_add(h, "wmInv2", "小李")
    # A revoked coupon still counts toward the template's per-customer limit (coupons.py): allow a second one.
    cid = (await start_campaign(h, goal=2, hold_hours=1, per_customer_limit=2))["id"]
    code = await code_of(h, cid, "wmInv2")
    await scan(h, code["config_id"], "wmF1", "一号")
    await scan(h, code["config_id"], "wmF2", "二号")
    rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    await referral_invites_svc.qualify_due_invites(rt)
    await h.settle()
    [first] = await rows(h, coupons)
    assert first.status == CouponStatus.ISSUED

    await leave(h, "wmF2")  # after qualifying, still inside the campaign: revoked, below the goal → claw back
    [first] = await rows(h, coupons)
    [reward] = await rows(h, referral_rewards)
    assert first.status == CouponStatus.REVOKED and reward.revoked_at is not None
    _, board = await h.api("GET", f"/referral-campaigns/{cid}/leaderboard")
    assert (board["items"][0]["qualified"], board["items"][0]["rewarded"]) == (1, False)

    await scan(h, code["config_id"], "wmF3", "三号")
    rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    await referral_invites_svc.qualify_due_invites(rt)
    await h.settle()
    issued = await rows(h, coupons, coupons.c.status == CouponStatus.ISSUED)
    assert len(issued) == 1 and issued[0].customer_id == inviter and issued[0].source_ref.startswith(f"referral:{cid}:{inviter}:")
    [reward] = await rows(h, referral_rewards)
    assert (reward.coupon_id, reward.revoked_at) == (issued[0].id, None)


# ---- fraud ---------------------------------------------------------------------------------------------------------
async def test_re_add_self_invite_and_merged_identity_never_count(sandbox: SandboxHarness) -> None:
    h, rt = sandbox, sandbox.rt
    inviter = await plain_add(h, "wmSelf", "自己")
    old = await plain_add(h, "wmOld", "老朋友")
    async with rt.db.write() as conn:  # an Official Account follower known before the campaign (openid + unionid)
        fan = await ensure_customer(conn, rt.db.dialect, kind="openid", value="oFan", now=rt.clock.now())
        await link_identity(conn, rt.db.dialect, fan, "unionid", "uFan", rt.clock.now())
    rt.clock.advance(minutes=5)  # type: ignore[attr-defined]
    cid = (await start_campaign(h, goal=1, hold_hours=1))["id"]
    code = await code_of(h, cid, "wmSelf")

    await scan(h, code["config_id"], "wmSelf", "自己")  # the inviter scans their own code
    await scan(h, code["config_id"], "wmOld", "老朋友")  # an existing customer adds again through the code
    await scan(h, code["config_id"], "wmFan", "公众号粉丝", unionid="uFan")  # new external_userid, known person
    # The fan's add made a new customer; enrichment found the unionid and merged it into the older one.
    assert await customer(h, "wmFan") == fan
    by_reason = {reason for _, (status, reason) in (await invites(h)).items() if status == InviteStatus.REJECTED}
    assert by_reason == {RejectReason.SELF_INVITE, RejectReason.RE_ADD, RejectReason.MERGED_IDENTITY}
    assert (await invites(h))[old] == (InviteStatus.REJECTED, RejectReason.RE_ADD)
    assert (await invites(h))[inviter] == (InviteStatus.REJECTED, RejectReason.SELF_INVITE)

    rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    assert await referral_invites_svc.qualify_due_invites(rt) == 0
    await h.settle()
    assert await rows(h, coupons) == [] and await rows(h, referral_rewards) == []
    _, funnel = await h.api("GET", f"/referral-campaigns/{cid}/funnel")
    assert (funnel["adds"], funnel["qualified"], funnel["rewarded"]) == (3, 0, 0)


async def test_the_same_add_delivered_three_times_is_one_invite(sandbox: SandboxHarness) -> None:
    h = sandbox
    await plain_add(h, "wmInv3", "发起人")
    cid = (await start_campaign(h))["id"]
    code = await code_of(h, cid, "wmInv3")
    add = h.state.customer_added_via(code["config_id"], "wmDup", "重复")
    for _ in range(3):
        await deliver(h, "add_external_contact", "wmDup", state=add["state"], welcome_code=add["welcome_code"])
    assert list((await invites(h)).values()) == [(InviteStatus.PENDING, "")]


# ---- campaign rules through the API -------------------------------------------------------------------------------
async def test_campaign_api_validation_and_status(sandbox: SandboxHarness) -> None:
    h = sandbox
    await plain_add(h, "wmInv4", "发起人")
    status, body = await h.api("POST", "/referral-campaigns", json={"name": "x", "goal": 0})
    assert status == 400 and body["error"]["details"]["field"] == "goal"
    campaign = await start_campaign(h)
    cid = campaign["id"]
    status, body = await h.api("PATCH", f"/referral-campaigns/{cid}", json={"goal": 5})
    assert status == 409  # fixed once started
    status, body = await h.api("PATCH", f"/referral-campaigns/{cid}", json={"status": "paused", "poster_text": "新海报"})
    assert status == 200 and (body["status"], body["poster_text"]) == ("paused", "新海报")
    status, body = await h.api("POST", f"/referral-campaigns/{cid}/codes", json={"inviter": "wmInv4"})
    assert status == 409  # no codes while paused
    status, body = await h.api("POST", f"/referral-campaigns/{cid}/codes", json={"inviter": "wmNobody"})
    assert status == 404
    status, body = await h.api("GET", "/referral-campaigns")
    assert status == 200 and [c["id"] for c in body["items"]] == [cid]
    status, body = await h.api("GET", f"/referral-campaigns/{cid}")
    assert status == 200 and body["funnel"]["codes_issued"] == 0
    # the eligible-inviter segment must be an expression that runs: refused with its column, the stored one kept
    status, body = await h.api("PATCH", f"/referral-campaigns/{cid}", json={"eligible_segment": "tag:老客户 and rfm:"})
    assert status == 400 and body["error"]["code"] == "segment_syntax"
    assert body["error"]["details"] == {"column": 17, "field": "eligible_segment"}
    assert body["error"]["message"].startswith("客群表达式有误，第 17 列：")
    status, body = await h.api("PATCH", f"/referral-campaigns/{cid}", json={"eligible_segment": " tag:老客户 "})
    assert status == 200 and body["eligible_segment"] == "tag:老客户"
    status, body = await h.api("PATCH", f"/referral-campaigns/{cid}", json={"eligible_segment": ""})
    assert status == 200 and body["eligible_segment"] == ""  # empty = every customer
    now = h.rt.clock.now()
    status, body = await h.api(
        "POST",
        "/referral-campaigns",
        json={
            "name": "坏人群", "goal": 2, "reward_template_id": campaign["reward_template_id"], "userids": ["sales01"],
            "starts_at": now.isoformat(), "ends_at": (now + dt.timedelta(days=1)).isoformat(), "eligible_segment": "标签：老客户 或",
        },
    )  # fmt: skip
    assert status == 400 and body["error"]["details"]["field"] == "eligible_segment" and "第 9 列" in body["error"]["message"]
    status, body = await h.api("GET", "/referral-campaigns")
    assert [c["id"] for c in body["items"]] == [cid]  # nothing stored


async def test_a_stored_bad_eligible_segment_refuses_codes_politely_and_alerts(sandbox: SandboxHarness) -> None:
    """Old data: a live campaign whose eligible segment was stored before expressions were checked. An inviter asking
    for a code gets a polite refusal (409, not a parser's column), operations get an alert, and once the segment is
    mended through the API the code is made."""
    h = sandbox
    await plain_add(h, "wmInv9", "发起人")
    campaign = await start_campaign(h)
    async with h.rt.db.write() as conn:
        await conn.execute(
            sa.update(referral_campaigns).where(referral_campaigns.c.id == campaign["id"]).values(eligible_segment="tag:老客户 and")
        )
    status, body = await h.api("POST", f"/referral-campaigns/{campaign['id']}/codes", json={"inviter": "wmInv9"})
    assert status == 409 and body["error"]["message"].startswith("活动参与条件设置有误，暂时无法发放邀请码")
    async with h.rt.db.read() as conn:
        alerts = [dict(r.payload) for r in await conn.execute(sa.select(outbox.outbox).where(outbox.outbox.c.topic == ATTENTION_TOPIC))]
    assert [a["key"] for a in alerts] == [f"referral-segment:{campaign['id']}"]
    assert "可参与客户表达式无法解析" in alerts[0]["message"] and "第 12 列" in alerts[0]["message"]
    status, body = await h.api("PATCH", f"/referral-campaigns/{campaign['id']}", json={"eligible_segment": ""})
    assert status == 200
    status, body = await h.api("POST", f"/referral-campaigns/{campaign['id']}/codes", json={"inviter": "wmInv9"})
    assert status in (200, 201) and body["state"].startswith("rf:")


async def test_one_contact_way_wecom_refuses_to_delete_does_not_stop_the_others(sandbox: SandboxHarness) -> None:
    """Ending campaigns frees each code's contact way on its own: WeCom refusing one (no privilege, 60011) leaves that
    one for the next run and the others are freed now."""
    h, rt = sandbox, sandbox.rt
    for ext in ("wmInvA", "wmInvB"):
        await plain_add(h, ext, ext)
    cid = (await start_campaign(h, hold_hours=0))["id"]
    codes = [await code_of(h, cid, ext) for ext in ("wmInvA", "wmInvB")]
    rt.clock.advance(days=15)  # type: ignore[attr-defined]
    h.state.inject("externalcontact/del_contact_way", 60011)
    assert await referral_invites_svc.end_due_campaigns(rt) == 1
    assert sum(c["config_id"] in h.state.contact_ways for c in codes) == 1
    assert await referral_invites_svc.end_due_campaigns(rt) == 1
    assert all(c["config_id"] not in h.state.contact_ways for c in codes)


async def test_ended_campaigns_free_their_contact_ways_and_late_adds_do_not_count(sandbox: SandboxHarness) -> None:
    h, rt = sandbox, sandbox.rt
    await plain_add(h, "wmInv5", "发起人")
    cid = (await start_campaign(h, hold_hours=0))["id"]
    code = await code_of(h, cid, "wmInv5")
    rt.clock.advance(days=15)  # type: ignore[attr-defined]
    assert await referral_invites_svc.end_due_campaigns(rt) == 1
    assert code["config_id"] not in h.state.contact_ways  # (two calls: the access token expired in those 15 days)
    calls = h.state.call_count("externalcontact/del_contact_way")
    assert await referral_invites_svc.end_due_campaigns(rt) == 0 and h.state.call_count("externalcontact/del_contact_way") == calls
    _, body = await h.api("GET", f"/referral-campaigns/{cid}")
    assert body["status"] == "ended"
    status, _ = await h.api("POST", f"/referral-campaigns/{cid}/codes", json={"inviter": "wmInv5"})
    assert status == 409
    # Someone who saved the old QR code: WeCom still reports the state; the add is recorded and rejected.
    h.state.add_customer("wmLate", "迟到", ["sales01"], state=code["state"])
    await deliver(h, "add_external_contact", "wmLate", state=code["state"])
    assert list((await invites(h)).values()) == [(InviteStatus.REJECTED, RejectReason.CAMPAIGN_CLOSED)]
