"""Chat archive intake (会话内容存档): decrypted records from the SDK sidecar → stored once → timeline, group
activity and (through the outbox topic ``archive.message``) tagging.

The official SDK is a closed C library, so a sidecar (docs/archive-sidecar.md) decrypts and hands the records
over — by ``POST /api/v1/archive/messages`` or ``run.py archive import FILE.jsonl``; both land in
:func:`ingest`. A malformed record is rejected with its position and reason; the others are kept. A record
is stored once per msgid however often it is sent, and everything it feeds is written in the same
transaction as the record, so a batch sent again (the sidecar retrying after a timeout) changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.runtime import Runtime
from scrm.crm.archive.models import archive_messages
from scrm.crm.customers.services import ensure_customer
from scrm.crm.groups import services as groups
from scrm.crm.groups.domain import EXTERNAL, business_day, day_bounds, guess_member_type
from scrm.crm.timeline.services import Kind, add_entry

TOPIC = "archive.message"  # payload {"msgid"}: the tagging package reads the record and tags from its content
ACTIONS = ("send", "recall", "switch")
CHUNK = 200  # records per transaction: bounds how long a batch holds SQLite's write lock
# msgtime in milliseconds, between 2000-01-01 and 2100-01-01: anything else is a unit mistake or garbage.
MSGTIME_RANGE = (946_684_800_000, 4_102_444_800_000)
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines"}
)
MSGTYPE_ZH = {
    "image": "[图片]",
    "voice": "[语音]",
    "video": "[视频]",
    "file": "[文件]",
    "link": "[链接]",
    "emotion": "[表情]",
    "location": "[位置]",
    "weapp": "[小程序]",
    "card": "[名片]",
    "mixed": "[图文]",
    "revoke": "[撤回]",
    "redpacket": "[红包]",
    "voip_doc_share": "[文件]",
    "meeting_voice_call": "[语音通话]",
}


class RecordError(ValueError):
    """A record that cannot be stored; the message says why (Chinese first)."""


class UnreadableBody(ValueError):
    """The body as a whole is not JSON / JSON Lines / UTF-8."""


@dataclass(frozen=True)
class ArchiveRecord:
    msgid: str
    action: str
    from_id: str
    tolist: list[str]
    roomid: str
    msgtime: dt.datetime
    msgtype: str
    content: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    line: int  # 1-based: the line of a JSON Lines body / file, the element of a JSON array
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.error}


@dataclass
class IntakeReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": [r.to_json() for r in self.rejected]}


# ---- parsing (pure) -----------------------------------------------------------------------------------------
def _text(obj: dict[str, Any], name: str, *, max_len: int, required: bool = True) -> str:
    value = obj.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise RecordError(f"{name} 必须是非空字符串 ({name} must be a non-empty string)")
    if len(value) > max_len:
        raise RecordError(f"{name} 超过 {max_len} 个字符 ({name} longer than {max_len})")
    return value


def _millis(obj: dict[str, Any], name: str) -> dt.datetime:
    value = obj.get(name)
    if isinstance(value, str) and value.isdecimal():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(f"{name} 必须是毫秒时间戳整数 ({name} must be an integer of milliseconds)")
    if not MSGTIME_RANGE[0] <= value < MSGTIME_RANGE[1]:
        raise RecordError(f"{name} 不是合理的毫秒时间戳 ({name} out of range; milliseconds since 1970 expected)")
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


def parse_record(obj: Any) -> ArchiveRecord:
    """One decrypted record in WeCom's format → :class:`ArchiveRecord`; :class:`RecordError` says what is wrong.

    ``switch`` records (a member switched corp) carry ``time`` and ``user`` instead of msgtime/from."""
    if not isinstance(obj, dict):
        raise RecordError("记录必须是 JSON 对象 (record must be a JSON object)")
    # PostgreSQL text and JSONB cannot hold NUL: refuse it here rather than fail the whole batch later.
    if "\\u0000" in json.dumps(obj):
        raise RecordError("记录含有 NUL 字符 (record contains a NUL character)")
    msgid = _text(obj, "msgid", max_len=128)
    action = obj.get("action")
    if action not in ACTIONS:
        raise RecordError("action 必须是 send、recall 或 switch (action must be send, recall or switch)")
    if action == "switch":
        user = _text(obj, "user", max_len=128)
        return ArchiveRecord(msgid, "switch", user, [], "", _millis(obj, "time"), "switch", "", obj)
    sender = _text(obj, "from", max_len=128)
    tolist = obj.get("tolist", [])
    if not isinstance(tolist, list) or not all(isinstance(x, str) and 0 < len(x) <= 128 for x in tolist):
        raise RecordError("tolist 必须是字符串数组 (tolist must be an array of ids)")
    roomid = _text(obj, "roomid", max_len=64, required=False)
    msgtype = _text(obj, "msgtype", max_len=32)
    content = ""
    if msgtype == "text":
        text = obj.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("content"), str):
            raise RecordError("文本消息缺少 text.content (text message without text.content)")
        content = text["content"]
    return ArchiveRecord(msgid, action, sender, list(tolist), roomid, _millis(obj, "msgtime"), msgtype, content, obj)


def parse_lines(lines: Iterable[str | bytes], *, start: int = 1) -> Iterator[tuple[int, Any] | Rejected]:
    """JSON Lines: ``(line number, value)`` per non-blank line, or :class:`Rejected` for a line that is not JSON."""
    for number, line in enumerate(lines, start):
        try:
            text = line.decode("utf-8-sig") if isinstance(line, bytes) else line.lstrip("\ufeff")
        except UnicodeDecodeError:
            yield Rejected(number, "不是 UTF-8 编码 (line is not UTF-8)")
            continue
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except ValueError as exc:
            yield Rejected(number, f"不是合法的 JSON (not valid JSON: {exc.args[0] if exc.args else exc})")
        except RecursionError:  # [[[[…]]]] deeper than Python's stack
            yield Rejected(number, "JSON 嵌套过深 (JSON nested too deeply)")


def split_body(raw: bytes, content_type: str) -> tuple[list[tuple[int, Any]], list[Rejected]]:
    """A request body → numbered items and lines already rejected. JSON Lines when the content type says so (or
    the body is several JSON values one per line); otherwise a JSON array of records (a single object is one).
    Raises :class:`UnreadableBody` when the body as a whole cannot be read."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableBody("请求体不是 UTF-8 编码 (body is not UTF-8)") from None
    if not text.strip():
        raise UnreadableBody("请求体为空 (empty body)")
    lines = content_type.lower() in NDJSON_TYPES
    if not lines:
        try:
            data = json.loads(text)
        except RecursionError:
            raise UnreadableBody("请求体 JSON 嵌套过深 (JSON nested too deeply)") from None
        except ValueError as exc:
            # Several objects one per line sent as application/json: read them as the JSON Lines they are.
            if not (text.lstrip().startswith("{") and "Extra data" in str(exc)):
                raise UnreadableBody(f"请求体不是合法的 JSON (body is not valid JSON: {exc})") from None
            lines = True
        else:
            if isinstance(data, dict):
                data = [data]
            if not isinstance(data, list):
                raise UnreadableBody("请求体必须是记录数组或 JSON Lines (body must be an array of records or JSON Lines)")
            return list(enumerate(data, 1)), []
    items: list[tuple[int, Any]] = []
    rejected: list[Rejected] = []
    for got in parse_lines(text.splitlines()):
        (rejected if isinstance(got, Rejected) else items).append(got)  # type: ignore[arg-type]
    return items, rejected


