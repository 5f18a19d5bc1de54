"""Referral campaigns (裂变) — the pure rules: who counts as a qualified invite, the hold period, revocation,
the goal, the funnel and the leaderboard. No I/O: every function takes plain values.

An invite counts toward the inviter's goal only when the invitee is a person we had never seen before the add
(not a re-add, not an identity that later merges into an existing customer, not the inviter themself) and they
still follow the salesperson ``hold_hours`` after adding. Leaving (del_follow_user) before the hold ends, or
before the campaign ends, takes the credit back — and an unredeemed reward with it when the inviter falls below
the goal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scrm.campaigns.referral.models import InviteStatus, ReferralKind
from scrm.core.errors import InvalidInput
from tagging.segments.syntax import check_expression

STATE_PREFIX = "rf:"  # the contact way's state of a personal referral code: "rf:<short id>"
MAX_STATE = 30  # WeCom refuses a longer state
MAX_GOAL = 1000
MAX_HOLD_HOURS = 24 * 30
MAX_USERIDS = 100
MAX_GROUPS = 5  # groupchat/add_join_way takes at most 5 chat ids


class CampaignStatus:
    DRAFT = "draft"  # being prepared: no codes, adds are not counted
    RUNNING = "running"  # codes are handed out, adds count
    PAUSED = "paused"  # no new codes; adds through existing codes are rejected (campaign_closed)
    ENDED = "ended"  # over for good; qualification of pending invites still finishes


TRANSITIONS: dict[str, set[str]] = {
    CampaignStatus.DRAFT: {CampaignStatus.RUNNING, CampaignStatus.ENDED},
    CampaignStatus.RUNNING: {CampaignStatus.PAUSED, CampaignStatus.ENDED},
    CampaignStatus.PAUSED: {CampaignStatus.RUNNING, CampaignStatus.ENDED},
    CampaignStatus.ENDED: set(),
}


class RejectReason:
    SELF_INVITE = "self_invite"  # the inviter scanned their own code (or an identity of theirs did)
    RE_ADD = "re_add"  # the invitee was already a customer before the add
    MERGED_IDENTITY = "merged_identity"  # the "new" invitee turned out to be an existing customer (unionid merge)
    CAMPAIGN_CLOSED = "campaign_closed"  # added while the campaign was not running or outside its window
    NOT_CONFIRMED = "not_confirmed"  # a half add never confirmed before the campaign ended


REASON_TEXT = {
    RejectReason.SELF_INVITE: "自己扫自己的码",
    RejectReason.RE_ADD: "老客户重新添加",
    RejectReason.MERGED_IDENTITY: "与已有客户是同一人",
    RejectReason.CAMPAIGN_CLOSED: "活动未进行中",
    RejectReason.NOT_CONFIRMED: "好友关系未确认",
}


class InviteReason:
    """The machine code of why an invite counts or not (the API's ``reason_code``; Chinese in :func:`explain_invite`)."""

    COUNTED = "counted"  # qualified: counts toward the goal
    HOLDING = "holding"  # pending: the invitee must stay until the hold has passed
    LEFT = "left"  # revoked: the invitee deleted the salesperson / left the group within the hold (or the campaign)


INVITE_STATUS_TEXT = {
    InviteStatus.PENDING: "待确认",
    InviteStatus.QUALIFIED: "已计入",
    InviteStatus.REVOKED: "未计入",
    InviteStatus.REJECTED: "未计入",
}


def explain_invite(*, status: str, reason: str, group: bool, hold_hours: int) -> tuple[str, str]:
    """(reason code, Chinese explanation) of one invite, for the marketer's list and the inviter's progress."""
    if status == InviteStatus.QUALIFIED:
        return InviteReason.COUNTED, "已计入邀请人数"
    if status == InviteStatus.PENDING:
        stay = "留在群里" if group else "保持添加好友"
        return InviteReason.HOLDING, f"留存期中：好友需{stay}满 {hold_hours} 小时才计入"
    if status == InviteStatus.REVOKED:
        return InviteReason.LEFT, "好友在留存期内退出了群聊" if group else "好友在留存期内删除了顾问"
    return reason or RejectReason.CAMPAIGN_CLOSED, REASON_TEXT.get(reason, "不符合活动规则")


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, set())


