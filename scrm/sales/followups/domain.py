"""The vocabulary of follow-ups: how one got in touch."""

from __future__ import annotations


class FollowUpKind:
    NOTE = "note"  # 备注
    CALL = "call"  # 电话
    VISIT = "visit"  # 拜访
    WECHAT = "wechat"  # 微信沟通
    MEETING = "meeting"  # 会议 / 演示


KIND_NAMES_ZH = {
    FollowUpKind.NOTE: "备注",
    FollowUpKind.CALL: "电话",
    FollowUpKind.VISIT: "拜访",
    FollowUpKind.WECHAT: "微信沟通",
    FollowUpKind.MEETING: "会议/演示",
}
