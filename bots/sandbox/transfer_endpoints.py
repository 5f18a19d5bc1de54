"""Emulated customer and group transfers (在职继承 / 离职继承, docs/wecom.md §5b) with WeCom's rules.

* ``externalcontact/transfer_customer`` (an employed member's customers) and ``externalcontact/resigned/transfer_customer``
  (a departed member's): at most 100 external_userids a call; each customer answers its own ``errcode`` — 0 means
  *started*: the takeover member gets the customer after 24 h (:attr:`SandboxState.transfer_takeover_delay`) unless
  the customer refuses. An employed member's customer may be transferred at most twice in 90 days (40128).
* ``transfer_result`` / ``resigned/transfer_result``: each customer of a (handover, takeover) pair with status 1 接替完毕,
  2 等待接替, 3 客户拒绝, 4 接替成员客户达到上限.
* ``get_unassigned_list``: the customers of departed members that wait for 离职继承.
* ``groupchat/transfer`` (groups of departed owners) and ``groupchat/onjob_transfer``: the owner changes at once;
  refusals per group in ``failed_chat_list``.

Time is the sandbox's clock (the product's): a transfer whose 24 h passed is settled whenever the emulator looks at
transfers (:func:`settle`). What WeCom then tells the product (the old member's ``del_external_contact`` with Source
DELETE_BY_TRANSFER, ``transfer_fail`` when the takeover member is full) waits in ``state.pending_events`` until the
``/sandbox/api/transfers/settle`` control route delivers it; a refusal (``/sandbox/api/transfers/refuse``) is
delivered at once, as the customer taps 拒绝.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bots.outbound.client import Errcode
from bots.sandbox.endpoints import ApiFailure, Call, Endpoint, page
from bots.sandbox.entities import Follow, GroupMember, Member, Transfer
from bots.sandbox.simulator import change_external_contact
from bots.sandbox.state import SandboxState

MAX_CUSTOMERS = 100  # external_userids per transfer call
MAX_CHATS = 100  # chat ids per group transfer call
MAX_SUCCESS_MSG = 200  # characters of transfer_success_msg
MAX_PAGE = 1000
DONE, WAITING, REFUSED, TAKEOVER_FULL = 1, 2, 3, 4


def _member(state: SandboxState, userid: str, *, departed: bool | None = None) -> Member:
    """A member of the corp; ``departed`` False: must still be employed (a departed one is no longer a member for the
    on-job APIs: 60111, as for an unknown userid)."""
    member = state.members.get(userid)
    if member is None or (departed is False and member.departed_at is not None):
        raise ApiFailure(Errcode.INVALID_USERID, f"userid {userid} not found")
    return member


def _waiting(state: SandboxState, external_userid: str) -> Transfer | None:
    return next((t for t in reversed(state.transfers) if t.external_userid == external_userid and t.status == WAITING), None)


def settle(state: SandboxState) -> list[Transfer]:
    """Every waiting transfer whose 24 h are over is taken over (or fails: the takeover member is at their customer
    limit). The customer's follow moves from the handover to the takeover member, keeping remark and tags. Queues
    the callbacks WeCom sends for it; returns the transfers settled now."""
    now = state.now()
    settled = []
    for t in state.transfers:
        if t.status != WAITING or now - t.started_at < state.transfer_takeover_delay:
            continue
        at = t.started_at + state.transfer_takeover_delay
        customer = state.customers.get(t.external_userid)
        takeover = state.members.get(t.takeover_userid)
        limit = takeover.customer_limit if takeover is not None else 0
        held = sum(1 for c in state.customers.values() if t.takeover_userid in c.follows)
        if customer is None or (limit and held >= limit):
            t.status = TAKEOVER_FULL
            state.pending_events.append(
                change_external_contact("transfer_fail", t.takeover_userid, t.external_userid, fail_reason="customer_limit_exceed",
                                        create_time=int(at.timestamp()), corp_id=state.corp_id)
            )  # fmt: skip
        else:
            old = customer.follows.pop(t.handover_userid, None)
            customer.follows.setdefault(
                t.takeover_userid,
                Follow(t.takeover_userid, int(at.timestamp()), remark=old.remark if old else "", description=old.description if old else "",
                       tag_ids=list(old.tag_ids) if old else [], add_way=old.add_way if old else 1, state=old.state if old else ""),
            )  # fmt: skip
            t.status, t.takeover_time = DONE, int(at.timestamp())
            state.pending_events.append(
                change_external_contact("del_external_contact", t.handover_userid, t.external_userid, source="DELETE_BY_TRANSFER",
                                        create_time=t.takeover_time, corp_id=state.corp_id)
            )  # fmt: skip
        settled.append(t)
    return settled


def refuse(state: SandboxState, external_userid: str) -> tuple[Transfer, str]:
    """The customer taps 拒绝 on the transfer notice: the waiting transfer ends refused (the customer stays with the
    handover member). Returns it and the transfer_fail callback's XML. ValueError when nothing waits."""
    settle(state)
    transfer = _waiting(state, external_userid)
    if transfer is None:
        raise ValueError(f"no transfer of {external_userid} is waiting")
    transfer.status = REFUSED
    xml = change_external_contact("transfer_fail", transfer.takeover_userid, external_userid, fail_reason="customer_refused",
                                  create_time=state.ts(), corp_id=state.corp_id)  # fmt: skip
    return transfer, xml


