"""What the sandbox WeCom knows, as plain records: members, customers, groups, tags, codes, kf windows."""

from __future__ import annotations

import datetime as dt
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

_ALNUM = string.ascii_letters + string.digits


def random_id(prefix: str = "", length: int = 24) -> str:
    """An id shaped like WeCom's: a prefix plus random letters/digits (fits msgid's [0-9a-zA-Z_-])."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


@dataclass
class Member:
    """An internal member (成员) of the corp: salesperson, operations staff."""

    userid: str
    name: str
    department: list[int] = field(default_factory=lambda: [1])
    position: str = ""
    mobile: str = ""
    gender: str = "0"
    email: str = ""
    status: int = 1  # 1 active
    can_follow: bool = True  # has the 客户联系 permission (get_follow_user_list)
    direct_leader: list[str] = field(default_factory=list)  # 直属上级 userids, as user/get returns them
    departed_at: dt.datetime | None = None  # 离职: set when the member left (their customers await 离职继承)
    customer_limit: int = 0  # how many customers WeCom lets this member have (0: no limit in the sandbox)


@dataclass
class Follow:
    """A member's side of the relationship with a customer (follow_user)."""

    userid: str
    createtime: int
    remark: str = ""
    description: str = ""
    tag_ids: list[str] = field(default_factory=list)
    add_way: int = 1  # 1 scanned a QR code
    state: str = ""


@dataclass
class Customer:
    """An external contact (客户)."""

    external_userid: str
    name: str
    avatar: str = ""
    type: int = 1  # 1 WeChat user, 2 WeCom user
    gender: int = 0
    unionid: str | None = None
    corp_name: str = ""
    follows: dict[str, Follow] = field(default_factory=dict)


@dataclass
class GroupMember:
    userid: str
    type: int  # 1 member, 2 external contact
    join_time: int
    join_scene: int = 1  # 1 invited directly, 2 link, 3 QR code
    invitor: str = ""
    group_nickname: str = ""
    name: str = ""
    unionid: str = ""
    state: str = ""  # the join way's state when they joined through one (groupchat/get member_list[].state)


@dataclass
class Group:
    """A customer group chat (客户群)."""

    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    members: list[GroupMember] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    status: int = 0


@dataclass
class Tag:
    id: str
    name: str
    create_time: int
    order: int = 0


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    create_time: int
    order: int = 0
    tags: list[Tag] = field(default_factory=list)


@dataclass
class ContactWay:
    """A 联系我 configuration (channel code / referral QR code) made by add_contact_way."""

    config_id: str
    type: int
    scene: int
    state: str
    users: list[str]
    skip_verify: bool
    qr_code: str
    remark: str = ""


@dataclass
class JoinWay:
    """A 加入群聊 configuration (groupchat/add_join_way): a QR code (scene 2) or mini-program button (scene 1)
    that puts whoever uses it into one of up to 5 groups; members who join through it carry its ``state``."""

    config_id: str
    scene: int
    chat_id_list: list[str]
    state: str
    remark: str
    qr_code: str
    auto_create_room: int = 0
    room_base_name: str = ""
    room_base_id: int = 0


@dataclass
class KfWindow:
    """What WeCom tracks per (open_kfid, customer) to enforce 48 h / 5 messages."""

    last_customer_at: dt.datetime
    sent_since: int = 0


@dataclass(frozen=True)
class Media:
    """Temporary media (临时素材) uploaded with media/upload: the bytes as received, for 3 days."""

    media_id: str
    api: str  # "wecom" / "mp": a media_id is valid only on the account that uploaded it
    type: str  # image | voice | video | file
    filename: str
    content_type: str
    content: bytes
    created_at: dt.datetime


@dataclass
class Fault:
    errcode: int
    times: int
    delay: float = 0.0


@dataclass
class Grant:
    """A single-use code (OAuth code, welcome code) and whom it is for."""

    subject: dict[str, str]
    issued_at: dt.datetime
    used: bool = False


@dataclass(frozen=True)
class KfNotice:
    """What the hook gets after a customer wrote in 微信客服: enough to send the kf_msg_or_event callback."""

    open_kfid: str
    token: str
    msg: dict[str, Any]


KfHook = Callable[[KfNotice], Awaitable[None]]
# Delivers one WeCom event (its decrypted XML) to the product's callback URL, signed and encrypted.
EventHook = Callable[[str], Awaitable[None]]


@dataclass
class ApprovalNode:
    """One approver node of an application: or-sign (attr 1, any one decides) or joint-sign (attr 2, all must)."""

    attr: int
    userids: list[str]
    status: int = 1  # 1 pending, 2 approved, 3 rejected
    details: list[dict[str, Any]] = field(default_factory=list)  # {"userid", "status", "speech", "time"}


@dataclass
class Application:
    """An application (审批申请) in the 审批 app, made by oa/applyevent."""

    sp_no: str
    template_id: str
    creator: str
    nodes: list[ApprovalNode]
    apply_data: dict[str, Any]
    apply_time: int
    status: int = 1  # SpStatus: 1 审批中, 2 已通过, 3 已驳回, 4 已撤销

    @property
    def current(self) -> ApprovalNode | None:
        return next((n for n in self.nodes if n.status == 1), None)


@dataclass
class Transfer:
    """One customer's transfer (在职继承 ``onjob`` / 离职继承 ``resigned``) from one member to another. WeCom starts
    it at once and the takeover member gets the customer 24 h later unless the customer refuses; transfer_result
    reports ``status``: 1 接替完毕, 2 等待接替, 3 客户拒绝, 4 接替成员客户达到上限."""

    external_userid: str
    handover_userid: str
    takeover_userid: str
    kind: str  # onjob | resigned
    started_at: dt.datetime
    status: int = 2
    takeover_time: int = 0  # when the takeover member got the customer (status 1), else 0
