"""The Official Account channel: plain and safe mode callbacks, and the bot answering followers."""

from __future__ import annotations

import aiohttp
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from bots.gateway.crypto import signature
from bots.gateway.models import inbound_events
from bots.sandbox.simulator import MpSimulator
from scrm.app.runtime import build_runtime
from scrm.app.webapp import create_app
from scrm.core.clock import FrozenClock
from tests.conftest import SandboxHarness, make_settings


async def test_plain_mode_verification_and_messages(database_url: str, clock: FrozenClock) -> None:
    settings = make_settings(database_url=database_url, mp_app_id="wxPlain", mp_secret="s", mp_token="spamtest")
    assert not settings.mp_aes_key  # plain mode: no AES key configured
    rt = await build_runtime(settings, clock)
    mp = MpSimulator("spamtest", "", "wxPlain", now=clock.now, safe=False)
    try:
        async with TestServer(create_app(settings, runtime=rt)) as server, aiohttp.ClientSession() as session:
            url = str(server.make_url("/callback/mp"))
            ts = str(clock.timestamp())
            ok = await session.get(
                url, params={"signature": signature("spamtest", ts, "42"), "timestamp": ts, "nonce": "42", "echostr": "hello-echo"}
            )
            assert ok.status == 200 and await ok.text() == "hello-echo"
            bad = await session.get(url, params={"signature": "0" * 40, "timestamp": ts, "nonce": "42", "echostr": "x"})
            assert bad.status == 403
            for _ in range(3):  # retried delivery: one record
                assert await mp.deliver(session, url, mp.text_message("oFollower", "帮助", 777)) == (200, "success")
            assert await mp.deliver(session, url, mp.subscribe_event("oFollower")) == (200, "success")
        async with rt.db.read() as conn:
            rows = (await conn.execute(sa.select(inbound_events.c.kind, inbound_events.c.from_user).order_by(inbound_events.c.id))).all()
        assert [(r.kind, r.from_user) for r in rows] == [("message.text", "oFollower"), ("event.subscribe", "oFollower")]
    finally:
        await rt.close()


async def test_follower_gets_answers_through_customer_service_messages(sandbox: SandboxHarness) -> None:
    rt = sandbox.rt
    sandbox.state.add_follower("oAnswered")
    sandbox.state.mp_interaction("oAnswered")
    mp = MpSimulator(rt.settings.mp_token.get(), rt.settings.mp_aes_key.get(), rt.settings.mp_app_id, now=rt.clock.now)
    async with aiohttp.ClientSession() as session:
        url = str(sandbox.client.make_url("/callback/mp"))
        assert await mp.deliver(session, url, mp.text_message("oAnswered", "要2箱可乐", 1001)) == (200, "success")
    await sandbox.settle()
    sent = [m for m in sandbox.state.mp_custom_sent if m.get("touser") == "oAnswered"]
    assert len(sent) == 1
    assert "可乐 330ml×24 × 2箱" in str(sent[0])