def _onjob_transfers_within(state: SandboxState, external_userid: str) -> int:
    since = state.now() - state.transfer_limit_window
    return sum(1 for t in state.transfers if t.external_userid == external_userid and t.kind == "onjob" and t.started_at > since)


def _transfer(state: SandboxState, call: Call, kind: str) -> dict[str, Any]:
    handover_id = call.field("handover_userid")
    takeover_id = call.field("takeover_userid")
    handover = _member(state, handover_id, departed=None if kind == "resigned" else False)
    if kind == "resigned" and handover.departed_at is None:
        raise ApiFailure(Errcode.MEMBER_NOT_RESIGNED, "handover_userid has not resigned")
    takeover = _member(state, takeover_id, departed=False)
    if not takeover.can_follow:
        raise ApiFailure(Errcode.NO_CONTACT_PERMISSION, "takeover_userid has no external contact permission")
    externals = call.strings("external_userid")
    if not 0 < len(externals) <= MAX_CUSTOMERS:
        raise ApiFailure(Errcode.INVALID_PARAMETER, f"external_userid must list 1-{MAX_CUSTOMERS} customers")
    if kind == "onjob" and len(call.field("transfer_success_msg", str, required=False, default="")) > MAX_SUCCESS_MSG:
        raise ApiFailure(Errcode.INVALID_PARAMETER, f"transfer_success_msg exceeds {MAX_SUCCESS_MSG} characters")
    settle(state)
    answers = []
    for ext in externals:
        customer = state.customers.get(ext)
        if customer is None:
            errcode = Errcode.INVALID_EXTERNAL_USERID
        elif handover_id == takeover_id:
            errcode = Errcode.TRANSFER_SAME_MEMBER
        elif handover_id not in customer.follows:
            errcode = Errcode.NOT_FOLLOWER
        elif _waiting(state, ext) is not None:
            errcode = Errcode.TRANSFER_IN_PROGRESS
        elif kind == "onjob" and _onjob_transfers_within(state, ext) >= state.transfer_limit_count:
            errcode = Errcode.TRANSFER_TOO_FREQUENT
        else:
            errcode = 0
            state.transfers.append(Transfer(ext, handover_id, takeover_id, kind, state.now()))
        answers.append({"external_userid": ext, "errcode": errcode})
    return {"customer": answers}


def transfer_customer(state: SandboxState, call: Call) -> dict[str, Any]:
    return _transfer(state, call, "onjob")


def resigned_transfer_customer(state: SandboxState, call: Call) -> dict[str, Any]:
    return _transfer(state, call, "resigned")


