"""The callback gateway over real HTTP: verification vectors, storage, dedupe and every bad input."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bots.gateway.crypto import CallbackCrypto, signature
from bots.gateway.domain import normalize_wecom
from bots.gateway.ingest import _COLUMNS, InboundWriter, writer
from bots.gateway.models import inbound_events
from bots.gateway.services import TOPIC
from bots.gateway.xmlparse import parse_xml
from config import Settings
from scrm.app.runtime import build_runtime
from scrm.app.webapp import create_app
from scrm.core.clock import UTC, FrozenClock
from scrm.core.outbox import FAST_PATH_GRACE, outbox
from scrm.core.runtime import Runtime
from tests.conftest import make_settings
from tests.helpers import envelope, event_xml, text_xml

VECTORS = [
    # (token, aes key, corp id, signature, timestamp, nonce, raw query echostr, expected body)
    (
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "wx5823bf96d3bd56c7",
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "1409659589",
        "263014780",
        "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D",
        "1616140317555161061",
    ),
    (
        "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        "ww1436e0e65a779aee",
        "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "1476416373",
        "47744683",
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
        "1288432023552776189",
    ),
    (
        "123456",
        "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        "wx49f0ab532d5d035a",
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
        "1411443780",
        "437374425",
        "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
        "5927782489442352469",
    ),
]


def test_official_account_plain_signature_vector() -> None:
    assert signature("spamtest", "1409735669", "1320562132") == "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"


@pytest.mark.parametrize("vector", VECTORS, ids=["V1", "V2", "V3"])
async def test_url_verification_vectors(vector: tuple[str, ...], database_url: str) -> None:
    token, key, corp, sig, ts, nonce, echostr, expected = vector
    settings = make_settings(
        database_url=database_url, wecom_corp_id=corp, wecom_agent_id="1", wecom_secret="s", wecom_token=token, wecom_aes_key=key
    )
    clock = FrozenClock(dt.datetime.fromtimestamp(int(ts), UTC))
    rt = await build_runtime(settings, clock)
    async with TestClient(TestServer(create_app(settings, runtime=rt))) as client:
        resp = await client.get(f"/callback/wecom?msg_signature={sig}&timestamp={ts}&nonce={nonce}&echostr={echostr}")
        assert resp.status == 200
        assert await resp.text() == expected  # no quotes, no newline
        # The same request with a tampered signature is refused.
        bad = await client.get(f"/callback/wecom?msg_signature={'0' * 40}&timestamp={ts}&nonce={nonce}&echostr={echostr}")
        assert bad.status == 403
        assert (await bad.json())["error"]["code"] == "bad_signature"
    await rt.close()


@pytest.fixture
async def client(settings: Settings, rt: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings, runtime=rt))) as c:
        yield c


@pytest.fixture
def crypto(settings: Settings) -> CallbackCrypto:
    return CallbackCrypto(settings.wecom_token.get(), settings.wecom_aes_key.get(), settings.wecom_corp_id)


async def count(rt: Runtime, table: sa.Table) -> int:
    async with rt.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_text_message_stored_once_across_triple_delivery(client: TestClient, crypto: CallbackCrypto, rt: Runtime) -> None:
    now = rt.clock.timestamp()
    xml = text_xml("zhangsan", "要3箱矿泉水", 1234567890123456, now)
    for nonce in ("1", "2", "3"):  # WeCom re-encrypts each retry: different envelope, same message
        query, body = envelope(crypto, xml, timestamp=now, nonce=nonce)
        resp = await client.post("/callback/wecom", params=query, data=body)
        assert resp.status == 200
        assert await resp.read() == b""
    async with rt.db.read() as conn:
        rows = (await conn.execute(sa.select(inbound_events))).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.channel, row.kind, row.content, row.user_id) == ("wecom", "message.text", "要3箱矿泉水", "zhangsan")
    assert row.dedupe_key == "msg:1234567890123456"
    assert row.raw == xml
    assert row.occurred_at == dt.datetime.fromtimestamp(now, UTC)
    assert await count(rt, outbox) == 1


async def test_concurrent_duplicates_in_one_batch_store_one_row(client: TestClient, crypto: CallbackCrypto, rt: Runtime) -> None:
    import asyncio

    now = rt.clock.timestamp()
    xml = text_xml("lisi", "同一条消息", 55501, now)
    posts = []
    for nonce in range(6):
        query, body = envelope(crypto, xml, timestamp=now, nonce=str(nonce))
        posts.append(client.post("/callback/wecom", params=query, data=body))
    others = []
    for n in range(20):
        query, body = envelope(crypto, text_xml("lisi", f"消息{n}", 60000 + n, now), timestamp=now)
        others.append(client.post("/callback/wecom", params=query, data=body))
    responses = await asyncio.gather(*posts, *others)
    assert [r.status for r in responses] == [200] * 26
    assert await count(rt, inbound_events) == 21
    assert await count(rt, outbox) == 21


async def test_change_events_are_normalised(client: TestClient, crypto: CallbackCrypto, rt: Runtime) -> None:
    now = rt.clock.timestamp()
    cases = [
        (
            event_xml(
                "change_external_contact",
                now,
                ChangeType="add_external_contact",
                UserID="zhangsan",
                ExternalUserID="wmABC",
                State="expo",
                WelcomeCode="WC1",
            ),
            "change_external_contact.add_external_contact",
        ),
        (
            event_xml("change_external_contact", now, ChangeType="del_follow_user", UserID="zhangsan", ExternalUserID="wmABC"),
            "change_external_contact.del_follow_user",
        ),
        (
            event_xml(
                "change_external_chat",
                now,
                ChatId="wrChat1",
                ChangeType="update",
                UpdateDetail="add_member",
                JoinScene=3,
                MemChangeCnt=1,
                MemChangeList="<Item>wmABC</Item>",
            ),
            "change_external_chat.update",
        ),
        (event_xml("change_external_tag", now, Id="et1", TagType="tag", ChangeType="create"), "change_external_tag.create"),
        (event_xml("kf_msg_or_event", now, Token="ENCtoken", OpenKfId="wkSandboxKf0000001"), "kf_msg_or_event"),
        (event_xml("enter_agent", now, EventKey=""), "event.enter_agent"),
    ]
    for xml, _ in cases:
        query, body = envelope(crypto, xml, timestamp=now)
        assert (await client.post("/callback/wecom", params=query, data=body)).status == 200
    async with rt.db.read() as conn:
        rows = (await conn.execute(sa.select(inbound_events).order_by(inbound_events.c.id))).all()
    assert [r.kind for r in rows] == [k for _, k in cases]
    assert rows[0].external_userid == "wmABC" and rows[0].user_id == "zhangsan" and rows[0].payload["State"] == "expo"
    assert rows[2].chat_id == "wrChat1" and rows[2].payload["MemChangeList"] == ["wmABC"]
    assert rows[4].open_kfid == "wkSandboxKf0000001"


async def test_unknown_kind_is_stored_not_crashing(client: TestClient, crypto: CallbackCrypto, rt: Runtime) -> None:
    now = rt.clock.timestamp()
    xml = f"<xml><ToUserName>x</ToUserName><FromUserName>u</FromUserName><CreateTime>{now}</CreateTime><MsgType>hologram</MsgType></xml>"
    query, body = envelope(crypto, xml, timestamp=now)
    resp = await client.post("/callback/wecom", params=query, data=body)
    assert resp.status == 200
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(inbound_events))).one()
    assert (row.kind, row.status) == ("unknown", "unknown")
    assert await count(rt, outbox) == 0


BOMB = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><xml><Encrypt>&lol2;</Encrypt></xml>'
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>'


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong_signature", 403, "bad_signature"),
        ("stale_timestamp", 403, "stale_timestamp"),
        ("future_timestamp", 403, "stale_timestamp"),
        ("not_xml", 400, "bad_xml"),
        ("xml_bomb", 400, "bad_xml"),
        ("external_entity", 400, "bad_xml"),
        ("no_encrypt", 400, "bad_request"),
        ("missing_params", 400, "bad_request"),
        ("too_large", 413, "payload_too_large"),
        ("wrong_corp", 403, "wrong_receiver"),
        ("garbled_ciphertext", 400, "bad_ciphertext"),
        ("entity_in_plaintext", 400, "bad_xml"),
    ],
)
async def test_bad_input_rejected_and_nothing_stored(
    case: str, status: int, code: str, client: TestClient, crypto: CallbackCrypto, rt: Runtime, settings: Settings
) -> None:
    now = rt.clock.timestamp()
    xml = text_xml("zhangsan", "hi", 42, now)
    query, body = envelope(crypto, xml, timestamp=now)
    if case == "wrong_signature":
        query["msg_signature"] = "f" * 40
    elif case == "stale_timestamp":
        query, body = envelope(crypto, xml, timestamp=now - settings.callback_max_skew - 1)
    elif case == "future_timestamp":
        query, body = envelope(crypto, xml, timestamp=now + settings.callback_max_skew + 60)
    elif case == "not_xml":
        body = b'{"hello": "json"}'
    elif case == "xml_bomb":
        body = BOMB.encode()
    elif case == "external_entity":
        body = EXTERNAL.encode()
    elif case == "no_encrypt":
        body = b"<xml><ToUserName>x</ToUserName></xml>"
    elif case == "missing_params":
        query = {"timestamp": query["timestamp"]}
    elif case == "too_large":
        body = b"<xml>" + b"a" * (settings.max_body_bytes + 1) + b"</xml>"
    elif case == "wrong_corp":
        other = CallbackCrypto(crypto.token, settings.wecom_aes_key.get(), "wwSomeOtherCorp")
        query, body = envelope(other, xml, timestamp=now)
    elif case == "garbled_ciphertext":
        garbled = "QUJD" * 10
        query = {"msg_signature": signature(crypto.token, str(now), "5", garbled), "timestamp": str(now), "nonce": "5"}
        body = f"<xml><Encrypt><![CDATA[{garbled}]]></Encrypt></xml>".encode()
    elif case == "entity_in_plaintext":
        query, body = envelope(crypto, BOMB.replace("Encrypt", "Content"), timestamp=now)
    resp = await client.post("/callback/wecom", params=query, data=body)
    assert resp.status == status
    payload = await resp.json()
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]
    assert await count(rt, inbound_events) == 0
    assert await count(rt, outbox) == 0


async def test_database_down_answers_503_so_wecom_retries(crypto: CallbackCrypto, clock: FrozenClock) -> None:
    settings = make_settings(database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    rt = await build_runtime(settings, clock, check_migrations=False)
    async with TestClient(TestServer(create_app(settings, runtime=rt))) as c:
        query, body = envelope(crypto, text_xml("u", "hi", 7, clock.timestamp()), timestamp=clock.timestamp())
        resp = await c.post("/callback/wecom", params=query, data=body)
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "unavailable"
    await rt.close()


async def test_writer_batch_stores_rows_and_outbox_as_one_at_a_time_would(rt: Runtime) -> None:
    """One batch through the group-commit writer (one array statement on PostgreSQL, VALUES on SQLite): new events are
    stored field for field with one outbox row each, a key stored earlier and a key twice in the batch are
    duplicates, an unknown kind is stored without an outbox row."""
    import asyncio

    now = rt.clock.now()
    ts = rt.clock.timestamp()
    texts = [text_xml(f"user{n}", f'要{n}箱矿泉水 "引号" \\ 反斜杠', 70000 + n, ts) for n in range(4)]
    unknown = f"<xml><FromUserName><![CDATA[x]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[hologram]]></MsgType></xml>"
    items = [normalize_wecom(parse_xml(x), x, now) for x in [*texts, unknown, texts[1]]]
    assert set(items[0].row(now)) == set(_COLUMNS)  # the array INSERT sends every column row() names

    writer = InboundWriter(rt)
    try:
        first = await writer.submit(items[0])  # stored before the batch
        assert not first.duplicate
        results = await asyncio.gather(*(writer.submit(item) for item in [items[0], *items[1:]]))
    finally:
        await writer.close()
    assert [r.duplicate for r in results] == [True, False, False, False, False, True]

    async with rt.db.read() as conn:
        rows = {r.dedupe_key: r for r in await conn.execute(sa.select(inbound_events))}
        boxes = list(await conn.execute(sa.select(outbox).order_by(outbox.c.id)))
    assert len(rows) == 5
    for item in items[:5]:
        row = rows[item.dedupe_key]
        stored = {c: getattr(row, c) for c in _COLUMNS if c != "received_at"}
        assert stored == {c: v for c, v in item.row(now).items() if c != "received_at"}
        assert row.received_at == now
    assert rows[items[4].dedupe_key].status == "unknown"
    pending_ids = sorted(r.id for r in rows.values() if r.status == "pending")
    assert sorted(b.payload["inbound_id"] for b in boxes) == pending_ids
    assert all(b.payload == {"inbound_id": b.payload["inbound_id"]} and b.topic == TOPIC for b in boxes)
    assert all(b.created_at == now and b.next_attempt_at == now + FAST_PATH_GRACE and b.attempts == 0 for b in boxes)


async def test_writer_connection_lost_between_batches_loses_nothing_and_recovers(
    client: TestClient, crypto: CallbackCrypto, rt: Runtime
) -> None:
    """The writer keeps its connection between batches (no pre-ping): when the database drops it meanwhile, the next
    callback may fail — non-200, nothing of it stored, WeCom retries — and the writer carries on on a fresh
    connection. Every 200 is stored with its outbox row."""
    if rt.db.dialect != "postgresql":
        pytest.skip("terminating a server connection is PostgreSQL's")
    now = rt.clock.timestamp()
    writer(rt).linger = 60  # however slow this machine, the second callback finds the dead connection still held

    async def post(msg_id: int) -> int:
        query, body = envelope(crypto, text_xml("wangwu", f"消息{msg_id}", msg_id, now), timestamp=now, nonce=str(msg_id))
        return (await client.post("/callback/wecom", params=query, data=body)).status

    assert await post(81001) == 200
    async with rt.db.read() as conn:  # every other connection to this database: the writer's among them
        killed = (
            await conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        ).scalar_one()
    assert killed >= 1
    statuses = {81001: 200, 81002: await post(81002), 81003: await post(81003)}
    assert statuses[81002] in (200, 503)
    assert statuses[81003] == 200
    async with rt.db.read() as conn:
        keys = {r.dedupe_key for r in await conn.execute(sa.select(inbound_events.c.dedupe_key))}
    assert keys == {f"msg:{m}" for m, status in statuses.items() if status == 200}
    assert await count(rt, outbox) == len(keys)


def test_the_gateway_crypto_loads_no_api_client_of_wechatpy() -> None:
    """A server decrypts callbacks with wechatpy's PrpCrypto; importing it must not import wechatpy's API clients
    (requests, urllib3 …: ~200 modules and several MiB in every server process) — yet the full package still
    works for whoever asks for it."""
    import subprocess
    import sys

    probe = (
        "import sys, bots.gateway.crypto as c\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3', 'dateutil')]\n"
        "heavy += [m for m in sys.modules if m.startswith(('wechatpy.client', 'wechatpy.work.client', 'wechatpy.pay'))]\n"
        "assert heavy == [], heavy\n"
        "key = bytes(range(32))\n"
        "box = c.WorkPrpCrypto(key).encrypt('<xml>hi</xml>', 'corp1')\n"
        "assert c.WorkPrpCrypto(key).decrypt(box, 'corp1') == '<xml>hi</xml>'\n"
        "from wechatpy import WeChatClient\n"
        "from wechatpy.work import WeChatClient as WorkClient\n"
        "assert WeChatClient.__module__ == 'wechatpy.client' and WorkClient.__module__ == 'wechatpy.work.client'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
