"""The WeCom sidebar over HTTP against the sandbox emulator (real app on a real port, SQLite and PostgreSQL):
OAuth sign-in, sessions, the sandbox ``as=`` helper, who may see what, the JS-SDK signature, the customer 360,
and the salesperson's actions (tags, notes, orders, coupons, the referral poster) with their CSRF check."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from bots.sandbox.keys import SANDBOX_STATE
from bots.sandbox.state import SandboxState
from config import Settings
from fulfillment.catalog.models import products
from fulfillment.catalog.services import seed_sample_if_empty
from fulfillment.inventory import services as inventory
from fulfillment.orders.models import orders
from fulfillment.orders.services import cancel_order, create_order
from fulfillment.orders.shipments import create_shipment
from scrm.app.runtime import build_runtime
from scrm.app.webapp import create_app
from scrm.campaigns.referral import services as referral
from scrm.campaigns.referral.domain import STATE_PREFIX
from scrm.console import auth as console_auth
from scrm.core.clock import FrozenClock
from scrm.core.http.signing import Signer
from scrm.core.outbox import outbox
from scrm.core.runtime import Runtime
from scrm.crm.channels.models import channel_codes
from scrm.crm.customers.models import FollowStatus, customer_notes
from scrm.crm.customers.services import add_note, ensure_customer
from scrm.crm.groups.models import group_members, groups
from scrm.crm.staff.services import end_follow, start_follow, upsert_salesperson
from scrm.crm.tags.models import TagSource, customer_tags
from scrm.crm.tags.services import apply_tag, ensure_tag
from scrm.crm.timeline.models import timeline
from scrm.customer360.queries import tag_reason
from scrm.sidebar import auth
from tests.campaigns.test_referral import template
from tests.conftest import SandboxHarness, make_settings
from tests.helpers import free_port


@dataclass
class Sidebar:
    rt: Runtime
    client: TestClient
    state: SandboxState
    settings: Settings

    @property
    def base(self) -> str:
        return self.settings.base_url


@pytest.fixture
async def sb(database_url: str, clock: FrozenClock) -> AsyncIterator[Sidebar]:
    port = free_port()
    settings = make_settings(database_url=database_url, port=port)
    runtime = await build_runtime(settings, clock)
    app = create_app(settings, runtime=runtime)  # mounts /sidebar/
    async with TestClient(TestServer(app, port=port)) as client:
        async with runtime.db.write() as conn:
            await seed_sample_if_empty(conn, runtime.db.dialect, runtime.clock.now())
        state = app[SANDBOX_STATE]
        state.add_member("sales02", "张三")
        state.add_member("sales03", "赵六")
        yield Sidebar(runtime, client, state, settings)
    await runtime.close()


async def seed_follow(rt: Runtime, userid: str, external_userid: str, *, name: str = "李四", **follow: Any) -> int:
    now = rt.clock.now()
    async with rt.db.write() as conn:
        cid = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=external_userid, now=now, name=name)
        await start_follow(
            conn,
            rt.db.dialect,
            customer_id=cid,
            userid=userid,
            external_userid=external_userid,
            status=follow.pop("status", FollowStatus.ACTIVE),
            at=now,
            now=now,
            **follow,
        )
    return cid


async def seed_people(rt: Runtime) -> None:
    async with rt.db.write() as conn:
        for userid, name in (("sales01", "王销售"), ("sales02", "张三"), ("sales03", "赵六")):
            await upsert_salesperson(conn, rt.db.dialect, userid, rt.clock.now(), name=name, active=True)


async def login(sb: Sidebar, userid: str = "sales01", query: str = "") -> str:
    """Sign in through the sandbox helper; returns the session's CSRF token (as the page reads it)."""
    resp = await sb.client.get(f"/sidebar/?as={userid}{query}", allow_redirects=False)
    assert resp.status == 302, await resp.text()
    me = await sb.client.get("/sidebar/api/me")
    assert me.status == 200
    body = await me.json()
    assert body["userid"] == userid
    return str(body["csrf_token"])


async def post(sb: Sidebar, path: str, body: dict[str, Any], csrf: str | None) -> tuple[int, Any]:
    headers = {auth.CSRF_HEADER: csrf} if csrf is not None else {}
    resp = await sb.client.post(path, json=body, headers=headers)
    return resp.status, await resp.json()


def session_cookie(sb: Sidebar) -> str:
    return next(c.value for c in sb.client.session.cookie_jar if c.key == auth.SESSION_COOKIE)


async def with_cookie(sb: Sidebar, value: str, path: str = "/sidebar/api/me") -> int:
    sb.client.session.cookie_jar.clear()
    resp = await sb.client.get(path, headers={"Cookie": f"{auth.SESSION_COOKIE}={value}"}, allow_redirects=False)
    return resp.status


async def count(rt: Runtime, q: Any) -> int:
    async with rt.db.read() as conn:
        return int((await conn.execute(q)).scalar_one())


