"""The sandbox emulator on its own, over HTTP: token errors, kf paging and sending rules, single-use codes,
contact and tag endpoints, the Official Account, fault injection and the chat page's control routes."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bots.gateway.xmlparse import parse_xml
from bots.outbound.client import Errcode
from bots.sandbox import simulator
from bots.sandbox.emulator import create_emulator_app
from bots.sandbox.entities import KfNotice
from bots.sandbox.simulator import CallbackSimulator, MpSimulator
from bots.sandbox.state import SandboxState
from config import Settings
from config.settings import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_KF_OPEN_KFID, SANDBOX_SECRET
from scrm.core.clock import FrozenClock
from scrm.core.runtime import Runtime

KF = SANDBOX_KF_OPEN_KFID


@pytest.fixture
def state(clock: FrozenClock) -> SandboxState:
    s = SandboxState(now=clock.now)
    s.seed_demo()
    return s


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_emulator_app(state))) as c:
        yield c


async def wecom_token(client: TestClient) -> str:
    resp = await client.get("/wecom/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})
    data = await resp.json()
    assert data["errcode"] == 0 and data["expires_in"] == 7200
    return str(data["access_token"])


async def call(
    client: TestClient, path: str, body: dict[str, Any] | None = None, *, token: str | None = None, api: str = "wecom", **params: str
) -> dict[str, Any]:
    """POST (with a body) or GET an API path; the token is fetched unless given ("" = none)."""
    if token is None:
        token = await wecom_token(client)
    query = {**({"access_token": token} if token else {}), **params}
    url = f"/{api}/cgi-bin/{path}"
    resp = await (client.post(url, params=query, json=body) if body is not None else client.get(url, params=query))
    assert resp.status == 200
    return dict(await resp.json())


# ---- tokens ---------------------------------------------------------------------------------------------
async def test_token_errors(client: TestClient, state: SandboxState) -> None:
    bad = await client.get("/wecom/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": "nope"})
    assert (await bad.json())["errcode"] == Errcode.INVALID_SECRET
    token = await wecom_token(client)
    assert await wecom_token(client) == token  # reused while valid, as WeCom does
    assert (await call(client, "user/simplelist", token=""))["errcode"] == Errcode.TOKEN_MISSING
    assert (await call(client, "user/simplelist", token="forged"))["errcode"] == Errcode.INVALID_TOKEN
    ok = await call(client, "user/simplelist", token=token)
    assert ok["errcode"] == 0 and {u["userid"] for u in ok["userlist"]} == {"boss01", "sales01", "ops01"}
    state.expire_tokens()
    expired = await call(client, "user/simplelist", token=token)
    assert expired["errcode"] == Errcode.TOKEN_EXPIRED and "more info at" in expired["errmsg"]
    fresh = await wecom_token(client)
    assert fresh != token and (await call(client, "user/simplelist", token=fresh))["errcode"] == 0


async def test_unknown_path_and_bad_body(client: TestClient) -> None:
    token = await wecom_token(client)
    resp = await client.post("/wecom/cgi-bin/no/such/api", params={"access_token": token}, json={})
    assert resp.status == 404
    resp = await client.post("/wecom/cgi-bin/kf/send_msg", params={"access_token": token}, data=b"{not json")
    assert (await resp.json())["errcode"] == 47001


# ---- 微信客服 -------------------------------------------------------------------------------------------
async def test_kf_sync_pages_with_cursor(client: TestClient, state: SandboxState) -> None:
    event = state.kf_event("wmA", "enter_session", scene="qr")
    sent = [state.customer_kf_message("wmA", f"消息{i}")["msgid"] for i in range(24)]
    token = await wecom_token(client)
    cursor, pages, seen = "", [], []
    while True:
        data = await call(client, "kf/sync_msg", {"cursor": cursor, "token": "", "limit": 10, "open_kfid": KF}, token=token)
        assert data["errcode"] == 0
        pages.append((len(data["msg_list"]), data["has_more"]))
        seen += data["msg_list"]
        cursor = data["next_cursor"]
        assert isinstance(cursor, str) and cursor and not cursor.isdecimal()  # opaque
        if not data["has_more"]:
            break
    assert pages == [(10, 1), (10, 1), (5, 0)]
    assert [m["msgid"] for m in seen] == [event["msgid"], *sent]
    ev = seen[0]
    assert ev["origin"] == 4 and ev["msgtype"] == "event" and ev["event"]["event_type"] == "enter_session"
    assert ev["event"]["welcome_code"] and ev["event"]["external_userid"] == "wmA"
    text = seen[1]
    assert set(text) == {"msgid", "open_kfid", "external_userid", "send_time", "origin", "msgtype", "text"}
    assert text["origin"] == 3 and text["text"] == {"content": "消息0"} and isinstance(text["send_time"], int)
    # The stored cursor resumes exactly after what was read.
    empty = await call(client, "kf/sync_msg", {"cursor": cursor, "open_kfid": KF}, token=token)
    assert empty["msg_list"] == [] and empty["has_more"] == 0
    new = state.customer_kf_message("wmA", "再来一条")
    more = await call(client, "kf/sync_msg", {"cursor": cursor, "open_kfid": KF}, token=token)
    assert [m["msgid"] for m in more["msg_list"]] == [new["msgid"]]
    # A garbled cursor is refused; a cursor from an earlier emulator (restart) reads from the start.
    bad = await call(client, "kf/sync_msg", {"cursor": "@@@", "open_kfid": KF}, token=token)
    assert bad["errcode"] == Errcode.INVALID_PARAMETER
    state.epoch = "restarted"
    again = await call(client, "kf/sync_msg", {"cursor": cursor, "limit": 1000, "open_kfid": KF}, token=token)
    assert len(again["msg_list"]) == 26
    unknown = await call(client, "kf/sync_msg", {"cursor": "", "open_kfid": "wkOther"}, token=token)
    assert unknown["errcode"] == Errcode.KF_INVALID_OPEN_KFID


def kf_text(touser: str, text: str, msgid: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"touser": touser, "open_kfid": KF, "msgtype": "text", "text": {"content": text}}
    if msgid is not None:
        body["msgid"] = msgid
    return body


async def test_kf_send_window_quota_and_idempotent_msgid(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    token = await wecom_token(client)
    never = await call(client, "kf/send_msg", kf_text("wmNever", "hi"), token=token)
    assert never["errcode"] == Errcode.KF_WINDOW_CLOSED
    state.customer_kf_message("wmB", "你好")
    for i in range(5):
        ok = await call(client, "kf/send_msg", kf_text("wmB", f"回复{i}", f"key-{i}"), token=token)
        assert ok["errcode"] == 0 and ok["msgid"] == f"key-{i}"
    sixth = await call(client, "kf/send_msg", kf_text("wmB", "第六条", "key-5"), token=token)
    assert sixth["errcode"] == Errcode.KF_QUOTA_EXHAUSTED
    # The same msgid again is success with the same msgid and no second message, even over quota.
    again = await call(client, "kf/send_msg", kf_text("wmB", "回复0", "key-0"), token=token)
    assert again == {"errcode": 0, "errmsg": "ok", "msgid": "key-0"}
    assert state.kf_replies("wmB") == [f"回复{i}" for i in range(5)]
    assert [m["origin"] for m in state.kf_conversation("wmB")] == [3, 5, 5, 5, 5, 5]
    for bad_id in ("x" * 33, "has space", "中文"):
        bad = await call(client, "kf/send_msg", kf_text("wmB", "x", bad_id), token=token)
        assert bad["errcode"] == Errcode.INVALID_PARAMETER
    state.customer_kf_message("wmB", "还在吗")  # writing again resets the quota
    assert (await call(client, "kf/send_msg", kf_text("wmB", "在的"), token=token))["errcode"] == 0
    clock.advance(hours=48)
    token = await wecom_token(client)  # access tokens live 2 h
    late = await call(client, "kf/send_msg", kf_text("wmB", "迟到"), token=token)
    assert late["errcode"] == Errcode.KF_WINDOW_CLOSED
    # The bot's messages are in the sync log with origin 5 (servicer).
    log = await call(client, "kf/sync_msg", {"cursor": "", "open_kfid": KF}, token=token)
    assert [m["origin"] for m in log["msg_list"]].count(5) == 6


async def test_kf_welcome_code_single_use(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    code = state.kf_event("wmC")["event"]["welcome_code"]
    body = {"code": code, "msgid": "welcome-1", "msgtype": "text", "text": {"content": "欢迎"}}
    token = await wecom_token(client)
    assert (await call(client, "kf/send_msg_on_event", body, token=token))["msgid"] == "welcome-1"
    assert (await call(client, "kf/send_msg_on_event", body, token=token))["errcode"] == 0  # same msgid: idempotent
    second = await call(client, "kf/send_msg_on_event", {**body, "msgid": "welcome-2"}, token=token)
    assert second["errcode"] == Errcode.KF_EVENT_CODE_INVALID
    late_code = state.kf_event("wmC")["event"]["welcome_code"]
    clock.advance(seconds=21)
    late = await call(client, "kf/send_msg_on_event", {**body, "code": late_code, "msgid": "w3"}, token=token)
    assert late["errcode"] == Errcode.KF_EVENT_CODE_INVALID
    assert state.kf_replies("wmC") == ["欢迎"]


# ---- 客户联系 ---------------------------------------------------------------------------------------------
async def test_welcome_msg_code_single_use(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    state.add_customer("wmD", "客户D", ["sales01"])
    code = state.issue_welcome_code("sales01", "wmD")
    body = {"welcome_code": code, "text": {"content": "欢迎光临"}}
    token = await wecom_token(client)
    assert (await call(client, "externalcontact/send_welcome_msg", body, token=token))["errcode"] == 0
    used = await call(client, "externalcontact/send_welcome_msg", body, token=token)
    assert used["errcode"] == Errcode.WELCOME_CODE_INVALID
    unknown = await call(client, "externalcontact/send_welcome_msg", {**body, "welcome_code": "nope"}, token=token)
    assert unknown["errcode"] == Errcode.WELCOME_CODE_INVALID
    stale = state.issue_welcome_code("sales01", "wmD")
    clock.advance(seconds=21)
    late = await call(client, "externalcontact/send_welcome_msg", {**body, "welcome_code": stale}, token=token)
    assert late["errcode"] == Errcode.WELCOME_CODE_INVALID
    assert [(w["external_userid"], w["text"]) for w in state.welcome_messages] == [("wmD", "欢迎光临")]


async def test_add_contact_way_state_length(client: TestClient, state: SandboxState) -> None:
    token = await wecom_token(client)
    body = {"type": 1, "scene": 2, "state": "s" * 30, "user": ["sales01"], "skip_verify": True}
    ok = await call(client, "externalcontact/add_contact_way", body, token=token)
    assert ok["errcode"] == 0 and ok["config_id"] and ok["qr_code"].startswith("https://")
    long = await call(client, "externalcontact/add_contact_way", {**body, "state": "s" * 31}, token=token)
    assert long["errcode"] == Errcode.INVALID_PARAMETER
    nobody = await call(client, "externalcontact/add_contact_way", {**body, "user": ["ghost"]}, token=token)
    assert nobody["errcode"] == Errcode.INVALID_USERID
    added = state.customer_added_via(ok["config_id"], "wmE", "客户E", unionid="uE")
    assert added["state"] == "s" * 30 and added["userid"] == "sales01" and added["welcome_code"]
    got = await call(client, "externalcontact/get", token=token, external_userid="wmE")
    assert got["external_contact"]["unionid"] == "uE" and got["external_contact"]["name"] == "客户E"
    assert got["follow_user"][0]["state"] == "s" * 30 and got["follow_user"][0]["userid"] == "sales01"


async def test_contacts_tags_and_lists(client: TestClient, state: SandboxState) -> None:
    token = await wecom_token(client)
    for i in range(5):
        state.add_customer(f"wm{i}", f"客户{i}", ["sales01"])
    assert (await call(client, "externalcontact/get", token=token, external_userid="wmX"))["errcode"] == 84061
    listed = await call(client, "externalcontact/list", token=token, userid="sales01")
    assert listed["external_userid"] == [f"wm{i}" for i in range(5)]
    assert (await call(client, "externalcontact/list", token=token, userid="ops01"))["errcode"] == 84061
    pages, cursor = [], ""
    while True:
        page = await call(
            client, "externalcontact/batch/get_by_user", {"userid_list": ["sales01"], "cursor": cursor, "limit": 2}, token=token
        )
        pages.append([c["external_contact"]["external_userid"] for c in page["external_contact_list"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [["wm0", "wm1"], ["wm2", "wm3"], ["wm4"]]
    too_many = await call(client, "externalcontact/batch/get_by_user", {"userid_list": ["sales01"], "limit": 101}, token=token)
    assert too_many["errcode"] == Errcode.INVALID_PARAMETER
    added = await call(
        client, "externalcontact/add_corp_tag", {"group_name": "兴趣", "tag": [{"name": "矿泉水"}, {"name": "茶"}]}, token=token
    )
    water, tea = (t["id"] for t in added["tag_group"]["tag"])
    dup = await call(client, "externalcontact/add_corp_tag", {"group_name": "兴趣", "tag": [{"name": "茶"}]}, token=token)
    assert dup["errcode"] == Errcode.TAG_NAME_EXISTS
    mark = {"userid": "sales01", "external_userid": "wm0", "add_tag": [water, tea]}
    assert (await call(client, "externalcontact/mark_tag", mark, token=token))["errcode"] == 0
    bad = await call(client, "externalcontact/mark_tag", {**mark, "add_tag": ["etNope"]}, token=token)
    assert bad["errcode"] == Errcode.INVALID_TAG_ID
    got = await call(client, "externalcontact/get", token=token, external_userid="wm0")
    assert {t["tag_name"] for t in got["follow_user"][0]["tags"]} == {"矿泉水", "茶"}
    assert (await call(client, "externalcontact/del_corp_tag", {"tag_id": [tea]}, token=token))["errcode"] == 0
    got = await call(client, "externalcontact/get", token=token, external_userid="wm0")
    assert [t["tag_id"] for t in got["follow_user"][0]["tags"]] == [water]
    groups = await call(client, "externalcontact/get_corp_tag_list", {}, token=token)
    assert {g["group_name"] for g in groups["tag_group"]} == {"客户等级", "兴趣"}


async def test_group_chat(client: TestClient, state: SandboxState) -> None:
    state.add_customer("wmG", "群友", ["sales01"], unionid="uG")
    state.add_group("wrChat1", "老客户群", "sales01", ["wmG", "ops01"], notice="欢迎")
    token = await wecom_token(client)
    listed = await call(client, "externalcontact/groupchat/list", {"limit": 10}, token=token)
    assert listed["group_chat_list"] == [{"chat_id": "wrChat1", "status": 0}]
    got = await call(client, "externalcontact/groupchat/get", {"chat_id": "wrChat1", "need_name": 1}, token=token)
    chat = got["group_chat"]
    assert chat["owner"] == "sales01" and chat["notice"] == "欢迎"
    by_id = {m["userid"]: m for m in chat["member_list"]}
    assert by_id["wmG"]["type"] == 2 and by_id["wmG"]["unionid"] == "uG" and by_id["wmG"]["name"] == "群友"
    assert by_id["ops01"]["type"] == 1 and by_id["ops01"]["invitor"] == {"userid": "sales01"}
    missing = await call(client, "externalcontact/groupchat/get", {"chat_id": "nope"}, token=token)
    assert missing["errcode"] == Errcode.INVALID_CHAT_ID


async def test_msg_template_monthly_cap(client: TestClient, state: SandboxState) -> None:
    state.msg_template_monthly_cap = 2
    state.add_customer("wmH", "客户H", ["sales01"])
    state.add_customer("wmStranger", "别人的客户", ["ops01"])
    token = await wecom_token(client)
    body = {"chat_type": "single", "sender": "sales01", "external_userid": ["wmH", "wmStranger"], "text": {"content": "新品到货"}}
    first = await call(client, "externalcontact/add_msg_template", body, token=token)
    assert first["errcode"] == 0 and first["msgid"] and first["fail_list"] == ["wmStranger"]
    await call(client, "externalcontact/add_msg_template", body, token=token)
    third = await call(client, "externalcontact/add_msg_template", body, token=token)
    assert third["fail_list"] == ["wmH", "wmStranger"]
    assert [t["external_userid"] for t in state.msg_templates] == [["wmH"], ["wmH"], []]


async def test_app_message_rules(client: TestClient, state: SandboxState) -> None:
    token = await wecom_token(client)
    body = {"touser": "ops01|ghost", "msgtype": "text", "agentid": int(SANDBOX_AGENT_ID), "text": {"content": "提醒"}}
    ok = await call(client, "message/send", body, token=token)
    assert ok["errcode"] == 0 and ok["invaliduser"] == "ghost" and ok["msgid"]
    wrong_agent = await call(client, "message/send", {**body, "agentid": 1}, token=token)
    assert wrong_agent["errcode"] == Errcode.INVALID_AGENT_ID
    nobody = await call(client, "message/send", {**body, "touser": "ghost"}, token=token)
    assert nobody["errcode"] == Errcode.ALL_RECIPIENTS_INVALID
    for _ in range(30):
        assert (await call(client, "message/send", {**body, "touser": "ops01"}, token=token))["errcode"] == 0
    # The 31st within a minute is accepted but silently not delivered, like the real one.
    assert len(state.app_messages_to("ops01")) == 30
    assert state.app_messages[-1]["dropped"] == ["ops01"]


async def test_oauth_code_single_use(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    token = await wecom_token(client)
    code = state.issue_oauth_code("sales01")
    first = await call(client, "auth/getuserinfo", token=token, code=code)
    assert first["errcode"] == 0 and first["userid"] == "sales01"
    assert (await call(client, "auth/getuserinfo", token=token, code=code))["errcode"] == Errcode.INVALID_OAUTH_CODE
    stale = state.issue_oauth_code("sales01")
    clock.advance(minutes=5, seconds=1)
    assert (await call(client, "auth/getuserinfo", token=token, code=stale))["errcode"] == Errcode.INVALID_OAUTH_CODE
    ticket = await call(client, "ticket/get", token=token, type="agent_config")
    assert ticket["ticket"] and ticket["expires_in"] == 7200


# ---- Official Account ------------------------------------------------------------------------------------
async def test_official_account(client: TestClient, state: SandboxState, clock: FrozenClock) -> None:
    async def mp_token() -> str:
        resp = await client.get(
            "/mp/cgi-bin/token", params={"grant_type": "client_credential", "appid": state.mp_app_id, "secret": state.mp_secret}
        )
        return str((await resp.json())["access_token"])

    token = await mp_token()
    state.add_follower("oF1", unionid="uF1")
    template = {"touser": "oF1", "template_id": "sandbox-order-notice", "data": {"content": {"value": "已发货"}}}
    sent = await call(client, "message/template/send", template, token=token, api="mp")
    assert sent["errcode"] == 0 and isinstance(sent["msgid"], int)
    assert (await call(client, "message/template/send", {**template, "touser": "oNobody"}, token=token, api="mp"))[
        "errcode"
    ] == Errcode.MP_INVALID_OPENID
    custom = {"touser": "oF1", "msgtype": "text", "text": {"content": "您好"}}
    assert (await call(client, "message/custom/send", custom, token=token, api="mp"))["errcode"] == 0
    clock.advance(hours=48)
    token = await mp_token()
    late = await call(client, "message/custom/send", custom, token=token, api="mp")
    assert late["errcode"] == Errcode.MP_OUT_OF_WINDOW
    state.mp_interaction("oF1")
    assert (await call(client, "message/custom/send", custom, token=token, api="mp"))["errcode"] == 0
    info = await call(client, "user/info", token=token, api="mp", openid="oF1")
    assert info["subscribe"] == 1 and info["unionid"] == "uF1"
    assert (await call(client, "user/info", token="forged", api="mp", openid="oF1"))["errcode"] == 40001
    assert [t["touser"] for t in state.templates_sent] == ["oF1"] and len(state.mp_custom_sent) == 2


# ---- fault injection ---------------------------------------------------------------------------------------
async def test_fault_injection(client: TestClient, state: SandboxState) -> None:
    token = await wecom_token(client)
    state.inject("user/simplelist", Errcode.RATE_LIMITED, times=2)
    codes = [(await call(client, "user/simplelist", token=token))["errcode"] for _ in range(3)]
    assert codes == [Errcode.RATE_LIMITED, Errcode.RATE_LIMITED, 0]
    resp = await client.post("/api/faults", json={"path": "/sandbox/wecom/cgi-bin/user/simplelist", "errcode": -1})
    assert resp.status == 200
    assert (await call(client, "user/simplelist", token=token))["errcode"] == -1
    await client.post("/api/faults", json={"path": "user/simplelist", "errcode": -1, "times": 5})
    assert (await client.delete("/api/faults")).status == 200
    assert (await call(client, "user/simplelist", token=token))["errcode"] == 0
    state.inject("user/simplelist", 0, delay=0.2)
    started = time.monotonic()
    assert (await call(client, "user/simplelist", token=token))["errcode"] == 0
    assert time.monotonic() - started >= 0.2
    bad = await client.post("/api/faults", json={"errcode": 1})
    assert bad.status == 400
    assert state.call_count("user/simplelist") == 6


# ---- the chat page's backend -------------------------------------------------------------------------------
async def test_customer_message_route_calls_the_hook(client: TestClient, state: SandboxState) -> None:
    notices: list[KfNotice] = []

    async def hook(notice: KfNotice) -> None:
        notices.append(notice)

    state.on_kf_message = hook
    resp = await client.post("/api/kf/customer-message", json={"external_userid": "wmSandboxAbc", "name": "小明", "text": "<b>要3箱水</b>"})
    data = await resp.json()
    assert resp.status == 200 and data["ok"] is True and data["delivered"] is True
    assert [n.msg["msgid"] for n in notices] == [data["msgid"]]
    assert notices[0].open_kfid == KF and notices[0].token
    assert state.customers["wmSandboxAbc"].name == "小明"
    conv = await (await client.get("/api/kf/conversation", params={"external_userid": "wmSandboxAbc"})).json()
    assert conv["messages"] == [{"origin": 3, "text": "<b>要3箱水</b>", "send_time": state.ts(), "msgid": data["msgid"]}]
    for bad in ({"external_userid": "bad id", "text": "x"}, {"external_userid": "wmX", "text": ""}, []):
        assert (await client.post("/api/kf/customer-message", json=bad)).status == 400
    assert (await client.get("/api/kf/conversation")).status == 400

    async def broken(notice: KfNotice) -> None:
        raise RuntimeError("product down")

    state.on_kf_message = broken
    resp = await client.post("/api/kf/customer-message", json={"external_userid": "wmSandboxAbc", "text": "在吗"})
    assert (await resp.json())["delivered"] is False  # still logged: the product's sync sweep will find it
    assert len(state.kf_conversation("wmSandboxAbc")) == 2


async def test_page_is_served_under_the_mount_point(state: SandboxState) -> None:
    outer = web.Application()
    outer.add_subapp("/sandbox/", create_emulator_app(state))
    async with TestClient(TestServer(outer)) as client:
        bare = await client.get("/sandbox", allow_redirects=False)
        assert bare.status == 302 and bare.headers["Location"] == "/sandbox/"
        page = await client.get("/sandbox/")
        html = await page.text()
        assert page.status == 200 and page.content_type == "text/html"
        for marker in (
            'id="customer-id"',
            'id="message-input"',
            'id="send-button"',
            'id="messages"',
            "api/kf/customer-message",
            "api/kf/conversation",
        ):
            assert marker in html
        assert "innerHTML" not in html and "http://" not in html and "https://" not in html  # no CDN
        static = await client.get("/sandbox/static/index.html")
        assert static.status == 200
        token = (
            await (
                await client.get("/sandbox/wecom/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})
            ).json()
        )["access_token"]
        assert token


# ---- the callback simulator ----------------------------------------------------------------------------------
V1 = ("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")


def test_simulator_signs_and_encrypts_as_wecom(clock: FrozenClock) -> None:
    from wechatpy.work.crypto import WeChatCrypto

    token, key, corp = V1
    sim = CallbackSimulator(token, key, corp, now=clock.now, agent_id="218")
    reference = WeChatCrypto(token, key, corp)
    q = sim.verify_query("1616140317555161061")
    assert q["timestamp"] == str(clock.timestamp())
    assert reference.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]) == "1616140317555161061"
    xml = simulator.text_message("zhangsan", "含 ]]> 的内容", 42, "218", 1409659589, corp_id=corp)
    query, body = sim.encrypt_post(xml, nonce="263014780")
    assert reference.decrypt_message(body, query["msg_signature"], query["timestamp"], query["nonce"]) == xml
    envelope = parse_xml(body)
    assert envelope["ToUserName"] == corp and envelope["AgentID"] == "218"
    fields = parse_xml(xml)
    assert fields["Content"] == "含 ]]> 的内容" and fields["MsgId"] == "42" and fields["AgentID"] == "218"


def test_simulator_xml_builders_normalise() -> None:
    from bots.gateway.domain import normalize_wecom

    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    cases = {
        simulator.change_external_contact(
            "add_external_contact", "sales01", "wmA", state="expo", welcome_code="WC1", create_time=1
        ): "change_external_contact.add_external_contact",
        simulator.change_external_contact(
            "del_external_contact", "sales01", "wmA", source="DELETE_BY_TRANSFER", create_time=1
        ): "change_external_contact.del_external_contact",
        simulator.change_external_chat(
            "update", "wrC", update_detail="add_member", join_scene=3, mem_change_list=["wmA", "wmB"], create_time=1
        ): "change_external_chat.update",
        simulator.change_external_tag("create", "etT", "tag", create_time=1): "change_external_tag.create",
        simulator.kf_msg_or_event("ENCtoken", KF, create_time=1): "kf_msg_or_event",
        simulator.event("enter_agent", from_user="sales01", create_time=1, EventKey="", AgentID=1000002): "event.enter_agent",
    }
    for xml, kind in cases.items():
        fields = parse_xml(xml)
        item = normalize_wecom(fields, xml, now)
        assert item.kind == kind, xml
    xmls = list(cases)
    chat = normalize_wecom(parse_xml(xmls[2]), xmls[2], now)
    assert chat.payload["MemChangeList"] == ["wmA", "wmB"] and chat.payload["MemChangeCnt"] == "2"
    contact = parse_xml(xmls[0])
    assert (contact["FromUserName"], contact["State"], contact["WelcomeCode"]) == ("sys", "expo", "WC1")
    assert "FromUserName" not in parse_xml(xmls[4])  # kf notices carry no sender


def test_mp_simulator_plain_and_safe_modes(clock: FrozenClock) -> None:
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.utils import check_signature

    key = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
    plain = MpSimulator("spamtest", "", "wxApp", now=clock.now)
    xml = plain.text_message("oUser", "你好", 7)
    query, body = plain.post(xml)
    check_signature("spamtest", query["signature"], query["timestamp"], query["nonce"])
    assert body == xml.encode() and query["openid"] == "oUser" and "encrypt_type" not in query
    safe = MpSimulator("spamtest", key, "wxApp", now=clock.now)
    query, body = safe.post(safe.subscribe_event("oUser"))
    assert query["encrypt_type"] == "aes" and query["openid"] == "oUser"
    check_signature("spamtest", query["signature"], query["timestamp"], query["nonce"])
    decrypted = WeChatCrypto("spamtest", key, "wxApp").decrypt_message(body, query["msg_signature"], query["timestamp"], query["nonce"])
    assert parse_xml(decrypted)["Event"] == "subscribe"
    assert plain.verify_query("echo123")["echostr"] == "echo123"


async def test_simulated_callbacks_pass_the_real_gateway(settings: Settings, rt: Runtime, clock: FrozenClock) -> None:
    import sqlalchemy as sa

    from bots.gateway.models import inbound_events
    from scrm.app.webapp import create_app

    sim = CallbackSimulator(
        settings.wecom_token.get(), settings.wecom_aes_key.get(), settings.wecom_corp_id, now=clock.now, agent_id=settings.wecom_agent_id
    )
    mp = MpSimulator(settings.mp_token.get(), settings.mp_aes_key.get(), settings.mp_app_id, now=clock.now)
    ts = clock.timestamp()
    async with TestServer(create_app(settings, runtime=rt)) as server, aiohttp.ClientSession() as session:
        url = str(server.make_url("/callback/wecom"))
        for _ in range(20):  # echostr base64 often has + / =: all must survive the query string
            assert await sim.verify(session, url, "1616140317555161061") == (200, "1616140317555161061")
        assert await sim.deliver(session, url, simulator.text_message("sales01", "你好", 99, create_time=ts)) == (200, "")
        xml = simulator.change_external_contact("add_external_contact", "sales01", "wmA", state="expo", welcome_code="WC", create_time=ts)
        assert await sim.deliver(session, url, xml) == (200, "")
        assert await sim.deliver(session, url, simulator.kf_msg_or_event("ENC1", KF, create_time=ts)) == (200, "")
        mp_url = str(server.make_url("/callback/mp"))
        assert await mp.deliver(session, mp_url, mp.text_message("oUser", "在吗", 5)) == (200, "success")
    async with rt.db.read() as conn:
        kinds = (await conn.execute(sa.select(inbound_events.c.kind).order_by(inbound_events.c.id))).scalars().all()
    assert kinds == ["message.text", "change_external_contact.add_external_contact", "kf_msg_or_event", "message.text"]


# ---- temporary media ------------------------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # a PNG's signature is what media/upload checks


async def upload(client: TestClient, content: bytes, *, token: str, api: str = "wecom", kind: str = "image", field: str = "media") -> Any:
    form = aiohttp.FormData()
    form.add_field(field, content, filename="poster.png", content_type="image/png")
    resp = await client.post(f"/{api}/cgi-bin/media/upload", params={"access_token": token, "type": kind}, data=form)
    assert resp.status == 200
    return await resp.json()


async def test_media_upload_keeps_the_picture_for_three_days_and_kf_sends_it(
    client: TestClient, state: SandboxState, clock: FrozenClock
) -> None:
    token = await wecom_token(client)
    up = await upload(client, PNG, token=token)
    assert up["errcode"] == 0 and up["type"] == "image" and up["created_at"] == str(state.ts())
    media_id = up["media_id"]
    assert state.media[media_id].content == PNG and state.media[media_id].content_type == "image/png"
    # what the upload refuses: not a picture, empty, an unknown type, no file, no token
    assert (await upload(client, b"GIF89a not ours", token=token))["errcode"] == Errcode.INVALID_FILE_TYPE
    assert (await upload(client, b"\x89PNG", token=token))["errcode"] == Errcode.INVALID_FILE_SIZE
    assert (await upload(client, PNG, token=token, kind="sticker"))["errcode"] == Errcode.INVALID_MEDIA_TYPE
    assert (await upload(client, PNG, token=token, field="file"))["errcode"] == Errcode.INVALID_PARAMETER
    assert (await upload(client, PNG, token="forged"))["errcode"] == Errcode.INVALID_TOKEN

    state.customer_kf_message("wmPic", "邀请好友")
    image = {"touser": "wmPic", "open_kfid": KF, "msgid": "pic1", "msgtype": "image", "image": {"media_id": media_id}}
    assert (await call(client, "kf/send_msg", image, token=token))["errcode"] == 0
    made_up = {**image, "msgid": "pic2", "image": {"media_id": "3NoSuchMedia"}}
    assert (await call(client, "kf/send_msg", made_up, token=token))["errcode"] == Errcode.INVALID_MEDIA_ID
    [shown] = [
        m
        for m in (await (await client.get("/api/kf/conversation", params={"external_userid": "wmPic"})).json())["messages"]
        if m["origin"] == 5
    ]
    assert shown["text"] == "[图片]" and shown["image"] == {"media_id": media_id, "url": f"api/media/{media_id}"}
    picture = await client.get(f"/{shown['image']['url']}")  # what the chat page shows
    assert picture.status == 200 and picture.content_type == "image/png" and await picture.read() == PNG
    assert [m.media_id for m in state.kf_images("wmPic")] == [media_id] and state.kf_replies("wmPic") == []
    assert (await (await client.get("/api/traffic")).json())["media"] == [
        {"media_id": media_id, "api": "wecom", "type": "image", "filename": "poster.png", "bytes": len(PNG)}
    ]

    clock.advance(days=3)  # temporary media live 3 days
    state.customer_kf_message("wmPic", "还在吗")
    token = await wecom_token(client)
    expired = await call(client, "kf/send_msg", {**image, "msgid": "pic3"}, token=token)
    assert expired["errcode"] == Errcode.INVALID_MEDIA_ID
    assert (await client.get(f"/api/media/{media_id}")).status == 404


async def test_official_account_media_is_its_own(client: TestClient, state: SandboxState) -> None:
    resp = await client.get(
        "/mp/cgi-bin/token", params={"grant_type": "client_credential", "appid": state.mp_app_id, "secret": state.mp_secret}
    )
    mp_token = str((await resp.json())["access_token"])
    up = await upload(client, PNG, token=mp_token, api="mp")
    assert up["errcode"] == 0 and up["created_at"] == state.ts()  # the Official Account answers a number
    state.add_follower("oPic")
    image = {"touser": "oPic", "msgtype": "image", "image": {"media_id": up["media_id"]}}
    assert (await call(client, "message/custom/send", image, token=mp_token, api="mp"))["errcode"] == 0
    assert state.mp_custom_sent[-1]["media_id"] == up["media_id"] and state.mp_custom_sent[-1]["msgtype"] == "image"
    # a WeCom media_id means nothing to the Official Account, and the other way round
    wecom = await upload(client, PNG, token=await wecom_token(client))
    wrong = await call(client, "message/custom/send", {**image, "image": {"media_id": wecom["media_id"]}}, token=mp_token, api="mp")
    assert wrong["errcode"] == Errcode.INVALID_MEDIA_ID
    state.customer_kf_message("wmPic2", "你好")
    kf = {"touser": "wmPic2", "open_kfid": KF, "msgid": "x1", "msgtype": "image", "image": {"media_id": up["media_id"]}}
    assert (await call(client, "kf/send_msg", kf))["errcode"] == Errcode.INVALID_MEDIA_ID