def is_referral_state(state: str) -> bool:
    return state.startswith(STATE_PREFIX) and len(state) <= MAX_STATE


# ---- validation -----------------------------------------------------------------------------------------
def check_campaign(data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate a campaign definition (``partial``: only the given fields); returns the normalised values.
    Raises InvalidInput naming the field."""
    out: dict[str, Any] = {}

    def given(name: str) -> bool:
        return name in data or not partial

    if given("name"):
        name = data.get("name")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 64:
            raise InvalidInput("活动名称需为 1 到 64 个字 (name is 1–64 characters)", field="name")
        out["name"] = name.strip()
    if given("goal"):
        out["goal"] = _int(data.get("goal"), "goal", 1, MAX_GOAL, "邀请目标需为 1 到 1000 人 (goal: 1–1000)")
    if given("hold_hours") and (data.get("hold_hours") is not None or partial):
        out["hold_hours"] = _int(data.get("hold_hours"), "hold_hours", 0, MAX_HOLD_HOURS, "留存时长需为 0 到 720 小时 (hold_hours: 0–720)")
    for key in ("reward_template_id", "reward_tag_id"):
        if key in data:
            value = data[key]
            if value is not None:
                value = _int(value, key, 1, 2**62, f"{key} 需为编号 ({key} must be an id)")
            out[key] = value
    kind = data.get("kind", ReferralKind.CONTACT)
    if given("kind"):
        if kind not in (ReferralKind.CONTACT, ReferralKind.GROUP):
            raise InvalidInput("kind 只能是 contact（好友裂变）或 group（群裂变）(kind: contact | group)", field="kind")
        out["kind"] = kind
    if "chat_ids" in data or (not partial and kind == ReferralKind.GROUP):
        chats = data.get("chat_ids")
        if (
            not isinstance(chats, list)
            or not 0 < len(chats) <= MAX_GROUPS
            or not all(isinstance(c, str) and 0 < len(c.strip()) <= 64 for c in chats)
        ):
            raise InvalidInput("群裂变需要选择 1 到 5 个客户群 (chat_ids: 1–5 group chat ids)", field="chat_ids")
        out["chat_ids"] = list(dict.fromkeys(c.strip() for c in chats))
    if not partial and kind == ReferralKind.GROUP and not data.get("userids"):
        out["userids"] = []  # a group code leads into groups, not to salespeople
    elif given("userids"):
        users = data.get("userids")
        if (
            not isinstance(users, list)
            or not 0 < len(users) <= MAX_USERIDS
            or not all(isinstance(u, str) and 0 < len(u.strip()) <= 64 for u in users)
        ):
            raise InvalidInput("userids 需为 1 到 100 个成员账号 (userids: 1–100 member userids)", field="userids")
        out["userids"] = list(dict.fromkeys(u.strip() for u in users))
    for key, limit in (("poster_text", 2000), ("eligible_segment", 2000)):
        if key in data:
            value = data[key] if data[key] is not None else ""
            if not isinstance(value, str) or len(value) > limit:
                raise InvalidInput(f"{key} 需为不超过 {limit} 字的文本 ({key}: text ≤ {limit})", field=key)
            out[key] = value.strip()
    if out.get("eligible_segment"):  # empty = every customer; anything else must be an expression that runs
        out["eligible_segment"] = check_expression(out["eligible_segment"], "eligible_segment")
    for key in ("starts_at", "ends_at"):
        if given(key):
            out[key] = _when(data.get(key), key)
    if not partial and out.get("reward_template_id") is None and out.get("reward_tag_id") is None:
        raise InvalidInput("需设置奖励：优惠券模板或标签 (a reward coupon template or tag is required)", field="reward_template_id")
    return out


def check_window(starts_at: dt.datetime, ends_at: dt.datetime) -> None:
    if ends_at <= starts_at:
        raise InvalidInput("结束时间需晚于开始时间 (ends_at must be after starts_at)", field="ends_at")


def _int(value: Any, field: str, low: int, high: int, message: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(message, field=field)
    return value


def _when(value: Any, field: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{field} 需为 ISO 8601 时间 ({field} must be an ISO 8601 time)", field=field) from None
    else:
        raise InvalidInput(f"{field} 需为 ISO 8601 时间 ({field} must be an ISO 8601 time)", field=field)
    if when.tzinfo is None:
        raise InvalidInput(f"{field} 需带时区 ({field} needs a timezone, e.g. +08:00)", field=field)
    return when.astimezone(dt.UTC)


# ---- invites ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddDecision:
    status: str  # InviteStatus.PENDING or REJECTED
    reason: str  # "" or a RejectReason
    qualifies_at: dt.datetime


def judge_add(
    *,
    inviter_id: int,
    invitee_id: int,
    was_new: bool,
    campaign_status: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    added_at: dt.datetime,
    hold_hours: int,
) -> AddDecision:
    """What an add through an inviter's code is worth. Self-invite is named before re-add (the inviter is, of
    course, not new either)."""
    qualifies_at = added_at + dt.timedelta(hours=hold_hours)
    if invitee_id == inviter_id:
        return AddDecision(InviteStatus.REJECTED, RejectReason.SELF_INVITE, qualifies_at)
    if campaign_status != CampaignStatus.RUNNING or not starts_at <= added_at < ends_at:
        return AddDecision(InviteStatus.REJECTED, RejectReason.CAMPAIGN_CLOSED, qualifies_at)
    if not was_new:
        return AddDecision(InviteStatus.REJECTED, RejectReason.RE_ADD, qualifies_at)
    return AddDecision(InviteStatus.PENDING, "", qualifies_at)


def judge_merge(*, status: str, survivor_id: int, inviter_id: int) -> str | None:
    """The invitee's customer record was merged into an older one (their unionid / openid was already known):
    the reason to reject a still-counting invite, or None when there is nothing to change."""
    if status not in (InviteStatus.PENDING, InviteStatus.QUALIFIED):
        return None
    return RejectReason.SELF_INVITE if survivor_id == inviter_id else RejectReason.MERGED_IDENTITY


class Qualify:
    QUALIFY = "qualify"
    WAIT = "wait"
    REVOKE = "revoke"
    REJECT = "reject"


def judge_qualification(
    *, now: dt.datetime, qualifies_at: dt.datetime, follow_status: str | None, merged_away: bool, campaign_ends_at: dt.datetime
) -> tuple[str, str]:
    """(decision, reason) for a pending invite. ``follow_status``: the invitee's relation with the code's
    salesperson (active | half | ended | None when unknown). A merged-away invitee is rejected whatever the time."""
    if merged_away:
        return Qualify.REJECT, RejectReason.MERGED_IDENTITY
    if now < qualifies_at:
        return Qualify.WAIT, ""
    if follow_status == "active":
        return Qualify.QUALIFY, ""
    if follow_status == "ended" or follow_status is None:
        return Qualify.REVOKE, ""
    # half: added without confirmation yet — wait for it, but not past the campaign
    return (Qualify.REJECT, RejectReason.NOT_CONFIRMED) if now >= campaign_ends_at else (Qualify.WAIT, "")


def revocation_deadline(qualifies_at: dt.datetime, campaign_ends_at: dt.datetime) -> dt.datetime:
    """Until when leaving takes the credit back: the hold, or the campaign's end if later."""
    return max(qualifies_at, campaign_ends_at)


