"""The outbound sender on both databases against the emulator: recording, idempotency, the kf window and quota,
rate limits, outages, and the other channels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from bots.outbound import services as sender
from bots.outbound.client import MP_API, WECOM_API, ApiUnavailable, Errcode, MpApi, WeComApi
from bots.outbound.media import Image
from bots.outbound.models import OutboundStatus, kf_windows, outbound_attempts, outbound_messages
from bots.sandbox.emulator import create_emulator_app
from bots.sandbox.state import SandboxState
from scrm.core.clock import FrozenClock
from scrm.core.ids import digest_key
from scrm.core.jobs import RetryLater
from scrm.core.runtime import Runtime

KF = "wkSandboxKf0000001"


@pytest.fixture
async def server(clock: FrozenClock) -> AsyncIterator[TestServer]:
    state = SandboxState(now=clock.now)  # the emulator's time moves with the product's clock
    state.seed_demo()
    async with TestServer(create_emulator_app(state)) as srv:
        yield srv


@pytest.fixture
def state(server: TestServer) -> SandboxState:
    from bots.sandbox.emulator import STATE

    return server.app[STATE]


def wire(rt: Runtime, server: TestServer, **kw: float) -> None:
    """Point the runtime's API clients at the emulator."""
    s = rt.settings
    rt.put(
        WECOM_API,
        WeComApi(str(server.make_url("/wecom/cgi-bin/")), s.wecom_corp_id, s.wecom_secret.get(), rt.http_session, busy_delay=0.01, **kw),
    )
    rt.put(MP_API, MpApi(str(server.make_url("/mp/cgi-bin/")), s.mp_app_id, s.mp_secret.get(), rt.http_session))


@pytest.fixture
async def wired(rt: Runtime, server: TestServer) -> Runtime:
    wire(rt, server)
    return rt


async def customer_writes(rt: Runtime, state: SandboxState, external_userid: str, text: str = "你好") -> None:
    """The customer writes in 微信客服: WeCom's side (emulator) and ours (kf_windows), as the sync would."""
    state.customer_kf_message(external_userid, text)
    async with rt.db.write() as conn:
        await sender.record_customer_message(conn, open_kfid=KF, external_userid=external_userid, at=rt.clock.now())


async def rows(rt: Runtime, table: sa.Table, **where: Any) -> list[Any]:
    async with rt.db.read() as conn:
        stmt = sa.select(table).where(*(table.c[k] == v for k, v in where.items())).order_by(table.c[table.primary_key.columns.keys()[0]])
        return list((await conn.execute(stmt)).all())


async def send(rt: Runtime, text: str, key: str, ext: str = "wmA") -> sender.OutboundResult:
    return await sender.send_kf_text(rt, open_kfid=KF, external_userid=ext, text=text, key=key, customer_id=7)


# ---- 微信客服 -------------------------------------------------------------------------------------------
async def test_send_within_window_is_recorded(wired: Runtime, state: SandboxState) -> None:
    await customer_writes(wired, state, "wmA")
    result = await send(wired, "您好，有什么可以帮您？", "reply:1")
    assert result.status == OutboundStatus.SENT and result.channel == "kf"
    assert result.remote_id == digest_key("reply:1") and result.error_code is None
    assert state.kf_replies("wmA") == ["您好，有什么可以帮您？"]
    (msg,) = await rows(wired, outbound_messages)
    assert msg.idempotency_key == "reply:1" and msg.recipient == "wmA" and msg.customer_id == 7
    assert msg.attempts == 1 and msg.sent_at == wired.clock.now() and msg.payload["msgid"] == result.remote_id
    (attempt,) = await rows(wired, outbound_attempts)
    assert attempt.outcome == "ok" and attempt.api_path == "kf/send_msg" and attempt.message_id == msg.id
    (window,) = await rows(wired, kf_windows)
    assert window.sent_since_customer_msg == 1


async def test_same_key_twice_sends_once(wired: Runtime, state: SandboxState) -> None:
    await customer_writes(wired, state, "wmA")
    first = await send(wired, "回复", "reply:2")
    second = await send(wired, "回复", "reply:2")
    assert second == first
    assert state.call_count("kf/send_msg") == 1 and len(await rows(wired, outbound_messages)) == 1
    assert len(await rows(wired, outbound_attempts)) == 1


