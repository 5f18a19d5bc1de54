"""Emulated WeCom endpoints: token, app messages, members, JS-SDK tickets, OAuth, 微信客服 (kf).

Shapes and errcodes follow docs/wecom.md §4–§6; where the real errcode is unknown the constant in
:class:`bots.outbound.client.Errcode` is marked (unconfirmed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

from bots.outbound.client import Errcode
from bots.sandbox.endpoints import ApiFailure, Call, Endpoint, decode_cursor, encode_cursor, media_upload
from bots.sandbox.entities import random_id
from bots.sandbox.state import SandboxState

MSGID = re.compile(r"[0-9A-Za-z_-]{1,32}")
MAX_TEXT_BYTES = 2048


def _image_of(state: SandboxState, api: str, call: Call) -> str | None:
    """The media_id of an image message (None for other types): one this account uploaded, under 3 days old,
    else 40007 — as WeCom answers a made-up or expired id."""
    if call.field("msgtype") != "image":
        return None
    media_id = call.field("image", dict).get("media_id")
    if not isinstance(media_id, str) or state.live_media(api, media_id, "image") is None:
        raise ApiFailure(Errcode.INVALID_MEDIA_ID)
    return media_id


def _text_of(call: Call) -> str:
    """The message text (other message types are recorded by type, e.g. "[image]")."""
    msgtype = call.field("msgtype")
    if msgtype != "text":
        call.field(msgtype, dict)
        return f"[{msgtype}]"
    content = call.text_content()
    if len(content.encode("utf-8")) > MAX_TEXT_BYTES:
        raise ApiFailure(Errcode.CONTENT_TOO_LONG, "content size out of limit")
    return content


# ---- credentials ---------------------------------------------------------------------------------------
def gettoken(state: SandboxState, call: Call) -> dict[str, Any]:
    corpid = call.query.get("corpid", "")
    secret = call.query.get("corpsecret", "")
    if not corpid:
        raise ApiFailure(Errcode.MISSING_CORP_ID, "corpid missing")
    if not secret:
        raise ApiFailure(Errcode.MISSING_SECRET, "corpsecret missing")
    if corpid != state.corp_id:
        raise ApiFailure(Errcode.INVALID_CORP_ID, "invalid corpid")
    if secret != state.corp_secret:
        raise ApiFailure(Errcode.INVALID_SECRET, "invalid credential")
    return {"access_token": state.issue_token("wecom"), "expires_in": state.token_ttl}


def _ticket(state: SandboxState, kind: str) -> dict[str, Any]:
    ticket = state.js_tickets.setdefault(kind, random_id("sM4AOVdWfPE4DxkXGEs8V", 60))
    return {"ticket": ticket, "expires_in": 7200}


def ticket_get(state: SandboxState, call: Call) -> dict[str, Any]:
    if call.param("type") != "agent_config":
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid type")
    return _ticket(state, "agent_config")


def get_jsapi_ticket(state: SandboxState, call: Call) -> dict[str, Any]:
    return _ticket(state, "jsapi")


def auth_getuserinfo(state: SandboxState, call: Call) -> dict[str, Any]:
    grant = state.redeem(state.oauth_codes, call.query.get("code", ""), state.oauth_code_ttl)
    if grant is None:
        raise ApiFailure(Errcode.INVALID_OAUTH_CODE, "invalid code")
    userid = grant.subject["userid"]
    if userid not in state.members:
        # Not a member of the corp: WeCom answers with an openid and no userid (doc 91023).
        return {"openid": "o" + hashlib.sha256(userid.encode()).hexdigest()[:27]}
    return {"userid": userid}


# ---- members -------------------------------------------------------------------------------------------
def _members_of(state: SandboxState, call: Call) -> list[Any]:
    department = call.query.get("department_id", "1")
    if not department.isdecimal():
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid department_id")
    return [m for m in state.members.values() if int(department) in m.department or department == "1"]


def user_simplelist(state: SandboxState, call: Call) -> dict[str, Any]:
    return {
        "userlist": [
            {"userid": m.userid, "name": m.name, "department": m.department, "open_userid": m.userid} for m in _members_of(state, call)
        ]
    }


def _member_dict(m: Any) -> dict[str, Any]:
    return {
        "userid": m.userid,
        "name": m.name,
        "department": m.department,
        "position": m.position,
        "mobile": m.mobile,
        "gender": m.gender,
        "email": m.email,
        "status": m.status,
        "main_department": m.department[0],
        "direct_leader": list(m.direct_leader),
    }


def user_list(state: SandboxState, call: Call) -> dict[str, Any]:
    return {"userlist": [_member_dict(m) for m in _members_of(state, call)]}


def user_get(state: SandboxState, call: Call) -> dict[str, Any]:
    member = state.members.get(call.param("userid"))
    if member is None:
        raise ApiFailure(Errcode.INVALID_USERID, "userid not found")
    return _member_dict(member)


# ---- app messages --------------------------------------------------------------------------------------
def message_send(state: SandboxState, call: Call) -> dict[str, Any]:
    """App message to members. Unknown members come back in invaliduser (81013 when none is valid); a member
    over 30/min or 1000/h does not receive it — silently, as WeCom does — and the record says "dropped"."""
    if str(call.field("agentid", int)) != state.agent_id:
        raise ApiFailure(Errcode.INVALID_AGENT_ID, "invalid agentid")
    touser = call.field("touser", str, required=False, default="")
    content = _text_of(call)
    users = list(state.members) if touser == "@all" else [u for u in touser.split("|") if u]
    valid = [u for u in users if u in state.members]
    invalid = [u for u in users if u not in state.members]
    if not valid:
        raise ApiFailure(Errcode.ALL_RECIPIENTS_INVALID, "user & party & tag all invalid")
    now = state.now()
    if call.field("enable_duplicate_check", int, required=False, default=0) == 1:
        # WeCom's own duplicate check: the same content to the same members within the interval (1800 s unless
        # duplicate_check_interval says otherwise, at most 4 h) is not delivered again; the call still succeeds
        interval = dt.timedelta(seconds=min(call.field("duplicate_check_interval", int, required=False, default=1800), 4 * 3600))
        twin = next(
            (
                m
                for m in reversed(state.app_messages)
                if m["touser"] == users and m["content"] == content and m["msgtype"] == call.body["msgtype"] and now - m["at"] < interval
            ),
            None,
        )
        if twin is not None:
            return {"invaliduser": "|".join(invalid), "invalidparty": "", "invalidtag": "", "unlicenseduser": "", "msgid": twin["msgid"]}
    delivered: list[str] = []
    dropped: list[str] = []
    for userid in valid:
        recent = [m["at"] for m in state.app_messages if userid in m["delivered"] and now - m["at"] < dt.timedelta(hours=1)]
        last_minute = [t for t in recent if now - t < dt.timedelta(minutes=1)]
        over = len(last_minute) >= state.app_message_per_minute or len(recent) >= state.app_message_per_hour
        (dropped if over else delivered).append(userid)
    msgid = random_id(length=32)
    state.app_messages.append(
        {
            "msgid": msgid,
            "agentid": state.agent_id,
            "touser": users,
            "delivered": delivered,
            "dropped": dropped,
            "invalid": invalid,
            "msgtype": call.body["msgtype"],
            "content": content,
            "at": now,
        }
    )
    return {
        "invaliduser": "|".join(invalid),
        "invalidparty": "",
        "invalidtag": "",
        "unlicenseduser": "",
        "msgid": msgid,
        "response_code": random_id(length=40),
    }


# ---- 微信客服 -------------------------------------------------------------------------------------------
def _open_kfid(state: SandboxState, call: Call) -> str:
    open_kfid = call.field("open_kfid")
    if open_kfid not in state.open_kfids:
        raise ApiFailure(Errcode.KF_INVALID_OPEN_KFID, "invalid open_kfid")
    return open_kfid


def kf_sync_msg(state: SandboxState, call: Call) -> dict[str, Any]:
    """Cursor-paged read of the kf log: next_cursor, has_more (0/1), msg_list shaped as docs/wecom.md §4."""
    open_kfid = _open_kfid(state, call)
    limit = call.field("limit", int, required=False, default=1000)
    if not 1 <= limit <= 1000:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "limit must be 1..1000")
    token = call.field("token", str, required=False, default="")
    if state.strict_kf_sync_token and token:
        issued = state.kf_sync_tokens.get(token)
        if issued is None or state.now() - issued > state.kf_sync_token_ttl:
            raise ApiFailure(Errcode.KF_INVALID_SYNC_TOKEN, "invalid token")
    log = state.kf_log.get(open_kfid, [])
    start = min(decode_cursor(state, call.field("cursor", str, required=False, default="")), len(log))
    chunk = log[start : start + limit]
    end = start + len(chunk)
    # Unlike other pagers the kf cursor is always given: the consumer persists it and resumes from it later.
    return {
        "next_cursor": encode_cursor(state, end),
        "has_more": int(end < len(log)),
        "msg_list": chunk,
    }


def kf_send_msg(state: SandboxState, call: Call) -> dict[str, Any]:
    """Send to a customer within 48 h of their last message and at most 5 times until they write again. A
    msgid seen before answers success with the same msgid and sends nothing (the product's idempotency
    key)."""
    open_kfid = _open_kfid(state, call)
    touser = call.field("touser")
    msgid = call.field("msgid", str, required=False, default="")
    if msgid and not MSGID.fullmatch(msgid):
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid msgid")
    if msgid and (open_kfid, msgid) in state.kf_sent:
        return {"msgid": msgid}
    content = _text_of(call)
    media_id = _image_of(state, "wecom", call)
    window = state.kf_windows.get((open_kfid, touser))
    if window is None or state.now() - window.last_customer_at >= state.kf_window:
        raise ApiFailure(Errcode.KF_WINDOW_CLOSED)
    if window.sent_since >= state.kf_max_messages:
        raise ApiFailure(Errcode.KF_QUOTA_EXHAUSTED)
    msgid = msgid or random_id(length=32)
    window.sent_since += 1
    state.kf_servicer_message(open_kfid, touser, msgid, content, media_id=media_id)
    return {"msgid": msgid}


def kf_send_msg_on_event(state: SandboxState, call: Call) -> dict[str, Any]:
    """Welcome message with an enter_session welcome_code: single use, within 20 s."""
    code = call.field("code")
    msgid = call.field("msgid", str, required=False, default="")
    if msgid and not MSGID.fullmatch(msgid):
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid msgid")
    grant = state.kf_event_codes.get(code)
    if grant is not None and msgid and (grant.subject["open_kfid"], msgid) in state.kf_sent:
        return {"msgid": msgid}
    content = _text_of(call)
    grant = state.redeem(state.kf_event_codes, code, state.welcome_code_ttl)
    if grant is None:
        raise ApiFailure(Errcode.KF_EVENT_CODE_INVALID, "invalid code")
    msgid = msgid or random_id(length=32)
    state.kf_servicer_message(grant.subject["open_kfid"], grant.subject["external_userid"], msgid, content)
    return {"msgid": msgid}


def kf_customer_batchget(state: SandboxState, call: Call) -> dict[str, Any]:
    ids = call.strings("external_userid_list", limit=100)
    found = [state.customers[i] for i in ids if i in state.customers]
    return {
        "customer_list": [
            {
                "external_userid": c.external_userid,
                "nickname": c.name,
                "avatar": c.avatar,
                "gender": c.gender,
                **({"unionid": c.unionid} if c.unionid else {}),
            }
            for c in found
        ],
        "invalid_external_userid": [i for i in ids if i not in state.customers],
    }


def kf_account_list(state: SandboxState, call: Call) -> dict[str, Any]:
    return {
        "account_list": [{"open_kfid": k, "name": "沙箱客服", "avatar": "", "manage_privilege": True} for k in sorted(state.open_kfids)]
    }


ROUTES: dict[str, Endpoint] = {
    "gettoken": gettoken,
    "ticket/get": ticket_get,
    "get_jsapi_ticket": get_jsapi_ticket,
    "auth/getuserinfo": auth_getuserinfo,
    "user/list": user_list,
    "user/simplelist": user_simplelist,
    "user/get": user_get,
    "message/send": message_send,
    "kf/sync_msg": kf_sync_msg,
    "kf/send_msg": kf_send_msg,
    "kf/send_msg_on_event": kf_send_msg_on_event,
    "kf/customer/batchget": kf_customer_batchget,
    "kf/account/list": kf_account_list,
    "media/upload": media_upload("wecom"),
}