def summary(record: ArchiveRecord, limit: int = 60) -> str:
    """A one-line gist for the timeline title: the text itself, or what kind of message it was."""
    if record.action == "recall":
        return "撤回了一条消息"
    text = " ".join(record.content.split()) if record.content else MSGTYPE_ZH.get(record.msgtype, f"[{record.msgtype}]")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_external(member_id: str) -> bool:
    return guess_member_type(member_id) == EXTERNAL


def counterpart(record: ArchiveRecord) -> tuple[str | None, str]:
    """Whose timeline the record belongs on: (external_userid or None, direction "in"/"out").

    A customer speaking (1:1 or in a group) → theirs; staff speaking in a 1:1 chat → the customer in tolist.
    Staff speaking in a group is on no single customer's timeline."""
    if is_external(record.from_id):
        return record.from_id, "in"
    if not record.roomid:
        for to in record.tolist:
            if is_external(to):
                return to, "out"
    return None, "out"


def _ref(msgid: str) -> str:
    ref = f"archive:{msgid}"
    # The timeline's ref column holds 96 characters; a longer msgid is kept apart by its digest.
    return ref if len(ref) <= 96 else f"archive:{msgid[:40]}:{hashlib.sha256(msgid.encode()).hexdigest()[:40]}"


# ---- storing ------------------------------------------------------------------------------------------------
async def _store_one(conn: AsyncConnection, dialect: str, rec: ArchiveRecord, now: dt.datetime) -> bool:
    inserted = (
        await conn.execute(
            insert_ignore(archive_messages, dialect)
            .values(
                msgid=rec.msgid,
                action=rec.action,
                from_id=rec.from_id,
                tolist=rec.tolist,
                roomid=rec.roomid,
                msgtime=rec.msgtime,
                msgtype=rec.msgtype,
                content=rec.content,
                raw=rec.raw,
                received_at=now,
            )
            .returning(archive_messages.c.msgid)
        )
    ).scalar()
    if inserted is None:
        return False
    if rec.action != "switch":
        external, direction = counterpart(rec)
        if external is not None:
            cid = await ensure_customer(conn, dialect, kind="external_userid", value=external, now=now)
            await conn.execute(archive_messages.update().where(archive_messages.c.msgid == rec.msgid).values(customer_id=cid))
            where = "群聊" if rec.roomid else ("客户" if direction == "in" else "销售")
            await add_entry(
                conn,
                dialect,
                customer_id=cid,
                at=rec.msgtime,
                kind=Kind.MESSAGE,
                title=f"{where}：{summary(rec)}",
                body=rec.content,
                ref=_ref(rec.msgid),
                data={
                    "source": "archive",
                    "msgid": rec.msgid,
                    "from": rec.from_id,
                    "roomid": rec.roomid,
                    "msgtype": rec.msgtype,
                    "action": rec.action,
                    "direction": direction,
                },
            )
        if rec.roomid and rec.action == "send":
            await groups.record_member_activity(conn, rec.roomid, rec.from_id, rec.msgtime)
    await outbox.add(conn, TOPIC, {"msgid": rec.msgid}, now)
    return True