def revokes(*, status: str, left_at: dt.datetime, qualifies_at: dt.datetime, campaign_ends_at: dt.datetime) -> bool:
    """Does the invitee leaving (del_follow_user at ``left_at``) revoke this invite?"""
    if status == InviteStatus.PENDING:
        return True
    return status == InviteStatus.QUALIFIED and left_at < revocation_deadline(qualifies_at, campaign_ends_at)


# ---- goal and reward ---------------------------------------------------------------------------------
def goal_reached(qualified: int, goal: int) -> bool:
    return qualified >= goal


def still_needed(qualified: int, goal: int) -> int:
    return max(goal - qualified, 0)


def claws_back(*, qualified: int, goal: int, reward_active: bool) -> bool:
    """An issued reward is taken back when revocations drop the inviter below the goal."""
    return reward_active and not goal_reached(qualified, goal)


def progress_text(*, campaign: str, qualified: int, goal: int, event: str) -> str:
    """The inviter's progress notice (Chinese). ``event``: qualified | rewarded | revoked | clawed_back."""
    need = still_needed(qualified, goal)
    if event == "rewarded":
        return f"【{campaign}】恭喜！您已成功邀请 {qualified} 位好友，奖励已发放到您的账户，快去看看吧～"
    if event == "clawed_back":
        return f"【{campaign}】有好友已删除好友关系，当前有效邀请 {qualified} 位，未使用的奖励已收回；再邀请 {need} 位好友即可重新获得。"
    if event == "revoked":
        return f"【{campaign}】有 1 位好友已删除好友关系，本次邀请不计入。当前有效邀请 {qualified} 位，还差{need}位好友就能获得奖励。"
    if need == 0:
        return f"【{campaign}】又有 1 位好友成功加入！您已邀请 {qualified} 位好友。"
    return f"【{campaign}】又有 1 位好友成功加入！已邀请 {qualified} 位，还差{need}位好友就能获得奖励。"