# ---- sign-in ------------------------------------------------------------------------------------------------
async def test_oauth_flow_through_the_emulator(sb: Sidebar) -> None:
    await seed_people(sb.rt)
    resp = await sb.client.get("/sidebar/?customer=wmOauth", allow_redirects=False)
    assert resp.status == 302
    location = resp.headers["Location"]
    callback = quote(f"{sb.base}/sidebar/oauth", safe="")
    prefix = f"{sb.base}/sandbox/connect/oauth2/authorize?appid={sb.settings.wecom_corp_id}&redirect_uri={callback}"
    assert location.startswith(prefix + "&response_type=code&scope=snsapi_base&state=")
    assert location.endswith(f"&agentid={sb.settings.wecom_agent_id}#wechat_redirect")
    state = URL(location.split("#")[0]).query["state"]
    assert state.isalnum() and len(state) <= 128  # WeCom's rule for state
    assert "httponly" in resp.headers["Set-Cookie"].lower()

    authorize = URL(location.split("#")[0]).path_qs
    chooser = await sb.client.get(authorize)
    assert chooser.status == 200 and "sales01" in await chooser.text()
    back = await sb.client.get(authorize + "&userid=sales01", allow_redirects=False)
    assert back.status == 302
    to_us = URL(back.headers["Location"])
    assert str(to_us).startswith(f"{sb.base}/sidebar/oauth?code=")
    done = await sb.client.get(to_us.path_qs, allow_redirects=False)
    assert done.status == 302 and done.headers["Location"] == "/sidebar/?customer=wmOauth"
    cookie = done.cookies[auth.SESSION_COOKIE]
    assert cookie["httponly"] and cookie["path"] == "/sidebar" and cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == 8 * 3600
    me = await (await sb.client.get("/sidebar/api/me")).json()
    assert me["userid"] == "sales01" and me["name"] == "王销售" and me["sandbox"] is True
    page = await sb.client.get("/sidebar/?customer=wmOauth")
    assert page.status == 200 and 'id="customer-name"' in await page.text()

    # The code is single use: replayed with a fresh state of this browser, WeCom refuses it.
    sb.client.session.cookie_jar.clear()
    fresh = await sb.client.get("/sidebar/", allow_redirects=False)
    fresh_state = URL(fresh.headers["Location"].split("#")[0]).query["state"]
    replay = await sb.client.get("/sidebar/oauth", params={"code": to_us.query["code"], "state": fresh_state})
    assert replay.status == 401 and "登录码已失效" in await replay.text()


async def test_oauth_state_must_be_ours_fresh_and_from_this_browser(sb: Sidebar, clock: FrozenClock) -> None:
    async def begin() -> str:
        resp = await sb.client.get("/sidebar/", allow_redirects=False)
        return URL(resp.headers["Location"].split("#")[0]).query["state"]

    state = await begin()
    code = sb.state.issue_oauth_code("sales01")
    tampered = state[:-1] + ("a" if state[-1] != "a" else "b")
    assert (await sb.client.get("/sidebar/oauth", params={"code": code, "state": tampered})).status == 400
    assert (await sb.client.get("/sidebar/oauth", params={"code": code, "state": "x" * 129})).status == 400
    sb.client.session.cookie_jar.clear()  # a link started in another browser (login CSRF)
    assert (await sb.client.get("/sidebar/oauth", params={"code": code, "state": state})).status == 400
    state = await begin()
    clock.advance(minutes=11)
    assert (await sb.client.get("/sidebar/oauth", params={"code": code, "state": state})).status == 400
    state = await begin()
    assert (await sb.client.get("/sidebar/oauth", params={"state": state})).status == 403
    assert (await sb.client.get("/sidebar/api/me")).status == 401  # none of these signed anyone in


async def test_non_member_and_deactivated_member_get_403(sb: Sidebar) -> None:
    resp = await sb.client.get("/sidebar/?as=stranger", allow_redirects=False)
    assert resp.status == 403 and "仅限本企业成员" in await resp.text()
    assert auth.SESSION_COOKIE not in resp.cookies
    async with sb.rt.db.write() as conn:
        await upsert_salesperson(conn, sb.rt.db.dialect, "sales02", sb.rt.clock.now(), active=False)
    resp = await sb.client.get("/sidebar/?as=sales02", allow_redirects=False)
    assert resp.status == 403 and "已停用" in await resp.text()