async def test_window_closed_is_skipped_without_a_call(wired: Runtime, state: SandboxState, clock: FrozenClock) -> None:
    never = await send(wired, "你好", "n:1", ext="wmNever")
    assert never.status == OutboundStatus.SKIPPED and never.error_message == "kf_window_closed"
    await customer_writes(wired, state, "wmA")
    clock.advance(hours=49)
    late = await send(wired, "发货通知", "n:2")
    assert late.status == OutboundStatus.SKIPPED and late.error_message == "kf_window_closed"
    assert state.call_count("kf/send_msg") == 0 and await rows(wired, outbound_attempts) == []
    assert {m.attempts for m in await rows(wired, outbound_messages)} == {0}


async def test_sixth_message_is_skipped_quota(wired: Runtime, state: SandboxState) -> None:
    await customer_writes(wired, state, "wmA")
    for i in range(5):
        assert (await send(wired, f"第{i + 1}条", f"q:{i}")).status == OutboundStatus.SENT
    sixth = await send(wired, "第6条", "q:5")
    assert sixth.status == OutboundStatus.SKIPPED and sixth.error_message == "kf_quota_exhausted"
    assert state.call_count("kf/send_msg") == 5
    await customer_writes(wired, state, "wmA", "还有吗")
    assert (await send(wired, "有的", "q:6")).status == OutboundStatus.SENT


async def test_emulator_refusal_becomes_a_skip(wired: Runtime, state: SandboxState) -> None:
    await customer_writes(wired, state, "wmA")
    state.kf_windows[(KF, "wmA")].sent_since = 5  # a servicer used the quota by hand: WeCom knows, we do not
    result = await send(wired, "通知", "r:1")
    assert result.status == OutboundStatus.SKIPPED and result.error_code == Errcode.KF_QUOTA_EXHAUSTED
    assert result.error_message == "kf_quota_exhausted"
    (window,) = await rows(wired, kf_windows)
    assert window.sent_since_customer_msg == wired.settings.kf_max_messages  # no further calls until they write
    (attempt,) = await rows(wired, outbound_attempts)
    assert attempt.outcome == "error" and attempt.error_code == Errcode.KF_QUOTA_EXHAUSTED


async def test_rate_limit_retries_later_then_succeeds(wired: Runtime, state: SandboxState) -> None:
    await customer_writes(wired, state, "wmA")
    state.inject("kf/send_msg", Errcode.RATE_LIMITED)
    with pytest.raises(RetryLater) as caught:
        await send(wired, "稍等", "rl:1")
    assert caught.value.defer == 60
    (msg,) = await rows(wired, outbound_messages)
    assert msg.status == OutboundStatus.PENDING and msg.error_code == Errcode.RATE_LIMITED and msg.attempts == 1
    result = await send(wired, "稍等", "rl:1")
    assert result.status == OutboundStatus.SENT and result.error_code is None
    attempts = await rows(wired, outbound_attempts)
    assert [(a.outcome, a.error_code) for a in attempts] == [("error", Errcode.RATE_LIMITED), ("ok", None)]
    assert (await rows(wired, outbound_messages))[0].attempts == 2 and state.kf_replies("wmA") == ["稍等"]


async def test_timeout_is_retried_and_msgid_prevents_a_duplicate(rt: Runtime, server: TestServer, state: SandboxState) -> None:
    wire(rt, server, timeout=0.2)
    await customer_writes(rt, state, "wmA")
    # WeCom is slow: our call times out although WeCom goes on to deliver the message.
    state.inject("kf/send_msg", 0, delay=0.5)
    with pytest.raises(ApiUnavailable):
        await send(rt, "订单已确认", "to:1")
    (attempt,) = await rows(rt, outbound_attempts)
    assert attempt.outcome == "timeout" and (await rows(rt, outbound_messages))[0].status == OutboundStatus.PENDING
    await asyncio.sleep(0.5)
    result = await send(rt, "订单已确认", "to:1")  # the job's retry
    assert result.status == OutboundStatus.SENT
    assert state.kf_replies("wmA") == ["订单已确认"]  # once: WeCom deduplicated the msgid


