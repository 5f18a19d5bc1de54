"""Customers joining and leaving customer groups (客户群) in the sandbox, as WeCom reports them: the emulator's
state changes first (the member list, with a join way's ``state``), then the product hears the signed, encrypted
``change_external_chat`` callback through ``SandboxState.on_wecom_event`` (set by :func:`bots.sandbox.web.setup`)."""

from __future__ import annotations

from typing import Any

from bots.sandbox.simulator import change_external_chat
from bots.sandbox.state import SandboxState


async def customer_joins_group(
    state: SandboxState, config_id: str, external_userid: str, name: str, *, chat_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A customer scans a 加入群聊 code (a join way): the emulator puts them in the group with the way's state in
    its member list (``SandboxState.customer_joined_via``), then WeCom tells the product — a change_external_chat
    update/add_member with JoinScene 3 (QR code) through ``state.on_wecom_event``. Returns the join's fields."""
    joined = state.customer_joined_via(config_id, external_userid, name, chat_id=chat_id, **fields)
    xml = change_external_chat(
        "update", joined["chat_id"], "add_member", join_scene=3, mem_change_list=[external_userid],
        create_time=joined["create_time"], corp_id=state.corp_id,
    )  # fmt: skip
    await deliver_event(state, xml)
    return dict(joined)


async def member_leaves_group(state: SandboxState, chat_id: str, userid: str, *, quit_scene: int = 0) -> dict[str, Any]:
    """``userid`` leaves the group (0) or is removed (1), then WeCom sends update/del_member with QuitScene."""
    left = state.member_left_group(chat_id, userid, quit_scene=quit_scene)
    xml = change_external_chat(
        "update", chat_id, "del_member", quit_scene=quit_scene, mem_change_list=[userid], create_time=left["create_time"],
        corp_id=state.corp_id,
    )  # fmt: skip
    await deliver_event(state, xml)
    return dict(left)


async def deliver_event(state: SandboxState, xml: str) -> None:
    """Send one event (its decrypted XML) to the product through the sandbox's callback hook."""
    if state.on_wecom_event is None:
        raise RuntimeError("the sandbox has no callback hook (state.on_wecom_event): mount it with bots.sandbox.web.setup")
    await state.on_wecom_event(xml)
