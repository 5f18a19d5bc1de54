"""End to end through the sandbox over real HTTP: a customer writes to the 微信客服 bot, the emulator signs and
encrypts the callback to our /callback/wecom, we sync kf/sync_msg, answer through kf/send_msg, and every
customer-visible step of the order comes back into the chat."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bots.gateway.models import inbound_events
from bots.kf.models import kf_cursors
from bots.kf.services import run_sync
from bots.outbound.client import Errcode
from bots.outbound.models import outbound_messages
from bots.sandbox.keys import SANDBOX_STATE
from bots.sandbox.simulator import CallbackSimulator, kf_msg_or_event
from config.settings import SANDBOX_CORP_ID, SANDBOX_KF_OPEN_KFID, SANDBOX_SECRET
from fulfillment.orders.models import OrderStatus
from scrm.app.webapp import create_app
from tests.conftest import SandboxHarness
from tests.helpers import free_port


async def count(h: SandboxHarness, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    async with h.rt.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one())


async def test_help_and_unknown_text_get_replies(sandbox: SandboxHarness) -> None:
    await sandbox.customer_says("wmAlice", "帮助", name="Alice")
    await sandbox.customer_says("wmAlice", "随便问问")
    replies = sandbox.replies("wmAlice")
    assert len(replies) == 2
    assert "我能做什么" in replies[1] or "帮助" in replies[1]
    assert "要3箱矿泉水" in replies[0]
    async with sandbox.rt.db.read() as conn:
        kinds = [r.kind for r in await conn.execute(sa.select(inbound_events.c.kind).order_by(inbound_events.c.id))]
    assert kinds.count("kf.customer.text") == 2 and kinds.count("kf_msg_or_event") == 2


async def test_order_in_chat_through_to_the_shipped_notice(sandbox: SandboxHarness) -> None:
    await sandbox.customer_says("wmBob", "要3箱矿泉水")
    assert "矿泉水 550ml×24 × 3箱" in sandbox.replies("wmBob")[-1]
    await sandbox.customer_says("wmBob", "确认")
    confirmed = sandbox.replies("wmBob")[-1]
    assert "已确认" in confirmed
    number = confirmed.split("订单 ")[1].split(" ")[0]

    status, order = await sandbox.api("GET", f"/orders/{number}")
    assert status == 200 and order["status"] == OrderStatus.CONFIRMED
    assert order["lines"][0]["sku"] == "WATER-550" and order["lines"][0]["qty"] == 3
    status, listed = await sandbox.api("GET", "/orders", params={"customer": "wmBob"})
    assert status == 200 and [o["number"] for o in listed["items"]] == [number]

    status, shipped = await sandbox.api("POST", f"/orders/{number}/shipments", json={"carrier": "顺丰", "tracking_no": "SF1234567890"})
    assert status == 201 and shipped["order"]["status"] == OrderStatus.SHIPPED
    await sandbox.settle()
    notice = sandbox.replies("wmBob")[-1]
    assert "已发货" in notice and "SF1234567890" in notice and "顺丰" in notice
    # Staff got the new-order alert as a WeCom app message.
    assert any(number in text for text in sandbox.state.app_messages_to("ops01"))
    status, product = await sandbox.api("GET", "/products/WATER-550")
    assert (product["on_hand"], product["allocated"], product["available"]) == (117, 0, 117)


async def test_triple_delivery_is_one_record_and_one_reply(sandbox: SandboxHarness) -> None:
    await sandbox.customer_says("wmCarol", "你好")
    assert len(sandbox.replies("wmCarol")) == 1
    rt = sandbox.rt
    sim = CallbackSimulator(rt.settings.wecom_token.get(), rt.settings.wecom_aes_key.get(), rt.settings.wecom_corp_id, now=rt.clock.now)
    xml = kf_msg_or_event("TOKEN-REPEAT", rt.settings.kf_open_kfid, rt.clock.timestamp(), corp_id=rt.settings.wecom_corp_id)
    for _ in range(3):
        query, body = sim.encrypt_post(xml)
        resp = await sandbox.client.post("/callback/wecom", params=query, data=body)
        assert resp.status == 200
    await sandbox.settle()
    assert await count(sandbox, inbound_events, inbound_events.c.dedupe_key.like("kf:%TOKEN-REPEAT%")) == 1
    # Forget the cursor: a full re-sync returns every message again, and msgid dedupe keeps one of each.
    async with rt.db.write() as conn:
        await conn.execute(kf_cursors.update().values(cursor=""))
    assert await run_sync(rt, rt.settings.kf_open_kfid) == 0
    await sandbox.settle()
    assert await count(sandbox, inbound_events, inbound_events.c.kind == "kf.customer.text") == 1
    assert len(sandbox.replies("wmCarol")) == 1
    assert await count(sandbox, outbound_messages) == 1


async def test_kf_cursor_survives_a_restart(sandbox: SandboxHarness) -> None:
    from scrm.app.runtime import build_runtime

    await sandbox.customer_says("wmDan", "你好")
    async with sandbox.rt.db.read() as conn:
        cursor = (await conn.execute(sa.select(kf_cursors.c.cursor))).scalar_one()
    assert cursor
    # A new process (fresh runtime on the same database) continues from the stored cursor.
    fresh = await build_runtime(sandbox.rt.settings, sandbox.rt.clock)
    try:
        sandbox.state.customer_kf_message("wmDan", "帮助")
        seen: list[dict[str, object]] = []
        from bots.outbound.client import WECOM_API

        api = fresh.get(WECOM_API)
        original = api.call

        async def spy(path: str, data: dict[str, object] | None = None, **kw: object) -> dict[str, object]:
            seen.append({"path": path, **(data or {})})
            return await original(path, data, **kw)  # type: ignore[arg-type]

        api.call = spy  # type: ignore[method-assign]
        stored = await run_sync(fresh, fresh.settings.kf_open_kfid)
    finally:
        await fresh.close()
    # New since the cursor: the bot's own reply (origin 5, stored as kf.servicer.text) and the new message.
    assert stored == 2
    assert seen[0]["path"] == "kf/sync_msg" and seen[0]["cursor"] == cursor
    assert await count(sandbox, inbound_events, inbound_events.c.kind == "kf.customer.text") == 2


async def test_conversation_and_order_steps_reach_the_timeline(sandbox: SandboxHarness) -> None:
    from scrm.crm.customers.services import find_customer
    from scrm.crm.timeline.services import entries

    await sandbox.customer_says("wmTimeline", "要2箱可乐")
    await sandbox.customer_says("wmTimeline", "确认")
    async with sandbox.rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", "wmTimeline")
        assert cid is not None
        stream = await entries(conn, cid, limit=20)
    titles = [e.title for e in stream]
    assert any(t.startswith("下单 SO") for t in titles)
    bodies = [e.body for e in stream if e.kind == "message"]
    assert "要2箱可乐" in bodies and "确认" in bodies
    assert any(e.title.startswith("客服") for e in stream)  # the bot's replies, synced back, are part of it


async def test_questions_are_answered_and_the_reading_is_on_the_timeline(sandbox: SandboxHarness) -> None:
    from scrm.crm.customers.services import find_customer
    from scrm.crm.timeline.services import entries

    await sandbox.customer_says("wmAsk", "5箱可乐什么价")
    assert "5箱共 ¥264.00" in sandbox.replies("wmAsk")[-1]
    await sandbox.customer_says("wmAsk", "40一袋的大米来2袋")
    assert "东北大米 5kg × 2袋" in sandbox.replies("wmAsk")[-1]
    async with sandbox.rt.db.read() as conn:
        cid = await find_customer(conn, "external_userid", "wmAsk")
        assert cid is not None
        readings = [e for e in await entries(conn, cid, limit=50) if e.ref.startswith("understanding:")]
        notes = [r.note for r in await conn.execute(sa.select(inbound_events.c.note).where(inbound_events.c.kind == "kf.customer.text"))]
    assert len(readings) == 2  # one per message
    price, order = sorted(readings, key=lambda e: e.id)
    assert price.title == "机器人理解：问价格（price_question）" and "“什么价”：问价格/规格" in price.body
    assert order.data["lines"] == [["RICE-5KG", 2]] and "“40一袋”：单价，不是数量" in order.body
    assert any("understood price_question" in (n or "") for n in notes)


async def test_a_complaint_reaches_staff_as_an_app_message(sandbox: SandboxHarness) -> None:
    await sandbox.customer_says("wmUpset", "要2箱可乐")
    await sandbox.customer_says("wmUpset", "确认")
    await sandbox.customer_says("wmUpset", "送来的可乐漏了一箱")
    assert "非常抱歉" in sandbox.replies("wmUpset")[-1]
    assert any("送来的可乐漏了一箱" in text for text in sandbox.state.app_messages_to("ops01"))


async def test_bad_input_gets_a_polite_reply_and_is_stored_once(sandbox: SandboxHarness) -> None:
    from scrm.crm.timeline.models import timeline
    from scrm.crm.timeline.services import Kind

    flood = "要3箱可乐" * 136  # 680 characters, 2,040 bytes: the most one 微信客服 text carries (10 k: tests/bots/test_dialog.py)
    for text in (flood, "😀😀😀", "<b>要</b><script>alert(1)</script>"):
        await sandbox.customer_says("wmNoise", text)
    replies = sandbox.replies("wmNoise")
    assert len(replies) == 3 and all("抱歉" in r and "销售顾问" in r for r in replies)
    assert "<script>" not in replies[2]
    assert await count(sandbox, inbound_events, inbound_events.c.kind == "kf.customer.text") == 3
    async with sandbox.rt.db.read() as conn:
        texts = sa.select(inbound_events.c.content).where(inbound_events.c.kind == "kf.customer.text").order_by(inbound_events.c.id)
        stored = [r.content for r in await conn.execute(texts)]
        kinds = [r.kind for r in await conn.execute(sa.select(timeline.c.kind).where(timeline.c.ref.like("understanding:%")))]
    assert stored[0] == flood and len(kinds) == 3 and set(kinds) == {Kind.EVENT}
    status, listed = await sandbox.api("GET", "/orders", params={"customer": "wmNoise"})
    assert status == 200 and listed["items"] == []
    # A re-sync delivers every message again: still one record and one reply each.
    async with sandbox.rt.db.write() as conn:
        await conn.execute(kf_cursors.update().values(cursor=""))
    await run_sync(sandbox.rt, sandbox.rt.settings.kf_open_kfid)
    await sandbox.settle()
    assert await count(sandbox, inbound_events, inbound_events.c.kind == "kf.customer.text") == 3
    assert len(sandbox.replies("wmNoise")) == 3


async def _kf_send(client: TestClient, external_userid: str, text: str) -> dict[str, object]:
    """kf/send_msg to the emulator mounted on ``client``'s app, as the product calls it."""
    resp = await client.get("/sandbox/wecom/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})
    token = (await resp.json())["access_token"]
    body = {"touser": external_userid, "open_kfid": SANDBOX_KF_OPEN_KFID, "msgtype": "text", "text": {"content": text}}
    resp = await client.post("/sandbox/wecom/cgi-bin/kf/send_msg", params={"access_token": token}, json=body)
    return dict(await resp.json())


async def test_kf_window_survives_an_emulator_restart(sandbox: SandboxHarness) -> None:
    """run.py restarted 20 minutes after the customer wrote: the new emulator still lets the bot answer (the real
    WeCom never forgets a window); a customer who wrote 49 hours ago stays closed."""
    sandbox.rt.clock.advance(hours=-49)
    await sandbox.customer_says("wmOld", "你好")
    sandbox.rt.clock.advance(hours=49)
    await sandbox.customer_says("wmEve", "你好")
    sandbox.rt.clock.advance(minutes=20)

    restarted = create_app(sandbox.rt.settings, runtime=sandbox.rt)  # a new emulator instance over the same database
    async with TestClient(TestServer(restarted, port=free_port())) as client:
        state = restarted[SANDBOX_STATE]
        assert state is not sandbox.state and not state.kf_log  # nothing carried over in memory
        answer = await _kf_send(client, "wmEve", "您好，请问需要什么？")
        assert answer.get("errcode", 0) == 0, answer
        assert state.kf_replies("wmEve") == ["您好，请问需要什么？"]
        closed = await _kf_send(client, "wmOld", "您好")
        assert closed["errcode"] == Errcode.KF_WINDOW_CLOSED
        assert state.kf_replies("wmOld") == []
