"""Chat-archive intake (会话内容存档): the API (array and JSON Lines, dedupe, malformed records reported and the rest
kept, auth, size cap), what a record feeds (customers, timeline, group daily stats, last activity, outbox for
tagging) and ``run.py archive import FILE.jsonl``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scrm.app import archive_import as cli
from scrm.app.webapp import create_app
from scrm.core import outbox
from scrm.core.clock import SHANGHAI, UTC
from scrm.core.runtime import Runtime
from scrm.crm.archive import web as archive_web
from scrm.crm.archive.models import archive_messages
from scrm.crm.archive.services import parse_record, split_body
from scrm.crm.customers.services import find_customer
from scrm.crm.groups import services as groups
from scrm.crm.groups.models import group_daily_stats, group_members
from scrm.crm.timeline.services import entries

ROOT = Path(__file__).resolve().parents[2]
ROOM = "wrRoomArchive01"
NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)


def ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def record(
    msgid: str, sender: str, to: list[str], text: str = "你好", *, room: str = "", when: dt.datetime = NOON, **extra: Any
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": to,
        "roomid": room,
        "msgtime": ms(when),
        "msgtype": "text",
        "text": {"content": text},
    }
    rec.update(extra)
    return rec


def conversation() -> list[dict[str, Any]]:
    """A customer asks, the salesperson answers, two customers and the salesperson talk in a group."""
    return [
        record("m1", "wmAlice", ["sales01"], "要3箱矿泉水"),
        record("m2", "sales01", ["wmAlice"], "好的，马上安排"),
        record("g1", "wmAlice", ["sales01", "wmBob"], "大家好", room=ROOM),
        record("g2", "wmBob", ["sales01", "wmAlice"], "你好", room=ROOM, when=NOON + dt.timedelta(minutes=1)),
        record(
            "g3",
            "wmAlice",
            ["sales01", "wmBob"],
            "图片",
            room=ROOM,
            when=NOON + dt.timedelta(minutes=2),
            msgtype="image",
            image={"md5sum": "x"},
        ),
        record("g4", "sales01", ["wmAlice", "wmBob"], "次日", room=ROOM, when=dt.datetime(2026, 11, 24, 0, 1, tzinfo=SHANGHAI)),
    ]


def auth(rt: Runtime) -> dict[str, str]:
    return {"Authorization": f"Bearer {rt.settings.admin_token.get()}"}


def wired(app: web.Application) -> None:
    """Mount the archive route unless the app factory does already."""
    if not any(r.canonical == "/api/v1/archive/messages" for r in app.router.resources()):
        archive_web.setup_routes(app)


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[TestClient]:
    app = create_app(rt.settings, runtime=rt)
    wired(app)
    app[archive_web.MAX_BODY_BYTES] = 4096  # small, so the cap is cheap to test
    async with TestClient(TestServer(app)) as c:
        yield c


async def post(client: TestClient, rt: Runtime, body: bytes | str, content_type: str = "application/json") -> tuple[int, Any]:
    resp = await client.post("/api/v1/archive/messages", data=body, headers={**auth(rt), "Content-Type": content_type})
    return resp.status, await resp.json()


# ---- parsing (pure) --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"msgid": ""}, "msgid"),
        ({"action": "delete"}, "action"),
        ({"msgtime": 1763870400}, "msgtime"),  # seconds, not milliseconds
        ({"msgtime": "soon"}, "msgtime"),
        ({"tolist": "sales01"}, "tolist"),
        ({"from": None}, "from"),
        ({"text": {}}, "text.content"),
        ({"roomid": "r" * 65}, "roomid"),
        ({"text": {"content": "a\u0000b"}}, "NUL"),
    ],
)
def test_malformed_records_say_why(change: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error.replace(".", r"\.")):
        parse_record({**record("m1", "wmA", ["s"]), **change})


def test_switch_and_recall_records() -> None:
    switch = parse_record({"msgid": "s1", "action": "switch", "time": ms(NOON), "user": "sales01"})
    assert (switch.from_id, switch.msgtype, switch.msgtime) == ("sales01", "switch", NOON.astimezone(UTC))
    recall = parse_record(record("r1", "wmA", ["s"], msgtype="revoke", text=None, revoke={"pre_msgid": "m1"}, action="recall"))
    assert (recall.action, recall.content) == ("recall", "")


def test_body_shapes() -> None:
    items, bad = split_body(b'{"a":1}\n\n{"b":2}\nnot json\n', "application/x-ndjson")
    assert items == [(1, {"a": 1}), (3, {"b": 2})] and [(r.line, "JSON" in r.error) for r in bad] == [(4, True)]
    assert split_body(b'[{"a":1},{"b":2}]', "application/json") == ([(1, {"a": 1}), (2, {"b": 2})], [])
    assert split_body(b'{"a":1}', "application/json") == ([(1, {"a": 1})], [])
    assert split_body(b'{"a":1}\n{"b":2}\n', "application/json")[0] == [(1, {"a": 1}), (2, {"b": 2})]  # JSON Lines sent as JSON


# ---- the API ---------------------------------------------------------------------------------------------------
async def test_auth_is_required(client: TestClient, rt: Runtime) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = await client.post("/api/v1/archive/messages", json=conversation(), headers=headers)
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(archive_messages))).scalar_one() == 0


async def test_array_intake_dedupes_and_reports_bad_records(client: TestClient, rt: Runtime) -> None:
    batch: list[Any] = [*conversation()[:3], {"action": "send"}, "text", conversation()[0]]
    status, body = await post(client, rt, json.dumps(batch))
    assert status == 200
    assert (body["accepted"], body["duplicates"]) == (3, 1)  # the last one repeats the first
    assert [r["line"] for r in body["rejected"]] == [4, 5] and "msgid" in body["rejected"][0]["error"]
    # The sidecar sends the batch again (it timed out waiting): all duplicates, still 200, nothing new.
    status, again = await post(client, rt, json.dumps(conversation()[:3]))
    assert (status, again) == (200, {"accepted": 0, "duplicates": 3, "rejected": []})
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(archive_messages))).scalar_one() == 3
        topics = [r.payload for r in await conn.execute(sa.select(outbox.outbox).where(outbox.outbox.c.topic == "archive.message"))]
    assert sorted(p["msgid"] for p in topics) == ["g1", "m1", "m2"]


async def test_ndjson_intake_reports_lines(client: TestClient, rt: Runtime) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in conversation()[:2]]
    body = "\n".join([lines[0], "", "{broken", lines[1], json.dumps({**conversation()[2], "msgtime": "x"})]) + "\n"
    status, report = await post(client, rt, body.encode(), "application/x-ndjson")
    assert status == 200 and report["accepted"] == 2
    assert [(r["line"], r["error"].split(" ")[0]) for r in report["rejected"]] == [(3, "不是合法的"), (5, "msgtime")]


async def test_unusable_bodies(client: TestClient, rt: Runtime) -> None:
    for raw, ctype, code in (
        (b"", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b'"a string"', "application/json", 400),
        (b"\xff\xfe[]", "application/json", 400),
        (b"[]", "application/json", 400),
    ):
        status, body = await post(client, rt, raw, ctype)
        assert (status, body["error"]["code"]) == (code, "invalid_input"), raw
    status, body = await post(client, rt, json.dumps([{"msgid": "x"}, 3]))
    assert status == 422 and body["error"]["code"] == "invalid_input" and [r["line"] for r in body["rejected"]] == [1, 2]


async def test_size_cap(client: TestClient, rt: Runtime) -> None:
    big = json.dumps([record(f"m{i}", "wmA", ["s"], "字" * 50) for i in range(40)])
    assert len(big.encode()) > 4096
    status, body = await post(client, rt, big)
    assert status == 413 and body["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap holds while reading
        for _ in range(10):
            yield b" " * 1000

    resp = await client.post("/api/v1/archive/messages", data=chunks(), headers=auth(rt))
    assert resp.status == 413


async def test_records_feed_timeline_group_stats_and_activity(client: TestClient, rt: Runtime) -> None:
    async with rt.db.write() as conn:
        await groups.members_joined(
            conn, rt.db.dialect, ROOM, ["wmAlice", "wmBob", "sales01"], at=NOON - dt.timedelta(days=1), now=rt.clock.now()
        )
    switch = {"msgid": "sw1", "action": "switch", "time": ms(NOON), "user": "sales01"}
    recall = record(
        "r1",
        "wmAlice",
        ["sales01"],
        action="recall",
        msgtype="revoke",
        text=None,
        revoke={"pre_msgid": "m1"},
        when=NOON + dt.timedelta(minutes=1),
    )
    status, body = await post(client, rt, json.dumps([*conversation(), switch, recall]))
    assert (status, body["accepted"], body["rejected"]) == (200, 8, [])

    async with rt.db.read() as conn:
        alice = await find_customer(conn, "external_userid", "wmAlice")
        bob = await find_customer(conn, "external_userid", "wmBob")
        assert alice is not None and bob is not None
        alice_lines = [(e.title, e.ref, e.kind) for e in reversed(await entries(conn, alice, kinds=["message"]))]
        bob_lines = [e.title for e in await entries(conn, bob, kinds=["message"])]
        stats = {r.day: (r.messages, r.active_members) for r in await conn.execute(sa.select(group_daily_stats))}
        active = {r.member_id: r.last_active_at for r in await conn.execute(sa.select(group_members))}
        owners = {r.msgid: r.customer_id for r in await conn.execute(sa.select(archive_messages))}
    assert alice_lines == [
        ("客户：要3箱矿泉水", "archive:m1", "message"),
        ("销售：好的，马上安排", "archive:m2", "message"),  # staff → customer: the customer in tolist
        ("群聊：大家好", "archive:g1", "message"),
        ("客户：撤回了一条消息", "archive:r1", "message"),
        ("群聊：[图片]", "archive:g3", "message"),
    ]
    assert bob_lines == ["群聊：你好"]
    assert owners == {"m1": alice, "m2": alice, "r1": alice, "g1": alice, "g2": bob, "g3": alice, "g4": None, "sw1": None}
    # Business days in Shanghai: three messages by two people at noon, one just after midnight.
    # (The day before holds the joins only.)
    assert stats == {dt.date(2026, 11, 22): (0, 0), dt.date(2026, 11, 23): (3, 2), dt.date(2026, 11, 24): (1, 1)}
    assert active["wmAlice"] == (NOON + dt.timedelta(minutes=2)).astimezone(UTC)
    assert active["sales01"] == dt.datetime(2026, 11, 24, 0, 1, tzinfo=SHANGHAI).astimezone(UTC)
    async with rt.db.read() as conn:
        (membership,) = await groups.memberships_of(conn, alice)
    assert membership.last_active_at == active["wmAlice"]

    # The outbox rows for tagging are handled (tagging.rules and tagging.segments) and end done.
    async with rt.db.read() as conn:
        ids = [r.id for r in await conn.execute(sa.select(outbox.outbox.c.id).where(outbox.outbox.c.topic == "archive.message"))]
    assert len(ids) == 8
    for oid in ids:
        await outbox.dispatch(rt, oid, final_try=True)
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).where(outbox.outbox.c.done_at.is_(None)))).scalar_one() == 0


# ---- the command -----------------------------------------------------------------------------------------------
def jsonl(path: Path) -> Path:
    good = [json.dumps(r, ensure_ascii=False) for r in conversation()]
    path.write_text(
        "\n".join([good[0], good[1], "oops", good[2], json.dumps({"msgid": "x", "action": "send"}), *good[3:], ""]), encoding="utf-8"
    )
    return path


async def test_archive_import_command(rt: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = jsonl(tmp_path / "archive.jsonl")
    assert await asyncio.to_thread(cli.main, str(path), rt.settings) == 1
    out, err = capsys.readouterr()
    assert f"{path}:3: 不是合法的 JSON" in err and f"{path}:5: " in err
    assert "6 条新记录 new, 0 条重复 duplicates, 2 行有问题 rejected" in out and "] 8/8 行" in out
    assert await asyncio.to_thread(cli.main, str(path), rt.settings) == 1
    assert "0 条新记录 new, 6 条重复 duplicates" in capsys.readouterr().out
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(archive_messages))).scalar_one() == 6
    assert cli.main(str(tmp_path / "missing.jsonl"), rt.settings) == 2


def test_archive_import_subprocess(tmp_path: Path) -> None:
    env = {"SCRM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "PATH": "/usr/bin:/bin", "SCRM_CONFIG_FILE": "/dev/null"}
    path = jsonl(tmp_path / "a.jsonl")
    run = subprocess.run(
        [sys.executable, "run.py", "archive", "import", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "6 条新记录 new" in run.stdout and f"{path}:3:" in run.stderr
