"""Emulated Official Account (公众号) endpoints: token, template and customer-service messages, user info."""

from __future__ import annotations

import secrets
from typing import Any

from bots.outbound.client import Errcode
from bots.sandbox.endpoints import ApiFailure, Call, Endpoint, media_upload
from bots.sandbox.state import SandboxState

MP_WINDOW_SECONDS = 48 * 3600


def token(state: SandboxState, call: Call) -> dict[str, Any]:
    if call.query.get("grant_type") != "client_credential":
        raise ApiFailure(Errcode.MP_INVALID_GRANT_TYPE, "invalid grant_type")
    if call.query.get("appid") != state.mp_app_id:
        raise ApiFailure(Errcode.MP_INVALID_APPID, "invalid appid")
    if call.query.get("secret") != state.mp_secret:
        raise ApiFailure(Errcode.MP_INVALID_SECRET, "invalid appsecret")
    return {"access_token": state.issue_token("mp"), "expires_in": state.token_ttl}


def _follower(state: SandboxState, openid: str) -> dict[str, Any]:
    follower = state.followers.get(openid)
    if follower is None:
        raise ApiFailure(Errcode.MP_INVALID_OPENID, "invalid openid")
    return follower


def template_send(state: SandboxState, call: Call) -> dict[str, Any]:
    """Template message (模板消息): any time, to followers only, with a template the account has."""
    openid = call.field("touser")
    follower = _follower(state, openid)
    if not follower.get("subscribe"):
        raise ApiFailure(Errcode.MP_NOT_FOLLOWER, "require subscribe")
    template_id = call.field("template_id")
    if template_id not in state.mp_template_ids:
        raise ApiFailure(Errcode.MP_INVALID_TEMPLATE, "invalid template_id")
    data = call.field("data", dict)
    msgid = secrets.randbelow(10**12) + 10**11
    state.templates_sent.append(
        {
            "msgid": msgid,
            "touser": openid,
            "template_id": template_id,
            "data": data,
            "url": call.body.get("url", ""),
            "at": state.now(),
        }
    )
    return {"msgid": msgid}


def custom_send(state: SandboxState, call: Call) -> dict[str, Any]:
    """Customer-service message (客服消息): within 48 h of the follower's last interaction, else 45015."""
    openid = call.field("touser")
    follower = _follower(state, openid)
    msgtype = call.field("msgtype")
    content = call.text_content() if msgtype == "text" else f"[{msgtype}]"
    sent: dict[str, Any] = {}
    if msgtype == "image":  # a media_id this account uploaded (media/upload), under 3 days old
        media_id = call.field("image", dict).get("media_id")
        if not isinstance(media_id, str) or state.live_media("mp", media_id, "image") is None:
            raise ApiFailure(Errcode.INVALID_MEDIA_ID)
        sent["media_id"] = media_id
    last = follower.get("last_interaction")
    if not follower.get("subscribe") or last is None or (state.now() - last).total_seconds() >= MP_WINDOW_SECONDS:
        raise ApiFailure(Errcode.MP_OUT_OF_WINDOW, "response out of time limit or subscription is canceled")
    state.mp_custom_sent.append({"touser": openid, "msgtype": msgtype, "content": content, "at": state.now(), **sent})
    return {}


def user_info(state: SandboxState, call: Call) -> dict[str, Any]:
    follower = _follower(state, call.param("openid"))
    if not follower.get("subscribe"):
        return {"subscribe": 0, "openid": follower["openid"]}
    out = {
        "subscribe": 1,
        "openid": follower["openid"],
        "language": "zh_CN",
        "subscribe_time": follower["subscribe_time"],
        "remark": "",
        "groupid": 0,
        "tagid_list": [],
        "subscribe_scene": "ADD_SCENE_QR_CODE",
        "qr_scene": 0,
        "qr_scene_str": "",
    }
    if follower.get("unionid"):
        out["unionid"] = follower["unionid"]
    return out


ROUTES: dict[str, Endpoint] = {
    "token": token,
    "message/template/send": template_send,
    "message/custom/send": custom_send,
    "user/info": user_info,
    "media/upload": media_upload("mp"),
}
