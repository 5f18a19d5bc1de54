"""Channel codes (渠道活码) in WeCom: a 联系我 contact way per code (externalcontact/add_contact_way) with a state of
our own, so each add_external_contact names the channel that brought the customer.

The row is written first (its state reserved by the table's unique key), then the contact way is made and its
config_id and QR code stored; a refusal removes the row again, so no code exists without its contact way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bots.outbound.client import WECOM_API, ApiError, ApiUnavailable, Errcode, RateLimited, WeComApi
from scrm.core.errors import DomainError, InvalidInput, ServiceUnavailable
from scrm.core.runtime import Runtime
from scrm.crm.channels.services import (
    ChannelCode,
    check_name,
    check_tag_ids,
    check_userids,
    check_welcome_text,
    delete_channel_row,
    get_channel_code,
    insert_channel_code,
    new_state,
    update_channel_row,
)

log = logging.getLogger(__name__)

SCENE_QR = 2  # 1 = mini-program button, 2 = QR code
CONTACT_WAY_GONE = {Errcode.INVALID_PARAMETER}  # (unconfirmed) del_contact_way's answer for an unknown config_id


class ContactWayRefused(DomainError):
    code = "wecom_refused"
    status = 502


def _api(rt: Runtime) -> WeComApi:
    if not rt.has(WECOM_API):
        raise ServiceUnavailable("未配置企业微信，无法生成渠道活码 (WeCom is not configured)")
    return rt.get(WECOM_API)


async def _call(rt: Runtime, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An API call whose failure is the user's answer: refusals and outages become domain errors."""
    try:
        return await _api(rt).call(path, body)
    except RateLimited as exc:
        raise ServiceUnavailable("企业微信调用太频繁，请一分钟后再试 (WeCom rate limit: retry in a minute)") from exc
    except ApiError as exc:
        if exc.errcode == Errcode.INVALID_USERID:
            raise InvalidInput("有成员账号在企业微信中不存在 (a userid is unknown to WeCom)", field="userids") from exc
        raise ContactWayRefused(f"企业微信拒绝了请求 (WeCom refused: errcode {exc.errcode})", errcode=exc.errcode) from exc
    except ApiUnavailable as exc:
        raise ServiceUnavailable("企业微信暂时无法访问，请稍后再试 (WeCom is unreachable)") from exc


async def _add_contact_way(rt: Runtime, state: str, name: str, userids: list[str]) -> tuple[str, str]:
    answer = await _call(
        rt,
        "externalcontact/add_contact_way",
        {
            "type": 2 if len(userids) > 1 else 1,  # 1 = one salesperson's code, 2 = a code shared by several
            "scene": SCENE_QR,
            "state": state,
            "user": userids,
            "skip_verify": True,  # customers are added without the salesperson confirming each one
            "remark": name[:30],
        },
    )
    return str(answer["config_id"]), str(answer.get("qr_code", ""))


async def create_channel_code(
    rt: Runtime, name: str, userids: Sequence[str], welcome_text: str = "", tag_ids: Sequence[int] = (), *, kind: str = "channel"
) -> ChannelCode:
    """Create a channel code: a unique state (``ch-`` + 12 characters, ≤ 30), a WeCom contact way for ``userids``
    (type 1 for one salesperson, 2 for several) and its QR code; welcome text and auto-tags are used when customers
    add through it. Raises InvalidInput / ContactWayRefused / ServiceUnavailable and then leaves nothing behind."""
    # Sequences from Python callers become lists; anything else (JSON from the API) is checked as it came.
    name, text = check_name(name), check_welcome_text(welcome_text)
    users = check_userids(list(userids) if isinstance(userids, tuple) else userids)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        tags = await check_tag_ids(conn, list(tag_ids) if isinstance(tag_ids, tuple) else tag_ids)
        state = new_state("ch-" if kind == "channel" else "rf-")
        code_id = await insert_channel_code(
            conn, name=name, state=state, userids=users, welcome_text=text, tag_ids=tags, now=now, kind=kind
        )
    try:
        config_id, qr_code = await _add_contact_way(rt, state, name, users)
    except BaseException:
        async with rt.db.write() as conn:
            await delete_channel_row(conn, code_id)
        raise
    async with rt.db.write() as conn:
        await update_channel_row(conn, code_id, rt.clock.now(), config_id=config_id, qr_code=qr_code)
        return await get_channel_code(conn, code_id)


