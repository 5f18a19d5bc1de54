"""What a tester makes a sandbox customer do in WeCom, one function per event (the chat page's buttons and the
scan page call them): add or delete a salesperson, join or leave a customer group, scan a channel code (联系我).

Each changes the emulator's state first (so the product's API calls see the new facts), then delivers the signed,
encrypted callback WeCom would send — the real ``/callback/wecom`` path, through ``state.on_wecom_event``. Errors a
tester can cause (an unknown member, a follow that does not exist) raise :class:`TesterError` with a Chinese
message; the HTTP layer turns it into a 400.
"""

from __future__ import annotations

from typing import Any

from bots.sandbox.entities import GroupMember
from bots.sandbox.group_simulator import deliver_event
from bots.sandbox.simulator import change_external_chat, change_external_contact
from bots.sandbox.state import SandboxState

SANDBOX_GROUP_ID = "wrSandboxGroup01"  # the customer group the buttons use when the corp has none yet
SANDBOX_GROUP_NAME = "沙箱客户群"


class TesterError(Exception):
    """Something the tester asked for cannot happen (message in Chinese, for the page)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _member(state: SandboxState, userid: str) -> None:
    if userid not in state.members:
        raise TesterError(f"沙箱企业里没有成员 {userid}")


async def customer_adds_salesperson(
    state: SandboxState, external_userid: str, name: str, userid: str, *, way_state: str = ""
) -> dict[str, Any]:
    """The customer adds member ``userid`` (scans their personal code): an add_external_contact event with a fresh
    WelcomeCode. Adding someone they already follow is refused (WeCom sends nothing then either)."""
    _member(state, userid)
    customer = state.customers.get(external_userid)
    if customer is not None and userid in customer.follows:
        raise TesterError(f"客户已经是 {state.members[userid].name} 的好友")
    state.add_customer(external_userid, name or "微信用户", [userid], state=way_state)
    code = state.issue_welcome_code(userid, external_userid)
    xml = change_external_contact(
        "add_external_contact", userid, external_userid, state=way_state or None, welcome_code=code, corp_id=state.corp_id
    )
    await deliver_event(state, xml)
    return {"event": "add_external_contact", "userid": userid, "external_userid": external_userid, "state": way_state}


async def customer_deletes_salesperson(state: SandboxState, external_userid: str, userid: str) -> dict[str, Any]:
    """The customer deletes member ``userid`` from their WeChat contacts: a del_follow_user event (a churn signal)."""
    _member(state, userid)
    customer = state.customers.get(external_userid)
    if customer is None or userid not in customer.follows:
        raise TesterError(f"客户还不是 {state.members[userid].name} 的好友")
    del customer.follows[userid]
    await deliver_event(state, change_external_contact("del_follow_user", userid, external_userid, corp_id=state.corp_id))
    return {"event": "del_follow_user", "userid": userid, "external_userid": external_userid}


def _group(state: SandboxState, chat_id: str, owner: str) -> Any:
    if chat_id in state.groups:
        return state.groups[chat_id]
    if chat_id != SANDBOX_GROUP_ID:
        raise TesterError(f"沙箱里没有客户群 {chat_id}")
    _member(state, owner)
    return state.add_group(SANDBOX_GROUP_ID, SANDBOX_GROUP_NAME, owner)


async def customer_joins_group_chat(
    state: SandboxState, chat_id: str, external_userid: str, name: str, *, owner: str = "sales01"
) -> dict[str, Any]:
    """The customer joins a customer group by its QR code: update/add_member with JoinScene 3. The sandbox group
    (``SANDBOX_GROUP_ID``) is made on first use, owned by ``owner``."""
    group = _group(state, chat_id, owner)
    if any(m.userid == external_userid for m in group.members):
        raise TesterError(f"客户已在群“{group.name}”里")
    customer = state.customers.get(external_userid) or state.add_customer(external_userid, name or "微信用户")
    now = state.ts()
    group.members.append(GroupMember(external_userid, 2, now, join_scene=3, name=customer.name, unionid=customer.unionid or ""))
    xml = change_external_chat(
        "update", group.chat_id, "add_member", join_scene=3, mem_change_list=[external_userid], create_time=now, corp_id=state.corp_id
    )
    await deliver_event(state, xml)
    return {"event": "add_member", "chat_id": group.chat_id, "external_userid": external_userid}


async def customer_leaves_group_chat(state: SandboxState, chat_id: str, external_userid: str) -> dict[str, Any]:
    """The customer leaves the group: update/del_member with QuitScene 0."""
    if chat_id not in state.groups:
        raise TesterError(f"沙箱里没有客户群 {chat_id}")
    try:
        left = state.member_left_group(chat_id, external_userid, quit_scene=0)
    except KeyError:
        raise TesterError("客户不在这个群里") from None
    xml = change_external_chat(
        "update",
        chat_id,
        "del_member",
        quit_scene=0,
        mem_change_list=[external_userid],
        create_time=left["create_time"],
        corp_id=state.corp_id,
    )
    await deliver_event(state, xml)
    return {"event": "del_member", "chat_id": chat_id, "external_userid": external_userid}


async def customer_scans_contact_way(state: SandboxState, config_id: str, external_userid: str, name: str) -> dict[str, Any]:
    """The customer scans a channel code (联系我, add_contact_way): they add its first member, and the
    add_external_contact event carries the code's ``state`` — how the product attributes the add to the channel."""
    way = state.contact_ways.get(config_id)
    if way is None:
        raise TesterError("这个渠道活码不存在或已删除")
    if not way.users:
        raise TesterError("这个渠道活码没有成员")
    return await customer_adds_salesperson(state, external_userid, name, way.users[0], way_state=way.state)


def tester_options(state: SandboxState, external_userid: str = "") -> dict[str, Any]:
    """What the page's buttons can pick from: members, customer groups (with whether this customer is in each),
    channel codes, and whom this customer follows."""
    customer = state.customers.get(external_userid)
    follows = sorted(customer.follows) if customer is not None else []
    groups = [
        {"chat_id": g.chat_id, "name": g.name, "joined": any(m.userid == external_userid for m in g.members)} for g in state.groups.values()
    ]
    if SANDBOX_GROUP_ID not in state.groups:
        groups.append({"chat_id": SANDBOX_GROUP_ID, "name": SANDBOX_GROUP_NAME, "joined": False})
    return {
        "members": [{"userid": m.userid, "name": m.name} for m in state.members.values()],
        "follows": follows,
        "groups": groups,
        "contact_ways": [
            {"config_id": w.config_id, "state": w.state, "remark": w.remark, "qr_code": w.qr_code}
            for w in state.contact_ways.values()
            if w.users
        ],
    }
