"""Group referral (群裂变) end to end in the sandbox: a campaign of kind "group" gives each inviter a personal 加入群聊
code (groupchat/add_join_way, scene 2, the campaign's groups, state ``rf:…``); friends scan it in the emulator,
which puts them in the group with that state in its member list and sends the signed, encrypted
change_external_chat add_member (JoinScene 3) to /callback/wecom; the product reads groupchat/get for the state and
attributes the invitee. Leaving the group inside the hold revokes, as del_follow_user does; the reward is granted
at the real goal and clawed back when a leave drops the inviter below it. Fraud: an existing customer, the inviter
themself. Also the emulator's join-way endpoints and their errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bots.outbound.client import WECOM_API, ApiError, Errcode
from bots.sandbox.entities import GroupMember
from bots.sandbox.group_simulator import customer_joins_group, deliver_event, member_leaves_group
from bots.sandbox.simulator import change_external_chat
from scrm.campaigns.coupons.models import CouponStatus, coupons
from scrm.campaigns.referral import invites as referral_invites_svc
from scrm.campaigns.referral.domain import RejectReason
from scrm.campaigns.referral.models import InviteStatus, referral_invites, referral_rewards
from tests.campaigns.test_referral import code_of, customer, plain_add, rows, template
from tests.conftest import SandboxHarness

CHAT = "wrGroupReferral01"


async def group_campaign(h: SandboxHarness, *, goal: int = 2, hold_hours: int = 24, chat_ids: list[str] | None = None) -> tuple[int, Any]:
    now = h.rt.clock.now()
    body = {
        "name": "拉好友进群领券",
        "kind": "group",
        "chat_ids": chat_ids or [CHAT],
        "goal": goal,
        "hold_hours": hold_hours,
        "reward_template_id": await template(h, per_customer_limit=2),
        "starts_at": now.isoformat(),
        "ends_at": (now + dt.timedelta(days=14)).isoformat(),
        "status": "running",
    }
    return await h.api("POST", "/referral-campaigns", json=body)


async def join(h: SandboxHarness, config_id: str, ext: str, name: str) -> None:
    await customer_joins_group(h.state, config_id, ext, name)
    await h.settle()


async def leave_group(h: SandboxHarness, ext: str) -> None:
    await member_leaves_group(h.state, CHAT, ext)
    await h.settle()


async def invites(h: SandboxHarness) -> dict[int, tuple[str, str, str | None]]:
    return {int(r.invitee_customer_id): (r.status, r.reason, r.chat_id) for r in await rows(h, referral_invites)}


@pytest.fixture
def group(sandbox: SandboxHarness) -> SandboxHarness:
    sandbox.state.add_member("sales01", "王销售")
    sandbox.state.add_group(CHAT, "老客福利群", "sales01")
    return sandbox


async def test_full_group_referral_with_leaves_fraud_reward_and_claw_back(group: SandboxHarness) -> None:
    h, rt = group, group.rt
    inviter = await plain_add(h, "wmGInviter", "群主老客")
    old = await plain_add(h, "wmGOld", "老朋友")
    status, campaign = await group_campaign(h, goal=2)
    assert status == 201, campaign
    assert (campaign["kind"], campaign["chat_ids"], campaign["userids"]) == ("group", [CHAT], [])
    cid = campaign["id"]

    code = await code_of(h, cid, "wmGInviter")
    assert code["state"].startswith("rf:") and len(code["state"]) <= 30 and code["qr_code"].startswith("https://")
    assert await code_of(h, cid, "wmGInviter") == code  # made once, then reused
    way = h.state.join_ways[code["config_id"]]
    assert (way.scene, way.chat_id_list, way.state) == (2, [CHAT], code["state"])
    assert h.state.call_count("externalcontact/groupchat/add_join_way") == 1
    assert h.state.call_count("externalcontact/add_contact_way") == 0  # no 联系我 code for a group campaign

    for ext, name in (("wmGF1", "群友甲"), ("wmGF2", "群友乙"), ("wmGF3", "群友丙")):
        await join(h, code["config_id"], ext, name)
    await join(h, code["config_id"], "wmGOld", "老朋友")  # an existing customer: not new
    await join(h, code["config_id"], "wmGInviter", "群主老客")  # their own code
    f1, f2, f3 = [await customer(h, e) for e in ("wmGF1", "wmGF2", "wmGF3")]
    got = await invites(h)
    assert got == {
        f1: (InviteStatus.PENDING, "", CHAT),
        f2: (InviteStatus.PENDING, "", CHAT),
        f3: (InviteStatus.PENDING, "", CHAT),
        old: (InviteStatus.REJECTED, RejectReason.RE_ADD, CHAT),
        inviter: (InviteStatus.REJECTED, RejectReason.SELF_INVITE, CHAT),
    }
    members = (await rt.get(WECOM_API).call("externalcontact/groupchat/get", {"chat_id": CHAT}))["group_chat"]["member_list"]
    assert {m["userid"]: m.get("state") for m in members}["wmGF1"] == code["state"]  # the state lives in the member list

    rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    await leave_group(h, "wmGF3")  # inside the hold: revoked like del_follow_user
    assert (await invites(h))[f3][:2] == (InviteStatus.REVOKED, "left")

    rt.clock.advance(hours=23)  # type: ignore[attr-defined]
    assert await referral_invites_svc.qualify_due_invites(rt) == 2
    await h.settle()
    assert {k: v[0] for k, v in (await invites(h)).items() if k in (f1, f2)} == {f1: "qualified", f2: "qualified"}
    [coupon] = await rows(h, coupons)
    assert (coupon.customer_id, coupon.status, coupon.source) == (inviter, CouponStatus.ISSUED, "referral")
    _, funnel = await h.api("GET", f"/referral-campaigns/{cid}/funnel")
    assert (funnel["codes_issued"], funnel["adds"], funnel["qualified"], funnel["rewarded"]) == (1, 5, 2, 1)

    await leave_group(h, "wmGF2")  # after qualifying, still inside the campaign: revoked → below the goal
    assert (await invites(h))[f2][0] == InviteStatus.REVOKED
    [coupon] = await rows(h, coupons)
    [reward] = await rows(h, referral_rewards)
    assert coupon.status == CouponStatus.REVOKED and reward.revoked_at is not None

    # The same join delivered again changes nothing; the campaign's end deletes the join way in WeCom.
    assert len(await invites(h)) == 5
    rt.clock.advance(days=14)  # type: ignore[attr-defined]
    assert await referral_invites_svc.end_due_campaigns(rt) == 1
    assert code["config_id"] not in h.state.join_ways


async def test_a_member_joining_by_other_means_or_without_a_code_is_not_attributed(group: SandboxHarness) -> None:
    h = group
    await plain_add(h, "wmGInv2", "发起人")
    _, campaign = await group_campaign(h)
    await code_of(h, campaign["id"], "wmGInv2")
    h.state.add_customer("wmPlainJoiner", "自己进群")
    h.state.groups[CHAT].members.append(GroupMember("wmPlainJoiner", 2, h.state.ts(), join_scene=3))  # the group's own QR code
    xml = change_external_chat("update", CHAT, "add_member", join_scene=3, mem_change_list=["wmPlainJoiner"], corp_id=h.state.corp_id)
    await deliver_event(h.state, xml)
    await h.settle()
    assert await invites(h) == {}  # a QR join, but not through a personal code: no state, no invite


async def test_group_campaign_rules(group: SandboxHarness) -> None:
    h = group
    status, body = await group_campaign(h, chat_ids=[f"wr{i}" for i in range(6)])
    assert status == 400 and body["error"]["details"]["field"] == "chat_ids"
    status, body = await h.api("POST", "/referral-campaigns", json={"name": "x", "kind": "gang", "goal": 1})
    assert status == 400 and body["error"]["details"]["field"] == "kind"
    await plain_add(h, "wmGInv3", "发起人")
    status, campaign = await group_campaign(h, chat_ids=["wrNoSuchGroup"])
    assert status == 201
    status, body = await h.api("POST", f"/referral-campaigns/{campaign['id']}/codes", json={"inviter": "wmGInv3"})
    assert status == 502 and "40050" in body["error"]["message"]  # WeCom refused: no such group; nothing stored
    status, body = await h.api("PATCH", f"/referral-campaigns/{campaign['id']}", json={"chat_ids": [CHAT]})
    assert status == 409  # fixed once started


async def test_emulator_join_way_endpoints(group: SandboxHarness) -> None:
    api = group.rt.get(WECOM_API)
    ok = {"scene": 2, "chat_id_list": [CHAT], "state": "rf:abc", "remark": "备注" * 20}
    config_id = (await api.call("externalcontact/groupchat/add_join_way", ok))["config_id"]
    way = (await api.call("externalcontact/groupchat/get_join_way", {"config_id": config_id}))["join_way"]
    assert (way["scene"], way["chat_id_list"], way["state"], len(way["remark"])) == (2, [CHAT], "rf:abc", 30)
    assert way["qr_code"].startswith("https://wework.qpic.cn/")
    await api.call("externalcontact/groupchat/update_join_way", {"config_id": config_id, "state": "rf:xyz"})
    assert group.state.join_ways[config_id].state == "rf:xyz"
    for bad, errcode in (
        ({**ok, "scene": 3}, Errcode.INVALID_PARAMETER),
        ({**ok, "chat_id_list": []}, Errcode.INVALID_PARAMETER),
        ({**ok, "chat_id_list": [CHAT] * 6}, Errcode.INVALID_PARAMETER),
        ({**ok, "chat_id_list": ["wrMissing"]}, Errcode.INVALID_CHAT_ID),
        ({**ok, "state": "rf:" + "x" * 28}, Errcode.INVALID_PARAMETER),
        ({"scene": 2}, Errcode.INVALID_PARAMETER),
    ):
        with pytest.raises(ApiError) as err:
            await api.call("externalcontact/groupchat/add_join_way", bad)
        assert err.value.errcode == errcode, bad
    await api.call("externalcontact/groupchat/del_join_way", {"config_id": config_id})
    with pytest.raises(ApiError) as err:
        await api.call("externalcontact/groupchat/get_join_way", {"config_id": config_id})
    assert err.value.errcode == Errcode.INVALID_PARAMETER
    # the sandbox page's control route: join through a way that no longer exists is refused
    resp = await group.client.post("/sandbox/api/groups/join", json={"config_id": config_id, "external_userid": "wmX", "name": "x"})
    assert resp.status == 400