async def test_app_message_timeout_is_not_repeated(rt: Runtime, server: TestServer, state: SandboxState) -> None:
    """message/send has no idempotency key: after a timeout WeCom may have delivered it, so it is settled as
    failed ("delivery_unknown") instead of being sent again (the fault tests found it delivered twice)."""
    wire(rt, server, timeout=0.2)
    state.inject("message/send", 0, delay=0.5)  # carried out, answered after our timeout
    result = await sender.send_app_message(rt, touser=["ops01"], text="【新订单】SO1", key="alert:1")
    assert result.status == OutboundStatus.FAILED and result.error_message.startswith(sender.DELIVERY_UNKNOWN)
    await asyncio.sleep(0.5)
    again = await sender.send_app_message(rt, touser=["ops01"], text="【新订单】SO1", key="alert:1")  # the job runs again
    assert again.status == OutboundStatus.FAILED
    assert state.app_messages_to("ops01") == ["【新订单】SO1"] and state.call_count("message/send") == 1
    (attempt,) = await rows(rt, outbound_attempts)
    assert attempt.outcome == "timeout"


async def test_the_same_app_message_sent_again_reaches_the_member_once(wired: Runtime, state: SandboxState) -> None:
    """A send whose record was lost (the database gone between WeCom's answer and our write: the fault suite's
    PostgreSQL restart) goes out again — WeCom's duplicate check, which every app message asks for, keeps the member
    from getting it twice; a different text still arrives."""
    first = await sender.send_app_message(wired, touser=["ops01"], text="【新订单】SO7", key="alert:7")
    again = await sender.send_app_message(wired, touser=["ops01"], text="【新订单】SO7", key="alert:7-retry")
    other = await sender.send_app_message(wired, touser=["ops01"], text="【新订单】SO8", key="alert:8")
    assert (first.status, again.status, other.status) == (OutboundStatus.SENT,) * 3
    assert state.call_count("message/send") == 3
    assert state.app_messages_to("ops01") == ["【新订单】SO7", "【新订单】SO8"]


async def test_app_message_refused_connection_is_retried(rt: Runtime, state: SandboxState) -> None:
    """A connection that was never made cannot have delivered anything: that one is retried."""
    from tests.helpers import free_port

    s = rt.settings
    rt.put(WECOM_API, WeComApi(f"http://127.0.0.1:{free_port()}/", s.wecom_corp_id, s.wecom_secret.get(), rt.http_session))
    with pytest.raises(ApiUnavailable):
        await sender.send_app_message(rt, touser=["ops01"], text="稍后", key="alert:2")
    (msg,) = await rows(rt, outbound_messages)
    assert msg.status == OutboundStatus.PENDING


async def test_busy_beyond_quick_retries_waits_for_the_job_retry(wired: Runtime, state: SandboxState) -> None:
    """-1 (system busy) says "later", not "never": after the client's quick retries the message stays pending
    and the job retries it; it is not failed for good."""
    state.inject("message/send", Errcode.BUSY, times=3)
    with pytest.raises(ApiUnavailable):
        await sender.send_app_message(wired, touser=["ops01"], text="忙", key="alert:3")
    (msg,) = await rows(wired, outbound_messages)
    assert msg.status == OutboundStatus.PENDING and msg.error_code == Errcode.BUSY
    result = await sender.send_app_message(wired, touser=["ops01"], text="忙", key="alert:3")
    assert result.status == OutboundStatus.SENT and state.app_messages_to("ops01") == ["忙"]


async def test_last_try_fails_the_message_instead_of_leaving_it_pending(wired: Runtime, state: SandboxState) -> None:
    """Rate limited on the job's last try: nobody will try again, so the message says failed, with the reason."""
    from scrm.core.jobs import JobContext, _run_as

    async def job(ctx: JobContext) -> sender.OutboundResult:
        return await sender.send_app_message(ctx.rt, touser=["ops01"], text="限流", key=f"alert:{ctx.job_id}")

    state.inject("message/send", Errcode.RATE_LIMITED, times=2)
    with pytest.raises(RetryLater):
        await _run_as(JobContext(wired, "j1", 1, 3), job)  # not the last try: the job layer retries
    result = await _run_as(JobContext(wired, "j2", 3, 3), job)
    assert result.status == OutboundStatus.FAILED and result.error_message.startswith("retries exhausted")
    assert result.error_code == Errcode.RATE_LIMITED
    pending = [m for m in await rows(wired, outbound_messages) if m.status == OutboundStatus.PENDING]
    assert [m.idempotency_key for m in pending] == ["alert:j1"]


