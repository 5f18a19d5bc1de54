"""Pure rules of customer groups (客户群): member types, business days, the ``groupchat/get`` snapshot. No I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from scrm.core.clock import SHANGHAI, local

MEMBER = 1  # 企业成员: a member of our corp (salesperson, staff)
EXTERNAL = 2  # 外部联系人: a customer
EXTERNAL_PREFIXES = ("wm", "wo")  # external_userid of a WeChat user / of another corp's WeCom user
SCENE_ZH = {1: "被邀请", 2: "通过链接", 3: "扫码"}
CALLBACK_QR_SCENE = 3  # the callback's JoinScene: 0 invited or via link (not told apart), 3 via QR code


def guess_member_type(member_id: str) -> int:
    """Events list bare ids; an external_userid starts with wm/wo. The next snapshot confirms the type."""
    return EXTERNAL if member_id.startswith(EXTERNAL_PREFIXES) else MEMBER


def business_day(at: dt.datetime) -> dt.date:
    """The business day (Asia/Shanghai) an instant belongs to."""
    return local(at).date()


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a business day as UTC instants."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    return start.astimezone(dt.UTC), (start + dt.timedelta(days=1)).astimezone(dt.UTC)


# ---- snapshots ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemberSnapshot:
    userid: str
    type: int
    join_time: dt.datetime | None
    join_scene: int | None
    name: str = ""


@dataclass(frozen=True)
class GroupSnapshot:
    """What ``groupchat/get`` says about a group at one moment."""

    chat_id: str
    name: str
    owner: str
    notice: str
    created_at: dt.datetime | None
    members: list[MemberSnapshot] = field(default_factory=list)


def _epoch(value: Any) -> dt.datetime | None:
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value).isdecimal() and int(value) > 0:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    return None


def parse_group_chat(data: dict[str, Any]) -> GroupSnapshot:
    """The ``group_chat`` object of a ``groupchat/get`` answer → :class:`GroupSnapshot` (ValueError if unusable)."""
    chat_id = data.get("chat_id")
    if not isinstance(chat_id, str) or not chat_id:
        raise ValueError("group_chat without chat_id")
    members = []
    for item in data.get("member_list") or []:
        if not isinstance(item, dict) or not isinstance(item.get("userid"), str) or not item["userid"]:
            continue
        mtype = item.get("type")
        scene = item.get("join_scene")
        members.append(
            MemberSnapshot(
                userid=item["userid"][:128],
                type=mtype if mtype in (MEMBER, EXTERNAL) else guess_member_type(item["userid"]),
                join_time=_epoch(item.get("join_time")),
                join_scene=scene if isinstance(scene, int) and not isinstance(scene, bool) else None,
                name=str(item.get("name") or "")[:128],
            )
        )
    return GroupSnapshot(
        chat_id=chat_id[:64],
        name=str(data.get("name") or "")[:128],
        owner=str(data.get("owner") or "")[:64],
        notice=str(data.get("notice") or ""),
        created_at=_epoch(data.get("create_time")),
        members=members,
    )
