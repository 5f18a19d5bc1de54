"""Pure rules: a decrypted callback (or a synced kf message) → one normalised inbound record.

No I/O here. Unknown kinds become ``kind="unknown"`` records — stored and logged, never an exception.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

CONTACT_CHANGES = {
    "add_external_contact",
    "edit_external_contact",
    "add_half_external_contact",
    "del_external_contact",
    "del_follow_user",
    "transfer_fail",
}
CHAT_CHANGES = {"create", "update", "dismiss"}
TAG_CHANGES = {"create", "update", "delete", "shuffle"}
MESSAGE_TYPES = {"text", "image", "voice", "video", "location", "link", "file", "miniprogram"}


@dataclass
class Inbound:
    channel: str  # wecom | mp | kf
    kind: str
    dedupe_key: str
    occurred_at: dt.datetime
    payload: dict[str, Any]
    raw: str
    msg_type: str = ""
    event: str = ""
    change_type: str = ""
    from_user: str = ""
    external_userid: str = ""
    user_id: str = ""
    chat_id: str = ""
    open_kfid: str = ""
    content: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_unknown(self) -> bool:
        return self.kind == "unknown" or self.kind.endswith(".unknown")

    def row(self, received_at: dt.datetime) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "kind": self.kind,
            "dedupe_key": self.dedupe_key,
            "msg_type": self.msg_type,
            "event": self.event,
            "change_type": self.change_type,
            "from_user": self.from_user,
            "external_userid": self.external_userid,
            "user_id": self.user_id,
            "chat_id": self.chat_id,
            "open_kfid": self.open_kfid,
            "content": self.content,
            "payload": self.payload,
            "raw": self.raw,
            "occurred_at": self.occurred_at,
            "received_at": received_at,
            "status": "unknown" if self.is_unknown else "pending",
        }


def _s(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _time(fields: dict[str, Any], fallback: dt.datetime) -> dt.datetime:
    raw = _s(fields, "CreateTime")
    if raw.isdecimal():
        try:
            return dt.datetime.fromtimestamp(int(raw), dt.UTC)
        except (OverflowError, OSError, ValueError):
            return fallback
    return fallback


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:40]


def member_changes(fields: dict[str, Any]) -> list[str]:
    """``<MemChangeList><Item>..</Item></MemChangeList>``: one item may come as a plain string."""
    block = fields.get("MemChangeList")
    if not block:
        return []
    if isinstance(block, str):
        return [block.strip()] if block.strip() else []
    items = block.get("Item", []) if isinstance(block, dict) else []
    if isinstance(items, str):
        items = [items]
    return [i.strip() for i in items if isinstance(i, str) and i.strip()]


def normalize_wecom(fields: dict[str, Any], raw: str, received_at: dt.datetime) -> Inbound:
    """A decrypted WeCom callback (app message, 客户联系/客户群/标签 event, 微信客服 notice) → Inbound."""
    msg_type = _s(fields, "MsgType").lower()
    occurred = _time(fields, received_at)
    base = {
        "channel": "wecom",
        "occurred_at": occurred,
        "payload": fields,
        "raw": raw,
        "msg_type": msg_type,
        "from_user": _s(fields, "FromUserName"),
    }
    if msg_type in MESSAGE_TYPES:
        msg_id = _s(fields, "MsgId") or _digest(raw)
        return Inbound(
            kind=f"message.{msg_type}",
            dedupe_key=f"msg:{msg_id}",
            user_id=_s(fields, "FromUserName"),
            content=_s(fields, "Content") if msg_type == "text" else "",
            **base,
        )
    if msg_type != "event":
        return Inbound(kind="unknown", dedupe_key=f"raw:{_digest(raw)}", **base)
    event = _s(fields, "Event")
    change = _s(fields, "ChangeType")
    base["event"] = event
    base["change_type"] = change
    if event == "change_external_contact":
        kind = f"{event}.{change}" if change in CONTACT_CHANGES else f"{event}.unknown"
        user, ext = _s(fields, "UserID"), _s(fields, "ExternalUserID")
        key = f"{event}:{change}:{user}:{ext}:{_s(fields, 'CreateTime')}:{_s(fields, 'State')}"
        return Inbound(kind=kind, dedupe_key=_bounded(key), user_id=user, external_userid=ext, **base)
    if event == "change_external_chat":
        kind = f"{event}.{change}" if change in CHAT_CHANGES else f"{event}.unknown"
        chat = _s(fields, "ChatId")
        members = member_changes(fields)
        payload = {**fields, "MemChangeList": members}
        base["payload"] = payload
        key = f"{event}:{change}:{chat}:{_s(fields, 'UpdateDetail')}:{_s(fields, 'CreateTime')}:{_digest(*members)}"
        return Inbound(kind=kind, dedupe_key=_bounded(key), chat_id=chat, **base)
    if event == "change_external_tag":
        kind = f"{event}.{change}" if change in TAG_CHANGES else f"{event}.unknown"
        key = f"{event}:{change}:{_s(fields, 'TagType')}:{_s(fields, 'Id')}:{_s(fields, 'CreateTime')}"
        return Inbound(kind=kind, dedupe_key=_bounded(key), **base)
    if event == "sys_approval_change":  # 审批 app: one application's status changed; repeats dedupe on (SpNo, SpStatus)
        info = fields.get("ApprovalInfo") if isinstance(fields.get("ApprovalInfo"), dict) else {}
        key = f"approval:{_s(info, 'SpNo')}:{_s(info, 'SpStatus')}"
        return Inbound(kind="sys_approval_change", dedupe_key=_bounded(key), user_id=_s(fields, "FromUserName"), **base)
    if event == "kf_msg_or_event":
        kfid = _s(fields, "OpenKfId")
        key = f"kf:{kfid}:{_s(fields, 'Token')}:{_s(fields, 'CreateTime')}"
        return Inbound(kind="kf_msg_or_event", dedupe_key=_bounded(key), open_kfid=kfid, **base)
    if event:
        return Inbound(kind=f"event.{event}", dedupe_key=f"raw:{_digest(raw)}", user_id=_s(fields, "FromUserName"), **base)
    return Inbound(kind="unknown", dedupe_key=f"raw:{_digest(raw)}", **base)


def normalize_mp(fields: dict[str, Any], raw: str, received_at: dt.datetime) -> Inbound:
    """An Official Account (公众号) message or event → Inbound (from_user is the follower's openid)."""
    msg_type = _s(fields, "MsgType").lower()
    openid = _s(fields, "FromUserName")
    base = {
        "channel": "mp",
        "occurred_at": _time(fields, received_at),
        "payload": fields,
        "raw": raw,
        "msg_type": msg_type,
        "from_user": openid,
    }
    if msg_type in MESSAGE_TYPES:
        msg_id = _s(fields, "MsgId") or _digest(raw)
        return Inbound(
            kind=f"message.{msg_type}", dedupe_key=f"msg:{msg_id}", content=_s(fields, "Content") if msg_type == "text" else "", **base
        )
    if msg_type == "event":
        event = _s(fields, "Event").lower()
        key = f"event:{openid}:{_s(fields, 'CreateTime')}:{event}:{_s(fields, 'EventKey')}"
        return Inbound(kind=f"event.{event or 'unknown'}", dedupe_key=_bounded(key), event=event, **base)
    return Inbound(kind="unknown", dedupe_key=f"raw:{_digest(raw)}", **base)


def normalize_kf(msg: dict[str, Any], received_at: dt.datetime) -> Inbound:
    """One item of ``kf/sync_msg``'s msg_list → Inbound (dedupe on msgid). NUL characters are dropped: PostgreSQL
    cannot store them, and one such message would fail its whole sync batch on every retry (the cursor never moves,
    the 微信客服 channel stops for everyone)."""
    msg = _without_nul(msg)
    msg_type = str(msg.get("msgtype", "")).lower()
    origin = msg.get("origin")
    send_time = msg.get("send_time")
    occurred = received_at
    if isinstance(send_time, int | str) and str(send_time).isdecimal():
        occurred = dt.datetime.fromtimestamp(int(send_time), dt.UTC)
    content = ""
    event_type = ""
    external = str(msg.get("external_userid", ""))
    if msg_type == "text":
        content = str((msg.get("text") or {}).get("content", ""))
    if msg_type == "event":
        ev = msg.get("event") or {}
        event_type = str(ev.get("event_type", ""))
        external = external or str(ev.get("external_userid", ""))
    role = {3: "customer", 4: "system", 5: "servicer"}.get(origin if isinstance(origin, int) else -1, "other")
    if msg_type == "event":
        kind = f"kf.event.{event_type or 'unknown'}"
    elif msg_type in MESSAGE_TYPES:
        kind = f"kf.{role}.{msg_type}"
    else:
        kind = "unknown"
    msgid = str(msg.get("msgid", "")) or _digest(json.dumps(msg, sort_keys=True, ensure_ascii=False))
    return Inbound(
        channel="kf",
        kind=kind,
        dedupe_key=_bounded(f"kfmsg:{msgid}"),
        occurred_at=occurred,
        payload=msg,
        raw=json.dumps(msg, ensure_ascii=False),
        msg_type=msg_type,
        event=event_type,
        from_user=external if role == "customer" else str(msg.get("servicer_userid", "")),
        external_userid=external,
        open_kfid=str(msg.get("open_kfid", "")),
        content=content,
    )


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _bounded(key: str) -> str:
    """Keys fit the 128-char column; long ones keep a readable head and a digest of the whole."""
    return key if len(key) <= 128 else key[:80] + ":" + _digest(key)