async def update_channel_code(rt: Runtime, code_id: int, changes: dict[str, Any]) -> ChannelCode:
    """Change name, welcome_text, tag_ids and/or userids. New salespeople go to WeCom (update_contact_way); a code
    made for one salesperson that now needs several gets a new contact way with the same state (so its stats go on)
    and a new QR code, and the old way is deleted."""
    unknown = set(changes) - {"name", "welcome_text", "tag_ids", "userids"}
    if unknown:
        raise InvalidInput(f"不能修改这些字段 (cannot change: {', '.join(sorted(unknown))})", field=sorted(unknown)[0])
    async with rt.db.read() as conn:
        code = await get_channel_code(conn, code_id)
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = check_name(changes["name"])
        if "welcome_text" in changes:
            values["welcome_text"] = check_welcome_text(changes["welcome_text"])
        if "tag_ids" in changes:
            values["tag_ids"] = await check_tag_ids(conn, changes["tag_ids"])
    if "userids" in changes:
        users = check_userids(changes["userids"])
        if users != code.userids and code.active and code.config_id:
            way = (await _call(rt, "externalcontact/get_contact_way", {"config_id": code.config_id}))["contact_way"]
            if int(way.get("type", 1)) == 1 and len(users) > 1:
                config_id, qr_code = await _add_contact_way(rt, code.state, values.get("name", code.name), users)
                values.update(config_id=config_id, qr_code=qr_code)
                await _delete_way(rt, code.config_id)
            else:
                await _call(rt, "externalcontact/update_contact_way", {"config_id": code.config_id, "user": users})
        values["userids"] = users
    async with rt.db.write() as conn:
        if values:
            await update_channel_row(conn, code_id, rt.clock.now(), **values)
        return await get_channel_code(conn, code_id)


async def _delete_way(rt: Runtime, config_id: str, *, path: str = "externalcontact/del_contact_way", what: str = "联系我") -> None:
    """Delete a contact way (or, with ``path``, a group join way); one already gone in WeCom counts as deleted."""
    try:
        await _api(rt).call(path, {"config_id": config_id})
    except RateLimited as exc:
        raise ServiceUnavailable("企业微信调用太频繁，请一分钟后再试 (WeCom rate limit: retry in a minute)") from exc
    except ApiError as exc:
        if exc.errcode not in CONTACT_WAY_GONE:
            raise ContactWayRefused(f"企业微信拒绝删除{what} (WeCom refused: errcode {exc.errcode})", errcode=exc.errcode) from exc
        log.info("way already gone", extra={"config_id": config_id, "path": path})
    except ApiUnavailable as exc:
        raise ServiceUnavailable("企业微信暂时无法访问，请稍后再试 (WeCom is unreachable)") from exc


async def deactivate_channel_code(rt: Runtime, code_id: int) -> ChannelCode:
    """Stop a channel code: its contact way is deleted in WeCom (the QR code stops working); the row, its
    follows and its stats stay. Doing it twice is the same as once."""
    async with rt.db.read() as conn:
        code = await get_channel_code(conn, code_id)
    if code.active and code.config_id:
        await _delete_way(rt, code.config_id)
    async with rt.db.write() as conn:
        if code.active:
            await update_channel_row(conn, code_id, rt.clock.now(), active=False)
        return await get_channel_code(conn, code_id)


class WeComChannelCodes:
    """The :class:`scrm.crm.channels.services.ChannelCodeManager` the API uses."""

    async def create(self, rt: Any, *, name: str, userids: Any, welcome_text: Any, tag_ids: Any) -> ChannelCode:
        return await create_channel_code(rt, name, userids, welcome_text, tag_ids)

    async def update(self, rt: Any, code_id: int, changes: dict[str, Any]) -> ChannelCode:
        return await update_channel_code(rt, code_id, changes)

    async def deactivate(self, rt: Any, code_id: int) -> ChannelCode:
        return await deactivate_channel_code(rt, code_id)
