"""Hostile XML, oversized and slow bodies, and replays on /callback/wecom and /callback/mp (plain and safe mode),
over a real local port: every refusal is 4xx JSON and stores nothing; a body that never finishes is cut off.

(tests/bots/test_gateway.py covers the WeCom envelope cases one by one; this file runs one matrix over all three
receivers and both layers — the envelope and the decrypted plaintext.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bots.gateway.crypto import CallbackCrypto, signature
from bots.gateway.models import inbound_events
from bots.sandbox.simulator import MpSimulator
from scrm.app.runtime import build_runtime
from scrm.app.webapp import create_app
from scrm.core.clock import FrozenClock
from scrm.core.outbox import outbox
from scrm.core.runtime import Runtime
from tests.conftest import make_settings
from tests.helpers import envelope, free_port, text_xml

pytestmark = pytest.mark.security

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>'
    "<xml><ToUserName>x</ToUserName><FromUserName>oAttacker</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&f;</Content><Encrypt>&f;</Encrypt><MsgId>9</MsgId></xml>"
)
XINCLUDE = (
    '<xml xmlns:xi="http://www.w3.org/2001/XInclude"><ToUserName>x</ToUserName><FromUserName>oAttacker</FromUserName>'
    '<CreateTime>1</CreateTime><MsgType>text</MsgType><Content><xi:include href="file:///etc/passwd" parse="text"/></Content>'
    "<Encrypt><xi:include href='file:///etc/passwd' parse='text'/></Encrypt><MsgId>10</MsgId></xml>"
)
HOSTILE = {
    "billion_laughs": BOMB,
    "external_entity": '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content><Encrypt>&e;</Encrypt></xml>',
    "parameter_entity": (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:1/evil.dtd"> %p;]><xml><Encrypt>x</Encrypt></xml>'
    ),
    "dtd_only": '<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://127.0.0.1:1/evil.dtd"><xml><Encrypt>x</Encrypt></xml>',
    "internal_dtd": "<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><Encrypt>x</Encrypt></xml>",
    "not_xml": '{"Encrypt": "x"}',
    "wrong_root": "<root><Encrypt>x</Encrypt></root>",
    "unclosed": "<xml><Encrypt>x</Encrypt>",
}


@dataclass
class Receiver:
    """One callback receiver of the real app and how to sign a request for it."""

    name: str
    rt: Runtime
    client: TestClient
    path: str
    # (xml, layer, timestamp) -> (query, body); layer "envelope" = the raw body, "plaintext" = inside the encryption
    sign: Callable[[str, str, int], tuple[dict[str, str], bytes]]


async def stored(rt: Runtime) -> tuple[int, int]:
    async with rt.db.read() as conn:
        events = (await conn.execute(sa.select(sa.func.count()).select_from(inbound_events))).scalar_one()
        rows = (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar_one()
    return int(events), int(rows)


def wecom_signer(rt: Runtime) -> Callable[[str, str, int], tuple[dict[str, str], bytes]]:
    s = rt.settings
    crypto = CallbackCrypto(s.wecom_token.get(), s.wecom_aes_key.get(), s.wecom_corp_id)

    def sign(xml: str, layer: str, ts: int) -> tuple[dict[str, str], bytes]:
        if layer == "plaintext":
            return envelope(crypto, xml, timestamp=ts)
        return {"msg_signature": signature(crypto.token, str(ts), "7", "x"), "timestamp": str(ts), "nonce": "7"}, xml.encode()

    return sign


def mp_signer(rt: Runtime, *, safe: bool) -> Callable[[str, str, int], tuple[dict[str, str], bytes]]:
    s = rt.settings
    mp = MpSimulator(s.mp_token.get(), s.mp_aes_key.get(), s.mp_app_id, now=rt.clock.now, safe=safe)

    def sign(xml: str, layer: str, ts: int) -> tuple[dict[str, str], bytes]:
        query, body = mp.post(xml, "oAttacker", timestamp=ts)
        if layer == "envelope" and safe:
            body = xml.encode()  # the hostile document is the envelope itself
        return query, body

    return sign


@pytest.fixture(params=["wecom", "mp_plain", "mp_safe"])
async def receiver(request: pytest.FixtureRequest, database_url: str, clock: FrozenClock) -> AsyncIterator[Receiver]:
    extra = {"mp_app_id": "wxPlain", "mp_secret": "s", "mp_token": "spamtest"} if request.param == "mp_plain" else {}
    settings = make_settings(database_url=database_url, **extra)
    assert bool(settings.mp_aes_key) == (request.param != "mp_plain")
    rt = await build_runtime(settings, clock)
    async with TestClient(TestServer(create_app(settings, runtime=rt), port=free_port())) as client:
        if request.param == "wecom":
            yield Receiver("wecom", rt, client, "/callback/wecom", wecom_signer(rt))
        else:
            yield Receiver(request.param, rt, client, "/callback/mp", mp_signer(rt, safe=request.param == "mp_safe"))
    await rt.close()


def message(rt: Runtime, msg_id: int, receiver: str) -> str:
    if receiver.startswith("mp"):
        mp = MpSimulator("t", "", rt.settings.mp_app_id or "wx", now=rt.clock.now, safe=False)
        return mp.text_message("oAttacker", "要3箱矿泉水", msg_id, rt.clock.timestamp())
    return text_xml("zhangsan", "要3箱矿泉水", msg_id, rt.clock.timestamp())


async def post(r: Receiver, query: dict[str, str], body: bytes, **kw: object) -> tuple[int, dict[str, object] | str]:
    resp = await r.client.post(r.path + "?" + urlencode(query), data=body, headers={"Content-Type": "text/xml"}, **kw)
    text = await resp.text()
    return resp.status, (await resp.json()) if resp.content_type == "application/json" else text


@pytest.mark.parametrize("layer", ["envelope", "plaintext"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_xml_is_refused_and_nothing_stored(receiver: Receiver, case: str, layer: str) -> None:
    if layer == "plaintext" and receiver.name == "mp_plain":
        pytest.skip("plain mode has no encrypted layer: the body is the plaintext")
    started = time.monotonic()
    status, body = await post(receiver, *receiver.sign(HOSTILE[case], layer, receiver.rt.clock.timestamp()))
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and body["error"]["code"] in ("bad_xml", "bad_request"), body  # type: ignore[index]
    assert "root:" not in str(body)  # /etc/passwd never comes back
    assert time.monotonic() - started < 5  # no expansion, no fetching
    assert await stored(receiver.rt) == (0, 0)


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_body_is_413_and_nothing_stored(receiver: Receiver, chunked: bool) -> None:
    limit = receiver.rt.settings.max_body_bytes
    query, _ = receiver.sign(message(receiver.rt, 1, receiver.name), "envelope", receiver.rt.clock.timestamp())
    big = b"<xml><Content>" + b"a" * (limit + 1) + b"</Content></xml>"

    async def stream() -> AsyncIterator[bytes]:  # no Content-Length: the cap must hold while reading
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    status, body = await post(receiver, query, stream() if chunked else big)  # type: ignore[arg-type]
    assert status == 413, body
    assert isinstance(body, dict) and body["error"]["code"] == "payload_too_large"  # type: ignore[index]
    assert await stored(receiver.rt) == (0, 0)


@pytest.mark.parametrize("offset", [-1, +1])
async def test_replay_outside_the_time_window_is_403_and_nothing_stored(receiver: Receiver, offset: int) -> None:
    rt = receiver.rt
    ts = rt.clock.timestamp() + offset * (rt.settings.callback_max_skew + 1)
    status, body = await post(receiver, *receiver.sign(message(rt, 5, receiver.name), "plaintext", ts))
    assert status == 403 and isinstance(body, dict) and body["error"]["code"] == "stale_timestamp", body  # type: ignore[index]
    assert await stored(rt) == (0, 0)


async def test_the_same_valid_callback_replayed_inside_the_window_is_stored_once(receiver: Receiver, clock: FrozenClock) -> None:
    rt = receiver.rt
    query, body = receiver.sign(message(rt, 6, receiver.name), "plaintext", rt.clock.timestamp())
    for _ in range(3):  # byte-for-byte the same request, e.g. captured and replayed by someone on the path
        status, answer = await post(receiver, query, body)
        assert status == 200, answer
        clock.advance(seconds=60)  # still inside the window
    events, _ = await stored(rt)
    assert events == 1


@pytest.mark.parametrize("layer", ["envelope", "plaintext"])
async def test_xinclude_is_never_followed(receiver: Receiver, layer: str) -> None:
    """A well-formed message with XInclude elements is plain data: stored or refused, the file is never read."""
    if layer == "plaintext" and receiver.name == "mp_plain":
        pytest.skip("plain mode has no encrypted layer")
    status, _ = await post(receiver, *receiver.sign(XINCLUDE, layer, receiver.rt.clock.timestamp()))
    assert status in (200, 400, 403)
    async with receiver.rt.db.read() as conn:
        rows = (await conn.execute(sa.select(inbound_events))).all()
    assert all("root:" not in repr(tuple(r)) for r in rows)


# ---- slow clients ---------------------------------------------------------------------------------------------
@pytest.fixture
async def slow_app(database_url: str, clock: FrozenClock) -> AsyncIterator[tuple[Runtime, int]]:
    port = free_port()
    settings = make_settings(database_url=database_url, port=port, body_read_timeout="1")
    rt = await build_runtime(settings, clock)
    server = TestServer(create_app(settings, runtime=rt), port=port)
    await server.start_server(keepalive_timeout=1.5)
    try:
        yield rt, port
    finally:
        await server.close()
        await rt.close()


def raw_request(rt: Runtime, content_length: int) -> tuple[bytes, bytes]:
    """Headers of a correctly signed WeCom callback POST, and its body."""
    query, body = wecom_signer(rt)(message(rt, 77, "wecom"), "plaintext", rt.clock.timestamp())
    head = (
        f"POST /callback/wecom?{urlencode(query)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {content_length or len(body)}\r\n\r\n"
    ).encode()
    return head, body


async def read_response(reader: asyncio.StreamReader, limit: float) -> bytes:
    return await asyncio.wait_for(reader.read(65536), limit)


async def test_a_body_that_never_finishes_gets_408_and_the_connection_closes(slow_app: tuple[Runtime, int]) -> None:
    rt, port = slow_app
    head, body = raw_request(rt, 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body[:20])  # then nothing: the client hangs
        await writer.drain()
        started = time.monotonic()
        answer = await read_response(reader, 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request_timeout" in answer
        assert 0.8 < time.monotonic() - started < 5
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    finally:
        writer.close()
    assert await stored(rt) == (0, 0)


async def test_a_trickled_body_is_cut_off_at_the_deadline_not_per_chunk(slow_app: tuple[Runtime, int]) -> None:
    rt, port = slow_app
    head, body = raw_request(rt, 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(head)
        for byte in body:  # one byte every 50 ms: each gap is short, the whole is far too long
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
            if time.monotonic() - started > 3:
                break
        answer = await read_response(reader, 5)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server closed while we were still sending: also cut off
    finally:
        writer.close()
    assert time.monotonic() - started < 6
    assert await stored(rt) == (0, 0)


async def test_a_slow_but_complete_body_within_the_deadline_is_accepted(slow_app: tuple[Runtime, int]) -> None:
    rt, port = slow_app
    head, body = raw_request(rt, 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for i in range(0, len(body), len(body) // 3 + 1):
            writer.write(body[i : i + len(body) // 3 + 1])
            await writer.drain()
            await asyncio.sleep(0.15)
        answer = await read_response(reader, 5)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    finally:
        writer.close()
    assert (await stored(rt))[0] == 1


async def test_headers_that_never_finish_are_closed_by_the_keepalive_timer(slow_app: tuple[Runtime, int]) -> None:
    """run.py passes ``KEEPALIVE_TIMEOUT`` to aiohttp; its timer runs from the connection's start (1.5 s here)."""
    _, port = slow_app
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /callback/wecom HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert time.monotonic() - started < 5
    finally:
        writer.close()