async def test_concurrent_sends_of_one_key_call_once(wired: Runtime, state: SandboxState) -> None:
    await customer_writes(wired, state, "wmA")
    outcomes = await asyncio.gather(*(send(wired, "同一条", "c:1") for _ in range(4)), return_exceptions=True)
    assert state.call_count("kf/send_msg") == 1
    for outcome in outcomes:
        assert isinstance(outcome, RetryLater) or outcome.status == OutboundStatus.SENT  # type: ignore[union-attr]
    assert (await send(wired, "同一条", "c:1")).status == OutboundStatus.SENT


async def test_abandoned_claim_lapses(wired: Runtime, state: SandboxState, clock: FrozenClock) -> None:
    await customer_writes(wired, state, "wmA")
    draft = sender._Draft("crash:1", "kf", "reply", "wmA", {"touser": "wmA"})
    assert isinstance(await sender._open(wired, draft), int)  # claimed, then the process "died"
    with pytest.raises(RetryLater):
        await send(wired, "恢复", "crash:1")
    clock.advance(seconds=sender.CLAIM_LEASE.total_seconds() + 1)
    assert (await send(wired, "恢复", "crash:1")).status == OutboundStatus.SENT
    (msg,) = await rows(wired, outbound_messages)
    assert msg.attempts == 1 and len(await rows(wired, outbound_attempts)) == 1


async def test_long_keys_are_stored_within_the_column(wired: Runtime, state: SandboxState) -> None:
    await customer_writes(wired, state, "wmA")
    key = "order:" + "X" * 100 + ":shipped"
    first = await send(wired, "已发货", key)
    assert (await send(wired, "已发货", key)).message_id == first.message_id
    (msg,) = await rows(wired, outbound_messages)
    assert len(msg.idempotency_key) == 64 and msg.idempotency_key.startswith("order:XXX")


async def test_customer_message_never_moves_the_window_back(wired: Runtime, state: SandboxState, clock: FrozenClock) -> None:
    await customer_writes(wired, state, "wmA")
    await send(wired, "一", "w:1")
    async with wired.db.write() as conn:
        old = clock.now().replace(hour=0)
        await sender.record_customer_message(conn, open_kfid=KF, external_userid="wmA", at=old)
    (window,) = await rows(wired, kf_windows)
    assert window.last_customer_msg_at == clock.now() and window.sent_since_customer_msg == 1


# ---- pictures (temporary media) -------------------------------------------------------------------------------
POSTER = Image(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "poster.png")


async def send_image(rt: Runtime, key: str, ext: str = "wmA", image: Image = POSTER) -> sender.OutboundResult:
    return await sender.send_kf_image(rt, open_kfid=KF, external_userid=ext, image=image, key=key, customer_id=7)


async def test_a_picture_is_uploaded_once_and_sent_under_the_kf_rules(wired: Runtime, state: SandboxState) -> None:
    await customer_writes(wired, state, "wmA")
    first = await send_image(wired, "poster:1")
    assert first.sent and first.remote_id == digest_key("poster:1")
    [media] = state.kf_images("wmA")
    assert media.content == POSTER.content and media.filename == "poster.png" and media.content_type == "image/png"
    (msg,) = await rows(wired, outbound_messages)
    assert msg.payload["msgtype"] == "image" and msg.payload["image"] == {"sha256": POSTER.digest, "bytes": len(POSTER.content)}
    assert await send_image(wired, "poster:1") == first  # the same key: nothing called again
    second = await send_image(wired, "poster:2")  # the same picture, another message: its media_id reused
    assert second.sent and state.call_count("media/upload") == 1 and state.call_count("kf/send_msg") == 2
    assert [m.media_id for m in state.kf_images("wmA")] == [media.media_id] * 2
    (window,) = await rows(wired, kf_windows)
    assert window.sent_since_customer_msg == 2  # pictures count towards the 5 messages like texts


async def test_a_picture_outside_the_window_is_skipped_before_any_upload(wired: Runtime, state: SandboxState) -> None:
    result = await send_image(wired, "poster:late", ext="wmNeverWrote")
    assert result.status == OutboundStatus.SKIPPED and result.error_message == "kf_window_closed"
    assert state.call_count("media/upload") == 0 and state.call_count("kf/send_msg") == 0