async def refresh_group_day(conn: AsyncConnection, dialect: str, roomid: str, day: dt.date) -> None:
    """Recount a group's messages and distinct senders of one business day from the stored records."""
    start, end = day_bounds(day)
    where = (
        archive_messages.c.roomid == roomid,
        archive_messages.c.action == "send",
        archive_messages.c.msgtime >= start,
        archive_messages.c.msgtime < end,
    )
    row = (await conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(archive_messages.c.from_id))).where(*where))).one()
    await groups.set_message_stats(conn, dialect, roomid, day, messages=int(row[0]), active_members=int(row[1]))


async def store_records(rt: Runtime, records: list[ArchiveRecord]) -> tuple[int, int]:
    """Store a batch in one transaction; returns (accepted, duplicates). See the module docstring."""
    now = rt.clock.now()
    accepted = 0
    days: set[tuple[str, dt.date]] = set()
    async with rt.db.write() as conn:
        for rec in records:
            if await _store_one(conn, rt.db.dialect, rec, now):
                accepted += 1
                if rec.roomid and rec.action == "send":
                    days.add((rec.roomid, business_day(rec.msgtime)))
        for roomid, day in sorted(days):
            await refresh_group_day(conn, rt.db.dialect, roomid, day)
    return accepted, len(records) - accepted


async def ingest(
    rt: Runtime,
    items: Iterable[tuple[int, Any] | Rejected],
    *,
    report: IntakeReport | None = None,
    progress: Callable[[int], None] | None = None,
) -> IntakeReport:
    """Validate and store numbered records (``(line, value)``, or :class:`Rejected` passed through), in
    transactions of :data:`CHUNK`. Bad records are reported with their line; the rest are kept; repeats count as
    duplicates. ``progress`` is told how many items were handled so far."""
    report = report or IntakeReport()
    batch: list[ArchiveRecord] = []
    seen = 0

    async def flush() -> None:
        if batch:
            accepted, duplicates = await store_records(rt, batch)
            report.accepted += accepted
            report.duplicates += duplicates
            batch.clear()
        if progress is not None:
            progress(seen)

    for item in items:
        seen += 1
        if isinstance(item, Rejected):
            report.rejected.append(item)
            continue
        number, value = item
        try:
            batch.append(parse_record(value))
        except RecordError as exc:
            report.rejected.append(Rejected(number, str(exc)))
        if len(batch) >= CHUNK:
            await flush()
    await flush()
    return report