# ---- funnel and leaderboard ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FunnelStep:
    key: str
    label: str
    count: int
    rate: float | None  # share of the step it comes from (see Funnel.steps); None where no share is meaningful


@dataclass(frozen=True)
class Funnel:
    codes_issued: int  # inviters who got a personal code
    adds: int  # adds through those codes (all, fraud included)
    qualified: int  # invites that count
    rewarded: int  # inviters rewarded (not clawed back)
    first_orders: int  # qualified invitees who placed a first order
    revenue_fen: int  # their first orders' totals

    def steps(self) -> list[FunnelStep]:
        """Each step with its share of the step it comes from — never above 100 %: an inviter brings any number of
        friends, so adds have no share of codes issued (None); invites that count are a share of adds; rewarded
        inviters a share of inviters with a code; friends' first orders a share of the invites that count."""
        counts = {
            "codes_issued": self.codes_issued,
            "adds": self.adds,
            "qualified": self.qualified,
            "rewarded": self.rewarded,
            "first_orders": self.first_orders,
        }
        labels = {
            "codes_issued": "发放邀请码",
            "adds": "扫码添加",
            "qualified": "有效邀请",
            "rewarded": "获得奖励",
            "first_orders": "好友首单",
        }
        base = {"codes_issued": None, "adds": None, "qualified": "adds", "rewarded": "codes_issued", "first_orders": "qualified"}
        out: list[FunnelStep] = []
        for key, count in counts.items():
            of = base[key]
            denominator = counts[of] if of else 0
            out.append(FunnelStep(key, labels[key], count, round(min(count / denominator, 1.0), 4) if denominator else None))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "codes_issued": self.codes_issued,
            "adds": self.adds,
            "qualified": self.qualified,
            "rewarded": self.rewarded,
            "first_orders": self.first_orders,
            "revenue_fen": self.revenue_fen,
            "steps": [{"key": s.key, "label": s.label, "count": s.count, "rate": s.rate} for s in self.steps()],
        }


@dataclass(frozen=True)
class LeaderRow:
    inviter_id: int
    qualified: int
    pending: int
    reached_at: dt.datetime | None  # when the inviter's latest qualified invite was decided
    rewarded: bool


@dataclass(frozen=True)
class Ranked:
    rank: int
    row: LeaderRow


def rank_leaderboard(rows: Iterable[LeaderRow], limit: int = 50) -> list[Ranked]:
    """Most qualified invites first; a tie goes to whoever got there first, then the lower id. Equal
    (qualified, reached_at) share a rank (1, 2, 2, 4)."""
    far_future = dt.datetime.max.replace(tzinfo=dt.UTC)
    ordered = sorted(rows, key=lambda r: (-r.qualified, r.reached_at or far_future, r.inviter_id))
    out: list[Ranked] = []
    for i, row in enumerate(ordered[:limit]):
        prev = out[-1] if out else None
        same = prev is not None and (prev.row.qualified, prev.row.reached_at) == (row.qualified, row.reached_at)
        out.append(Ranked(prev.rank if same and prev is not None else i + 1, row))
    return out
