"""The emulated customer and group transfers (在职继承 / 离职继承) over HTTP: batch size, per-customer errcodes, the
90-day limit, the 24 h takeover on the clock, a refusal with its transfer_fail callback, departed members and
get_unassigned_list, group transfers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bots.gateway.xmlparse import parse_xml
from bots.outbound.client import Errcode
from bots.sandbox.emulator import create_emulator_app
from bots.sandbox.state import SandboxState
from config.settings import SANDBOX_CORP_ID, SANDBOX_SECRET
from scrm.core.clock import FrozenClock


@pytest.fixture
def state(clock: FrozenClock) -> SandboxState:
    s = SandboxState(now=clock.now)
    s.seed_demo()
    s.add_member("sales02", "赵销售")
    s.add_member("sales03", "钱销售")
    for i in range(5):
        s.add_customer(f"wmC{i}", f"客户{i}", ["sales01"])
    return s


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_emulator_app(state))) as c:
        yield c


async def call(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.get("/wecom/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})
    token = (await resp.json())["access_token"]
    resp = await client.post(f"/wecom/cgi-bin/{path}", params={"access_token": token}, json=body)
    assert resp.status == 200
    return dict(await resp.json())


def transfer(handover: str, takeover: str, externals: list[str]) -> dict[str, Any]:
    return {"handover_userid": handover, "takeover_userid": takeover, "external_userid": externals}


async def statuses(client: TestClient, handover: str, takeover: str, kind: str = "") -> dict[str, int]:
    answer = await call(client, f"externalcontact/{kind}transfer_result", {"handover_userid": handover, "takeover_userid": takeover})
    assert answer["errcode"] == 0, answer
    return {c["external_userid"]: c["status"] for c in answer["customer"]}


async def test_onjob_transfer_rules_and_takeover_after_24h(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    too_many = await call(client, "externalcontact/transfer_customer", transfer("sales01", "sales02", [f"x{i}" for i in range(101)]))
    assert too_many["errcode"] == Errcode.INVALID_PARAMETER
    unknown_takeover = await call(client, "externalcontact/transfer_customer", transfer("sales01", "nobody", ["wmC0"]))
    assert unknown_takeover["errcode"] == Errcode.INVALID_USERID
    answer = await call(client, "externalcontact/transfer_customer", transfer("sales01", "sales02", ["wmC0", "wmC1", "ghost", "wmC0"]))
    assert answer["errcode"] == 0
    assert [c["errcode"] for c in answer["customer"]] == [0, 0, Errcode.INVALID_EXTERNAL_USERID, Errcode.TRANSFER_IN_PROGRESS]
    not_theirs = await call(client, "externalcontact/transfer_customer", transfer("sales02", "sales03", ["wmC2"]))
    assert not_theirs["customer"][0]["errcode"] == Errcode.NOT_FOLLOWER

    assert await statuses(client, "sales01", "sales02") == {"wmC0": 2, "wmC1": 2}
    clock.advance(hours=23, minutes=59)
    assert await statuses(client, "sales01", "sales02") == {"wmC0": 2, "wmC1": 2}
    assert "sales01" in state.customers["wmC0"].follows
    clock.advance(minutes=1)
    assert await statuses(client, "sales01", "sales02") == {"wmC0": 1, "wmC1": 1}
    assert set(state.customers["wmC0"].follows) == {"sales02"}
    # WeCom tells the product the old member lost the customer by transfer (delivered by the settle route)
    kinds = [(e["ChangeType"], e.get("Source")) for e in (parse_xml(x) for x in state.pending_events)]
    assert kinds == [("del_external_contact", "DELETE_BY_TRANSFER")] * 2


async def test_twice_in_90_days_then_40128(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    for handover, takeover in (("sales01", "sales02"), ("sales02", "sales03")):
        answer = await call(client, "externalcontact/transfer_customer", transfer(handover, takeover, ["wmC0"]))
        assert answer["customer"][0]["errcode"] == 0
        clock.advance(hours=24)
        assert (await statuses(client, handover, takeover))["wmC0"] == 1
    third = await call(client, "externalcontact/transfer_customer", transfer("sales03", "sales01", ["wmC0", "wmC1"]))
    assert third["customer"] == [
        {"external_userid": "wmC0", "errcode": Errcode.TRANSFER_TOO_FREQUENT},
        {"external_userid": "wmC1", "errcode": Errcode.NOT_FOLLOWER},
    ]
    clock.advance(days=89)  # the first transfer is now more than 90 days old
    again = await call(client, "externalcontact/transfer_customer", transfer("sales03", "sales01", ["wmC0"]))
    assert again["customer"][0]["errcode"] == 0


async def test_refusal_sends_transfer_fail(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    delivered: list[str] = []

    async def hook(xml: str) -> None:
        delivered.append(xml)

    state.on_wecom_event = hook
    await call(client, "externalcontact/transfer_customer", transfer("sales01", "sales02", ["wmC0", "wmC1"]))
    resp = await client.post("/api/transfers/refuse", json={"external_userid": "wmC0"})
    assert resp.status == 200 and (await resp.json())["delivered"] == 1
    event = parse_xml(delivered[0])
    assert (event["ChangeType"], event["UserID"], event["ExternalUserID"], event["FailReason"]) == (
        "transfer_fail", "sales02", "wmC0", "customer_refused",
    )  # fmt: skip
    again = await client.post("/api/transfers/refuse", json={"external_userid": "wmC0"})
    assert again.status == 400  # nothing waits any more
    clock.advance(hours=24)
    settle = await (await client.post("/api/transfers/settle")).json()
    assert settle == {"ok": True, "settled": 1, "delivered": 1}
    assert await statuses(client, "sales01", "sales02") == {"wmC0": 3, "wmC1": 1}
    assert set(state.customers["wmC0"].follows) == {"sales01"}  # the refusing customer stays


async def test_takeover_member_at_customer_limit(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    state.members["sales02"].customer_limit = 1
    state.add_customer("wmOwn", "已有客户", ["sales02"])
    await call(client, "externalcontact/transfer_customer", transfer("sales01", "sales02", ["wmC0"]))
    clock.advance(hours=24)
    assert await statuses(client, "sales01", "sales02") == {"wmC0": 4}
    assert parse_xml(state.pending_events[-1])["FailReason"] == "customer_limit_exceed"


async def test_resigned_transfer_and_unassigned_list(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    not_left = await call(client, "externalcontact/resigned/transfer_customer", transfer("sales01", "sales02", ["wmC0"]))
    assert not_left["errcode"] == Errcode.MEMBER_NOT_RESIGNED
    assert (await call(client, "externalcontact/get_unassigned_list", {}))["info"] == []
    resp = await client.post("/api/members/depart", json={"userid": "sales01"})
    assert resp.status == 200
    onjob = await call(client, "externalcontact/transfer_customer", transfer("sales01", "sales02", ["wmC0"]))
    assert onjob["errcode"] == Errcode.INVALID_USERID  # a departed member's customers go by 离职继承
    listed = await call(client, "externalcontact/get_unassigned_list", {"page_size": 3})
    assert len(listed["info"]) == 3 and not listed["is_last"] and listed["info"][0]["handover_userid"] == "sales01"
    rest = await call(client, "externalcontact/get_unassigned_list", {"page_size": 3, "cursor": listed["next_cursor"]})
    assert len(rest["info"]) == 2 and rest["is_last"]
    answer = await call(client, "externalcontact/resigned/transfer_customer", transfer("sales01", "sales02", ["wmC0", "wmC1"]))
    assert [c["errcode"] for c in answer["customer"]] == [0, 0]
    waiting = await call(client, "externalcontact/get_unassigned_list", {})
    assert {i["external_userid"] for i in waiting["info"]} == {"wmC2", "wmC3", "wmC4"}
    clock.advance(hours=24)
    assert await statuses(client, "sales01", "sales02", "resigned/") == {"wmC0": 1, "wmC1": 1}
    follow_users = await call(client, "externalcontact/get_follow_user_list", {})
    assert "sales01" not in follow_users["follow_user"]


async def test_group_transfers(client: TestClient, state: SandboxState) -> None:
    state.add_group("wrG1", "一群", "sales01", ["wmC0"])
    state.add_group("wrG2", "二群", "sales01", ["wmC1"])
    onjob = await call(client, "externalcontact/groupchat/onjob_transfer", {"chat_id_list": ["wrG1", "nope"], "new_owner": "sales02"})
    assert onjob["failed_chat_list"] == [{"chat_id": "nope", "errcode": Errcode.INVALID_CHAT_ID, "errmsg": "failed"}]
    assert state.groups["wrG1"].owner == "sales02"
    resigned = await call(client, "externalcontact/groupchat/transfer", {"chat_id_list": ["wrG2"], "new_owner": "sales02"})
    assert resigned["failed_chat_list"][0]["errcode"] == Errcode.GROUP_OWNER_NOT_RESIGNED
    await client.post("/api/members/depart", json={"userid": "sales01"})
    assert (await call(client, "externalcontact/groupchat/onjob_transfer", {"chat_id_list": ["wrG2"], "new_owner": "sales02"}))[
        "failed_chat_list"
    ][0]["errcode"] == Errcode.GROUP_OWNER_RESIGNED
    assert (await call(client, "externalcontact/groupchat/transfer", {"chat_id_list": ["wrG2"], "new_owner": "sales02"}))[
        "failed_chat_list"
    ] == []
    assert state.groups["wrG2"].owner == "sales02"