async def test_a_failed_upload_fails_the_picture_with_the_upload_attempt(wired: Runtime, state: SandboxState, server: TestServer) -> None:
    await customer_writes(wired, state, "wmA")
    state.inject("media/upload", Errcode.RATE_LIMITED)  # even a rate limit: the picture goes another way now, not later
    failed = await send_image(wired, "poster:3")
    assert failed.status == OutboundStatus.FAILED and failed.error_code == Errcode.RATE_LIMITED
    assert failed.error_message and failed.error_message.startswith(sender.MEDIA_UPLOAD_FAILED)
    (attempt,) = await rows(wired, outbound_attempts)
    assert (attempt.api_path, attempt.outcome, attempt.error_code) == ("media/upload", "error", Errcode.RATE_LIMITED)
    assert state.call_count("kf/send_msg") == 0 and state.kf_images("wmA") == []
    state.inject("media/upload", 0, delay=0.5)  # a timeout: the client gives up at 0.2 s
    wire(wired, server, timeout=0.2)
    timed_out = await send_image(wired, "poster:4")
    assert timed_out.status == OutboundStatus.FAILED and "timeout" in (timed_out.error_message or "")


async def test_a_picture_on_the_official_account(wired: Runtime, state: SandboxState) -> None:
    state.add_follower("oPic")
    result = await sender.send_mp_custom_image(wired, openid="oPic", image=POSTER, key="mp-poster:1")
    assert result.sent and state.call_count("mp:media/upload") == 1
    sent = state.mp_custom_sent[-1]
    assert sent["msgtype"] == "image" and state.media[sent["media_id"]].content == POSTER.content


# ---- other channels --------------------------------------------------------------------------------------
async def test_app_message_is_recorded(wired: Runtime, state: SandboxState) -> None:
    result = await sender.send_app_message(wired, touser=["ops01", "ghost"], text="新订单 SO-1", key="alert:1")
    assert result.status == OutboundStatus.SENT and result.channel == "wecom_app" and result.remote_id
    assert result.error_message == "invaliduser: ghost"
    assert state.app_messages_to("ops01") == ["新订单 SO-1"]
    again = await sender.send_app_message(wired, touser=["ops01", "ghost"], text="新订单 SO-1", key="alert:1")
    assert again == result and state.call_count("message/send") == 1
    (msg,) = await rows(wired, outbound_messages)
    assert msg.recipient == "ops01|ghost" and msg.purpose == "alert" and msg.payload["agentid"] == 1000002
    nobody = await sender.send_app_message(wired, touser=["ghost"], text="x", key="alert:2")
    assert nobody.status == OutboundStatus.FAILED and nobody.error_code == Errcode.ALL_RECIPIENTS_INVALID


async def test_official_account_messages(wired: Runtime, state: SandboxState, clock: FrozenClock) -> None:
    state.add_follower("oF1")
    tpl = await sender.send_mp_template(
        wired,
        openid="oF1",
        template_id="sandbox-order-notice",
        data={"content": {"value": "已发货"}},
        key="mp:1",
        url="https://example.com/o/1",
    )
    assert tpl.status == OutboundStatus.SENT and tpl.channel == "mp_template" and tpl.remote_id
    assert state.templates_sent[0]["url"] == "https://example.com/o/1"
    custom = await sender.send_mp_custom_text(wired, openid="oF1", text="您好", key="mp:2", purpose="reply")
    assert custom.status == OutboundStatus.SENT and state.mp_custom_sent[0]["content"] == "您好"
    clock.advance(hours=49)
    late = await sender.send_mp_custom_text(wired, openid="oF1", text="在吗", key="mp:3", purpose="reply")
    assert late.status == OutboundStatus.SKIPPED and late.error_message == "mp_window_closed"
    stranger = await sender.send_mp_template(wired, openid="oNobody", template_id="sandbox-order-notice", data={}, key="mp:4")
    assert stranger.status == OutboundStatus.FAILED and stranger.error_code == Errcode.MP_INVALID_OPENID


async def test_msg_template_task_awaits_the_salesperson(wired: Runtime, state: SandboxState) -> None:
    state.add_customer("wmT", "客户T", ["sales01"])
    task = await sender.create_msg_template_task(
        wired, sender_userid="sales01", external_userids=["wmT"], text="您的订单已发货", key="task:1", purpose="notice"
    )
    assert task.status == OutboundStatus.AWAITING_SALESPERSON and task.channel == "msg_template"
    assert task.remote_id == state.msg_templates[0]["msgid"]
    refused = await sender.create_msg_template_task(
        wired, sender_userid="ops01", external_userids=["wmT"], text="x", key="task:2", purpose="notice"
    )
    assert refused.status == OutboundStatus.FAILED and refused.error_message == "fail_list: wmT"