def _result(state: SandboxState, call: Call, kind: str) -> dict[str, Any]:
    handover_id = call.field("handover_userid")
    takeover_id = call.field("takeover_userid")
    _member(state, takeover_id)
    settle(state)
    latest: dict[str, Transfer] = {}
    for t in state.transfers:
        if t.kind == kind and t.handover_userid == handover_id and t.takeover_userid == takeover_id:
            latest[t.external_userid] = t  # the newest transfer of each customer between the two
    items = [{"external_userid": t.external_userid, "status": t.status, "takeover_time": t.takeover_time} for t in latest.values()]
    chunk, next_cursor = page(state, items, call.field("cursor", str, required=False, default=""), MAX_PAGE)
    return {"customer": chunk, "next_cursor": next_cursor}


def transfer_result(state: SandboxState, call: Call) -> dict[str, Any]:
    return _result(state, call, "onjob")


def resigned_transfer_result(state: SandboxState, call: Call) -> dict[str, Any]:
    return _result(state, call, "resigned")


def get_unassigned_list(state: SandboxState, call: Call) -> dict[str, Any]:
    """Customers of departed members not yet handed to anyone (a waiting 离职继承 takes them off the list)."""
    size = call.field("page_size", int, required=False, default=MAX_PAGE)
    if not 1 <= size <= MAX_PAGE:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "page_size must be 1..1000")
    settle(state)
    items = [
        {"handover_userid": m.userid, "external_userid": c.external_userid, "dimission_time": int(m.departed_at.timestamp())}
        for m in state.members.values()
        if m.departed_at is not None
        for c in state.customers.values()
        if m.userid in c.follows and _waiting(state, c.external_userid) is None
    ]
    chunk, next_cursor = page(state, items, call.field("cursor", str, required=False, default=""), size)
    return {"info": chunk, "is_last": not next_cursor, "next_cursor": next_cursor}


def _group_transfer(state: SandboxState, call: Call, *, departed_owner: bool) -> dict[str, Any]:
    chat_ids = call.strings("chat_id_list")
    if not 0 < len(chat_ids) <= MAX_CHATS:
        raise ApiFailure(Errcode.INVALID_PARAMETER, f"chat_id_list must list 1-{MAX_CHATS} groups")
    new_owner = call.field("new_owner")
    _member(state, new_owner, departed=False)
    failed = []
    for chat_id in chat_ids:
        group = state.groups.get(chat_id)
        owner = state.members.get(group.owner) if group is not None else None
        owner_left = owner is not None and owner.departed_at is not None
        if group is None or group.status != 0:
            errcode = Errcode.INVALID_CHAT_ID
        elif group.owner == new_owner:
            errcode = Errcode.GROUP_SAME_OWNER
        elif departed_owner and not owner_left:
            errcode = Errcode.GROUP_OWNER_NOT_RESIGNED
        elif not departed_owner and owner_left:
            errcode = Errcode.GROUP_OWNER_RESIGNED
        else:
            group.owner = new_owner
            if new_owner not in {m.userid for m in group.members}:
                group.members.append(GroupMember(new_owner, 1, state.ts(), name=state.members[new_owner].name))
            continue
        failed.append({"chat_id": chat_id, "errcode": errcode, "errmsg": "failed"})
    return {"failed_chat_list": failed}


def groupchat_transfer(state: SandboxState, call: Call) -> dict[str, Any]:
    return _group_transfer(state, call, departed_owner=True)


def groupchat_onjob_transfer(state: SandboxState, call: Call) -> dict[str, Any]:
    return _group_transfer(state, call, departed_owner=False)


def member_departs(state: SandboxState, userid: str, at: dt.datetime | None = None) -> Member:
    """The member leaves the corp (离职): they keep their customers until 离职继承 hands them on. KeyError if unknown."""
    member = state.members[userid]
    member.departed_at = at or state.now()
    member.status = 5  # (the sandbox keeps a departed member listed, so their name still shows) 5 = 退出企业
    return member


ROUTES: dict[str, Endpoint] = {
    f"externalcontact/{name}": func
    for name, func in {
        "transfer_customer": transfer_customer,
        "resigned/transfer_customer": resigned_transfer_customer,
        "transfer_result": transfer_result,
        "resigned/transfer_result": resigned_transfer_result,
        "get_unassigned_list": get_unassigned_list,
        "groupchat/transfer": groupchat_transfer,
        "groupchat/onjob_transfer": groupchat_onjob_transfer,
    }.items()
}