async def test_forged_tampered_expired_and_console_cookies_are_401(sb: Sidebar, clock: FrozenClock) -> None:
    await login(sb)
    good = session_cookie(sb)
    assert await with_cookie(sb, good) == 200
    body, _, sig = good.partition(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    assert await with_cookie(sb, f"{flipped}.{sig}") == 401
    assert await with_cookie(sb, "garbage") == 401
    forged = Signer(sb.settings.session_secret.get(), "session").sign({"sid": "x", "uid": "sales01", "iat": 0, "exp": 2**40})
    assert await with_cookie(sb, forged) == 401  # signed, but for the console's purpose
    _, console_cookie = console_auth.issue_session(sb.settings, console_auth.Principal("admin", "admin"), clock.now())
    assert await with_cookie(sb, console_cookie) == 401
    # A bad cookie on the page itself sends the browser to sign in again.
    assert await with_cookie(sb, "garbage", "/sidebar/") == 302
    clock.advance(hours=8, seconds=1)
    assert await with_cookie(sb, good) == 401
    resp = await sb.client.get("/sidebar/api/customers/wmX", headers={"Cookie": f"{auth.SESSION_COOKIE}={good}"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"


async def test_as_helper_keeps_the_chat_and_drops_itself(sb: Sidebar) -> None:
    resp = await sb.client.get("/sidebar/?as=sales01&customer=wm1", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/sidebar/?customer=wm1"
    resp = await sb.client.get("/sidebar/?as=bad%20id", allow_redirects=False)
    assert resp.status == 400


async def test_as_helper_and_stand_in_sdk_exist_only_in_sandbox(database_url: str, clock: FrozenClock) -> None:
    settings = make_settings(
        database_url=database_url,
        sandbox="0",
        wecom_corp_id="wwprodcorp",
        wecom_agent_id="1000009",
        wecom_secret="prod-secret",
        wecom_token="prodToken",
        wecom_aes_key="a" * 43,
        admin_token="prod-admin-token",
    )
    rt = await build_runtime(settings, clock)
    try:
        app = create_app(settings, runtime=rt)
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/sidebar/?as=sales01", allow_redirects=False)).status == 404
            assert (await client.get("/sidebar/static/jwxwork-sandbox.js")).status == 404
            assert (await client.get("/sandbox/connect/oauth2/authorize")).status == 404
            resp = await client.get("/sidebar/", allow_redirects=False)
            location = resp.headers["Location"]
            assert location.startswith(
                "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wwprodcorp&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fsidebar%2Foauth"
                "&response_type=code&scope=snsapi_base&state="
            )
            assert location.endswith("&agentid=1000009#wechat_redirect")
            _, value = auth.issue_session(settings, "sales01", clock.now())
            page = await client.get("/sidebar/", headers={"Cookie": f"{auth.SESSION_COOKIE}={value}"})
            text = await page.text()
            assert (
                "https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js" in text
                and 'src="/sidebar/static/jwxwork-sandbox.js"' not in text
            )
            assert "https://open.work.weixin.qq.com" in page.headers["Content-Security-Policy"]
    finally:
        await rt.close()


def test_state_round_trip_and_return_paths(settings: Settings, clock: FrozenClock) -> None:
    state, nonce = auth.make_state(settings, "/sidebar/?customer=wm1", clock.now())
    assert state.isalnum() and len(state) <= 128
    assert auth.open_state(settings, state, clock.now()) == (nonce, "/sidebar/?customer=wm1")
    long_state, nonce = auth.make_state(settings, "/sidebar/?customer=" + "x" * 200, clock.now())
    assert len(long_state) <= 128 and auth.open_state(settings, long_state, clock.now()) == (nonce, "/sidebar/")
    assert auth.open_state(settings.replace(session_secret=settings.session_secret.__class__("other")), state, clock.now()) is None
    assert auth.open_state(settings, state, clock.now() + dt.timedelta(minutes=11)) is None
    for bad in ("https://evil.example/", "//evil.example/sidebar/", "/sidebar//evil.example", "/console/", "/sidebar/\\x", None):
        assert auth.safe_return_path(bad) == "/sidebar/"
    assert auth.safe_return_path("/sidebar/?as=sales01&customer=wm1&code=1") == "/sidebar/?customer=wm1"


# ---- JS-SDK signature ----------------------------------------------------------------------------------------
def test_jsapi_signature_check_value() -> None:
    ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    expected = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    assert auth.jsapi_signature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value") == expected
    assert auth.jsapi_signature(ticket, "Wm3WZYTPz0wzccnW", "1414587457", "http://mp.weixin.qq.com?params=value#top") == expected


async def test_jsapi_signature_endpoint_caches_the_ticket(sb: Sidebar, clock: FrozenClock) -> None:
    assert (await sb.client.get("/sidebar/api/jsapi-signature", params={"url": "http://x/"})).status == 401
    await login(sb)
    page_url = f"{sb.base}/sidebar/?customer=wm1"
    resp = await sb.client.get("/sidebar/api/jsapi-signature", params={"url": page_url + "#section"})
    assert resp.status == 200
    sig = await resp.json()
    assert set(sig) == {"corpid", "agentid", "timestamp", "nonceStr", "signature"}
    assert sig["corpid"] == sb.settings.wecom_corp_id and sig["agentid"] == sb.settings.wecom_agent_id
    assert sig["timestamp"] == int(clock.now().timestamp())
    ticket = sb.state.js_tickets["agent_config"]
    plain = f"jsapi_ticket={ticket}&noncestr={sig['nonceStr']}&timestamp={sig['timestamp']}&url={page_url}"
    assert sig["signature"] == hashlib.sha1(plain.encode()).hexdigest()
    # What the WeCom client checks on wx.agentConfig (the emulator stands in for it).
    check = {**sig, "url": page_url}
    assert (await (await sb.client.post("/sandbox/api/jssdk/agent-config", json=check)).json())["ok"] is True
    check["signature"] = "0" * 40
    assert (await (await sb.client.post("/sandbox/api/jssdk/agent-config", json=check)).json())["ok"] is False

    await sb.client.get("/sidebar/api/jsapi-signature", params={"url": page_url})
    assert sb.state.call_count("ticket/get") == 1  # cached
    clock.advance(hours=1, minutes=56)
    await sb.client.get("/sidebar/api/jsapi-signature", params={"url": page_url})
    assert sb.state.call_count("ticket/get") == 2  # refreshed five minutes before it expires
    assert (await sb.client.get("/sidebar/api/jsapi-signature", params={"url": "javascript:x"})).status == 400


# ---- who sees what -------------------------------------------------------------------------------------------
async def test_another_salespersons_customer_is_403_without_detail(sb: Sidebar) -> None:
    await seed_people(sb.rt)
    await seed_follow(sb.rt, "sales01", "wmMine")
    theirs = await seed_follow(sb.rt, "sales02", "wmTheirs", name="秘密客户")
    ended = await seed_follow(sb.rt, "sales01", "wmEnded")
    async with sb.rt.db.write() as conn:
        now = sb.rt.clock.now()
        await end_follow(
            conn, sb.rt.db.dialect, customer_id=ended, userid="sales01", external_userid="wmEnded", ended_by="customer", at=now, now=now
        )
        tag_id = await ensure_tag(conn, sb.rt.db.dialect, "重要客户", now)
    csrf = await login(sb)
    assert (await sb.client.get("/sidebar/api/customers/wmMine")).status == 200
    answers = []
    for ext in ("wmTheirs", "wmEnded", "wmNobody", "bad%20id"):
        resp = await sb.client.get(f"/sidebar/api/customers/{ext}")
        assert resp.status == 403
        answers.append(await resp.json())
    assert all(a == answers[0] for a in answers) and "秘密" not in str(answers)
    for path, body in (
        ("tags", {"tag_id": tag_id, "op": "add"}),
        ("notes", {"body": "偷看"}),
        ("orders", {"items": [{"sku": "WATER-550", "qty": 1}]}),
    ):
        status, _ = await post(sb, f"/sidebar/api/customers/wmTheirs/{path}", body, csrf)
        assert status == 403
    assert await count(sb.rt, sa.select(sa.func.count()).select_from(customer_tags)) == 0
    assert await count(sb.rt, sa.select(sa.func.count()).select_from(customer_notes)) == 0
    assert await count(sb.rt, sa.select(sa.func.count()).select_from(orders).where(orders.c.customer_id == theirs)) == 0
    await login(sb, "sales02")
    assert (await sb.client.get("/sidebar/api/customers/wmTheirs")).status == 200


async def test_half_follow_is_visible(sb: Sidebar) -> None:
    await seed_follow(sb.rt, "sales01", "wmHalf", status=FollowStatus.HALF)
    await login(sb)
    resp = await sb.client.get("/sidebar/api/customers/wmHalf")
    assert resp.status == 200 and (await resp.json())["customer"]["follow_status"] == "half"


async def test_groups_owner_and_members_only(sb: Sidebar) -> None:
    await seed_people(sb.rt)
    mine = await seed_follow(sb.rt, "sales01", "wmInGroup", name="群里的客户")
    now = sb.rt.clock.now()
    async with sb.rt.db.write() as conn:
        await conn.execute(
            groups.insert().values(
                chat_id="wrChat1", name="老客户群", owner_userid="sales01", member_count=4, notice="周五团购", updated_at=now
            )
        )
        rows = [
            ("sales01", 1, None, "王销售", None),
            ("sales02", 1, None, "张三", None),
            ("wmInGroup", 2, mine, "群里的客户", None),
            ("wmOther", 2, None, "别人的客户", None),
            ("sales03", 1, None, "赵六", now),  # left the group
        ]
        await conn.execute(
            group_members.insert(),
            [
                {
                    "chat_id": "wrChat1",
                    "member_id": member_id,
                    "member_type": member_type,
                    "customer_id": customer_id,
                    "name": name,
                    "joined_at": now - dt.timedelta(days=1),
                    "left_at": left_at,
                    "active": left_at is None,
                }
                for member_id, member_type, customer_id, name, left_at in rows
            ],
        )
    await login(sb)
    resp = await sb.client.get("/sidebar/api/groups/wrChat1")
    assert resp.status == 200
    data = await resp.json()
    assert data["group"]["name"] == "老客户群" and data["group"]["owner_name"] == "王销售"
    members = {m["name"]: m for m in data["members"]}
    assert set(members) == {"王销售", "张三", "群里的客户", "别人的客户"}
    assert members["群里的客户"]["followed_by_me"] and members["群里的客户"]["external_userid"] == "wmInGroup"
    assert members["别人的客户"]["is_customer"] and members["别人的客户"]["external_userid"] is None
    assert any(a["name"] == "赵六" and a["event"] == "leave" for a in data["activity"]["recent"])
    c360 = await (await sb.client.get("/sidebar/api/customers/wmInGroup")).json()
    assert c360["groups"] == [{"chat_id": "wrChat1", "name": "老客户群"}]
    await login(sb, "sales02")  # a member, not the owner
    assert (await sb.client.get("/sidebar/api/groups/wrChat1")).status == 200
    await login(sb, "sales03")  # left the group
    assert (await sb.client.get("/sidebar/api/groups/wrChat1")).status == 403
    assert (await sb.client.get("/sidebar/api/groups/wrNoSuch")).status == 403


# ---- the customer 360 ----------------------------------------------------------------------------------------
def test_tag_reasons_in_chinese() -> None:
    people, channels = {"sales02": "张三"}, {"expo": "展会"}
    assert tag_reason(TagSource.CHANNEL, {"channel": "expo"}, people, channels) == "渠道码 展会"
    rule = {"rule": "意向-高", "words": ["报价"], "text": "麻烦发我一份报价单", "message_id": "m1"}
    assert tag_reason(TagSource.RULE, rule, people, channels) == "规则 意向-高：消息“麻烦发我一份报价单”中的“报价”"
    assert (
        tag_reason(TagSource.RULE, {"rule": "意向-高", "words": ["报价", "价格"]}, people, channels) == "规则 意向-高：命中“报价”、“价格”"
    )
    assert tag_reason(TagSource.MANUAL, {"by": "sales02"}, people, channels) == "销售 张三 手动添加"
    assert tag_reason(TagSource.MANUAL, {"by": "console:admin"}, people, channels) == "控制台 admin 手动添加"
    assert tag_reason(TagSource.WECOM, {"followers": ["sales01"]}, people, channels) == "企业微信同步"
    long = tag_reason(TagSource.RULE, {"rule": "r", "words": ["a"], "text": "字" * 50}, people, channels)
    assert "…" in long and len(long) < 50


async def test_customer_360(sb: Sidebar) -> None:
    rt = sb.rt
    await seed_people(rt)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(
            channel_codes.insert().values(
                name="展会", state="expo2026", userids=["sales01"], tag_ids=[], created_at=now, updated_at=now, welcome_text=""
            )
        )
    cid = await seed_follow(rt, "sales01", "wm360", name="李四", state="expo2026", remark="李总", add_way=1)
    async with rt.db.write() as conn:
        d = rt.db.dialect
        reasons = [
            ("展会客户", TagSource.CHANNEL, {"channel": "expo2026"}),
            ("意向-高", TagSource.RULE, {"rule": "意向-高", "words": ["报价"], "text": "请发一下报价单", "message_id": "m1"}),
            ("老客户", TagSource.MANUAL, {"by": "sales02"}),
            ("企微标签", TagSource.WECOM, {"followers": ["sales01"]}),
        ]
        for name, source, evidence in reasons:
            tag_id = await ensure_tag(conn, d, name, now)
            await apply_tag(conn, d, customer_id=cid, tag_id=tag_id, source=source, evidence=evidence, now=now)
    shipped = await create_order(rt, customer_id=cid, items=[("WATER-550", 2)], source="chat", confirm=True)
    await create_shipment(rt, shipped.id, carrier="顺丰", tracking_no="SF123456")
    confirmed = await create_order(rt, customer_id=cid, items=[("COLA-330", 1), ("RICE-5KG", 1)], source="api", confirm=True)
    cancelled = await create_order(rt, customer_id=cid, items=[("OIL-5L", 1)], source="api", confirm=True)
    await cancel_order(rt, cancelled.id)
    await add_note(rt, cid, "sales01", "喜欢周末送货")

    await login(sb)
    resp = await sb.client.get("/sidebar/api/customers/wm360")
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    data = await resp.json()
    c = data["customer"]
    assert (c["name"], c["remark"], c["channel"], c["follow_status"], c["add_way_zh"]) == ("李四", "李总", "展会", "active", "扫描二维码")
    assert data["identities"] == {"external_userid": ["wm360"]}
    why = {t["name"]: t["why"] for t in data["tags"]}
    assert why == {
        "展会客户": "渠道码 展会",
        "意向-高": "规则 意向-高：消息“请发一下报价单”中的“报价”",
        "老客户": "销售 张三 手动添加",
        "企微标签": "企业微信同步",
    }
    assert data["segment"] is None and data["rfm"] is None  # not computed yet for a brand-new customer
    assert data["balance_due_fen"] == 0 and data["overdue_fen"] == 0  # nothing invoiced yet
    assert data["open_orders_fen"] == shipped.total_fen + confirmed.total_fen
    by_number = {o["number"]: o for o in data["orders"]}
    assert by_number[shipped.number]["status_zh"] == "已发货"
    assert by_number[shipped.number]["tracking_numbers"] == ["顺丰 SF123456"]
    assert by_number[confirmed.number]["status_zh"] == "已确认，备货中"
    assert [ln["sku"] for ln in by_number[confirmed.number]["lines"]] == ["COLA-330", "RICE-5KG"]
    assert by_number[cancelled.number]["status_zh"] == "已取消"
    assert data["notes"][0]["body"] == "喜欢周末送货" and data["notes"][0]["author_name"] == "王销售"
    assert 0 < len(data["timeline"]) <= 30 and {"tag", "note"} <= {e["kind"] for e in data["timeline"]}


# ---- actions -------------------------------------------------------------------------------------------------
async def test_add_and_remove_tag(sb: Sidebar) -> None:
    await seed_people(sb.rt)
    cid = await seed_follow(sb.rt, "sales01", "wmTag")
    async with sb.rt.db.write() as conn:
        tag_id = await ensure_tag(conn, sb.rt.db.dialect, "重要客户", sb.rt.clock.now(), group="客户等级")
    csrf = await login(sb)
    catalogue = await (await sb.client.get("/sidebar/api/tags")).json()
    assert {"tag_id": tag_id, "name": "重要客户", "group": "客户等级"} in catalogue["tags"]

    def changes() -> Any:
        return sa.select(sa.func.count()).select_from(outbox).where(outbox.c.topic == "customer_tag.changed")

    status, body = await post(sb, "/sidebar/api/customers/wmTag/tags", {"tag_id": tag_id, "op": "add"}, csrf)
    assert status == 200 and body["changed"] is True
    assert body["tags"][0]["why"] == "销售 王销售 手动添加"
    async with sb.rt.db.read() as conn:
        row = (await conn.execute(sa.select(customer_tags).where(customer_tags.c.customer_id == cid))).one()
    assert (row.tag_id, row.source, row.evidence) == (tag_id, "manual", {"by": "sales01"})
    assert await count(sb.rt, changes()) == 1
    status, body = await post(sb, "/sidebar/api/customers/wmTag/tags", {"tag_id": tag_id, "op": "add"}, csrf)
    assert status == 200 and body["changed"] is False and await count(sb.rt, changes()) == 1
    status, body = await post(sb, "/sidebar/api/customers/wmTag/tags", {"tag_id": tag_id, "op": "remove"}, csrf)
    assert status == 200 and body["changed"] is True and body["tags"] == []
    assert await count(sb.rt, changes()) == 2
    assert await count(sb.rt, sa.select(sa.func.count()).select_from(customer_tags)) == 0
    status, body = await post(sb, "/sidebar/api/customers/wmTag/tags", {"tag_id": 99999, "op": "add"}, csrf)
    assert status == 404 and "没有这个标签" in body["error"]["message"]
    status, _ = await post(sb, "/sidebar/api/customers/wmTag/tags", {"tag_id": tag_id, "op": "toggle"}, csrf)
    assert status == 400


async def test_add_note(sb: Sidebar) -> None:
    cid = await seed_follow(sb.rt, "sales01", "wmNote")
    csrf = await login(sb)
    status, body = await post(sb, "/sidebar/api/customers/wmNote/notes", {"body": "  下周回访 <b>重要</b> "}, csrf)
    assert status == 201 and body["note"]["body"] == "下周回访 <b>重要</b>"
    async with sb.rt.db.read() as conn:
        note = (await conn.execute(sa.select(customer_notes))).one()
        kinds = [r.kind for r in await conn.execute(sa.select(timeline.c.kind).where(timeline.c.customer_id == cid))]
    assert (note.customer_id, note.author) == (cid, "sales01") and "note" in kinds
    status, body = await post(sb, "/sidebar/api/customers/wmNote/notes", {"body": "   "}, csrf)
    assert status == 400
    status, _ = await post(sb, "/sidebar/api/customers/wmNote/notes", {"body": "长" * 2001}, csrf)
    assert status == 400


async def test_place_order_confirms_and_allocates(sb: Sidebar) -> None:
    cid = await seed_follow(sb.rt, "sales01", "wmOrder")
    csrf = await login(sb)
    listing = await (await sb.client.get("/sidebar/api/products")).json()
    water = next(p for p in listing["products"] if p["sku"] == "WATER-550")
    assert water["available"] == 120 and water["price_fen"] == 3600

    body = {"items": [{"sku": "WATER-550", "qty": 3}], "request_id": "req-0001-abcdef"}
    status, answer = await post(sb, "/sidebar/api/customers/wmOrder/orders", body, csrf)
    assert status == 201, answer
    order = answer["order"]
    assert order["status"] == "confirmed" and order["status_zh"] == "已确认，备货中" and order["total_fen"] == 3 * 3600
    async with sb.rt.db.read() as conn:
        row = (await conn.execute(sa.select(orders).where(orders.c.number == order["number"]))).one()
        pid = (await conn.execute(sa.select(products.c.id).where(products.c.sku == "WATER-550"))).scalar_one()
        level = await inventory.level(conn, sb.rt.db.dialect, pid)
    assert (row.customer_id, row.source, row.salesperson_userid) == (cid, "sidebar", "sales01")
    assert level.allocated == 3
    # The same request again (a double tap, a retry) is the same order.
    status, again = await post(sb, "/sidebar/api/customers/wmOrder/orders", body, csrf)
    assert status == 201 and again["order"]["number"] == order["number"]
    async with sb.rt.db.read() as conn:
        assert (await inventory.level(conn, sb.rt.db.dialect, pid)).allocated == 3

    status, err = await post(sb, "/sidebar/api/customers/wmOrder/orders", {"items": [{"sku": "NOPE", "qty": 1}]}, csrf)
    assert status == 404 and "没有这个商品" in err["error"]["message"]
    status, err = await post(sb, "/sidebar/api/customers/wmOrder/orders", {"sku": "WATER-550", "qty": 0}, csrf)
    assert status == 400 and "qty" in err["error"]["message"]
    status, _ = await post(sb, "/sidebar/api/customers/wmOrder/orders", {"items": []}, csrf)
    assert status == 400
    status, _ = await post(sb, "/sidebar/api/customers/wmOrder/orders", {**body, "request_id": "x"}, csrf)
    assert status == 400
    # Another salesperson re-using the request id gets their own order, never this one.
    await seed_follow(sb.rt, "sales02", "wmOther")
    csrf2 = await login(sb, "sales02")
    status, theirs = await post(sb, "/sidebar/api/customers/wmOther/orders", body, csrf2)
    assert status == 201 and theirs["order"]["number"] != order["number"]


async def test_csrf_is_required_on_every_action(sb: Sidebar) -> None:
    await seed_follow(sb.rt, "sales01", "wmCsrf")
    async with sb.rt.db.write() as conn:
        tag_id = await ensure_tag(conn, sb.rt.db.dialect, "重要客户", sb.rt.clock.now())
    other_csrf = await login(sb, "sales02")
    csrf = await login(sb)
    assert other_csrf != csrf
    for path, body in (
        ("tags", {"tag_id": tag_id, "op": "add"}),
        ("notes", {"body": "x"}),
        ("orders", {"items": [{"sku": "WATER-550", "qty": 1}]}),
    ):
        for token in (None, "", "0" * 64, other_csrf):
            status, err = await post(sb, f"/sidebar/api/customers/wmCsrf/{path}", body, token)
            assert status == 403 and err["error"]["code"] == "forbidden"
    assert await count(sb.rt, sa.select(sa.func.count()).select_from(customer_tags)) == 0
    assert await count(sb.rt, sa.select(sa.func.count()).select_from(customer_notes)) == 0
    assert await count(sb.rt, sa.select(sa.func.count()).select_from(orders)) == 0


async def test_page_and_static_files(sb: Sidebar) -> None:
    await login(sb)
    page = await sb.client.get("/sidebar/?customer=wm1")
    text = await page.text()
    assert page.status == 200 and "/sidebar/static/jwxwork-sandbox.js" in text and "res.wx.qq.com" not in text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    for ident in ("customer-name", "tag-list", "tag-select", "add-tag-button", "order-list", "timeline", "note-input"):
        assert f'id="{ident}"' in text
    for name in ("sidebar.js", "sidebar.css", "jwxwork-sandbox.js"):
        assert (await sb.client.get(f"/sidebar/static/{name}")).status == 200
    assert (await sb.client.get("/sidebar/static/..%2Fweb.py")).status == 404
    assert (await sb.client.get("/sidebar/static/sidebar.html")).status == 404
    home = await sb.client.get("/sidebar", allow_redirects=False)
    assert home.status == 302 and home.headers["Location"] == "/sidebar/"


async def test_api_needs_a_session(sb: Sidebar) -> None:
    for path in ("/sidebar/api/me", "/sidebar/api/tags", "/sidebar/api/products", "/sidebar/api/customers/wm1", "/sidebar/api/groups/wr1"):
        resp = await sb.client.get(path)
        assert resp.status == 401, path
    resp = await sb.client.post("/sidebar/api/customers/wm1/notes", json={"body": "x"})
    assert resp.status == 401


async def test_send_a_coupon_from_the_sidebar(sb: Sidebar) -> None:
    from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms
    from scrm.campaigns.coupons.services import coupons_of_customer, create_template

    cid = await seed_follow(sb.rt, "sales01", "wmCoupon")
    await seed_follow(sb.rt, "sales02", "wmNotMine")
    rule = CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000)
    tpl = await create_template(sb.rt, TemplateTerms(name="满100减10", rule=rule, budget_count=5, per_customer_limit=1))
    csrf = await login(sb)
    listing = await (await sb.client.get("/sidebar/api/coupon-templates")).json()
    assert [t["id"] for t in listing["templates"]] == [tpl.id] and "满100减10" in listing["templates"][0]["label"]
    body = {"template_id": tpl.id, "request_id": "coupon-req-0001"}
    status, answer = await post(sb, "/sidebar/api/customers/wmCoupon/coupons", body, csrf)
    assert status == 201, answer
    status, again = await post(sb, "/sidebar/api/customers/wmCoupon/coupons", body, csrf)
    assert status == 201 and again["coupon"]["code"] == answer["coupon"]["code"]  # a retry is the same coupon
    assert len(await coupons_of_customer(sb.rt, cid)) == 1
    status, _ = await post(sb, "/sidebar/api/customers/wmCoupon/coupons", {**body, "request_id": "coupon-req-0002"}, csrf)
    assert status == 409  # per-customer limit of 1
    status, _ = await post(sb, "/sidebar/api/customers/wmNotMine/coupons", body, csrf)
    assert status == 403  # not this salesperson's customer


# ---- 发送邀请海报: the customer's own referral poster for the page to send into the chat ----------------------------
async def running_campaign(sb: Sidebar, name: str = "老带新") -> int:
    now = sb.rt.clock.now()
    campaign = await referral.create_campaign(
        sb.rt,
        {
            "name": name,
            "goal": 3,
            "reward_template_id": await template(SandboxHarness(sb.rt, sb.client, sb.state)),
            "userids": ["sales01"],
            "poster_text": "邀请好友领好礼",
            "starts_at": now,
            "ends_at": now + dt.timedelta(days=7),
            "status": "running",
        },
    )
    return campaign.id


async def test_sidebar_sends_the_customers_own_poster(sb: Sidebar) -> None:
    cid = await seed_follow(sb.rt, "sales01", "wmSharer")
    await seed_follow(sb.rt, "sales02", "wmNotMine")
    csrf = await login(sb)
    assert (await (await sb.client.get("/sidebar/api/referral-campaigns")).json()) == {"campaigns": []}
    campaign_id = await running_campaign(sb)
    listing = await (await sb.client.get("/sidebar/api/referral-campaigns")).json()
    assert listing == {"campaigns": [{"id": campaign_id, "name": "老带新", "goal": 3}]}

    status, sent = await post(sb, "/sidebar/api/customers/wmSharer/referral-invitation", {"campaign_id": campaign_id}, csrf)
    assert status == 201, sent
    assert sent["campaign"] == {"id": campaign_id, "name": "老带新"} and sent["title"] == "【老带新】您的专属邀请海报"
    assert sent["desc"].startswith("邀请 3 位好友即得") and "邀请好友领好礼" in sent["text"]
    async with sb.rt.db.read() as conn:
        code = await referral.code_row(conn, campaign_id, cid)
    assert sent["poster_url"] == f"{sb.base}/referral/posters/{code.state.removeprefix(STATE_PREFIX)}.png"
    poster = await sb.client.get(sent["poster_url"].removeprefix(sb.base))
    assert poster.status == 200 and poster.content_type == "image/png"
    status, again = await post(sb, "/sidebar/api/customers/wmSharer/referral-invitation", {"campaign_id": campaign_id}, csrf)
    assert status == 201 and again["poster_url"] == sent["poster_url"]  # the same code
    assert sb.state.call_count("externalcontact/add_contact_way") == 1

    status, body = await post(sb, "/sidebar/api/customers/wmNotMine/referral-invitation", {"campaign_id": campaign_id}, csrf)
    assert status == 403 and "无权" in body["error"]["message"]
    status, body = await post(sb, "/sidebar/api/customers/wmSharer/referral-invitation", {"campaign_id": "x"}, csrf)
    assert status == 400 and body["error"]["message"].startswith("字段 campaign_id 必须是整数")
    status, body = await post(sb, "/sidebar/api/customers/wmSharer/referral-invitation", {"campaign_id": 999999}, csrf)
    assert status == 404 and "裂变活动" in body["error"]["message"]
    status, body = await post(sb, "/sidebar/api/customers/wmSharer/referral-invitation", {"campaign_id": campaign_id}, None)
    assert status == 403  # no CSRF token
    await referral.update_campaign(sb.rt, campaign_id, {"status": "paused"})
    status, body = await post(sb, "/sidebar/api/customers/wmSharer/referral-invitation", {"campaign_id": campaign_id}, csrf)
    assert status == 409 and "活动未在进行中" in body["error"]["message"]  # an add now would not count: no poster
