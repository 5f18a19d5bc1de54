"""Emulated 客户群 endpoints (``externalcontact/groupchat/*``): the group list and details, and 加入群聊 join
ways (add / get / update / del_join_way) — the group QR codes whose ``state`` comes back on the members who joined
through them (``member_list[].state`` of groupchat/get). Rules as the official doc (客户群「加入群聊」管理) gives
them: scene 1 (mini-program) or 2 (QR code), 1–5 existing groups, state ≤ 30 characters, remark cut at 30."""

from __future__ import annotations

from typing import Any

from bots.outbound.client import Errcode
from bots.sandbox.endpoints import ApiFailure, Call, Endpoint, page
from bots.sandbox.entities import JoinWay, random_id
from bots.sandbox.state import SandboxState

MAX_STATE_CHARS = 30
MAX_JOIN_WAY_CHATS = 5


# ---- customer groups -----------------------------------------------------------------------------------
def groupchat_list(state: SandboxState, call: Call) -> dict[str, Any]:
    limit = call.field("limit", int)
    if not 1 <= limit <= 1000:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "limit must be 1..1000")
    owners = (call.field("owner_filter", dict, required=False, default={}) or {}).get("userid_list") or []
    groups = [g for g in state.groups.values() if not owners or g.owner in owners]
    chunk, next_cursor = page(state, groups, call.field("cursor", str, required=False, default=""), limit)
    return {
        "group_chat_list": [{"chat_id": g.chat_id, "status": g.status} for g in chunk],
        "next_cursor": next_cursor,
    }


def groupchat_get(state: SandboxState, call: Call) -> dict[str, Any]:
    group = state.groups.get(call.field("chat_id"))
    if group is None:
        raise ApiFailure(Errcode.INVALID_CHAT_ID, "invalid chatid")
    need_name = call.field("need_name", int, required=False, default=0) == 1
    members = []
    for m in group.members:
        item: dict[str, Any] = {
            "userid": m.userid,
            "type": m.type,
            "join_time": m.join_time,
            "join_scene": m.join_scene,
            "group_nickname": m.group_nickname,
        }
        if m.invitor:
            item["invitor"] = {"userid": m.invitor}
        if need_name:
            item["name"] = m.name
        if m.type == 2 and m.unionid:
            item["unionid"] = m.unionid
        if m.state:
            item["state"] = m.state  # only members who joined through a join way with a state
        members.append(item)
    return {
        "group_chat": {
            "chat_id": group.chat_id,
            "name": group.name,
            "owner": group.owner,
            "create_time": group.create_time,
            "notice": group.notice,
            "member_list": members,
            "admin_list": [{"userid": a} for a in group.admins],
            "member_version": str(len(group.members)),
        }
    }


# ---- 加入群聊 join ways ------------------------------------------------------------------------------------
def _join_way_fields(state: SandboxState, call: Call, way: JoinWay | None) -> dict[str, Any]:
    """The checked fields of an add (all required ones) or an update (``way``: the current values)."""
    scene = call.field("scene", int, required=way is None, default=way.scene if way else None)
    if scene not in (1, 2):
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid scene")
    if "chat_id_list" in call.body or way is None:
        chats = call.strings("chat_id_list")
        if not 1 <= len(chats) <= MAX_JOIN_WAY_CHATS:
            raise ApiFailure(Errcode.INVALID_PARAMETER, "chat_id_list must hold 1 to 5 chat ids")
        for chat_id in chats:
            if chat_id not in state.groups or state.groups[chat_id].status != 0:
                raise ApiFailure(Errcode.INVALID_CHAT_ID, "invalid chatid")
    else:
        chats = list(way.chat_id_list)
    join_state = call.field("state", str, required=False, default=way.state if way else "")
    if len(join_state) > MAX_STATE_CHARS:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "state exceeds 30 characters")
    auto = call.field("auto_create_room", int, required=False, default=way.auto_create_room if way else 1)
    base_name = call.field("room_base_name", str, required=False, default=way.room_base_name if way else "")
    if auto not in (0, 1) or len(base_name) > 40:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "auto_create_room is 0 or 1; room_base_name at most 40 characters")
    return {
        "scene": scene,
        "chat_id_list": chats,
        "state": join_state,
        "remark": str(call.body.get("remark", way.remark if way else ""))[:30],  # longer remarks are cut, not refused
        "auto_create_room": auto,
        "room_base_name": base_name,
        "room_base_id": call.field("room_base_id", int, required=False, default=way.room_base_id if way else 0),
    }


def add_join_way(state: SandboxState, call: Call) -> dict[str, Any]:
    """A group QR code (scene 2) or mini-program button (scene 1) for up to 5 groups; answers only config_id
    (the QR code comes from get_join_way)."""
    fields = _join_way_fields(state, call, None)
    config_id = random_id(length=32).lower()
    qr_code = f"https://wework.qpic.cn/wwpic/{random_id(length=24)}/0" if fields["scene"] == 2 else ""
    state.join_ways[config_id] = JoinWay(config_id=config_id, qr_code=qr_code, **fields)
    return {"config_id": config_id}


def _join_way(state: SandboxState, call: Call) -> JoinWay:
    way = state.join_ways.get(call.field("config_id"))
    if way is None:
        # (unconfirmed) the real errcode of an unknown config_id; the product treats it as "already gone".
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid config_id")
    return way


def get_join_way(state: SandboxState, call: Call) -> dict[str, Any]:
    way = _join_way(state, call)
    return {
        "join_way": {
            "config_id": way.config_id,
            "scene": way.scene,
            "remark": way.remark,
            "auto_create_room": way.auto_create_room,
            "room_base_name": way.room_base_name,
            "room_base_id": way.room_base_id,
            "chat_id_list": list(way.chat_id_list),
            "state": way.state,
            **({"qr_code": way.qr_code} if way.qr_code else {}),
        }
    }


def update_join_way(state: SandboxState, call: Call) -> dict[str, Any]:
    way = _join_way(state, call)
    for name, value in _join_way_fields(state, call, way).items():
        setattr(way, name, value)
    return {}


def del_join_way(state: SandboxState, call: Call) -> dict[str, Any]:
    """Delete a join way: its QR code stops working (nobody can join through it any more)."""
    way = _join_way(state, call)
    del state.join_ways[way.config_id]
    return {}


ROUTES: dict[str, Endpoint] = {
    f"externalcontact/groupchat/{name}": func
    for name, func in {
        "list": groupchat_list,
        "get": groupchat_get,
        "add_join_way": add_join_way,
        "get_join_way": get_join_way,
        "update_join_way": update_join_way,
        "del_join_way": del_join_way,
    }.items()
}
